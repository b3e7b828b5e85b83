"""Video-major scoring at scale: each video decoded once, all its queries scored together, resumably.

`score_pairs` is the engine behind `rankvideo rerank`:

1. plan: the top-`depth` candidates of every query become (qid, docid) pairs; each docid is resolved to a
   video file once, and pairs are grouped by video, in a deterministic order (sorted by video key);
2. look up the score store: pairs already scored (same model, settings, query text and video) are reused,
   videos known to be bad are not retried (unless asked);
3. decode the remaining videos in background threads (PyAV and the resize release the GIL) with a bounded
   prefetch queue, and score each video's queries in one `scorer.score_video` call, so the vision tower
   runs once per video; each video's scores are appended (and fsynced) to the store at once;
4. on SIGTERM/SIGINT (SLURM preemption, time limit, Ctrl-C) finish the current video, flush, and raise
   `Interrupted`; running the same command again resumes.

`merge_scores` is the same plan answered from the store only, for `rankvideo merge` after a SLURM array.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rankvideo_cli.errors import RankVideoError, UsageError
from rankvideo_cli.progress import ProgressCounts, ProgressReporter
from rankvideo_cli.sampling_config import SamplingConfig
from rankvideo_cli.scoring.base import PairScore, Scorer
from rankvideo_cli.shards import Shard, shard_of
from rankvideo_cli.store import (
    BadVideo,
    PairKey,
    ScoreStore,
    StoreContents,
    fingerprint_hash,
    query_sha256,
    store_namespaces,
    writer_shard_count,
)
from rankvideo_cli.video_identity import VideoIdentities
from rankvideo_cli.video_index import TarMember

if TYPE_CHECKING:  # decoding (torch, PyAV) loads only when a video is decoded
    from rankvideo_cli.frame_cache import FrameCache
    from rankvideo_cli.frames import SampledVideo

# Per-pair outcomes.
SCORED = "scored"  # scored by the model in this run
CACHED = "cached"  # taken from the score store
MISSING_VIDEO = "missing_video"  # the docid resolves to no existing file
BAD_VIDEO = "bad_video"  # the video cannot be decoded or sampled (see PairOutcome.bad_kind)
OUTSIDE_SHARD = "outside_shard"  # another shard's video
UNSCORED = "unscored"  # merge only: no shard stored a score for it

Pair = tuple[str, str]  # (qid, docid)
Sampler = Callable[[Path, SamplingConfig], "SampledVideo"]


class CandidateLike(Protocol):
    docid: str


class ResolverLike(Protocol):
    def resolve(self, docid: str) -> Path | None: ...


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
            f"interrupted by {name}: {scored} pairs scored in this run, {remaining} still to score; "
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


@dataclass
class VideoJob:
    """One video to decode, and the pairs it serves (sorted by qid, docid)."""

    key: str
    path: Path
    pairs: list[tuple[Pair, str]]  # ((qid, docid), query text)
    # the distinct query texts of every pair of this video in the run, stored or not, in that order: they are
    # scored together, so each pair is scored in the batch it has in a run that scores the video whole (a pair's
    # score depends on its batch in the 7th digit); None: those of `pairs`
    batch_texts: list[str] | None = None


@dataclass
class WorkPlan:
    """Pairs within depth, grouped by video; built once per run, deterministic."""

    pairs: list[Pair]  # every pair within depth, in run order
    video_of: dict[Pair, str | None]  # resolved video key, None when missing
    paths: dict[str, Path]  # video key -> path
    queries: dict[Pair, str]


def default_decode_workers() -> int:
    """One decode thread per available core, minus one for the scorer's own work, at least 1, at most 16."""
    return max(1, min(16, usable_cores() - 1))


def default_prefetch(decode_workers: int) -> int:
    """Videos decoded or decoding ahead of the scorer: enough to smooth decode time spikes, memory-bounded.

    A sampled video is at most 32 x 3 x 131072 bytes (12.6 MB), so the default costs < 0.5 GB.
    """
    return max(2, 2 * decode_workers)


def plan_pairs(
    run: Mapping[str, Sequence[CandidateLike]],
    queries: Mapping[str, str],
    resolver: ResolverLike,
    depth: int,
) -> WorkPlan:
    """The pairs to score: the first `depth` candidates of each query (the run's first-stage order).

    Each docid is resolved once, whatever the number of queries it is a candidate for.
    """
    if depth < 1:
        raise UsageError(f"--depth must be at least 1, got {depth}")
    missing_queries = sorted(qid for qid in run if qid not in queries)
    if missing_queries:
        shown = ", ".join(missing_queries[:5]) + (", ..." if len(missing_queries) > 5 else "")
        raise UsageError(
            f"{len(missing_queries)} run queries have no text ({shown}); apply the missing-query policy before scoring"
        )
    resolved: dict[str, str | None] = {}
    paths: dict[str, Path] = {}
    plan = WorkPlan(pairs=[], video_of={}, paths=paths, queries={})
    for qid, candidates in run.items():
        for candidate in itertools.islice(candidates, depth):
            docid = candidate.docid
            if docid not in resolved:
                path = resolver.resolve(docid)
                if path is None:
                    resolved[docid] = None
                else:
                    key = str(path)
                    resolved[docid] = key
                    paths[key] = path if isinstance(path, TarMember) else Path(path)
            pair = (qid, docid)
            plan.pairs.append(pair)
            plan.video_of[pair] = resolved[docid]
            plan.queries[pair] = queries[qid]
    return plan


def missing_video_shard_key(docid: str) -> str:
    """Candidates without a video are assigned to shards by docid, so per-shard counts add up."""
    return f"missing-video:{docid}"


def score_pairs(
    run: Mapping[str, Sequence[CandidateLike]],
    queries: Mapping[str, str],
    resolver: ResolverLike,
    scorer: Scorer,
    sampling: SamplingConfig,
    store: ScoreStore,
    *,
    depth: int,
    shard: Shard | None = None,
    decode_workers: int | None = None,
    prefetch: int | None = None,
    retry_bad_videos: bool = False,
    progress: ProgressReporter | None = None,
    sampler: Sampler | None = None,
    handle_signals: bool = True,
    frame_cache: FrameCache | None = None,
) -> PipelineResult:
    """Score every (query, candidate video) pair within depth that the store does not hold yet.

    Returns scores for scored and cached pairs and an outcome for every pair; missing and bad videos are
    counted and reported, never silently dropped (the ranking step applies the user's policy).
    Raises `Interrupted` after SIGTERM/SIGINT (the store is flushed: re-run to resume).
    With `frame_cache`, a video's frames are read from it when it holds them (`rankvideo sample` wrote them),
    and decoded otherwise.
    """
    started = time.monotonic()
    workers = decode_workers if decode_workers is not None else default_decode_workers()
    if workers < 1:
        raise UsageError(f"--decode-workers must be at least 1, got {workers}")
    window = prefetch if prefetch is not None else default_prefetch(workers)
    if window < 1:
        raise UsageError(f"--prefetch must be at least 1, got {window}")
    progress = progress if progress is not None else ProgressReporter()

    model_fp = fingerprint_hash(scorer.fingerprint())
    settings_fp = sampling.fingerprint()
    plan = plan_pairs(run, queries, resolver, depth)
    timings = PipelineTimings()
    read_started = time.monotonic()
    contents = store.read(model_fp, settings_fp)
    timings.store_s += time.monotonic() - read_started

    identities = VideoIdentities(contents.video_ids)
    triage = _triage(plan, contents, shard, retry_bad_videos, identities)
    jobs, counts = triage.jobs, triage.counts
    result = PipelineResult(
        scores=triage.scores,
        outcomes=triage.outcomes,
        bad_videos=triage.bad_videos,
        counts=counts,
        timings=timings,
        model_fingerprint=model_fp,
        settings_fingerprint=settings_fp,
        store_dir=store.directory,
        shard=shard,
        settings={
            "depth": depth,
            "shard": str(shard) if shard else None,
            "decode_workers": workers,
            "prefetch": window,
            "retry_bad_videos": retry_bad_videos,
            "sampling": asdict(sampling),
            "frame_cache": str(frame_cache.directory) if frame_cache is not None else None,
        },
    )
    if jobs and sampler is None:  # PyAV, torch and qwen-vl-utils load only when there is a video to decode
        from rankvideo_cli.frames import sample_video as sampler
    if jobs and model_fp not in contents.models:
        store.writer.announce_model(model_fp, scorer.fingerprint())
    retried = {job.key for job in jobs if job.key in contents.bad_videos}

    progress.start(counts)
    stop = StopFlag()
    restore = stop.install() if handle_signals else None
    sampler_for = _sampler_for(sampler, frame_cache, identities, retry_bad_videos)
    decoded_videos = _decode_in_order(jobs, sampler_for, sampling, workers, window, stop)
    try:
        with contextlib.closing(decoded_videos):
            for job, sampled, failure, decode_s in decoded_videos:
                timings.decode_s += decode_s
                if sampled is None:
                    _record_bad(job, failure, result, store, settings_fp, progress, identities)
                else:
                    _score_and_store(scorer, job, sampled, result, store, job.key in retried, identities)
                progress.update()
                if stop.signum is not None:
                    break
        leftover = identities.take_all()  # re-hashed videos whose stored scores still held: next run only stats
        if leftover:
            store.writer.add_identities(leftover)
        if stop.signum is not None:
            remaining = counts.pairs_to_score - counts.pairs_scored - counts.pairs_failed
            interrupted = Interrupted(stop.signum, counts.pairs_scored, remaining, store.directory, result)
            progress.note(str(interrupted))
            raise interrupted
    finally:
        if restore is not None:
            restore()
        timings.wall_s = time.monotonic() - started
        timings.wait_s = stop.waited_s
        if frame_cache is not None:
            counts.videos_from_frame_cache = frame_cache.stats.hits + frame_cache.stats.bad_hits
            counts.frame_cache_corrupt = frame_cache.stats.corrupt
        progress.close()
    _reorder(result, plan)
    return result


def merge_scores(
    run: Mapping[str, Sequence[CandidateLike]],
    queries: Mapping[str, str],
    resolver: ResolverLike,
    store: ScoreStore,
    *,
    depth: int,
    model_fingerprint: str | None = None,
    settings_fingerprint: str | None = None,
    allow_missing: bool = False,
    shard_count: int | None = None,
) -> PipelineResult:
    """Answer the plan from the store only (after a SLURM array): every pair must have a score.

    Pairs without a video file or with a bad video are reported as such; pairs that need a score and have
    none are UNSCORED and make this fail (listing them and their shards) unless `allow_missing`.
    The fingerprints default to the only (model, settings) namespace in the store; the shard count (to
    name the shards to re-run) defaults to the one in the store's file names.
    """
    started = time.monotonic()
    model_fp, settings_fp = _pick_namespace(store.directory, model_fingerprint, settings_fingerprint)
    plan = plan_pairs(run, queries, resolver, depth)
    contents = store.read(model_fp, settings_fp)
    triage = _triage(plan, contents, None, retry_bad_videos=False, identities=VideoIdentities(contents.video_ids))
    unscored: list[tuple[Pair, str]] = []
    for job in triage.jobs:
        for pair, _text in job.pairs:
            triage.outcomes[pair] = PairOutcome(UNSCORED, job.key)
            unscored.append((pair, job.key))
    counts = triage.counts
    counts.pairs_unscored = len(unscored)
    timings = PipelineTimings(wall_s=time.monotonic() - started)
    result = PipelineResult(
        scores=triage.scores,
        outcomes=triage.outcomes,
        bad_videos=triage.bad_videos,
        counts=counts,
        timings=timings,
        model_fingerprint=model_fp,
        settings_fingerprint=settings_fp,
        store_dir=store.directory,
        settings={"depth": depth, "allow_missing": allow_missing},
    )
    _reorder(result, plan)
    if unscored and not allow_missing:
        if shard_count is None:
            shard_count = writer_shard_count(store.directory)
        raise IncompleteScores(_describe_unscored(unscored, shard_count, store.directory), result)
    return result


def _describe_unscored(unscored: list[tuple[Pair, str]], shard_count: int | None, directory: Path) -> str:
    ordered = sorted(unscored)
    shown = ", ".join(f"{qid}/{docid}" for (qid, docid), _key in ordered[:10])
    more = f" and {len(ordered) - 10} more" if len(ordered) > 10 else ""
    message = f"{len(ordered)} pairs have no score in {directory}: {shown}{more}"
    if shard_count:
        shards = sorted({shard_of(key, shard_count) for _pair, key in unscored})
        listed = ",".join(str(index) for index in shards)
        message += (
            f"; they belong to shards {listed} of {shard_count}: re-run them with the same arguments "
            f"(RANKVIDEO_SHARDS={shard_count} sbatch --array={listed} configs/slurm/rerank-array.sbatch ..., "
            f"or rankvideo rerank ... --shard I/{shard_count})"
        )
    return message + "; or pass --allow-missing to keep them unscored"


def _pick_namespace(directory: Path, model: str | None, settings: str | None) -> tuple[str, str]:
    if model is not None and settings is not None:  # from the shard manifests: no need to read the store twice
        return model, settings
    namespaces = store_namespaces(directory)
    candidates = sorted(
        (m, s) for m, s in namespaces if (model is None or m == model) and (settings is None or s == settings)
    )
    if model is not None and settings is not None:
        return model, settings
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise IncompleteScores(f"{directory}: the score store holds no scores (wrong --cache?)")
    listed = ", ".join(f"model {m} settings {s} ({namespaces[(m, s)]} scores)" for m, s in candidates)
    raise UsageError(f"{directory}: the score store mixes several models or sampling settings: {listed}")


@dataclass
class _Triage:
    outcomes: dict[Pair, PairOutcome]
    scores: dict[Pair, PairScore]
    jobs: list[VideoJob]
    counts: PipelineCounts
    bad_videos: dict[str, BadVideo]


def _triage(
    plan: WorkPlan,
    contents: StoreContents,
    shard: Shard | None,
    retry_bad_videos: bool,
    identities: VideoIdentities,
) -> _Triage:
    """Decide for every pair: outside the shard, missing video, cached, known bad, or to score.

    A stored score or bad-video record counts only for the same video content (`video_identity`): the
    identity of a video is looked up (a stat, or a 2 MiB read when the file changed) only when the store
    holds something for it."""
    outcomes: dict[Pair, PairOutcome] = {}
    scores: dict[Pair, PairScore] = {}
    to_score: dict[str, list[tuple[Pair, str]]] = {}
    in_run: dict[str, list[tuple[Pair, str]]] = {}  # every pair of a video in this shard, stored or not
    counts = PipelineCounts(pairs_in_run=len(plan.pairs), store_unreadable_lines=contents.unreadable_lines)
    bad_videos: dict[str, BadVideo] = {}
    missing_docids: set[str] = set()
    videos_in_shard: set[str] = set()
    videos_with_work: set[str] = set()
    for pair in plan.pairs:
        key = plan.video_of[pair]
        qid, docid = pair
        if shard is not None:
            owner_key = key if key is not None else missing_video_shard_key(docid)
            if not shard.owns(owner_key):
                outcomes[pair] = PairOutcome(OUTSIDE_SHARD, key)
                counts.pairs_outside_shard += 1
                continue
        if key is None:
            outcomes[pair] = PairOutcome(MISSING_VIDEO)
            counts.pairs_missing_video += 1
            missing_docids.add(docid)
            continue
        videos_in_shard.add(key)
        text = plan.queries[pair]
        in_run.setdefault(key, []).append((pair, text))
        counts.pairs_total += 1
        identity = identities.current(key, plan.paths[key]) if key in contents.videos_with_records else None
        cached = contents.scores.get(PairKey(qid, query_sha256(text), docid, key, identity)) if identity else None
        if cached is not None:
            scores[pair] = cached
            outcomes[pair] = PairOutcome(CACHED, key)
            counts.pairs_cached += 1
            continue
        known_bad = contents.bad_videos.get(key)
        if known_bad is not None and identity is not None and known_bad.video_id == identity and not retry_bad_videos:
            bad_videos[key] = known_bad
            outcomes[pair] = PairOutcome(BAD_VIDEO, key, known_bad.kind)
            counts.pairs_bad_video += 1
            continue
        videos_with_work.add(key)
        to_score.setdefault(key, []).append((pair, text))
    jobs = [
        VideoJob(key, plan.paths[key], sorted(to_score[key]), _distinct_texts(sorted(in_run[key])))
        for key in sorted(to_score)
    ]
    counts.missing_videos = len(missing_docids)
    counts.videos_in_shard = len(videos_in_shard)
    counts.videos_known_bad = len(bad_videos)
    counts.bad_videos = len(bad_videos)
    counts.videos_cached = len(videos_in_shard - videos_with_work - set(bad_videos))
    counts.videos_to_decode = len(jobs)
    counts.pairs_to_score = sum(len(job.pairs) for job in jobs)
    return _Triage(outcomes, scores, jobs, counts, bad_videos)


def _score_and_store(
    scorer: Scorer,
    job: VideoJob,
    video: SampledVideo,
    result: PipelineResult,
    store: ScoreStore,
    was_bad: bool,
    identities: VideoIdentities,
) -> None:
    """Score one decoded video's pairs and append them to the store (one fsynced write) before moving on, keyed
    by the video's content identity (hashed now if the triage had no reason to: its pages are cached)."""
    counts, timings = result.counts, result.timings
    counts.videos_decoded += 1
    score_started = time.monotonic()
    video_scores = _score_video(scorer, job, video, counts)
    timings.score_s += time.monotonic() - score_started
    write_started = time.monotonic()
    identity = identities.current(job.key, job.path) or ""
    records = [
        (PairKey(qid, query_sha256(text), docid, job.key, identity), video_scores[text])
        for (qid, docid), text in job.pairs
    ]
    store.writer.add_scores(
        result.model_fingerprint, result.settings_fingerprint, records, identities.take_computed(job.key)
    )
    if was_bad:
        store.writer.add_video_ok(result.settings_fingerprint, job.key)
    timings.store_s += time.monotonic() - write_started
    for pair, text in job.pairs:
        result.scores[pair] = video_scores[text]
        result.outcomes[pair] = PairOutcome(SCORED, job.key)
    counts.pairs_scored += len(job.pairs)


def _reorder(result: PipelineResult, plan: WorkPlan) -> None:
    """Scores and outcomes in run order, whichever pairs came from the store: same result, same order."""
    result.outcomes = {pair: result.outcomes[pair] for pair in plan.pairs}
    result.scores = {pair: result.scores[pair] for pair in plan.pairs if pair in result.scores}


def _record_bad(
    job: VideoJob,
    failure: BaseException | None,
    result: PipelineResult,
    store: ScoreStore,
    settings_fp: str,
    progress: ProgressReporter,
    identities: VideoIdentities,
) -> None:
    """A video that cannot be sampled: its pairs get BAD_VIDEO; typed failures are remembered in the store.

    Unexpected exceptions (not a RankVideoError) count as bad for this run only, so a transient problem
    (a flaky network filesystem) is retried next time, while a truly broken file is not retried forever.
    """
    from rankvideo_cli.frame_cache import FrameCacheWriteError

    if isinstance(failure, FrameCacheWriteError):  # the cache's disk, not the video: stop the run, say why
        raise failure
    if failure is None:
        bad = BadVideo("unexpected", "the sampler returned nothing")
    elif isinstance(failure, RankVideoError):
        identity = identities.current(job.key, job.path) or ""
        bad = BadVideo(str(getattr(failure, "kind", type(failure).__name__)), str(failure), identity)
        store.writer.add_bad_video(settings_fp, job.key, bad, identities.take_computed(job.key))
    else:
        bad = BadVideo("unexpected", f"{type(failure).__name__}: {failure}")
    result.bad_videos[job.key] = bad
    for pair, _text in job.pairs:
        result.outcomes[pair] = PairOutcome(BAD_VIDEO, job.key, bad.kind)
    counts = result.counts
    counts.bad_videos += 1
    counts.pairs_bad_video += len(job.pairs)
    counts.pairs_failed += len(job.pairs)
    progress.note(f"bad video ({bad.kind}): {job.key}: {bad.message}")


def _distinct_texts(pairs: list[tuple[Pair, str]]) -> list[str]:
    return list(dict.fromkeys(text for _pair, text in pairs))


def _score_video(scorer: Scorer, job: VideoJob, video: SampledVideo, counts: PipelineCounts) -> dict[str, PairScore]:
    """Score the distinct query texts of a video in one call (several docids may share a video file): all of
    the run's texts for it (`batch_texts`), so a resumed run scores a pair in the batch an uninterrupted one did."""
    texts = job.batch_texts if job.batch_texts is not None else _distinct_texts(job.pairs)
    scored = _score_splitting_on_oom(scorer, texts, video, counts, job.key)
    return dict(zip(texts, scored, strict=True))


def _score_splitting_on_oom(
    scorer: Scorer, texts: list[str], video: SampledVideo, counts: PipelineCounts, key: str
) -> list[PairScore]:
    """Out of memory loses no pair: the queries are split in halves and scored again, down to one."""
    try:
        scored = list(scorer.score_video(texts, video))
    except Exception as error:
        from rankvideo_cli.scoring.memory import is_out_of_memory, release_accelerator_memory

        if not is_out_of_memory(error):
            raise
        release_accelerator_memory()
        if len(texts) == 1:
            raise ScoringOutOfMemory(
                f"out of memory scoring one query against {key} ({len(video.frame_indices)} frames at "
                f"{video.size[0]}x{video.size[1]}); use a device with more memory"
            ) from None
        counts.oom_splits += 1
        half = len(texts) // 2
        return _score_splitting_on_oom(scorer, texts[:half], video, counts, key) + _score_splitting_on_oom(
            scorer, texts[half:], video, counts, key
        )
    if len(scored) != len(texts):
        raise RuntimeError(f"scorer returned {len(scored)} scores for {len(texts)} queries")
    return scored


class StopFlag:
    """Set by SIGTERM/SIGINT; a second SIGINT aborts at once (the store is safe either way)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.waited_s = 0.0

    def install(self) -> Callable[[], None] | None:
        if threading.current_thread() is not threading.main_thread():
            return None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

        def handler(signum: int, _frame: object) -> None:
            if self.signum is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.signum = signum

        for sig in previous:
            signal.signal(sig, handler)

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore


_Decoded = tuple[VideoJob, "SampledVideo | None", BaseException | None, float]


def _sampler_for(
    sampler: Sampler | None, frame_cache: FrameCache | None, identities: VideoIdentities, retry_bad_videos: bool
) -> Callable[[VideoJob], Sampler]:
    """Each job's sampler, made on the scorer's thread (the identities are not shared with decode threads): the
    decoder, or the frame cache in front of it, keyed by the video's identity (hashed here if need be: the
    store needs it for the scores anyway)."""
    if frame_cache is None or sampler is None:  # None: there are no jobs
        return lambda job: sampler  # type: ignore[return-value]
    from rankvideo_cli.frame_cache import caching_sampler

    return lambda job: caching_sampler(
        frame_cache, identities.current(job.key, job.path), sampler, trust_bad=not retry_bad_videos
    )


def _decode_one(job: VideoJob, sampler: Sampler, sampling: SamplingConfig) -> _Decoded:
    started = time.monotonic()
    try:
        video = sampler(job.path, sampling)
    except Exception as error:
        return job, None, error, time.monotonic() - started
    return job, video, None, time.monotonic() - started


def _decode_in_order(
    jobs: list[VideoJob],
    sampler_for: Callable[[VideoJob], Sampler],
    sampling: SamplingConfig,
    workers: int,
    window: int,
    stop: StopFlag,
) -> Iterator[_Decoded]:
    """Decode in `workers` threads, at most `window` videos ahead, yielding in job order (deterministic).

    Memory stays bounded by the window whatever the run size; on a stop request nothing new starts and
    queued decodes are cancelled.
    """
    if not jobs:
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rankvideo-decode")
    pending: deque[Future[_Decoded]] = deque()
    upcoming = iter(jobs)
    try:
        for job in upcoming:
            pending.append(pool.submit(_decode_one, job, sampler_for(job), sampling))
            if len(pending) >= window:
                break
        while pending:
            future = pending.popleft()
            waited = time.monotonic()
            while True:
                try:
                    decoded = future.result(timeout=0.2)
                    break
                except FutureTimeout:
                    if stop.signum is not None:
                        return
            stop.waited_s += time.monotonic() - waited
            if stop.signum is None:
                next_job = next(upcoming, None)
                if next_job is not None:
                    pending.append(pool.submit(_decode_one, next_job, sampler_for(next_job), sampling))
            yield decoded
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


DECODE_BOUND_SHARE = 0.2  # of the scorer's busy time spent waiting for a decoded video


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
        f"its time, with {workers} decode threads on {usable_cores()} usable cores; give the job more cores "
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
    return f"{len(names)} bad videos ({by_kind}): {shown}"
