"""The command group: option and argument errors as one line, help fitted to 80 columns (panels, metavars)."""

from __future__ import annotations

import sys
from typing import Any

import typer
import typer.core

from rankvideo_cli.cli.defaults import NOT_FROM_FILE, Defaults, config_paths, env_variable, load_defaults, option_key
from rankvideo_cli.cli.params import click
from rankvideo_cli.errors import RankVideoError
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

    def options_of(self) -> dict[str, dict[str, str]]:
        """{command: {option key: parameter name}} (`frames_cache`: cli/defaults.py), for the defaults the
        environment and a file may give; each option reads its own variable, RANKVIDEO_<COMMAND>_<OPTION>."""
        found: dict[str, dict[str, str]] = {}
        for name, command in self.commands.items():
            found[name] = {}
            for param in command.params:
                if param.param_type_name == "option" and param.name:
                    found[name][option_key(param)] = param.name
                    if param.name not in NOT_FROM_FILE:
                        param.envvar = env_variable(name, option_key(param))
        return found

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        tidy_help(self)  # again: Typer adds the completion options after __init__
        try:
            # defaults from the environment (RANKVIDEO_<COMMAND>_<OPTION>) and rankvideo.toml: cli/defaults.py
            defaults = load_defaults(self.options_of(), config_paths())
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
    kind = getattr(context.get_parameter_source(param.name), "name", None)
    if kind == "ENVIRONMENT":
        return f" (from {env_variable(context.info_name, option_key(param))})"
    if kind == "DEFAULT_MAP" and isinstance(context.obj, Defaults):
        return f" (from {context.obj.origin(context.info_name, param.name) or 'a rankvideo.toml'})"
    return ""
