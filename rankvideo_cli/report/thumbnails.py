"""Thumbnails of the frames the model saw, with PyAV, numpy and Pillow only (no torch: the report loads no model).

Which frames: the reference's sampling (`videos/sampling.py`: `smart_nframes`, then
`torch.linspace(0, N - 1, n).round()` over the N demuxed packets in pts order). qwen-vl-utils and torch are
what the scorer uses for that arithmetic; both import torch, so this module carries a copy of the two
functions, and tests/test_report.py holds it equal to them over every frame count up to 5,000 and a grid of
frame rates. From those n frames, `count` are taken evenly (first and last included).

Where the pixels come from: a frame cache entry when it holds the video (the very frames the model saw, at its
size), else the video itself, decoded from the start (a thumbnail needs a handful of frames, not the seeking
fast path of `videos/frames.py`), with the display rotation applied as the sampler does (`container.rotate_rgb`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.videos.container import OpenVideo, PacketIndex, VideoError, is_flush, rotate_rgb
from rankvideo_cli.videos.frame_cache import FrameCache
from rankvideo_cli.videos.identity import content_identity
from rankvideo_cli.videos.index import TarMember

FRAME_FACTOR = 2  # qwen-vl-utils 0.0.14 vision_process.FRAME_FACTOR
THUMBNAIL_WIDTH = 160
JPEG_QUALITY = 80


def reference_frame_count(total_frames: int, source_fps: float, config: SamplingConfig) -> int:
    """qwen-vl-utils 0.0.14 `smart_nframes(config.qwen_element(), total_frames, source_fps)`, operation for
    operation; ValueError when the video has fewer frames than the model needs."""
    min_frames = math.ceil(config.min_frames / FRAME_FACTOR) * FRAME_FACTOR
    max_frames = math.floor(config.max_frames / FRAME_FACTOR) * FRAME_FACTOR
    nframes = total_frames / source_fps * config.fps
    nframes = min(min(max(nframes, min_frames), max_frames), total_frames)
    nframes = math.floor(nframes / FRAME_FACTOR) * FRAME_FACTOR
    if not (nframes >= FRAME_FACTOR and nframes <= total_frames):
        raise ValueError(f"nframes should in interval [{FRAME_FACTOR}, {total_frames}], but got {nframes}.")
    return int(nframes)


def reference_indices(total_frames: int, count: int) -> list[int]:
    """`torch.linspace(0, N - 1, n).round().long()` in float32 as torch's CPU kernel computes it: the first half
    counted up from 0, the second half down from N - 1, then rounded half to even."""
    if count == 1:
        return [0]
    start, end = np.float32(0), np.float32(total_frames - 1)
    step = np.float32((end - start) / np.float32(count - 1))
    position = np.arange(count, dtype=np.int64)
    rising = start + step * position.astype(np.float32)
    falling = end - step * (count - 1 - position).astype(np.float32)
    values = np.where(position < count // 2, rising, falling).astype(np.float32)
    return np.rint(values).astype(np.int64).tolist()


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
    raises `VideoError` as the sampler would for a video it cannot sample.

    A frame is recognised by its pts (its index is the pts' rank, as the sampler counts): where the stream's
    keyframes allow it, the decoder seeks to the keyframe before each wanted frame and decodes up to it, so a
    long video costs a few GOPs, not a full decode; any wanted frame not reached that way is then looked for
    by decoding from the start.
    """
    with OpenVideo(path) as video:
        rate = video.stream.average_rate
        if rate is None or rate <= 0:
            raise VideoError(path, "bad_frame_rate", f"average frame rate is {rate or '0/0'}")
        pts, keyframes = [], []
        for packet in video.packets():
            if not is_flush(packet):
                pts.append(packet.pts)
                keyframes.append(packet.is_keyframe)
    packets = PacketIndex(pts, keyframes)
    try:
        sampled = reference_indices(packets.count, reference_frame_count(packets.count, float(rate), config))
    except ValueError:
        raise VideoError(path, "too_few_frames", f"{packets.count} frame(s); the model needs at least 2") from None
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
