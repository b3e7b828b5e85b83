"""A video's sampling plan from one demux pass, without torch: N, F, the sampled indices, the sizes, the pair
timestamps, and the reference's refusals (REFERENCE.md sections 1-2, 6).

The scorer's decoder (`videos/frames.py`), `frames`, `sample` and the report's thumbnails all plan a video here, so
a video the model refuses (too few frames, an unknown frame rate, an aspect ratio past 200, no decodable frame) is
refused by each of them alike, with the same kind and words. PyAV and numpy only.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.videos.container import (
    OpenVideo,
    PacketIndex,
    VideoError,
    ffmpeg_reason,
    rotation_turns,
)
from rankvideo_cli.videos.index import TarMember
from rankvideo_cli.videos.sampling import (
    SamplingRefused,
    is_fitted,
    output_size,
    pair_timestamps,
    sample_count,
    sample_indices,
)


@dataclass(frozen=True)
class VideoPlan:
    """What `sample_video` will take from a video, known after one demux pass and one decoded frame."""

    path: str
    container: str
    codec: str
    total_frames: int  # N
    average_rate: Fraction
    source_fps: float  # F = float(average_rate)
    frame_indices: tuple[int, ...]
    coded_size: tuple[int, int]  # (height, width) as stored
    rotation: int  # display rotation, counter-clockwise degrees
    source_size: tuple[int, int]  # (height, width) after rotation
    output_size: tuple[int, int]  # (height, width) the model sees
    keyframes: int
    config_fingerprint: str
    notes: tuple[str, ...] = ()
    fitted: bool = False  # sampled smaller to fit the reranker's token budget (`SamplingConfig.fit_total_pixels`)
    demux_seconds: float = field(default=0.0, compare=False)
    packets: PacketIndex | None = field(default=None, repr=False, compare=False)

    @property
    def pair_timestamps(self) -> list[float]:
        return pair_timestamps(self.frame_indices, self.source_fps)

    @property
    def duration_seconds(self) -> float:
        return self.total_frames / self.source_fps


def _make_plan(video: OpenVideo, config: SamplingConfig) -> VideoPlan:
    path, stream = video.path, video.stream
    started = time.perf_counter()
    rate = stream.average_rate
    if rate is None or rate <= 0:
        shown = "0/0" if rate is None else str(rate)
        raise VideoError(path, "bad_frame_rate", f"average frame rate is {shown}; frame times are unknown")
    context = stream.codec_context
    pts: list[int | None] = []
    keyframe: list[bool] = []
    first_frame = None
    first_error: str | None = None
    for packet in video.packets():
        if packet is None:  # FLUSH
            if first_frame is None and first_error is None:
                first_frame, first_error = _first_frame(context, None, first_error)
            continue
        pts.append(packet.pts)
        keyframe.append(packet.is_keyframe)
        if first_frame is None and first_error is None and packet.size > 0:
            first_frame, first_error = _first_frame(context, packet, first_error)
    demux_seconds = time.perf_counter() - started
    index = PacketIndex(pts, keyframe)
    source_fps = float(rate)
    try:
        count = sample_count(index.count, source_fps, config)
        if first_frame is None:
            reason = first_error or "the decoder returned no frame"
            raise VideoError(path, "corrupt", f"no frame could be decoded ({reason})")
        rotation, coded_size = first_frame
        source_size = coded_size[::-1] if rotation_turns(rotation) % 2 else coded_size
        resized = output_size(source_size[0], source_size[1], count, config)
        fitted = is_fitted(source_size[0], source_size[1], count, config)
    except SamplingRefused as refused:
        raise VideoError(path, refused.kind, refused.detail) from None
    notes = []
    if video.read_error:
        notes.append(f"demuxing stopped at a read error after {index.count} packets ({video.read_error})")
    if not index.mappable:
        notes.append("packet timestamps are missing or repeated: frames are counted in decode order")
    return VideoPlan(
        path=str(path),
        container=video.container.format.name,
        codec=context.name,
        total_frames=index.count,
        average_rate=Fraction(rate),
        source_fps=source_fps,
        frame_indices=tuple(sample_indices(index.count, count)),
        coded_size=coded_size,
        rotation=int(rotation),
        source_size=(int(source_size[0]), int(source_size[1])),
        output_size=resized,
        keyframes=int(index.keyframe.sum()),
        config_fingerprint=config.fingerprint(),
        notes=tuple(notes),
        fitted=fitted,
        demux_seconds=demux_seconds,
        packets=index,
    )


def _first_frame(
    context: av.video.codeccontext.VideoCodecContext, packet: av.Packet | None, error: str | None
) -> tuple[tuple[int, tuple[int, int]] | None, str | None]:
    """Decode until the first frame appears: its rotation and coded (height, width)."""
    try:
        frames = context.decode(packet)
    except av.error.FFmpegError as failure:
        return None, ffmpeg_reason(failure)
    if not frames:
        return None, error
    frame = frames[0]
    return (frame.rotation, (int(frame.height), int(frame.width))), None


def probe_video(path: str | Path | TarMember, config: SamplingConfig = SamplingConfig()) -> VideoPlan:
    """N, F, indices, timestamps and sizes of a video, from one demux pass (only the first frame decoded).

    Raises `VideoError` for every video the sampler would reject, except damage that only decoding the
    sampled frames can reveal (kind "corrupt").
    """
    with OpenVideo(path) as video:
        return _make_plan(video, config)


def describe(plan: VideoPlan, *, timings: bool = False) -> dict[str, Any]:
    """A JSON-able summary of a plan (deterministic unless `timings`): counts, indices, timestamps, sizes, tokens."""
    height, width = plan.output_size
    tokens_per_pair = height * width // 1024
    timestamps = plan.pair_timestamps
    summary: dict[str, Any] = {
        "path": plan.path,
        "container": plan.container,
        "codec": plan.codec,
        "total_frames": plan.total_frames,
        "average_rate": str(plan.average_rate),
        "source_fps": plan.source_fps,
        "duration_seconds": plan.duration_seconds,
        "keyframes": plan.keyframes,
        "rotation": plan.rotation,
        "coded_size": list(plan.coded_size),
        "sampled_frames": len(plan.frame_indices),
        "frame_indices": list(plan.frame_indices),
        "pair_timestamps": [round(value, 6) for value in timestamps],
        "pair_labels": [f"<{value:.1f} seconds>" for value in timestamps],
        "source_size": list(plan.source_size),
        "output_size": [height, width],
        "tokens_per_pair": tokens_per_pair,
        "video_tokens": tokens_per_pair * math.ceil(len(plan.frame_indices) / 2),
        "fitted": plan.fitted,
        "notes": list(plan.notes),
    }
    if timings:
        summary["seconds"] = {"demux": round(plan.demux_seconds, 6)}
    return summary
