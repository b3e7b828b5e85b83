"""The `rankvideo` command line: parse options, call the library, print. No logic lives here."""

from __future__ import annotations

import functools
import inspect
import os
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from rich.console import Console

from rankvideo_cli import __version__
from rankvideo_cli.errors import RankVideoError, UsageError
from rankvideo_cli.io.atomic import StdoutClosed, quiet_broken_pipe
from rankvideo_cli.messages import printable, say
from rankvideo_cli.options import (
    DecodeOptions,
    Normalization,
    OptionError,
    QueryPolicy,
    RankingOptions,
    VideoPolicy,
    VideoSource,
    from_values,
)
from rankvideo_cli.progress import NORMAL, QUIET, VERBOSE, VERBOSITY_VARIABLE
from rankvideo_cli.scoring.options import DEFAULT_MODEL, ScorerOptions
from rankvideo_cli.scoring.rerankers import DEFAULT_RERANKER, RERANKERS, get_reranker

# typer >= 0.20 vendors click as typer._click; older releases use click itself
_click = getattr(typer.core, "_click", None) or __import__("click")
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
        if param.param_type_name == "argument":
            param.metavar = param.metavar or param.name.upper()
            shown = "DIR" if param.name == "directory" else "FILE..." if param.nargs != 1 else "FILE"
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

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            result = super().main(
                args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra
            )
        except _click.exceptions.NoArgsIsHelpError:  # the help is already printed
            return self._leave(2, standalone_mode)
        except _click.exceptions.UsageError as error:
            where = error.ctx.command_path if error.ctx is not None else "rankvideo"
            message = printable(" ".join(error.format_message().split()))
            _click.echo(f"{where}: {message} (see '{where} --help')", err=True)
            return self._leave(error.exit_code, standalone_mode)
        except _click.exceptions.ClickException as error:
            _click.echo(f"rankvideo: {printable(' '.join(error.format_message().split()))}", err=True)
            return self._leave(error.exit_code, standalone_mode)
        except typer.Abort:
            _click.echo("rankvideo: aborted", err=True)
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


app = typer.Typer(
    name="rankvideo",
    cls=OneLineErrorsGroup,
    help="Rerank text-to-video retrieval runs with Qwen3-VL rerankers (RankVideo, Qwen3-VL-Reranker); evaluate them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stderr = Console(stderr=True, highlight=False)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"rankvideo {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Rerank text-to-video retrieval runs with Qwen3-VL rerankers (RankVideo, Qwen3-VL-Reranker); evaluate them."""


class ScoreMode(str, Enum):
    full = "full"
    reference = "reference"


class PromptFormat(str, Enum):
    inference = "inference"
    training = "training"


# the registry's names, as Typer shows and checks them (rankvideo_cli.scoring.rerankers)
RerankerName = Enum("RerankerName", {name: name for name in RERANKERS}, type=str)  # type: ignore[misc]
DEFAULT_RERANKER_NAME = RerankerName(DEFAULT_RERANKER)


class OutputFormat(str, Enum):
    table = "table"
    tsv = "tsv"
    json = "json"
    csv = "csv"


def user_errors(command: Callable) -> Callable:
    """User errors become one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except OptionError as error:  # named as the command line names it
            say(stderr, error.flag())
            raise typer.Exit(error.exit_code) from None
        except RankVideoError as error:
            say(stderr, str(error))
            raise typer.Exit(error.exit_code) from None

    return wrapper


def non_empty_text(value: str) -> str:
    """A path given as text; an empty one (`-o "$OUT"` with OUT unset) is refused, never read as the working
    directory: one message for every path option and argument of every command."""
    if value == "":
        raise typer.BadParameter("an empty path (an unset shell variable?); give a file or directory name")
    return value


def non_empty_path(value: str) -> Path:
    return Path(non_empty_text(value))


# Shared option declarations (Typer reads them from the annotations).
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        help="Hub id, directory, or tiny-random (for tests).",
    ),
]
RevisionOpt = Annotated[str | None, typer.Option(help="Hub branch, tag or commit.")]
CacheDirOpt = Annotated[
    Path | None, typer.Option("--cache-dir", help="Hugging Face cache directory.", parser=non_empty_path)
]
DtypeOpt = Annotated[
    str | None,
    typer.Option(help="Default: bf16 on GPU, fp32 on CPU."),
]
DeviceOpt = Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N (default: cuda if any).")]
AttnOpt = Annotated[
    str | None,
    typer.Option(
        "--attn-implementation",
        help="sdpa, eager or flash_attention_2 (default on CUDA where installed).",
    ),
]
ScoreModeOpt = Annotated[
    ScoreMode,
    typer.Option(help="reference: vLLM's top-512 log-probs only."),
]
PromptOpt = Annotated[
    PromptFormat,
    typer.Option(
        "--prompt",
        help="training: RankVideo's training prompt (EXPERIMENTAL).",
    ),
]
PrefixCacheOpt = Annotated[
    bool,
    typer.Option(
        "--prefix-cache/--no-prefix-cache",
        help="With --prompt training: a video's prefix once for its queries.",
    ),
]
BatchOpt = Annotated[int | None, typer.Option(help="Pairs per forward (default: by memory).")]
RerankerOpt = Annotated[
    RerankerName | None,
    typer.Option(
        "--reranker",
        help="rankvideo or qwen3-vl-reranker (default: by hub id).",
    ),
]
InstructionOpt = Annotated[
    str | None,
    typer.Option(help="For qwen3-vl-reranker (default: its own)."),
]
# the frames shown without a model (frames, sample, report)
FramesOfOpt = Annotated[RerankerName, typer.Option("--reranker", help="Show the frames this reranker samples.")]


def _keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def option_group(
    receiver: str, parameters: list[inspect.Parameter], build: Callable[[dict[str, Any]], Any]
) -> Callable[..., Callable[[Callable[..., Any]], Callable[..., Any]]]:
    """A decorator factory that gives a command an option group declared once (less the options it names to leave
    out); the command receives the group as one value, `build(options)`, in its parameter `receiver` (as
    sqlite-utils adds option groups with decorators)."""

    def with_group(*left_out: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        added = [parameter for parameter in parameters if parameter.name not in left_out]
        names = [parameter.name for parameter in added]

        def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
            hints = typing.get_type_hints(command, include_extras=True)
            own = [
                parameter.replace(annotation=hints[parameter.name])
                for parameter in inspect.signature(command).parameters.values()
                if parameter.name != receiver
            ]

            @functools.wraps(command)
            def wrapper(**values: Any) -> Any:
                group = build({name: values.pop(name) for name in names})
                return command(**values, **{receiver: group})

            everything = [*own, *added]
            wrapper.__signature__ = inspect.Signature(everything)  # type: ignore[attr-defined]  # read by Typer
            wrapper.__annotations__ = {parameter.name: parameter.annotation for parameter in everything}
            return wrapper

        return decorate

    return with_group


def _scorer_options(values: dict[str, Any]) -> ScorerOptions:
    """The scorer's options from a command's (named as its fields), refused here when they cannot work (before
    any input is read or model loads)."""
    options = from_values(ScorerOptions, values)
    options.check()
    return options


def _required_videos(values: dict[str, Any]) -> VideoSource:
    """The video source of a command that cannot run without `--videos` (rerank, sample)."""
    if values["videos"] is None:
        raise UsageError("--videos DIR is required: the directory holding the candidate videos")
    return from_values(VideoSource, values)


# The model's options, for every command that loads a model.
with_scorer_options = option_group(
    "scorer",
    [
        _keyword("model", ModelOpt, DEFAULT_MODEL),
        _keyword("revision", RevisionOpt, None),
        _keyword("cache_dir", CacheDirOpt, None),
        _keyword("dtype", DtypeOpt, None),
        _keyword("device", DeviceOpt, None),
        _keyword("attn_implementation", AttnOpt, None),
        _keyword("score_mode", ScoreModeOpt, ScoreMode.full),
        _keyword("prompt", PromptOpt, PromptFormat.inference),
        _keyword("prefix_cache", PrefixCacheOpt, True),
        _keyword("batch_size", BatchOpt, None),
        _keyword("reranker", RerankerOpt, None),
        _keyword("instruction", InstructionOpt, None),
    ],
    _scorer_options,
)

# How a run is ranked from the model's scores, for `rerank` and `rank`.
with_ranking_options = option_group(
    "ranking",
    [
        _keyword("tag", Annotated[str, typer.Option(help="Run tag (6th column).")], "rankvideo"),
        _keyword("depth", Annotated[int, typer.Option(help="Rerank the top K.")], 100),
        _keyword(
            "interpolate",
            Annotated[float | None, typer.Option(help="Mix ALPHA of the model's score.")],
            None,
        ),
        _keyword(
            "normalization",
            Annotated[Normalization, typer.Option(help="For --interpolate.")],
            Normalization.minmax,
        ),
        _keyword(
            "on_missing_video",
            Annotated[VideoPolicy, typer.Option(help="No video file.")],
            VideoPolicy.keep,
        ),
        _keyword(
            "on_bad_video",
            Annotated[VideoPolicy, typer.Option(help="Undecodable video.")],
            VideoPolicy.keep,
        ),
        _keyword(
            "missing_query",
            Annotated[QueryPolicy, typer.Option(help="Qid without text.")],
            QueryPolicy.error,
        ),
    ],
    lambda values: from_values(RankingOptions, values),
)


@dataclass
class Verbosity:
    """--quiet / --verbose for the length of one command (`progress.verbosity`; the environment carries it to
    device workers), restored afterwards."""

    level: int = NORMAL
    _previous: str | None = None

    @classmethod
    def from_flags(cls, values: dict[str, Any]) -> Verbosity:
        if values["quiet"] and values["verbose"]:
            raise UsageError("--quiet and --verbose are exclusive")
        return cls(QUIET if values["quiet"] else VERBOSE if values["verbose"] else NORMAL)

    def __enter__(self) -> Verbosity:
        self._previous = os.environ.get(VERBOSITY_VARIABLE)
        if self.level != NORMAL:
            os.environ[VERBOSITY_VARIABLE] = str(self.level)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is None:
            os.environ.pop(VERBOSITY_VARIABLE, None)
        else:
            os.environ[VERBOSITY_VARIABLE] = self._previous


# How much a long command says on stderr, for rerank, sample, merge, report, tune and rank.
with_verbosity = option_group(
    "verbosity",
    [
        _keyword(
            "quiet",
            Annotated[bool, typer.Option("--quiet", help="No progress; what was skipped, missing or bad still shows.")],
            False,
        ),
        _keyword(
            "verbose", Annotated[bool, typer.Option("--verbose", help="A progress line after every video.")], False
        ),
    ],
    Verbosity.from_flags,
)
ReferenceModelOpt = Annotated[
    str | None, typer.Option(help="The model name in the reference's file names, when the directory has several.")
]
VideosOpt = Annotated[
    Path | None, typer.Option("--videos", help="Directory of the candidate videos.", parser=non_empty_path)
]
# rerank and sample cannot run without it (checked by `_required_videos`, with the one-line error)
RequiredVideosOpt = Annotated[
    Path | None,
    typer.Option("--videos", help="Directory of the candidate videos (required).", parser=non_empty_path),
]
VideoPatternOpt = Annotated[str, typer.Option(help="Path of a video under --videos.")]
MultiventOpt = Annotated[bool, typer.Option("--multivent", help="The reference code's folders of 100 integer ids.")]
VideoMapOpt = Annotated[Path | None, typer.Option(help="TSV: docid, path under --videos.", parser=non_empty_path)]
FramesCacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--frames-cache",
        help="Frames from `rankvideo sample`.",
        parser=non_empty_path,
    ),
]
MeasureOpt = Annotated[list[str] | None, typer.Option("--measure", "-m", help="ir-measures measure (repeatable).")]


@app.command()
@user_errors
@with_verbosity()
@with_ranking_options()
@with_scorer_options()
def rerank(
    run: Annotated[
        Path,
        typer.Argument(
            help="First-stage run: TREC (.gz ok), JSON, or - (stdin).",
            parser=non_empty_path,
        ),
    ],
    queries: Annotated[Path, typer.Argument(help="TSV qid<TAB>text, MultiVENT CSV, or JSONL.", parser=non_empty_path)],
    videos: RequiredVideosOpt = None,
    video_pattern: VideoPatternOpt = "{docid}.mp4",
    multivent: MultiventOpt = False,
    video_map: VideoMapOpt = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The run (atomic; default: stdout).", parser=non_empty_path),
    ] = None,
    scores: Annotated[Path | None, typer.Option(help="Also the raw scores, as JSONL.", parser=non_empty_path)] = None,
    qrels: Annotated[
        Path | None,
        typer.Option(help="Evaluate the run against these (stderr).", parser=non_empty_path),
    ] = None,
    measures: MeasureOpt = None,
    decode_workers: Annotated[int | None, typer.Option(help="Decode threads (default: one per core).")] = None,
    prefetch: Annotated[int | None, typer.Option(help="Decoded videos queued for the model.")] = None,
    cache: Annotated[
        Path | None,
        typer.Option("--cache", help="Score store (default: beside -o).", parser=non_empty_path),
    ] = None,
    shard: Annotated[str | None, typer.Option(help="This array task's share (auto: SLURM's).")] = None,
    retry_bad_videos: Annotated[
        bool, typer.Option("--retry-bad-videos", help="Decode again videos found bad before.")
    ] = False,
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="The run's manifest (default: beside -o).",
            parser=non_empty_path,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Check and plan; load and write nothing."),
    ] = False,
    frames_cache: FramesCacheOpt = None,
    devices: Annotated[
        str | None,
        typer.Option(help="This node's GPUs (cuda:0,cuda:1 or all), one worker each: the one-device run."),
    ] = None,
    *,
    scorer: ScorerOptions,  # the model's options (with_scorer_options)
    ranking: RankingOptions,  # with_ranking_options
    verbosity: Verbosity,  # with_verbosity
) -> None:
    """Rerank the top candidates of RUN; write a TREC run to stdout or -o."""
    from rankvideo_cli.jobs.request import RerankInputs, RerankJob, RerankOutputs
    from rankvideo_cli.jobs.rerank import run_rerank

    values = locals()
    job = RerankJob(
        inputs=from_values(RerankInputs, values),
        videos=_required_videos(values),
        ranking=ranking,
        decode=from_values(DecodeOptions, values),
        outputs=from_values(RerankOutputs, values),
        scorer=scorer,
    )
    # the model loads after the inputs validate, and only when a pair is not in the score store
    with verbosity:
        run_rerank(job, stderr)


class Correction(str, Enum):
    holm = "holm"
    bonferroni = "bonferroni"
    none = "none"


@app.command(name="eval")
@user_errors
def eval_(
    runs_and_qrels: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUN... QRELS",
            help="One or more runs to evaluate (TREC or JSON; - for stdin), then the qrels (TREC or MultiVENT JSONL).",
            parser=non_empty_path,
        ),
    ],
    baseline: Annotated[
        Path | None,
        typer.Option(
            help="Compare every run against this one: deltas, W/T/L, paired t-tests (corrected).", parser=non_empty_path
        ),
    ] = None,
    measures: MeasureOpt = None,
    per_query: Annotated[bool, typer.Option("--per-query", help="One row per query.")] = False,
    fmt: Annotated[
        OutputFormat | None,
        typer.Option("--format", help="Default: table on a terminal, tsv when piped."),
    ] = None,
    correction: Annotated[
        Correction,
        typer.Option(help="Multiple-testing correction of each measure's p-values over the compared runs."),
    ] = Correction.holm,
) -> None:
    """Evaluate RUNs against QRELS with ir-measures (trec_eval -c: judged queries missing from a run count as
    zero)."""
    from rankvideo_cli.jobs.eval import run_eval

    if len(runs_and_qrels) < 2:
        raise UsageError("eval needs at least one RUN and the QRELS: rankvideo eval RUN... QRELS")
    *runs, qrels = runs_and_qrels
    run_eval(
        runs,
        qrels,
        baseline=baseline,
        measures=measures,
        per_query=per_query,
        fmt=fmt.value if fmt is not None else None,
        correction=correction.value,
        console=stderr,
    )


@app.command()
@user_errors
@with_verbosity()
def tune(
    run: Annotated[Path, typer.Argument(help="The first-stage run that was reranked.", parser=non_empty_path)],
    qrels: Annotated[Path, typer.Argument(help="Qrels: TREC 4-column or MultiVENT JSONL.", parser=non_empty_path)],
    scores: Annotated[
        Path,
        typer.Option(
            "--scores",
            help="Model scores: the JSONL of `rerank --scores` (or merge), or the reference's JSON directory.",
            parser=non_empty_path,
        ),
    ],
    reference_model: ReferenceModelOpt = None,
    measure: Annotated[str, typer.Option("--measure", "-m", help="The measure to maximise.")] = "nDCG@10",
    alphas: Annotated[str, typer.Option(help="ALPHA values: a list (0,0.5,1) or a range (0:1:0.1).")] = "0:1:0.1",
    normalizations: Annotated[
        str, typer.Option(help="Normalisations to try, comma-separated: minmax, zscore, none.")
    ] = "minmax,zscore",
    folds: Annotated[int, typer.Option(help="Cross-validation folds over the judged queries.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the (deterministic) assignment of queries to folds.")] = 0,
    depth: Annotated[int, typer.Option(help="The --depth the run was reranked with.")] = 100,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the cross-validated interpolated run here.", parser=non_empty_path),
    ] = None,
    tag: Annotated[str, typer.Option(help="Run tag of the written run.")] = "rankvideo-interpolated",
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table, tsv, csv or json.")] = OutputFormat.table,
    *,
    verbosity: Verbosity,  # with_verbosity
) -> None:
    """Choose --interpolate ALPHA (and its normalisation) by k-fold cross-validation over queries, from stored
    scores (no model is loaded); optionally write the cross-validated interpolated run."""
    from rankvideo_cli.jobs.tune import TuneOptions, run_tune

    options = from_values(TuneOptions, locals())
    with verbosity:
        run_tune(
            run, qrels, scores, options, reference_model=reference_model, output=output, fmt=fmt.value, console=stderr
        )


@app.command()
@user_errors
@with_verbosity()
@with_ranking_options("on_missing_video", "on_bad_video", "missing_query")
def rank(
    run: Annotated[Path, typer.Argument(help="The first-stage run.", parser=non_empty_path)],
    scores: Annotated[
        Path,
        typer.Option(
            "--scores",
            help="Stored scores: the JSONL of `rerank --scores`/`merge --scores`, or a directory of the reference "
            "code's {vid}_reranking_{model}.json files.",
            parser=non_empty_path,
        ),
    ],
    reference_model: ReferenceModelOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the run here (atomic).", parser=non_empty_path)
    ] = None,
    qrels: Annotated[
        Path | None, typer.Option(help="Evaluate against these qrels (to stderr).", parser=non_empty_path)
    ] = None,
    measures: MeasureOpt = None,
    *,
    ranking: RankingOptions,  # with_ranking_options
    verbosity: Verbosity,  # with_verbosity
) -> None:
    """Rerank RUN with stored scores, no model: ours, or the reference code's per-video JSON files."""
    from rankvideo_cli.jobs.rank import run_rank

    with verbosity:
        run_rank(
            run,
            scores,
            ranking,
            reference_model=reference_model,
            output=output,
            qrels=qrels,
            measures=measures,
            console=stderr,
        )


@app.command()
@user_errors
@with_scorer_options()
def score(
    videos: Annotated[
        list[Path], typer.Argument(help="Video files to score against the query.", parser=non_empty_path)
    ],
    query: Annotated[str, typer.Option("--query", "-q", help="Query text.")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
    *,
    scorer: ScorerOptions,  # the model's options (with_scorer_options)
) -> None:
    """Score ad-hoc (query, video) pairs."""
    from rankvideo_cli.jobs.score import check_score_request, run_score
    from rankvideo_cli.scoring.loading import load_scorer

    check_score_request(query, videos, scorer)
    loaded = load_scorer(scorer)
    failures = run_score(loaded, query, videos, scorer.sampling(), as_json=as_json, console=stderr)
    if failures:
        raise typer.Exit(1)


@app.command()
@user_errors
@with_scorer_options("score_mode")
def explain(
    videos: Annotated[
        list[Path], typer.Argument(help="Video files to explain the query against.", parser=non_empty_path)
    ],
    query: Annotated[str, typer.Option("--query", "-q", help="Query text.")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines (with the score) instead of text.")] = False,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest answer, in tokens.")] = 512,
    temperature: Annotated[
        float | None, typer.Option(help="Sample at this temperature (default: greedy, the same text every time).")
    ] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling (with --temperature).")] = None,
    top_k: Annotated[int | None, typer.Option(help="Top-k sampling (with --temperature).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed for sampling (with --temperature).")] = None,
    *,
    scorer: ScorerOptions,  # the model's options (with_scorer_options)
) -> None:
    """The model's full answer (its reasoning) and score for ad-hoc (query, video) pairs: the scoring prompt and
    frames, greedy decoding unless --temperature, stopping at the end of its turn or --max-new-tokens."""
    from rankvideo_cli.jobs.score import check_explain_request, check_score_request, run_explain
    from rankvideo_cli.scoring.generate import GenerationSettings
    from rankvideo_cli.scoring.loading import load_scorer

    check_score_request(query, videos, scorer)
    check_explain_request(scorer)
    settings = GenerationSettings(max_new_tokens, temperature, top_p, top_k, seed)
    failures = run_explain(
        load_scorer(scorer), query, videos, settings, scorer.sampling(), as_json=as_json, console=stderr
    )
    if failures:
        raise typer.Exit(1)


@app.command()
@user_errors
@with_verbosity()
def sample(
    run: Annotated[
        Path, typer.Argument(help="The first-stage run the GPU jobs will rerank (- for stdin).", parser=non_empty_path)
    ],
    frames_cache: Annotated[
        Path,
        typer.Option(
            "--frames-cache",
            help="Directory of sampled frames (created; shared by array tasks).",
            parser=non_empty_path,
        ),
    ],
    videos: RequiredVideosOpt = None,
    video_pattern: VideoPatternOpt = "{docid}.mp4",
    multivent: MultiventOpt = False,
    video_map: VideoMapOpt = None,
    depth: Annotated[int, typer.Option(help="Sample the videos of the top K candidates of each query.")] = 100,
    shard: Annotated[str | None, typer.Option(help="This array task's share (auto: SLURM's).")] = None,
    decode_workers: Annotated[int | None, typer.Option(help="Decode threads (default: one per core).")] = None,
    retry_bad_videos: Annotated[
        bool, typer.Option("--retry-bad-videos", help="Try again videos the cache records as bad.")
    ] = False,
    verify: Annotated[
        bool, typer.Option("--verify", help="Decode every existing entry to check it (default: its header).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON on stdout.")] = False,
    reranker: FramesOfOpt = DEFAULT_RERANKER_NAME,
    *,
    verbosity: Verbosity,  # with_verbosity
) -> None:
    """Decode and sample, on CPU, every video a rerank of RUN needs, into a frame cache (no model)."""
    import json

    from rankvideo_cli.io.atomic import write_stdout
    from rankvideo_cli.jobs.sample import SampleRequest, run_sample

    request = SampleRequest(
        run_path=run,
        frames_cache=frames_cache,
        videos=_required_videos(locals()),
        depth=depth,
        shard=shard,
        decode=DecodeOptions(decode_workers=decode_workers, retry_bad_videos=retry_bad_videos),
        verify=verify,
        sampling=get_reranker(reranker.value).sampling,
    )
    with verbosity:
        result = run_sample(request, stderr)
    if as_json:
        write_stdout(json.dumps(result.as_dict(), indent=2, sort_keys=True) + "\n")


@app.command()
@user_errors
def frames(
    video: Annotated[Path, typer.Argument(help="A video file.", parser=non_empty_path)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    save: Annotated[
        Path | None, typer.Option(help="Also save the sampled, resized frames as PNGs here.", parser=non_empty_path)
    ] = None,
    frames_cache: Annotated[
        Path | None,
        typer.Option("--frames-cache", help="Also say whether this cache holds VIDEO's frames.", parser=non_empty_path),
    ] = None,
    reranker: FramesOfOpt = DEFAULT_RERANKER_NAME,
) -> None:
    """Show exactly what the model will see of VIDEO: frame count, fps, indices, timestamps, size."""
    from rankvideo_cli.jobs.frames import run_frames

    run_frames(
        video,
        get_reranker(reranker.value).sampling,
        as_json=as_json,
        save_dir=save,
        console=stderr,
        frames_cache=frames_cache,
    )


@app.command()
@user_errors
def videos(
    directory: Annotated[
        Path,
        typer.Argument(help="The --videos directory: video files, sub-folders, .tar shards.", parser=non_empty_path),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Ignore the cached index; read every tar again.")] = False,
) -> None:
    """What `--videos DIR` finds: videos by docid in folders and inside .tar shards (counts, extensions)."""
    from rankvideo_cli.jobs.videos import run_videos

    run_videos(VideoSource(directory), as_json=as_json, rebuild=rebuild, console=stderr)


@app.command()
@user_errors
@with_verbosity()
def merge(
    run: Annotated[Path, typer.Argument(help="The same first-stage run the shards reranked.", parser=non_empty_path)],
    queries: Annotated[Path, typer.Argument(help="The same query file.", parser=non_empty_path)],
    cache: Annotated[
        Path, typer.Option("--cache", help="Score store directory the shards wrote to.", parser=non_empty_path)
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The run (atomic; default: stdout).", parser=non_empty_path)
    ] = None,
    allow_missing: Annotated[
        bool, typer.Option("--allow-missing", help="Write the run even if some pairs were never scored.")
    ] = False,
    qrels: Annotated[
        Path | None, typer.Option(help="Evaluate the merged run (to stderr).", parser=non_empty_path)
    ] = None,
    measures: MeasureOpt = None,
    scores: Annotated[
        Path | None,
        typer.Option(
            help="Also write the raw model scores as JSONL (input of `rankvideo tune`).", parser=non_empty_path
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Merge even if RUN or QUERIES differ from the files the shards read.")
    ] = False,
    reranker: Annotated[
        RerankerName | None,
        typer.Option("--reranker", help="Merge this reranker's shards (when the store holds several rerankers')."),
    ] = None,
    *,
    verbosity: Verbosity,  # with_verbosity
) -> None:
    """Combine the score stores of SLURM array shards into the final reranked run."""
    from rankvideo_cli.jobs.merge import run_merge
    from rankvideo_cli.jobs.request import RerankInputs, RerankOutputs

    values = locals()
    inputs, outputs = from_values(RerankInputs, values), from_values(RerankOutputs, values)
    with verbosity:
        run_merge(
            inputs,
            outputs,
            stderr,
            allow_missing=allow_missing,
            force=force,
            reranker=reranker.value if reranker is not None else None,
        )


@app.command()
@user_errors
@with_verbosity()
def report(
    run: Annotated[
        Path, typer.Argument(help="The reranked run to show (TREC or JSON; - for stdin).", parser=non_empty_path)
    ],
    baseline: Annotated[
        Path | None,
        typer.Option(
            help="The run it came from (the first stage): shown beside it, with moves.", parser=non_empty_path
        ),
    ] = None,
    qrels: Annotated[
        Path | None, typer.Option(help="Judgments: measures, deltas, relevance of each row.", parser=non_empty_path)
    ] = None,
    queries: Annotated[
        Path | None, typer.Option(help="Query file (TSV, CSV, JSONL): the text of each query.", parser=non_empty_path)
    ] = None,
    videos: VideosOpt = None,
    video_pattern: VideoPatternOpt = "{docid}.mp4",
    multivent: MultiventOpt = False,
    video_map: VideoMapOpt = None,
    frames_cache: Annotated[
        Path | None,
        typer.Option(
            "--frames-cache", help="Sampled frames of `rankvideo sample`: used when present.", parser=non_empty_path
        ),
    ] = None,
    scores: Annotated[
        Path | None,
        typer.Option(
            help="The model's scores (`rerank --scores` JSONL, or the reference's files).", parser=non_empty_path
        ),
    ] = None,
    reference_model: ReferenceModelOpt = None,
    explanations: Annotated[
        Path | None,
        typer.Option(help="The model's answers: the output of `rankvideo explain --json`.", parser=non_empty_path),
    ] = None,
    measures: MeasureOpt = None,
    correction: Annotated[
        Correction, typer.Option(help="Multiple-testing correction of the p-values, as for eval.")
    ] = Correction.holm,
    top: Annotated[int, typer.Option(help="Candidates shown per query and run.")] = 10,
    thumbnails: Annotated[int, typer.Option(help="Frames shown per video, chosen evenly among those sampled.")] = 4,
    qid: Annotated[list[str] | None, typer.Option("--qid", help="Show this query (repeatable).")] = None,
    limit: Annotated[
        int | None, typer.Option(help="Show the N queries with the largest change (gains and losses).")
    ] = None,
    decode_workers: Annotated[int | None, typer.Option(help="Decode threads (default: one per core).")] = None,
    output: Annotated[
        str | None,  # text, not a Path: a trailing slash (a directory to write into) must survive
        typer.Option(
            "--output",
            "-o",
            help="report.html (one file), or DIR/ (index.html with the thumbnails beside it).",
            parser=non_empty_text,
        ),
    ] = None,
    reranker: FramesOfOpt = DEFAULT_RERANKER_NAME,
    *,
    verbosity: Verbosity,  # with_verbosity
) -> None:
    """A web page of what the reranker did: measures, charts, and per query both rankings with the frames the
    model saw (no model is loaded)."""
    from rankvideo_cli.jobs.report import ReportRequest, run_report

    with verbosity:
        run_report(
            ReportRequest(
                run_path=run,
                baseline_path=baseline,
                qrels_path=qrels,
                queries_path=queries,
                videos=from_values(VideoSource, locals()) if videos is not None else None,
                frames_cache=frames_cache,
                scores_path=scores,
                reference_model=reference_model,
                explanations_path=explanations,
                measures=measures,
                correction=correction.value,
                top=top,
                thumbnails=thumbnails,
                qids=qid or (),
                limit=limit,
                decode_workers=decode_workers,
                output=Path(output) if output is not None else None,
                into_directory=output is not None and (output.endswith(("/", os.sep)) or Path(output).is_dir()),
                sampling=get_reranker(reranker.value).sampling,
            ),
            stderr,
        )


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
