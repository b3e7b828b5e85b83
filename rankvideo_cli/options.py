"""The option groups of a rerank as small frozen values that check themselves once, when they are made.

Each group has one spelling, shared by the command line, the PyTerrier reranker, the device workers and Python
callers: `VideoSource` (where a docid's video is), `RankingOptions` (depth, interpolation, what to do with
missing videos, bad videos and queries without text), `DecodeOptions` (decode threads, prefetch, the frame
cache); the model's options are `scoring.options.ScorerOptions`. A bad value raises `OptionError`, which names
the field as a Python caller spells it (`depth must be at least 1`); the command line names the flag instead
(`--depth ...`), by one rule: a field is its flag without the dashes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from rankvideo_cli.errors import UsageError
from rankvideo_cli.videos.resolver import DEFAULT_PATTERN, VideoResolver


class OptionError(UsageError, ValueError):
    """A bad value of one option: a `UsageError` (one line, exit 2) on the command line and a `ValueError` to a
    Python caller. `field` is the option as Python spells it; `problem` may name other options as `{name}`.
    `str()` speaks to a Python caller (`depth must be ...`), `flag()` to the command line (`--depth must ...`)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(self.worded(lambda name: name))

    def worded(self, name_of: Callable[[str], str]) -> str:
        return f"{name_of(self.field)} {self.problem.format_map(_Names(name_of))}"

    def flag(self) -> str:
        """The message with the command line's names of the options (a field is its flag without the dashes)."""
        return self.worded(lambda name: f"--{name.replace('_', '-')}")


class _Names(dict[str, str]):
    def __init__(self, name_of: Callable[[str], str]) -> None:
        super().__init__()
        self.name_of = name_of

    def __missing__(self, key: str) -> str:
        return self.name_of(key)


class Choice(str, Enum):
    """A fixed set of values; shown and compared as its plain value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class VideoPolicy(Choice):
    """What to do with a candidate whose video is missing or cannot be sampled."""

    keep = "keep"  # kept after the scored candidates of its query, in first-stage order
    drop = "drop"  # left out of the run
    error = "error"  # refuse the run


class QueryPolicy(Choice):
    """What to do with a run query that has no text in the query file."""

    error = "error"
    skip = "skip"  # its candidates kept in first-stage order


class Normalization(Choice):
    """Per-query normalisation of both scores before `interpolate` mixes them."""

    minmax = "minmax"
    zscore = "zscore"
    none = "none"


ChoiceT = TypeVar("ChoiceT", bound=Choice)
ValueT = TypeVar("ValueT")


def choice(field: str, kind: type[ChoiceT], value: str) -> ChoiceT:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(item.value for item in kind)
        raise OptionError(field, f"must be one of {allowed}, got {_braced(repr(value))}") from None


def at_least(field: str, value: int | None, minimum: int = 1) -> None:
    """None means "the default"; a given number below `minimum` is refused."""
    if value is not None and value < minimum:
        raise OptionError(field, f"must be at least {minimum}, got {value}")


def check_ranking(depth: int, interpolate: float | None, normalization: str) -> Normalization:
    """The rules of a ranking's depth, interpolation weight and normalisation (returned as the enum):
    `RankingOptions` and `evaluation.ranking` both check with these."""
    checked = choice("normalization", Normalization, normalization)
    at_least("depth", depth)
    if interpolate is not None and not 0.0 <= interpolate <= 1.0:
        raise OptionError("interpolate", f"must be between 0 and 1, got {interpolate}")
    return checked


def from_values(kind: type[ValueT], values: Mapping[str, Any]) -> ValueT:
    """A value made from whichever of its fields `values` holds (a command's options, named as the fields);
    an enum member becomes its plain value."""
    return kind(
        **{
            item.name: values[item.name].value if isinstance(values[item.name], Enum) else values[item.name]
            for item in fields(kind)  # type: ignore[arg-type]  # every kind given is a dataclass
            if item.name in values
        }
    )


def _braced(text: object) -> str:
    """A user's text inside a problem: its braces are not option names."""
    return str(text).replace("{", "{{").replace("}", "}}")


def optional_path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


class Value:
    """JSON round trip of a frozen value (how a device worker receives its job): paths as text."""

    def to_dict(self) -> dict[str, Any]:
        return {
            name: str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value
            for name, value in asdict(self).items()  # type: ignore[call-overload]  # every subclass is a dataclass
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        return cls(**data)


@dataclass(frozen=True)
class VideoSource(Value):
    """Where each docid's video is: `videos` (a directory: files, sub-folders, .tar shards), found by
    `video_pattern`, the MultiVENT layout (`multivent`) or a TSV `video_map` (docid, path under `videos`)."""

    videos: Path
    video_pattern: str = DEFAULT_PATTERN
    multivent: bool = False
    video_map: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "videos", Path(self.videos))
        object.__setattr__(self, "video_map", optional_path(self.video_map))
        if not self.videos.is_dir():
            raise OptionError("videos", f"{_braced(self.videos)}: not a directory")
        given = [
            name
            for name, present in (
                ("video_pattern", self.video_pattern != DEFAULT_PATTERN),
                ("multivent", self.multivent),
                ("video_map", self.video_map is not None),
            )
            if present
        ]
        if len(given) > 1:
            others = " and ".join(f"{{{name}}}" for name in given[1:])
            raise OptionError(given[0], f"and {others} are exclusive: give one way to find the videos")

    def resolver(self) -> VideoResolver:
        """The docid -> video lookup (reads the video map now: its errors name the map's file and line)."""
        return VideoResolver(
            self.videos, pattern=self.video_pattern, video_map=self.video_map, multivent=self.multivent
        )

    def describe(self) -> dict[str, Any]:
        """What a manifest records of the source (and a merge checks its shards agree on)."""
        return {
            "root": str(self.videos),
            "pattern": None if self.video_map or self.multivent else self.video_pattern,
            "multivent": self.multivent,
            "video_map": str(self.video_map) if self.video_map else None,
        }


@dataclass(frozen=True)
class RankingOptions(Value):
    """How the final run is made from the model's scores (see `evaluation.ranking`): the top `depth` candidates
    are reranked, by the model's score or, with `interpolate` ALPHA, by ALPHA x model + (1 - ALPHA) x first stage
    after `normalization`; `tag` is the run's last column."""

    depth: int = 100
    interpolate: float | None = None
    # given as text or as the enum; kept as the enum member (a str: it compares and prints as its value)
    normalization: str = Normalization.minmax
    on_missing_video: str = VideoPolicy.keep
    on_bad_video: str = VideoPolicy.keep
    missing_query: str = QueryPolicy.error
    tag: str = "rankvideo"

    def __post_init__(self) -> None:
        normalization = check_ranking(self.depth, self.interpolate, self.normalization)
        object.__setattr__(self, "normalization", normalization)
        object.__setattr__(self, "on_missing_video", choice("on_missing_video", VideoPolicy, self.on_missing_video))
        object.__setattr__(self, "on_bad_video", choice("on_bad_video", VideoPolicy, self.on_bad_video))
        object.__setattr__(self, "missing_query", choice("missing_query", QueryPolicy, self.missing_query))
        if self.interpolate is None and self.normalization != Normalization.minmax:
            raise OptionError("normalization", "applies to {interpolate} only; give {interpolate} ALPHA too")
        if not self.tag or any(character.isspace() for character in self.tag):
            raise OptionError("tag", f"must be one word without spaces, got {_braced(repr(self.tag))}")

    def to_dict(self) -> dict[str, Any]:
        return {item.name: _plain(getattr(self, item.name)) for item in fields(self)}


@dataclass(frozen=True)
class DecodeOptions(Value):
    """How videos are decoded: `decode_workers` threads (None: from the CPU count), `prefetch` decoded videos
    queued ahead of the model (None: from the workers), frames read from `frames_cache` when it holds them; a
    video an earlier run found bad is decoded again only with `retry_bad_videos`."""

    decode_workers: int | None = None
    prefetch: int | None = None
    frames_cache: Path | None = None
    retry_bad_videos: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "frames_cache", optional_path(self.frames_cache))
        at_least("decode_workers", self.decode_workers)
        at_least("prefetch", self.prefetch)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Choice) else value
