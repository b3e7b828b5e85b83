"""What the commands share: option declarations, option groups (each declared once, received as one value
object), the enums Typer shows, the one-line error wrapper, --quiet/--verbose."""

from __future__ import annotations

import functools
import inspect
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from rich.console import Console

from rankvideo_cli.errors import RankVideoError, UsageError
from rankvideo_cli.messages import say
from rankvideo_cli.options import (
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
from rankvideo_cli.scoring.rerankers import DEFAULT_RERANKER, RERANKERS

stderr = Console(stderr=True, highlight=False)
# typer >= 0.20 vendors click as typer.click; older releases use click itself
click = getattr(typer.core, "_click", None) or __import__("click")


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


class Correction(str, Enum):
    holm = "holm"
    bonferroni = "bonferroni"
    none = "none"


def user_errors(command: Callable) -> Callable:
    """User errors become one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except OptionError as error:  # named as the command line names it, and where its value came from
            say(stderr, error.flag() + _origin_of(error.field))
            raise typer.Exit(error.exit_code) from None
        except RankVideoError as error:
            say(stderr, str(error))
            raise typer.Exit(error.exit_code) from None

    return wrapper


def _origin_of(field: str) -> str:
    """` (from RANKVIDEO_...)` or ` (from FILE [table])` when the running command's option `field` took its value
    from there; empty otherwise (or outside a command)."""
    from rankvideo_cli.cli.defaults import origin

    try:
        return origin(current_context(), field)
    except RuntimeError:  # no command is running: a Python caller
        return ""


def completes(*choices: str) -> Callable[..., list[str]]:
    """Shell completion of a free-text option from its usual values (the option still takes any)."""
    return lambda incomplete="": [choice for choice in choices if choice.startswith(incomplete)]


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
    typer.Option(help="Default: bf16 on GPU, fp32 on CPU.", autocompletion=completes("bf16", "fp16", "fp32")),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option(help="cpu, cuda, cuda:N (default: cuda if any).", autocompletion=completes("cpu", "cuda", "cuda:0")),
]
AttnOpt = Annotated[
    str | None,
    typer.Option(
        "--attn-implementation",
        help="sdpa, eager or flash_attention_2 (default on CUDA where installed).",
        autocompletion=completes("sdpa", "eager", "flash_attention_2"),
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


def current_context() -> Any:
    """The running command's click context (click's own or Typer's vendored copy)."""
    import importlib

    return importlib.import_module(f"{click.__name__}.globals").get_current_context()


def option_sources() -> dict[str, str]:
    """Where each option of the running command that is not at its default came from (cli/defaults.py)."""
    from rankvideo_cli.cli.defaults import Defaults, value_sources

    context = current_context()
    return value_sources(context, context.obj if isinstance(context.obj, Defaults) else Defaults())
