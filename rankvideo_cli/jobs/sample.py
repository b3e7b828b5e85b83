"""`rankvideo sample`: decode and sample, on CPU nodes, every video a rerank will need, into a frame cache.

The plan is rerank's: the first `depth` candidates of each query of the run, resolved to videos the same way,
split into the same shards (by video key), so the sample shard I/N holds exactly what rerank shard I/N reads.
No query text and no model are involved, and neither torch's model stack nor transformers is imported.
Resumable and safe to kill: each video's entry is written atomically when it is done; a rerun skips the
videos whose entry is there (a damaged one is sampled again) and a SIGTERM/SIGINT finishes the videos in
flight, then exits 128 + signal.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from rankvideo_cli.errors import RankVideoError
from rankvideo_cli.io.runs import read_run
from rankvideo_cli.jobs.preflight import (
    Named,
    check_no_collisions,
    check_rankvideo_cache,
    check_writable_directory,
)
from rankvideo_cli.messages import plural, say
from rankvideo_cli.options import DecodeOptions, VideoSource, at_least
from rankvideo_cli.pipeline.plan import VideoJob, plan_pairs
from rankvideo_cli.pipeline.score import Sampler, StopFlag, _decode_in_order, default_decode_workers
from rankvideo_cli.pipeline.shards import Shard, parse_shard
from rankvideo_cli.progress import format_duration
from rankvideo_cli.versions import check_installed
from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.videos.frame_cache import FrameCache, FrameCacheWriteError
from rankvideo_cli.videos.identity import VideoIdentities
from rankvideo_cli.videos.index import TarMember

if TYPE_CHECKING:
    from rankvideo_cli.videos.frames import SampledVideo

PROGRESS_INTERVAL_S = 30.0


class SampleInterrupted(RankVideoError):
    """SIGTERM/SIGINT stopped the stage after the videos in flight were written; exit 128 + signal."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


@dataclass
class SampleRequest:
    run_path: Path
    frames_cache: Path  # written here (rerank reads it with DecodeOptions.frames_cache)
    videos: VideoSource
    depth: int = 100
    shard: str | None = None
    decode: DecodeOptions = field(default_factory=DecodeOptions)  # its workers; retry_bad_videos
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # the frames to cache
    verify: bool = False  # read every existing entry back in full (slow), not only its header


@dataclass
class SampleResult:
    videos: int = 0  # distinct videos within depth in this shard
    candidates_without_video: int = 0  # docids within depth (all shards) with no video file
    already_cached: int = 0
    known_bad: int = 0  # the cache records them as not sampleable (--retry-bad-videos to try again)
    sampled: int = 0  # decoded and written now
    bad: dict[str, str] = field(default_factory=dict)  # video key -> "kind: detail", failed now
    damaged_entries: int = 0  # found damaged and sampled again
    bytes_written: int = 0
    wall_s: float = 0.0
    decode_s: float = 0.0  # summed over threads: decode + encode + write

    def as_dict(self) -> dict:
        bad_kinds = Counter(message.split(":", 1)[0] for message in self.bad.values())
        return {
            "videos": self.videos,
            "candidates_without_video": self.candidates_without_video,
            "already_cached": self.already_cached,
            "known_bad": self.known_bad,
            "sampled": self.sampled,
            "bad": len(self.bad),
            "bad_by_kind": dict(sorted(bad_kinds.items())),
            "damaged_entries": self.damaged_entries,
            "bytes_written": self.bytes_written,
            "bytes_per_video": round(self.bytes_written / self.sampled) if self.sampled else None,
            "wall_s": round(self.wall_s, 3),
            "thread_s": round(self.decode_s, 3),
        }


def validate_sample(request: SampleRequest) -> Shard | None:
    """Options and the cache directory, checked before the run is read."""
    at_least("depth", request.depth)
    check_writable_directory(request.frames_cache, "--frames-cache")
    check_rankvideo_cache()
    inputs = [Named("the run", request.run_path)]
    video_map = request.videos.video_map
    inputs += [Named("--video-map", video_map)] if video_map is not None else []
    check_no_collisions(inputs, [Named("--frames-cache", request.frames_cache)])
    return parse_shard(request.shard)


def plan_videos(request: SampleRequest, shard: Shard | None) -> tuple[dict[str, Path | TarMember], int]:
    """Video key -> path of every video within depth in this shard, in key order (rerank's plan, without query
    texts); and the number of docids within depth that have no video file."""
    run = read_run(request.run_path)
    plan = plan_pairs(run, dict.fromkeys(run, ""), request.videos.resolver(), request.depth)
    missing = len({docid for (_qid, docid), key in plan.video_of.items() if key is None})
    owned = {key: path for key, path in plan.paths.items() if shard is None or shard.owns(key)}
    return dict(sorted(owned.items())), missing


def run_sample(
    request: SampleRequest,
    console: Console,
    *,
    sampler: Sampler | None = None,
    handle_signals: bool = True,
) -> SampleResult:
    """Sample every video of the plan that the cache does not hold yet; returns what was done."""
    started = time.monotonic()
    shard = validate_sample(request)
    check_installed("av")
    videos, missing = plan_videos(request, shard)
    cache = FrameCache(request.frames_cache, writable=True)
    sampling = request.sampling
    identities = VideoIdentities(cache.known_identities())
    result = SampleResult(videos=len(videos), candidates_without_video=missing)
    todo: list[tuple[str, Path | TarMember, str | None]] = []
    for key, path in videos.items():
        identity = identities.current(key, path)
        if identity is not None and not _needs_sampling(cache, identity, sampling, request, result):
            continue
        todo.append((key, path, identity))
    cache.record_identities(identities.take_all())  # hashed now: the next run only stats them
    where = f"shard {shard}" if shard is not None else "all shards"
    _say(
        console,
        f"{plural(len(videos), 'video')} within depth {request.depth} ({where}): {result.already_cached} already in "
        f"{request.frames_cache}, {result.known_bad} known bad, {len(todo)} to sample",
    )
    stop = StopFlag()
    restore = stop.install() if handle_signals else None
    try:
        _sample_all(todo, cache, sampler or _decode, request, result, stop, console, started)
    finally:
        if restore is not None:
            restore()
        result.wall_s = time.monotonic() - started
    if stop.signum is not None:
        left = len(todo) - result.sampled - len(result.bad)
        raise SampleInterrupted(
            stop.signum,
            f"interrupted by {signal.Signals(stop.signum).name}: {plural(result.sampled, 'video')} sampled in this "
            "run, "
            f"{left} still to sample; every finished video is saved in {request.frames_cache}: run the same "
            "command again to resume",
        )
    _say(console, _summary_line(result, request))
    if result.bad:
        shown = ", ".join(sorted(result.bad)[:5]) + (" and more" if len(result.bad) > 5 else "")
        kinds = ", ".join(f"{kind}: {count}" for kind, count in result.as_dict()["bad_by_kind"].items())
        _say(console, f"{plural(len(result.bad), 'bad video')} ({kinds}): {shown}")
    return result


def _decode(path: Path | TarMember, sampling: SamplingConfig) -> SampledVideo:
    """The sampler, imported (PyAV and torch) only when a video is to be decoded."""
    from rankvideo_cli.videos.frames import sample_video

    return sample_video(path, sampling)


def _needs_sampling(
    cache: FrameCache, identity: str, sampling: SamplingConfig, request: SampleRequest, result: SampleResult
) -> bool:
    state = cache.state(identity, sampling, full=request.verify)
    if state.status == "cached":
        result.already_cached += 1
        return False
    if state.status == "bad" and not request.decode.retry_bad_videos:
        result.known_bad += 1
        return False
    if state.status == "corrupt":
        result.damaged_entries += 1
    return True


def _sample_all(
    todo: list[tuple[str, Path | TarMember, str | None]],
    cache: FrameCache,
    sampler: Sampler,
    request: SampleRequest,
    result: SampleResult,
    stop: StopFlag,
    console: Console,
    started: float,
) -> None:
    """Decode, in rerank's decode pool (bounded, in order, stopped by the flag), what the cache lacks."""
    from rankvideo_cli.videos.frame_cache import caching_sampler

    sampling = request.sampling
    workers = request.decode.decode_workers or default_decode_workers() + 1  # no scorer to leave a core for
    identity_of = {key: identity for key, _path, identity in todo}

    def sampler_for(job: VideoJob) -> Sampler:  # a file that cannot be read is decoded for the reason, not cached
        identity = identity_of[job.key]
        return caching_sampler(cache, identity, sampler, trust_bad=False) if identity is not None else sampler

    jobs = [VideoJob(key, path, []) for key, path, _identity in todo]
    last_line = time.monotonic()
    window = 2 * workers
    decoded = _decode_in_order(jobs, sampler_for, sampling, workers, window, stop)
    consumed = 0
    try:
        for job, video, failure, seconds in decoded:
            consumed += 1
            result.decode_s += seconds
            if isinstance(failure, FrameCacheWriteError):  # a full disk is not a bad video: stop, say why
                raise failure
            if video is not None and identity_of[job.key] is not None:
                result.sampled += 1
            elif isinstance(failure, RankVideoError):
                result.bad[job.key] = f"{getattr(failure, 'kind', 'unreadable')}: {getattr(failure, 'detail', failure)}"
            elif failure is not None:  # unexpected (a flaky file system): not recorded, retried next run
                result.bad[job.key] = f"unexpected: {type(failure).__name__}: {failure}"
            else:
                result.bad[job.key] = "missing: the file cannot be read"
            now = time.monotonic()
            if now - last_line >= PROGRESS_INTERVAL_S:
                last_line = now
                done = result.sampled + len(result.bad)
                elapsed = format_duration(now - started)
                _say(console, f"{done}/{len(todo)} videos sampled ({len(result.bad)} bad), elapsed {elapsed}")
            if stop.signum is not None:
                break
    finally:
        decoded.close()  # the decodes already running finish and write their entries
        result.bytes_written = cache.stats.bytes_written
    if stop.signum is not None:
        _count_saved_after_stop(todo[consumed : consumed + window], cache, sampling, request, result)


def _count_saved_after_stop(
    in_flight: list[tuple[str, Path | TarMember, str | None]],
    cache: FrameCache,
    sampling: SamplingConfig,
    request: SampleRequest,
    result: SampleResult,
) -> None:
    """After a signal, the videos that were decoding when it came finished and were saved without being counted;
    count them from the cache, so the summary says what is on disk. The decode pool never runs more than its
    window ahead of the last video counted, so only that window can hold them."""
    for key, _path, identity in in_flight:
        if identity is None:
            continue
        state = cache.state(identity, sampling, full=False)
        if state.status == "cached":
            result.sampled += 1
        elif state.status == "bad" and not request.decode.retry_bad_videos:  # else it may be the record being retried
            result.bad[key] = state.detail or "bad"


def _summary_line(result: SampleResult, request: SampleRequest) -> str:
    per_video = f" ({result.bytes_written / result.sampled / 1e6:.2f} MB per video)" if result.sampled else ""
    damaged = (
        f", {plural(result.damaged_entries, 'damaged entry', 'damaged entries')} sampled again"
        if result.damaged_entries
        else ""
    )
    without_video = plural(result.candidates_without_video, "candidate has", "candidates have")
    return (
        f"{plural(result.sampled, 'video')} sampled now, {len(result.bad)} bad, {result.already_cached} were "
        "already cached"
        f"{damaged}; {result.bytes_written / 1e6:.1f} MB written{per_video} to {request.frames_cache} in "
        f"{format_duration(result.wall_s)}; {without_video} no video file"
    )


def _say(console: Console, text: str) -> None:
    say(console, text)
