"""What scoring a run produces: each pair's outcome, the counts and timings, the scores, and the
errors that stop a run (`Interrupted`, `IncompleteScores`)."""

from __future__ import annotations

import os
import signal
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rankvideo_cli.errors import RankVideoError
from rankvideo_cli.messages import plural
from rankvideo_cli.pipeline.shards import Shard
from rankvideo_cli.pipeline.store import (
    BadVideo,
)
from rankvideo_cli.progress import ProgressCounts
from rankvideo_cli.scoring.base import PairScore

if TYPE_CHECKING:
    from rankvideo_cli.videos.index import TarMember


# Per-pair outcomes.
SCORED = "scored"  # scored by the model in this run
CACHED = "cached"  # taken from the score store
MISSING_VIDEO = "missing_video"  # the docid resolves to no existing file
BAD_VIDEO = "bad_video"  # the video cannot be decoded or sampled (see PairOutcome.bad_kind)
OUTSIDE_SHARD = "outside_shard"  # another shard's video
UNSCORED = "unscored"  # merge only: no shard stored a score for it

Pair = tuple[str, str]  # (qid, docid)

DECODE_BOUND_SHARE = 0.2  # of the scorer's busy time spent waiting for a decoded video


class CandidateLike(Protocol):
    @property
    def docid(self) -> str: ...


class ResolverLike(Protocol):
    def resolve(self, docid: str) -> Path | TarMember | None: ...


class Interrupted(RankVideoError):
    """SIGTERM/SIGINT stopped the run after flushing the store; exit code 128 + signal (143, 130).

    `result` holds what was done so far (for the manifest).
    """

    def __init__(
        self, signum: int, scored: int, remaining: int, store_dir: Path, result: PipelineResult | None = None
    ) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        self.result = result
        name = signal.Signals(signum).name
        super().__init__(
            f"interrupted by {name}: {plural(scored, 'pair')} scored in this run, {remaining} still to score; "
            f"all scores are saved in {store_dir}: run the same command again to resume"
        )


class IncompleteScores(RankVideoError):
    """`merge` found pairs that no shard scored; `result` has everything else (and the UNSCORED outcomes)."""

    def __init__(self, message: str, result: PipelineResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class ScoringOutOfMemory(RankVideoError):
    """Even a single pair does not fit in accelerator memory."""


@dataclass(frozen=True)
class PairOutcome:
    status: str
    video: str | None = None  # the resolved video key (None when the docid has no video file)
    bad_kind: str | None = None  # for BAD_VIDEO: the VideoError kind


@dataclass
class PipelineCounts(ProgressCounts):
    """Everything `score_pairs` counted. The pair counts add up to `pairs_in_run`."""

    pairs_in_run: int = 0  # all (qid, docid) pairs within depth, every shard
    pairs_outside_shard: int = 0
    pairs_missing_video: int = 0
    pairs_bad_video: int = 0
    pairs_unscored: int = 0  # merge only
    videos_in_shard: int = 0  # distinct existing video files this shard is responsible for
    videos_cached: int = 0  # all of their pairs were in the store: not decoded
    videos_known_bad: int = 0  # recorded bad by an earlier run: skipped
    oom_splits: int = 0  # a video's queries were split in two after running out of memory
    videos_fitted: int = 0  # of the decoded ones, sampled smaller to fit the reranker's token budget
    videos_from_frame_cache: int = 0  # of the decoded ones, read from --frames-cache instead (bad ones included)
    frame_cache_corrupt: int = 0  # damaged --frames-cache entries, decoded instead
    store_unreadable_lines: int = 0


@dataclass
class PipelineTimings:
    wall_s: float = 0.0
    decode_s: float = 0.0  # summed over decode threads
    score_s: float = 0.0  # in scorer.score_video
    wait_s: float = 0.0  # the scorer waiting for a decoded video (decode did not keep up)
    store_s: float = 0.0  # reading and appending the store


@dataclass
class PipelineResult:
    scores: dict[Pair, PairScore]  # scored + cached pairs
    outcomes: dict[Pair, PairOutcome]  # every pair within depth
    bad_videos: dict[str, BadVideo]  # video key -> why it failed (this run and known from the store)
    counts: PipelineCounts
    timings: PipelineTimings
    model_fingerprint: str
    settings_fingerprint: str
    store_dir: Path
    shard: Shard | None = None
    settings: dict = field(default_factory=dict)  # decode_workers, prefetch, depth... (for the manifest)

    def model_scores(self) -> dict[Pair, float]:
        """(qid, docid) -> logit_delta, the ranking score, for `ranking.rerank`."""
        return {pair: score.logit_delta for pair, score in self.scores.items()}

    def pairs_with(self, *statuses: str) -> set[Pair]:
        """Pairs by outcome, e.g. the `drop` set for `ranking.rerank` under `--on-missing-video drop`."""
        return {pair for pair, outcome in self.outcomes.items() if outcome.status in statuses}

    @property
    def pairs_per_s(self) -> float:
        return self.counts.pairs_scored / self.timings.wall_s if self.timings.wall_s > 0 else 0.0


def decode_wait_share(timings: PipelineTimings) -> float:
    """The share of the scorer's time (scoring + waiting) spent waiting for decoded videos."""
    busy = timings.wait_s + timings.score_s
    return timings.wait_s / busy if busy > 0 else 0.0


def decode_wait_advice(result: PipelineResult) -> str | None:
    """One line when decoding held the model back (more than DECODE_BOUND_SHARE of its time), with the fix."""
    share = decode_wait_share(result.timings)
    if share <= DECODE_BOUND_SHARE or result.counts.videos_decoded - result.counts.videos_from_frame_cache < 2:
        return None
    workers = result.settings.get("decode_workers")
    return (
        f"decoding held the model back: it waited {result.timings.wait_s:.1f} s for decoded videos, {share:.0%} of "
        f"its time, with {plural(int(workers or 0), 'decode thread')} on {plural(usable_cores(), 'usable core')}; "
        "give the job more cores "
        "(sbatch --cpus-per-task) and as many --decode-workers, or sample the frames beforehand on CPU nodes "
        "(`rankvideo sample ... --frames-cache DIR`, then `rerank --frames-cache DIR`)"
    )


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def summarize_bad_videos(result: PipelineResult, limit: int = 5) -> str:
    """'3 bad videos (corrupt: 2, no_video_stream: 1): a.mp4, b.mp4, c.mp4' for the end-of-run summary."""
    if not result.bad_videos:
        return "no bad videos"
    kinds = Counter(bad.kind for bad in result.bad_videos.values())
    by_kind = ", ".join(f"{kind}: {count}" for kind, count in sorted(kinds.items()))
    names = sorted(result.bad_videos)
    shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
    return f"{plural(len(names), 'bad video')} ({by_kind}): {shown}"
