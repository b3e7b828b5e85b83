"""Thumbnails of the frames the model saw, with PyAV, numpy and Pillow only (no torch: the report loads no model).

Which frames: the scorer's own plan (`videos/plan.py`'s `probe_video`, torch-free): the same N, the same
indices, and the same refusals, so a video the model refuses shows why instead of frames it never saw. From the
n sampled frames, `count` are taken evenly (first and last included).

Where the pixels come from: a frame cache entry when it holds the video (the very frames the model saw, at its
size), else the video itself, decoded from the start (a thumbnail needs a handful of frames, not the seeking
fast path of `videos/frames.py`), with the display rotation applied as the sampler does (`container.rotate_rgb`).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.videos.container import OpenVideo, PacketIndex, VideoError, rotate_rgb
from rankvideo_cli.videos.frame_cache import FrameCache
from rankvideo_cli.videos.identity import content_identity
from rankvideo_cli.videos.index import TarMember
from rankvideo_cli.videos.plan import probe_video

THUMBNAIL_WIDTH = 160
JPEG_QUALITY = 80


def evenly_chosen(items: Sequence[int], count: int) -> list[int]:
    """`count` of `items`, evenly spread, the first and the last included (all of them when fewer)."""
    if count >= len(items):
        return list(items)
    if count == 1:
        return [items[len(items) // 2]]
    return [items[round(slot * (len(items) - 1) / (count - 1))] for slot in range(count)]


@dataclass
class Thumbnails:
    """A video's thumbnail strip: JPEG bytes with the frame index each shows, or why there is none."""

    images: list[bytes] = field(default_factory=list)
    frame_indices: list[int] = field(default_factory=list)
    source: str = ""  # "frame cache" or "decoded"
    problem: str | None = None  # "missing video", or a VideoError's kind and detail

    @property
    def ok(self) -> bool:
        return self.problem is None


def jpeg_thumbnail(rgb: np.ndarray, width: int = THUMBNAIL_WIDTH) -> bytes:
    """An HWC uint8 RGB frame, scaled to `width` pixels wide (aspect kept), as JPEG bytes."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(rgb))
    height = max(1, round(image.height * width / image.width))
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


def from_frame_cache(frames: np.ndarray, frame_indices: Sequence[int], count: int) -> Thumbnails:
    """Thumbnails of `count` of a cache entry's frames (uint8 (T, 3, H, W), as the model saw them)."""
    slots = evenly_chosen(list(range(len(frame_indices))), count)
    images = [jpeg_thumbnail(frames[slot].transpose(1, 2, 0)) for slot in slots]
    return Thumbnails(images, [int(frame_indices[slot]) for slot in slots], "frame cache")


def decode_thumbnails(path: Path | TarMember, config: SamplingConfig, count: int) -> Thumbnails:
    """Thumbnails of `count` of the frames the reference samples from the video at `path`, decoded with PyAV;
    raises the scorer's own `VideoError` (its plan is `probe_video`'s) for a video the model refuses.

    A frame is recognised by its pts (its index is the pts' rank, as the sampler counts): where the stream's
    keyframes allow it, the decoder seeks to the keyframe before each wanted frame and decodes up to it, so a
    long video costs a few GOPs, not a full decode; any wanted frame not reached that way is then looked for
    by decoding from the start.
    """
    plan = probe_video(path, config)
    packets = plan.packets
    assert packets is not None
    sampled = list(plan.frame_indices)
    wanted = sorted(set(evenly_chosen(sampled, count)))
    found: dict[int, bytes] = {}
    if packets.seekable:
        with OpenVideo(path) as video:
            for target in wanted:
                if target not in found:
                    _decode_after_seek(video, packets, target, set(wanted), found)
    if len(found) < len(wanted):
        with OpenVideo(path) as video:  # opened again: at its start, whatever the seeks left behind
            _decode_from_start(video, packets, set(wanted), found)
    shown = sorted(found)
    if not shown:
        raise VideoError(path, "corrupt", "none of the sampled frames could be decoded")
    return Thumbnails([found[index] for index in shown], shown, "decoded")


def _keep(frame: av.VideoFrame, index: int | None, wanted: set[int], found: dict[int, bytes]) -> None:
    if index is not None and index in wanted and index not in found:
        found[index] = jpeg_thumbnail(rotate_rgb(frame.to_ndarray(format="rgb24"), frame.rotation))


def _decode_after_seek(
    video: OpenVideo, packets: PacketIndex, target: int, wanted: set[int], found: dict[int, bytes]
) -> None:
    _position, key_pts = packets.keyframe_before(target)
    try:
        video.container.seek(key_pts, stream=video.stream, backward=True)
        for frame in video.container.decode(video.stream):
            index = packets.rank(frame.pts)
            _keep(frame, index, wanted, found)
            if index is not None and index >= target:
                return
    except (av.error.FFmpegError, OSError, ValueError):
        return  # the decode from the start looks for what is still missing


def _decode_from_start(video: OpenVideo, packets: PacketIndex, wanted: set[int], found: dict[int, bytes]) -> None:
    try:
        for position, frame in enumerate(video.container.decode(video.stream)):
            _keep(frame, packets.rank(frame.pts) if packets.mappable else position, wanted, found)
            if len(found) == len(wanted):
                return
    except (av.error.FFmpegError, OSError, ValueError):
        return  # a damaged frame ends the strip here: what was decoded is shown


def video_thumbnails(
    path: Path | TarMember | None, count: int, config: SamplingConfig, frame_cache: FrameCache | None
) -> Thumbnails:
    """One video's strip: from the frame cache when it holds the video, else decoded; a missing or bad video is
    a strip with its problem, never an exception."""
    if path is None:
        return Thumbnails(problem="missing video: no file for this docid under --videos")
    try:
        if frame_cache is not None:
            cached = frame_cache.load_arrays(path, content_identity(path), config)
            if cached is not None:
                return from_frame_cache(cached.frames, cached.frame_indices, count)
        return decode_thumbnails(path, config, count)
    except VideoError as error:
        return Thumbnails(problem=f"bad video: {error.kind}: {error.detail}")
    except OSError as error:  # the file went away or cannot be read between resolving and reading it
        return Thumbnails(problem=f"bad video: missing: {error.strerror or error}")


def make_thumbnails(
    videos: Mapping[str, Path | TarMember | None],
    *,
    count: int,
    config: SamplingConfig,
    frame_cache: FrameCache | None,
    workers: int,
    on_done: Callable[[], None] = lambda: None,
) -> dict[str, Thumbnails]:
    """docid -> its strip, decoded by `workers` threads (PyAV releases the GIL while it decodes)."""

    def one(docid: str) -> Thumbnails:
        try:
            return video_thumbnails(videos[docid], count, config, frame_cache)
        finally:
            on_done()

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return dict(zip(videos, pool.map(one, videos), strict=True))
