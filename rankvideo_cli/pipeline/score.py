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
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TYPE_CHECKING

from rankvideo_cli.errors import RankVideoError
from rankvideo_cli.options import DecodeOptions
from rankvideo_cli.pipeline.plan import Pairs, VideoJob, distinct_texts, reorder, triage_pairs
from rankvideo_cli.pipeline.result import (
    BAD_VIDEO,
    SCORED,
    Interrupted,
    PairOutcome,
    PipelineCounts,
    PipelineResult,
    PipelineTimings,
    ScoringOutOfMemory,
    usable_cores,
)
from rankvideo_cli.pipeline.store import (
    BadVideo,
    PairKey,
    ScoreStore,
    fingerprint_hash,
    query_sha256,
)
from rankvideo_cli.progress import ProgressReporter
from rankvideo_cli.scoring.base import PairScore, Scorer
from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.videos.identity import VideoIdentities
from rankvideo_cli.videos.index import TarMember
from rankvideo_cli.videos.sampling import is_fitted

if TYPE_CHECKING:  # decoding (torch, PyAV) loads only when a video is decoded
    from rankvideo_cli.videos.frame_cache import FrameCache
    from rankvideo_cli.videos.frames import SampledVideo


Sampler = Callable[[Path | TarMember, SamplingConfig], "SampledVideo"]


def default_decode_workers() -> int:
    """One decode thread per available core, minus one for the scorer's own work, at least 1, at most 16."""
    return max(1, min(16, usable_cores() - 1))


def default_prefetch(decode_workers: int) -> int:
    """Videos decoded or decoding ahead of the scorer: enough to smooth decode time spikes, memory-bounded.

    A sampled video is at most 32 x 3 x 131072 bytes (12.6 MB), so the default costs < 0.5 GB.
    """
    return max(2, 2 * decode_workers)


def score_pairs(
    pairs: Pairs,
    scorer: Scorer,
    store: ScoreStore,
    *,
    decode: DecodeOptions = DecodeOptions(),
    sampling: SamplingConfig = SamplingConfig(),
    progress: ProgressReporter | None = None,
    sampler: Sampler | None = None,
) -> PipelineResult:
    """Score every (query, candidate video) pair within depth that the store does not hold yet.

    Returns scores for scored and cached pairs and an outcome for every pair; missing and bad videos are
    counted and reported, never silently dropped (the ranking step applies the user's policy).
    Raises `Interrupted` after SIGTERM/SIGINT (the store is flushed: re-run to resume).
    With `decode.frames_cache`, a video's frames are read from it when it holds them (`rankvideo sample` wrote
    them), and decoded otherwise. The store's shard says which videos are this job's. `sampler` replaces the
    decoder (tests).
    """
    started = time.monotonic()
    workers = decode.decode_workers if decode.decode_workers is not None else default_decode_workers()
    window = decode.prefetch if decode.prefetch is not None else default_prefetch(workers)
    progress = progress if progress is not None else ProgressReporter()
    shard, retry_bad_videos = store.shard, decode.retry_bad_videos
    frame_cache = _read_only_frame_cache(decode.frames_cache)

    model_fp = fingerprint_hash(scorer.fingerprint())
    settings_fp = sampling.fingerprint()
    plan = pairs.plan()
    timings = PipelineTimings()
    read_started = time.monotonic()
    contents = store.read(model_fp, settings_fp)
    timings.store_s += time.monotonic() - read_started

    identities = VideoIdentities(contents.video_ids)
    triage = triage_pairs(plan, contents, shard, retry_bad_videos, identities)
    jobs, counts = triage.jobs, triage.counts
    result = triage.result(
        timings,
        (model_fp, settings_fp),
        store.directory,
        {
            "depth": pairs.depth,
            "shard": str(shard) if shard else None,
            "decode_workers": workers,
            "prefetch": window,
            "retry_bad_videos": retry_bad_videos,
            "sampling": sampling.to_dict(),
            "frame_cache": str(frame_cache.directory) if frame_cache is not None else None,
        },
    )
    result.shard = shard
    if jobs and sampler is None:  # PyAV, torch and qwen-vl-utils load only when there is a video to decode
        from rankvideo_cli.videos.frames import sample_video as sampler
    if jobs and model_fp not in contents.models:
        store.writer.announce_model(model_fp, scorer.fingerprint())
    retried = {job.key for job in jobs if job.key in contents.bad_videos}

    progress.start(counts)
    stop = StopFlag()
    restore = stop.install()
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
                    counts.videos_fitted += is_fitted(*sampled.source_size, len(sampled.frame_indices), sampling)
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
    reorder(result, plan)
    return result


def _read_only_frame_cache(directory: Path | None) -> FrameCache | None:
    if directory is None:
        return None
    from rankvideo_cli.videos.frame_cache import FrameCache

    return FrameCache(directory, writable=False)


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
    from rankvideo_cli.videos.frame_cache import FrameCacheWriteError

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


def _score_video(scorer: Scorer, job: VideoJob, video: SampledVideo, counts: PipelineCounts) -> dict[str, PairScore]:
    """Score the distinct query texts of a video in one call (several docids may share a video file): all of
    the run's texts for it (`batch_texts`), so a resumed run scores a pair in the batch an uninterrupted one did."""
    texts = job.batch_texts if job.batch_texts is not None else distinct_texts(job.pairs)
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


def _no_sampler(path: Path | TarMember, sampling: SamplingConfig) -> SampledVideo:
    raise AssertionError("a video was to be decoded in a run with no video to decode")


def _sampler_for(
    sampler: Sampler | None, frame_cache: FrameCache | None, identities: VideoIdentities, retry_bad_videos: bool
) -> Callable[[VideoJob], Sampler]:
    """Each job's sampler, made on the scorer's thread (the identities are not shared with decode threads): the
    decoder, or the frame cache in front of it, keyed by the video's identity (hashed here if need be: the
    store needs it for the scores anyway)."""
    if sampler is None:  # there are no jobs
        return lambda job: _no_sampler
    if frame_cache is None:
        return lambda job: sampler
    from rankvideo_cli.videos.frame_cache import caching_sampler

    decode = sampler
    return lambda job: caching_sampler(
        frame_cache, identities.current(job.key, job.path), decode, trust_bad=not retry_bad_videos
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
) -> Generator[_Decoded, None, None]:
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
