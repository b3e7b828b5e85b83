"""A rerank's request and its prepared inputs: the types that the rerank command, the dry run, the device
workers and the PyTerrier reranker share (below all of them, so that none imports another back)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rankvideo_cli.io.runs import Run
from rankvideo_cli.videos.resolver import VideoResolver


@dataclass
class RerankRequest:
    run_path: Path
    queries_path: Path
    videos_root: Path | None = None
    video_pattern: str = "{docid}.mp4"
    multivent: bool = False
    video_map: Path | None = None
    output: Path | None = None
    tag: str = "rankvideo"
    depth: int = 100
    interpolate: float | None = None
    normalization: str = "minmax"
    on_missing_video: str = "keep"
    on_bad_video: str = "keep"
    missing_query: str = "error"
    scores_path: Path | None = None
    qrels_path: Path | None = None
    measures: Sequence[str] | None = None
    decode_workers: int | None = None
    prefetch: int | None = None
    cache_dir: Path | None = None
    shard: str | None = None
    retry_bad_videos: bool = False
    manifest_path: Path | None = None
    batch_size: int | None = None  # validated here; the scorer factory uses it
    model: str | None = None  # likewise (a near miss of tiny-random is refused at once)
    dry_run: bool = False
    frames_cache: Path | None = None  # sampled frames written by `rankvideo sample` (read only)
    devices: str | None = None  # one worker process per device (pipeline/devices.py); None: this process, one device


class MemoResolver:
    """Resolves each docid once (a file-system stat on a cluster filesystem is not free), and keeps the first
    few missing docids' explanations (the paths tried) for the report."""

    def __init__(self, resolver: VideoResolver) -> None:
        self.resolver = resolver
        self._seen: dict[str, Path | None] = {}
        self.missing_examples: list[str] = []  # the first few missing docids' explanations

    def resolve(self, docid: str) -> Path | None:
        if docid not in self._seen:
            resolution = self.resolver.lookup(docid)
            self._seen[docid] = resolution.path
            if resolution.path is None and len(self.missing_examples) < 3:
                self.missing_examples.append(resolution.reason)
        return self._seen[docid]


@dataclass
class PreparedInputs:
    run: Run
    queries: dict[str, str]
    scored_run: dict[str, list]  # the run without the queries that have no text (--missing-query skip)
    skipped_queries: list[str]
    resolver: MemoResolver


def build_resolver(request: RerankRequest) -> MemoResolver:
    """The docid -> video lookup of `--videos`, `--video-pattern`, `--multivent` and `--video-map`."""
    return MemoResolver(
        VideoResolver(
            request.videos_root,  # type: ignore[arg-type]
            pattern=request.video_pattern,
            video_map=request.video_map,
            multivent=request.multivent,
        )
    )


def anything_to_score(request: RerankRequest, inputs: PreparedInputs, missing_pairs: int) -> bool:
    """Whether some pair within depth has a video file: when none has, no model is loaded (seconds, not a GPU
    start)."""
    within_depth = sum(min(request.depth, len(candidates)) for candidates in inputs.scored_run.values())
    return missing_pairs < within_depth


def count_missing_videos(inputs: PreparedInputs, depth: int) -> tuple[int, int]:
    """(candidates within depth without a video file, their distinct docids)."""
    within = Counter(candidate.docid for candidates in inputs.scored_run.values() for candidate in candidates[:depth])
    resolve = inputs.resolver.resolve
    missing = [docid for docid in within if resolve(docid) is None]  # each distinct docid resolved once
    return sum(within[docid] for docid in missing), len(missing)


def job_settings(request: RerankRequest) -> dict:
    """Options every shard of an array must share (merge checks them)."""
    return {
        "depth": request.depth,
        "interpolate": request.interpolate,
        "normalization": request.normalization,
        "tag": request.tag,
        "on_missing_video": request.on_missing_video,
        "on_bad_video": request.on_bad_video,
        "missing_query": request.missing_query,
        "videos": inputs_description(request),
    }


def inputs_description(request: RerankRequest) -> dict:
    return {
        "root": str(request.videos_root),
        "pattern": None if request.video_map or request.multivent else request.video_pattern,
        "multivent": request.multivent,
        "video_map": str(request.video_map) if request.video_map else None,
    }


def request_to_dict(request: RerankRequest) -> dict[str, Any]:
    """The request as JSON values (how a device worker receives it)."""
    return {
        item.name: (str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value)
        for item in fields(request)
        for value in [getattr(request, item.name)]
    }


def request_from_dict(data: dict[str, Any]) -> RerankRequest:
    paths = {item.name for item in fields(RerankRequest) if "Path" in str(item.type)}
    return RerankRequest(
        **{name: Path(value) if name in paths and value is not None else value for name, value in data.items()}
    )
