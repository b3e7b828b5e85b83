"""The command group: option and argument errors as one line, help fitted to 80 columns (panels, metavars)."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
import typer.core

from rankvideo_cli.cli.defaults import (
    NOT_FROM_FILE,
    ONE_PER_LINE,
    Defaults,
    OptionSpec,
    config_paths,
    env_variable,
    load_defaults,
    option_key,
    origin,
)
from rankvideo_cli.cli.params import click
from rankvideo_cli.errors import RankVideoError, UsageError
from rankvideo_cli.io.atomic import StdoutClosed, quiet_broken_pipe
from rankvideo_cli.messages import printable

SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what `cmd | head` leaves for a command killed by the closed pipe


# Help at 80 columns: every option in a panel by what it is about, and a metavar that says what it takes (Typer's
# own are `<Path>`, `<bool>`, `<list[str]>`). Options of a fixed set of values show their choices instead.
HELP_PANELS = {
    "Videos": (
        "videos",
        "video_pattern",
        "multivent",
        "video_map",
        "frames_cache",
        "decode_workers",
        "prefetch",
        "verify",
        "rebuild",
        "save",
        "thumbnails",
    ),
    "Model": (
        "model",
        "reranker",
        "instruction",
        "revision",
        "cache_dir",
        "dtype",
        "device",
        "attn_implementation",
        "score_mode",
        "prompt",
        "batch_size",
    ),
    "Experimental": ("prefix_cache",),
    "Ranking": ("depth", "interpolate", "normalization", "on_missing_video", "on_bad_video", "missing_query", "tag"),
    "Store and cluster": ("cache", "shard", "devices", "dry_run", "allow_missing", "force", "retry_bad_videos"),
    "Output": ("output", "scores", "manifest", "as_json", "fmt", "qrels", "measure", "measures", "quiet", "verbose"),
}
METAVARS = {
    "videos": "DIR",
    "frames_cache": "DIR",
    "save": "DIR",
    "cache": "DIR",
    "cache_dir": "DIR",
    "video_pattern": "PATTERN",
    "video_map": "FILE",
    "output": "FILE",
    "scores": "FILE",
    "manifest": "FILE",
    "qrels": "FILE",
    "queries": "FILE",
    "baseline": "RUN",
    "explanations": "FILE",
    "measure": "MEASURE",
    "measures": "MEASURE",
    "model": "MODEL",
    "revision": "REV",
    "dtype": "bf16|fp16|fp32",
    "device": "DEVICE",
    "attn_implementation": "IMPL",
    "reranker": "NAME",
    "fmt": "table|tsv|csv|json",
    "score_mode": "full|reference",
    "prompt": "inference|training",
    "normalization": "minmax|zscore|none",
    "on_missing_video": "keep|drop|error",
    "on_bad_video": "keep|drop|error",
    "missing_query": "error|skip",
    "correction": "holm|bonferroni|none",
    "batch_size": "N",
    "instruction": "TEXT",
    "decode_workers": "N",
    "prefetch": "N",
    "depth": "K",
    "interpolate": "ALPHA",
    "tag": "TAG",
    "shard": "I/N|auto",
    "devices": "LIST",
    "query": "TEXT",
    "qid": "QID",
    "top": "N",
    "thumbnails": "N",
    "limit": "N",
    "max_new_tokens": "N",
    "temperature": "T",
    "top_p": "P",
    "top_k": "K",
    "seed": "N",
    "reference_model": "NAME",
    "alphas": "LIST",
    "normalizations": "LIST",
    "folds": "K",
}


def tidy_help(command: Any) -> None:
    """Give each option of `command` its panel and metavar (flags none): `HELP_PANELS`, `METAVARS`."""
    panel_of = {name: panel for panel, names in HELP_PANELS.items() for name in names}
    if command.help and not command.short_help:
        # the docstring's first paragraph as one line (its own line breaks would show in the command list)
        command.short_help = " ".join(command.help.split("\n\n")[0].split())
    for param in command.params:
        param.show_envvar = False  # every option has one (cli/defaults.py): the docs name the rule once
        if param.param_type_name == "argument":
            param.metavar = param.metavar or param.name.upper()
            shown = {"directory": "DIR", "template": "NAME"}.get(param.name, "FILE..." if param.nargs != 1 else "FILE")
            param.display_type_rich = lambda ctx=None, shown=shown: shown  # Typer would show <Path>, <list[Path]>
            continue
        if getattr(param, "is_flag", False):
            param.metavar = " "  # a flag takes no value: Typer would show <bool>
        elif param.name in METAVARS:
            param.metavar = METAVARS[param.name]
        if param.name in panel_of and len(command.params) > 8:
            param.rich_help_panel = panel_of[param.name]
    help_option = command.get_help_option

    def get_help_option(context: Any) -> Any:
        option = help_option(context)
        if option is not None:
            option.metavar = " "
            if len(command.params) > 8:
                option.rich_help_panel = "Output"
        return option

    command.get_help_option = get_help_option


class OneLineErrorsGroup(typer.core.TyperGroup):
    """Option and argument errors as one line on stderr and exit 2, like every other rankvideo error (click's
    own format is a usage block and a boxed message); a closed stdout pipe ends the command quietly. Its commands'
    help is tidied for 80 columns (`tidy_help`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in (self, *self.commands.values()):
            tidy_help(command)

    def option_specs(self) -> dict[str, dict[str, OptionSpec]]:
        """{command: {option key: OptionSpec}} (`frames_cache`: cli/defaults.py): what the environment and a
        file may give each option."""
        return {
            name: {
                option_key(param): OptionSpec(
                    param.name,
                    repeatable=bool(param.multiple),
                    flag=bool(getattr(param, "is_flag", False)),
                    path=METAVARS.get(param.name) in ("DIR", "FILE"),
                )
                for param in command.params
                if param.param_type_name == "option" and param.name
            }
            for name, command in self.commands.items()
        }

    def attach_variables(self) -> None:
        """Each option reads its own variable, RANKVIDEO_<COMMAND>_<OPTION> (none for --dry-run and --force); a
        repeatable option splits it on spaces, a shell line (`slurm --setup`) on new lines."""
        for name, command in self.commands.items():
            for param in command.params:
                if param.param_type_name == "option" and param.name and param.name not in NOT_FROM_FILE:
                    param.envvar = env_variable(name, option_key(param))
                    if param.name in ONE_PER_LINE:
                        param.value_from_envvar = _lines_of_variable(param)  # type: ignore[method-assign]

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        tidy_help(self)  # again: Typer adds the completion options after __init__
        self.attach_variables()
        try:
            defaults = self._defaults(args)
            result = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                default_map=defaults.default_map(),
                obj=defaults,
                **extra,
            )
        except click.exceptions.NoArgsIsHelpError:  # the help is already printed
            return self._leave(2, standalone_mode)
        except click.exceptions.UsageError as error:
            where = error.ctx.command_path if error.ctx is not None else "rankvideo"
            message = printable(" ".join(error.format_message().split())) + _given_by(error)
            click.echo(f"{where}: {message} (see '{where} --help')", err=True)
            return self._leave(error.exit_code, standalone_mode)
        except RankVideoError as error:  # a defaults file that cannot be used (the commands catch their own)
            click.echo(f"rankvideo: {printable(str(error))}", err=True)
            return self._leave(error.exit_code, standalone_mode)
        except click.exceptions.ClickException as error:
            click.echo(f"rankvideo: {printable(' '.join(error.format_message().split()))}", err=True)
            return self._leave(error.exit_code, standalone_mode)
        except typer.Abort:
            click.echo("rankvideo: aborted", err=True)
            return self._leave(130, standalone_mode)
        except StdoutClosed:
            quiet_broken_pipe()
            return self._leave(SIGPIPE_EXIT, standalone_mode)
        code = result if isinstance(result, int) else 0
        return self._leave(code, standalone_mode)

    def _defaults(self, args: Any) -> Defaults:
        """The defaults of rankvideo.toml (cli/defaults.py). A file the tool cannot use is refused, except where
        nothing would use it: --help, --version and shell completion still work, so the file can be fixed."""
        try:
            return load_defaults(self.option_specs(), config_paths())
        except UsageError:
            words = sys.argv[1:] if args is None else list(args)
            completing = any(name.endswith("_COMPLETE") and name.startswith("_") for name in os.environ)
            if completing or any(word in ("--help", "--version") for word in words):
                return Defaults()
            raise

    @staticmethod
    def _leave(code: int, standalone_mode: bool) -> int:
        if standalone_mode:
            sys.exit(code)
        return code


def _given_by(error: Any) -> str:
    """Where a refused value came from when not from the command line: an environment variable or a file."""
    context, param = getattr(error, "ctx", None), getattr(error, "param", None)
    if context is None or param is None or not param.name:
        return ""
    return origin(context, param.name)


def _lines_of_variable(param: Any) -> Any:
    """`value_from_envvar` for an option whose values are shell lines: one value a line."""

    def value_from_envvar(context: Any) -> list[str] | None:
        value = param.resolve_envvar_value(context)
        return None if value is None else [line for line in value.splitlines() if line.strip()]

    return value_from_envvar
