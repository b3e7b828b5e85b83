"""A rerank job as one frozen value: what the `rerank` command, the device workers, the PyTerrier reranker and
Python callers hand to `jobs.rerank`. It is made of the option groups (`rankvideo_cli/options.py`,
`ScorerOptions`) and the job's own files; each group checked itself when it was made, and the checks that span
groups (stdin twice, shards and devices, outputs against inputs) run in `jobs.rerank.validate_rerank`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rankvideo_cli.jobs.preflight import Named, OutputPlan, plan_outputs
from rankvideo_cli.options import DecodeOptions, OptionError, RankingOptions, Value, VideoSource, optional_path
from rankvideo_cli.pipeline.shards import Shard
from rankvideo_cli.scoring.options import ScorerOptions


@dataclass(frozen=True)
class RerankInputs(Value):
    """The first-stage run and its query texts (either may be `-`, stdin); `qrels` (and `measures`) to evaluate
    the reranked run against the first stage."""

    run: Path
    queries: Path
    qrels: Path | None = None
    measures: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "run", Path(self.run))
        object.__setattr__(self, "queries", Path(self.queries))
        object.__setattr__(self, "qrels", optional_path(self.qrels))
        if self.measures is not None:
            object.__setattr__(self, "measures", tuple(self.measures))

    def named(self) -> list[Named]:
        """The input files as messages name them, for the checks that no output overwrites one."""
        return [Named("the run", self.run), Named("the queries", self.queries)] + (
            [Named("--qrels", self.qrels)] if self.qrels is not None else []
        )


@dataclass(frozen=True)
class RerankOutputs(Value):
    """Where the job writes: the run (`output`, None or `-`: stdout), the raw `scores` JSONL, the score store
    (`cache`, default beside the output) and the `manifest`; and how the work is split: `shard` I/N of an array,
    or one worker per device of `devices`. `dry_run`: plan and check only, load and write nothing (`json`: the plan
    as JSON on stdout). `option_sources`: where each option not at its default came from (the command line,
    a variable, a rankvideo.toml), as the manifest records it."""

    output: Path | None = None
    scores: Path | None = None
    cache: Path | None = None
    manifest: Path | None = None
    shard: str | None = None
    devices: str | None = None
    dry_run: bool = False
    json: bool = False
    option_sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("output", "scores", "cache", "manifest"):
            object.__setattr__(self, name, optional_path(getattr(self, name)))
        if self.json and not self.dry_run:
            raise OptionError("json", "prints the plan of a dry run: give it with {dry_run}")

    def plan(self, shard: Shard | None, inputs: Sequence[Named], reranker: str = "rankvideo") -> OutputPlan:
        """Where the job writes, defaults filled in, each place checked writable and none of `inputs`; a shard's
        manifest names its `reranker` (`manifest.default_manifest_path`)."""
        return plan_outputs(self.output, self.cache, self.manifest, self.scores, shard, inputs, reranker)


@dataclass(frozen=True)
class RerankJob:
    """Everything a rerank needs, in groups."""

    inputs: RerankInputs
    videos: VideoSource
    ranking: RankingOptions = field(default_factory=RankingOptions)
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    outputs: RerankOutputs = field(default_factory=RerankOutputs)
    scorer: ScorerOptions = field(default_factory=ScorerOptions)

    def settings(self) -> dict[str, Any]:
        """What every shard of an array must share (merge checks it), as the manifest records it."""
        return {**self.ranking.to_dict(), "videos": self.videos.describe()}

    def to_dict(self) -> dict[str, Any]:
        """JSON values (how a device worker receives its job)."""
        return {item.name: getattr(self, item.name).to_dict() for item in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RerankJob:
        kinds: dict[str, Any] = {
            "inputs": RerankInputs,
            "videos": VideoSource,
            "ranking": RankingOptions,
            "decode": DecodeOptions,
            "outputs": RerankOutputs,
            "scorer": ScorerOptions,
        }
        return cls(**{name: kind.from_dict(data[name]) for name, kind in kinds.items()})
