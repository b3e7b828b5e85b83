"""Reference-faithful frame sampling for RankVideo (REFERENCE.md sections 1-3).

Data types live at the top of this module; the PyAV decoder below them.

The reference (qwen-vl-utils 0.0.14 with decord) counts a video's frames as its demuxed packets (N), takes
`n = smart_nframes(...)` of them at `torch.linspace(0, N - 1, n).round()`, applies the display rotation
and resizes with `smart_resize` + torchvision bicubic/antialias. This module reproduces that with PyAV,
decoding only what the sampled indices need:

- one demux pass reads every packet's pts and keyframe flag (no pixels): N, the indices, and a map from a
  decoded frame's pts to its index (decord orders frames by pts too);
- decoding seeks over GOPs that hold no sampled frame, skips unsampled non-reference frames, and converts
  and resizes only sampled frames, one at a time, so memory stays at the sampled frames plus one GOP;
- anything it cannot vouch for (a decode error, a seek landing elsewhere, a frame missing) makes it decode
  again from the start, every frame, the reference's way; a sampled frame that still cannot be produced
  fails the video with a `VideoError`.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter
from qwen_vl_utils import vision_process as qwen_vision
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as tv_functional

from rankvideo_cli.errors import RankVideoError
from rankvideo_cli.sampling_config import SamplingConfig
from rankvideo_cli.video_index import TarMember

logger = logging.getLogger(__name__)


@dataclass
class SampledVideo:
    """Frames exactly as the model sees them, plus the metadata the Qwen3-VL processor needs."""

    path: str
    frames: torch.Tensor  # uint8, (T, 3, H, W), RGB, already resized
    source_fps: float  # F: float(stream.average_rate)
    total_frames: int  # N: demuxed video packets, as decord counts them
    frame_indices: list[int]  # which decoded frames were taken
    source_size: tuple[int, int]  # (height, width) after rotation, before resize
    extra: dict = field(default_factory=dict)  # decode diagnostics (codec, rotation, seconds spent)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[2]), int(self.frames.shape[3])

    @property
    def pair_timestamps(self) -> list[float]:
        """Seconds per temporal pair, as the processor renders them: mean of the pair's two frame times."""
        return pair_timestamps(self.frame_indices, self.source_fps)

    def processor_metadata(self) -> dict:
        """Per-video metadata for the processor (`do_sample_frames=False`); fps is the SOURCE fps."""
        return {
            "fps": self.source_fps,
            "frames_indices": list(self.frame_indices),
            "total_num_frames": self.total_frames,
        }


# ----------------------------------------------------------------------------------------------------
# Failures
# ----------------------------------------------------------------------------------------------------


class VideoError(RankVideoError):
    """A video that cannot be sampled faithfully; `kind` says why (one of `VideoError.KINDS`)."""

    KINDS: ClassVar[dict[str, str]] = {
        "missing": "the file does not exist or cannot be read",
        "not_a_video": "no decodable video stream (audio-only, cover art only, not a media file)",
        "too_few_frames": "fewer frames than the 2 the model needs",
        "bad_frame_rate": "the container gives no usable average frame rate",
        "corrupt": "damaged data: a frame the sampler needs cannot be decoded",
        "bad_aspect_ratio": "width/height ratio above the 200 qwen-vl-utils accepts",
        "unreadable_member": "a tar member whose bytes are not stored in place (a sparse member)",
    }

    def __init__(self, path: str | Path, kind: str, detail: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown VideoError kind {kind!r}")
        self.path = str(path)
        self.kind = kind
        self.detail = " ".join(str(detail).split())
        super().__init__(f"{self.path}: {kind}: {self.detail}")


# ----------------------------------------------------------------------------------------------------
# The reference's arithmetic (qwen-vl-utils 0.0.14 is the source of truth; nothing is re-derived here)
# ----------------------------------------------------------------------------------------------------


class _DropNframesWarning(logging.Filter):
    """qwen-vl-utils warns on stderr whenever a video is slower than the sampling fps; that is expected."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("smart_nframes: nframes[")


logging.getLogger(qwen_vision.__name__).addFilter(_DropNframesWarning())


def sample_count(total_frames: int, source_fps: float, config: SamplingConfig) -> int:
    """n: how many frames the reference takes (`smart_nframes` with the config's fps/min/max)."""
    element = config.qwen_element()
    return int(qwen_vision.smart_nframes(element, total_frames=total_frames, video_fps=source_fps))


def sample_indices(total_frames: int, count: int) -> list[int]:
    """The reference's indices: `torch.linspace(0, N - 1, n).round().long()`."""
    return torch.linspace(0, total_frames - 1, count).round().long().tolist()


def output_size(height: int, width: int, count: int, config: SamplingConfig) -> tuple[int, int]:
    """(height, width) after resizing, computed exactly as `fetch_video` does for `count` sampled frames."""
    factor = config.patch_factor
    frame_max_pixels = qwen_vision.VIDEO_MAX_TOKEN_NUM * factor * factor
    max_pixels = max(
        min(frame_max_pixels, config.total_pixels / count * qwen_vision.FRAME_FACTOR),
        int(config.min_pixels * 1.05),
    )
    max_pixels = min(config.max_pixels, max_pixels)
    resized = qwen_vision.smart_resize(
        height, width, factor=factor, min_pixels=config.min_pixels, max_pixels=max_pixels
    )
    return int(resized[0]), int(resized[1])


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> uint8 (..., 3, h, w), the call `fetch_video` makes (a no-op at equal size).

    torchvision runs float32 bicubic interpolation with antialiasing, clamps to [0, 255], rounds, casts.
    """
    return tv_functional.resize(frames, list(size), interpolation=InterpolationMode.BICUBIC, antialias=True)


def rotation_turns(rotation: float) -> int:
    """Counter-clockwise quarter turns for a display rotation in degrees (PyAV `frame.rotation`)."""
    return round(rotation / 90) % 4


def rotate_rgb(rgb: np.ndarray, rotation: float) -> np.ndarray:
    """Apply a display rotation (counter-clockwise degrees) to an HWC image, as decord does."""
    turns = rotation_turns(rotation)
    return np.rot90(rgb, k=turns) if turns else rgb


def pair_timestamps(frame_indices: list[int] | tuple[int, ...], source_fps: float) -> list[float]:
    """Seconds per temporal pair: the mean of the pair's two frame times (index / source fps)."""
    times = [index / source_fps for index in frame_indices]
    if len(times) % 2:
        times.append(times[-1])
    return [(times[i] + times[i + 1]) / 2 for i in range(0, len(times), 2)]


# ----------------------------------------------------------------------------------------------------
# Demux pass: N, packet timestamps and keyframes, without decoding pixels
# ----------------------------------------------------------------------------------------------------


class PacketIndex:
    """The video stream's packets from one demux pass, in decode order.

    decord counts these (N) and orders frames by their pts; a frame's index is its pts' rank. When every
    packet has a distinct pts, decoded frames map back to indices by pts, which makes seeking safe.
    """

    def __init__(self, pts: list[int | None], keyframe: list[bool]) -> None:
        self.count = len(pts)
        self.keyframe = np.asarray(keyframe, dtype=bool)
        self.mappable = self.count > 0 and all(value is not None for value in pts)
        self.pts = np.asarray([value if value is not None else 0 for value in pts], dtype=np.int64)
        self.sorted_pts = np.sort(self.pts)
        if self.mappable and self.count > 1:
            self.mappable = bool(np.all(np.diff(self.sorted_pts) > 0))
        self._decode_position_by_rank = np.argsort(self.pts, kind="stable")
        key_positions = np.flatnonzero(self.keyframe)
        key_pts = self.pts[key_positions]
        # Seeking needs keyframes in presentation order to match decode order, and a keyframe first.
        self.seekable = (
            self.mappable and len(key_positions) > 0 and key_positions[0] == 0 and bool(np.all(np.diff(key_pts) > 0))
        )
        self.key_positions = key_positions
        self.key_pts = key_pts

    def rank(self, pts: int | None) -> int | None:
        """Frame index of a pts (its rank among all packet pts), None if no packet has it."""
        if pts is None:
            return None
        rank = int(np.searchsorted(self.sorted_pts, pts))
        return rank if rank < self.count and int(self.sorted_pts[rank]) == pts else None

    def pts_of(self, rank: int) -> int:
        return int(self.sorted_pts[rank])

    def decode_position(self, rank: int) -> int:
        return int(self._decode_position_by_rank[rank])

    def keyframe_before(self, rank: int) -> tuple[int, int]:
        """(decode position, pts) of the last keyframe shown at or before frame `rank`."""
        slot = int(np.searchsorted(self.key_pts, self.pts_of(rank), side="right")) - 1
        return int(self.key_positions[slot]), int(self.key_pts[slot])

    def damaged_ranks(self, position: int) -> set[int]:
        """Frame indices that may depend on the packet at decode `position` (up to the next keyframe)."""
        later_keys = self.key_positions[self.key_positions > position]
        end = int(later_keys[0]) if len(later_keys) else self.count
        damaged = {self.rank(int(value)) for value in self.pts[position:end]}
        if end < self.count:  # leading frames of the next GOP that are shown before its keyframe
            key_pts = int(self.pts[end])
            for value in self.pts[end + 1 :]:
                if int(value) >= key_pts:
                    break
                damaged.add(self.rank(int(value)))
        return {rank for rank in damaged if rank is not None}


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
    demux_seconds: float = field(default=0.0, compare=False)
    packets: PacketIndex | None = field(default=None, repr=False, compare=False)

    @property
    def pair_timestamps(self) -> list[float]:
        return pair_timestamps(self.frame_indices, self.source_fps)

    @property
    def duration_seconds(self) -> float:
        return self.total_frames / self.source_fps


def _raise_unopenable(path: Path | TarMember, error: Exception) -> None:
    """Why FFmpeg cannot open `path`, told from its first bytes (a tar member's own, not the tar's)."""
    reason = getattr(error, "strerror", None) or str(error)
    try:
        if isinstance(path, TarMember):
            head = path.read_head(16)
        else:
            with open(path, "rb") as handle:
                head = handle.read(16)
    except OSError as failure:
        raise VideoError(path, "missing", f"cannot be read ({failure.strerror or failure})") from None
    if len(head) == 0:
        raise VideoError(path, "not_a_video", "the file is empty") from None
    signature = _container_signature(head)
    if signature:
        detail = f"looks like {signature} but FFmpeg cannot read it ({reason}); truncated?"
        raise VideoError(path, "corrupt", detail) from None
    raise VideoError(path, "not_a_video", f"FFmpeg cannot read it as a media file ({reason})") from None


def _container_signature(head: bytes) -> str | None:
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide"):
        return "an MP4/QuickTime file"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "a Matroska/WebM file"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "an AVI file"
    return None


# FFmpeg's tty demuxer accepts any .txt/.nfo/.asc file and renders its text as "video" frames: such a
# candidate is a mis-resolved path, not footage the model should judge.
TEXT_RENDERING_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})


class _OpenVideo:
    """An opened input container and its video stream (what decord would pick), other streams discarded."""

    def __init__(self, path: str | Path | TarMember) -> None:
        self.path = path if isinstance(path, TarMember) else Path(path)
        if not self.path.exists():
            raise VideoError(self.path, "missing", "no such file")
        if isinstance(self.path, Path) and self.path.is_dir():
            raise VideoError(self.path, "not_a_video", "is a directory")
        if isinstance(self.path, TarMember):
            if self.path.unreadable:
                raise VideoError(self.path, "unreadable_member", self.path.unreadable)
            changed = self.path.check()  # the bytes at the recorded offset must still be this member's
            if changed is not None:
                raise VideoError(self.path, "missing", f"the tar changed after it was indexed: {changed}")
            # read in place, through FFmpeg's subfile protocol (bounded reads of the member's bytes)
            source = self.path.ffmpeg_url()
        else:
            # an absolute path: FFmpeg reads a relative `a:b/v.mp4` as the URL of a protocol `a`
            source = os.path.abspath(self.path)
        try:
            self.container = av.open(source, metadata_errors="ignore")
        except PermissionError:
            raise VideoError(self.path, "missing", "permission denied") from None
        except (av.error.FFmpegError, OSError, ValueError) as error:
            _raise_unopenable(self.path, error)
        try:
            self.stream = self._video_stream()
        except VideoError:
            self.container.close()
            raise
        for other in self.container.streams:
            if other.index != self.stream.index:
                other.discard = av.stream.Discard.all
        self.read_error: str | None = None

    def _video_stream(self) -> av.video.stream.VideoStream:
        stream = self.container.streams.best("video")
        kinds = sorted({stream.type for stream in self.container.streams})
        if stream is None:
            found = ", ".join(kinds) if kinds else "none"
            raise VideoError(self.path, "not_a_video", f"no video stream (streams: {found})")
        if stream.disposition & av.stream.Disposition.attached_pic:
            raise VideoError(self.path, "not_a_video", "the only picture is attached cover art")
        if stream.codec_context is None:
            raise VideoError(self.path, "not_a_video", f"no decoder for codec {stream.codec_tag!r}")
        if stream.codec_context.name in TEXT_RENDERING_CODECS:
            raise VideoError(
                self.path, "not_a_video", f"a text file (FFmpeg renders it as {stream.codec_context.name} art)"
            )
        return stream

    def packets(self) -> Iterator[av.Packet]:
        """Demuxed packets of the video stream, then PyAV's flush packet; a read error ends the stream.

        decord stops counting at the first read error too, so N and the packets decoded agree with it.
        """
        demuxer = self.container.demux(self.stream)
        while True:
            try:
                packet = next(demuxer)
            except StopIteration:
                return
            except av.error.FFmpegError as error:
                self.read_error = getattr(error, "strerror", None) or str(error)
                yield _FLUSH
                return
            yield packet

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> _OpenVideo:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_FLUSH = None  # stands for "end of stream: drain the decoder"


def _is_flush(packet: av.Packet | None) -> bool:
    return packet is None or (packet.size == 0 and packet.pts is None and packet.dts is None)


def _ffmpeg_reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


def _make_plan(video: _OpenVideo, config: SamplingConfig) -> VideoPlan:
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
        if _is_flush(packet):
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
    except ValueError:
        needed = qwen_vision.FRAME_FACTOR
        raise VideoError(path, "too_few_frames", f"{index.count} frame(s); the model needs at least {needed}") from None
    if first_frame is None:
        reason = first_error or "the decoder returned no frame"
        raise VideoError(path, "corrupt", f"no frame could be decoded ({reason})")
    rotation, coded_size = first_frame
    turns = rotation_turns(rotation)
    source_size = coded_size[::-1] if turns % 2 else coded_size
    try:
        resized = output_size(source_size[0], source_size[1], count, config)
    except ValueError:
        ratio = max(source_size) / min(source_size)
        raise VideoError(
            path,
            "bad_aspect_ratio",
            f"{source_size[1]}x{source_size[0]} has aspect ratio {ratio:.1f}; qwen-vl-utils allows at most "
            f"{qwen_vision.MAX_RATIO}",
        ) from None
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
        demux_seconds=demux_seconds,
        packets=index,
    )


def _first_frame(
    context: av.codec.context.CodecContext, packet: av.Packet | None, error: str | None
) -> tuple[tuple[int, tuple[int, int]] | None, str | None]:
    """Decode until the first frame appears: its rotation and coded (height, width)."""
    try:
        frames = context.decode(packet)
    except av.error.FFmpegError as failure:
        return None, _ffmpeg_reason(failure)
    if not frames:
        return None, error
    frame = frames[0]
    return (frame.rotation, (int(frame.height), int(frame.width))), None


def probe_video(path: str | Path, config: SamplingConfig = SamplingConfig()) -> VideoPlan:
    """N, F, indices, timestamps and sizes of a video, from one demux pass (only the first frame decoded).

    Raises `VideoError` for every video the sampler would reject, except damage that only decoding the
    sampled frames can reveal (kind "corrupt").
    """
    with _OpenVideo(path) as video:
        return _make_plan(video, config)


# ----------------------------------------------------------------------------------------------------
# Decoding the sampled frames
# ----------------------------------------------------------------------------------------------------

# Seek only when it skips more than this many packets: a seek costs a decoder flush and an intra frame.
SEEK_MIN_GAP = 8


class _FastPathFailed(Exception):
    """The seeking decoder met something it cannot vouch for; decode again from the start instead."""


@dataclass
class _DecodeLog:
    strategy: str
    seeks: int = 0
    packets_fed: int = 0
    frames_out: int = 0
    fallback: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _FrameConverter:
    """Decoded frame -> RGB -> display rotation -> resize, one frame at a time (nothing else is kept)."""

    def __init__(self, plan: VideoPlan) -> None:
        self.plan = plan
        self.odd_frames: list[str] = []
        # One reformatter keeps its swscale context between frames (same output as `frame.to_ndarray`).
        self.reformatter = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> torch.Tensor:
        rgb = self.reformatter.reformat(frame, format="rgb24").to_ndarray()
        rgb = rotate_rgb(rgb, frame.rotation)
        if rgb.shape[:2] != self.plan.source_size:
            self.odd_frames.append(f"pts {frame.pts}: {rgb.shape[1]}x{rgb.shape[0]}")
        # HWC -> CHW as a view, the layout fetch_video hands torchvision after decord.
        chw = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)
        return resize_frames(chw, self.plan.output_size).contiguous()


def _decode_seeking(
    path: str | Path,
    plan: VideoPlan,
    convert: _FrameConverter,
    log: _DecodeLog,
    *,
    seek: bool,
    skip_nonref: bool,
    threads: int,
) -> dict[int, torch.Tensor]:
    """Decode just the wanted frames: seek over GOPs without wanted frames, skip unwanted non-reference
    frames, map each decoded frame to its index by pts. Gives up (`_FastPathFailed`) on anything unusual."""
    index = plan.packets
    assert index is not None and index.mappable
    seek = seek and index.seekable
    pending = deque(sorted(set(plan.frame_indices)))
    wanted_pts = {index.pts_of(rank) for rank in pending}
    kept: dict[int, torch.Tensor] = {}
    with _OpenVideo(path) as video:
        video.stream.thread_type = "AUTO"
        context = video.stream.codec_context
        context.thread_count = threads
        packets: Iterator[av.Packet | None] = video.packets()
        position = -1  # decode-order position of the last packet read
        last_seek = 0  # decode position of the keyframe sought last: never seek back to it or before
        ended = False
        while pending:
            if ended:
                raise _FastPathFailed(f"stream ended before frame {pending[0]}")
            packet = next(packets, _FLUSH)
            if _is_flush(packet):
                frames = _decode_or_fail(context, None)
                ended = True
            else:
                position += 1
                if packet.size == 0:
                    continue
                if skip_nonref:
                    context.skip_frame = "DEFAULT" if packet.pts in wanted_pts else "NONREF"
                log.packets_fed += 1
                frames = _decode_or_fail(context, packet)
            for frame in frames:
                log.frames_out += 1
                rank = index.rank(frame.pts)
                if rank is None:
                    raise _FastPathFailed(f"decoded frame has pts {frame.pts}, which no packet has")
                if rank < pending[0]:
                    continue
                if rank > pending[0]:
                    raise _FastPathFailed(f"frame {pending[0]} never came out of the decoder")
                if frame.is_corrupt:
                    raise _FastPathFailed(f"frame {rank} is flagged corrupt")
                kept[rank] = convert(frame)
                wanted_pts.discard(frame.pts)
                pending.popleft()
                if not pending:
                    break
            if pending and seek:
                key_position, key_pts = index.keyframe_before(pending[0])
                if key_position - position > SEEK_MIN_GAP and key_position > last_seek:
                    packets, position = _seek_to_keyframe(video, index, key_pts, pending[0])
                    last_seek = key_position
                    log.seeks += 1
    return kept


def _seek_to_keyframe(
    video: _OpenVideo, index: PacketIndex, key_pts: int, target: int
) -> tuple[Iterator[av.Packet | None], int]:
    """Seek to a keyframe and check where the demuxer landed: a keyframe shown at or before `target`."""
    try:
        video.container.seek(key_pts, stream=video.stream, backward=True)
    except av.error.FFmpegError as error:
        raise _FastPathFailed(f"seek failed ({_ffmpeg_reason(error)})") from None
    packets = video.packets()
    first = next(packets, _FLUSH)
    if _is_flush(first):
        raise _FastPathFailed("seek landed at the end of the stream")
    landed = index.rank(first.pts)
    if not first.is_keyframe or landed is None or landed > target:
        kind = "keyframe" if first.is_keyframe else "non-keyframe"
        raise _FastPathFailed(f"seek to pts {key_pts} landed on {kind} pts {first.pts}")
    position = index.decode_position(landed) - 1
    return itertools.chain([first], packets), position


def _decode_or_fail(context: av.codec.context.CodecContext, packet: av.Packet | None) -> list[av.VideoFrame]:
    try:
        return context.decode(packet)
    except av.error.FFmpegError as error:
        raise _FastPathFailed(f"decode error ({_ffmpeg_reason(error)})") from None


def _decode_from_start(
    path: str | Path, plan: VideoPlan, convert: _FrameConverter, log: _DecodeLog, *, by_pts: bool, threads: int
) -> dict[int, torch.Tensor]:
    """Decode from the first packet, every frame, no seeking and no skipping (the reference's way).

    `by_pts`: a frame's index is its pts rank, and a decode error damages only the frames up to the next
    keyframe (raises `_FastPathFailed` if a frame's pts matches no packet). Otherwise the i-th decoded
    frame is index i, and any decode error is fatal since it shifts every later index.
    """
    index = plan.packets
    assert index is not None and (index.mappable or not by_pts)
    wanted = set(plan.frame_indices)
    last_wanted = max(wanted)
    kept: dict[int, torch.Tensor] = {}
    damaged: dict[int, str] = {}
    last_error: str | None = None
    counted = -1
    with _OpenVideo(path) as video:
        context = video.stream.codec_context  # slice threads only: errors belong to the packet just sent
        context.thread_count = threads
        position = -1
        for packet in video.packets():
            if _is_flush(packet):
                payload = None
            else:
                position += 1
                if packet.size == 0:
                    continue
                payload = packet
            if payload is not None:
                log.packets_fed += 1
            try:
                frames = context.decode(payload)
            except av.error.FFmpegError as error:
                last_error = _ffmpeg_reason(error)
                if not by_pts:
                    raise VideoError(
                        plan.path, "corrupt", f"decode error at packet {position} ({last_error})"
                    ) from None
                for rank in index.damaged_ranks(position) & wanted:
                    if rank not in kept:
                        damaged.setdefault(rank, f"decode error at packet {position} ({last_error})")
                continue
            for frame in frames:
                log.frames_out += 1
                if by_pts:
                    rank = index.rank(frame.pts)
                    if rank is None:
                        raise _FastPathFailed(f"decoded frame has pts {frame.pts}, which no packet has")
                else:
                    counted += 1
                    rank = counted
                if rank in wanted and rank not in kept and rank not in damaged:
                    if frame.is_corrupt:
                        damaged[rank] = "the decoder flagged it corrupt"
                    else:
                        kept[rank] = convert(frame)
            if not by_pts and counted >= last_wanted:
                break
            if by_pts and len(kept) + len(damaged) == len(wanted):
                break
    for rank in sorted(wanted):
        if rank in damaged:
            raise VideoError(plan.path, "corrupt", f"frame {rank} cannot be decoded: {damaged[rank]}")
        if rank not in kept:
            reason = f"last decode error: {last_error}" if last_error else "the stream ends early"
            detail = f"frame {rank} of {plan.total_frames} never came out of the decoder ({reason})"
            raise VideoError(plan.path, "corrupt", detail)
    return kept


def sample_video(
    path: str | Path,
    config: SamplingConfig = SamplingConfig(),
    *,
    plan: VideoPlan | None = None,
    seek: bool = True,
    skip_nonref: bool = True,
    threads: int = 0,
) -> SampledVideo:
    """The frames RankVideo sees for `path`: reference indices, display rotation, reference resize.

    `plan` reuses a `probe_video` result (saves the demux pass). `seek` / `skip_nonref` switch off the two
    speed-ups (seeking over GOPs without sampled frames; not decoding unsampled non-reference frames);
    frames are identical either way. `threads`: decoder threads, 0 = FFmpeg's choice (one per core); set
    it when several videos decode in parallel. Raises `VideoError` when a sampled frame cannot be produced.
    """
    started = time.perf_counter()
    if plan is None:
        plan = probe_video(path, config)
    elif plan.config_fingerprint != config.fingerprint() or str(plan.path) != str(path):
        raise ValueError("plan was made for another video or another SamplingConfig")
    decode_started = time.perf_counter()
    convert = _FrameConverter(plan)
    assert plan.packets is not None
    if plan.packets.mappable:
        log = _DecodeLog(strategy="seek" if seek and plan.packets.seekable else "sequential")
        try:
            kept = _decode_seeking(path, plan, convert, log, seek=seek, skip_nonref=skip_nonref, threads=threads)
        except _FastPathFailed as reason:
            logger.info("%s: decoding again from the start: %s", path, reason)
            log = _DecodeLog(strategy="from_start", fallback=str(reason))
            convert = _FrameConverter(plan)
            try:
                kept = _decode_from_start(path, plan, convert, log, by_pts=True, threads=threads)
            except _FastPathFailed as unmapped:
                logger.info("%s: counting decoded frames instead: %s", path, unmapped)
                log = _DecodeLog(strategy="count", fallback=f"{reason}; then {unmapped}")
                convert = _FrameConverter(plan)
                kept = _decode_from_start(path, plan, convert, log, by_pts=False, threads=threads)
    else:
        log = _DecodeLog(strategy="count")
        kept = _decode_from_start(path, plan, convert, log, by_pts=False, threads=threads)
    frames = torch.stack([kept[index] for index in plan.frame_indices])
    finished = time.perf_counter()
    extra = {
        "container": plan.container,
        "codec": plan.codec,
        "average_rate": str(plan.average_rate),
        "rotation": plan.rotation,
        "coded_size": list(plan.coded_size),
        "notes": list(plan.notes)
        + [f"frame size changed mid-stream: {', '.join(convert.odd_frames)}"] * bool(convert.odd_frames),
        "decode": log.as_dict(),
        "seconds": {
            "demux": round(plan.demux_seconds, 6),
            "decode": round(finished - decode_started, 6),
            "total": round(finished - started, 6),
        },
    }
    return SampledVideo(
        path=str(path),
        frames=frames,
        source_fps=plan.source_fps,
        total_frames=plan.total_frames,
        frame_indices=list(plan.frame_indices),
        source_size=plan.source_size,
        extra=extra,
    )


# ----------------------------------------------------------------------------------------------------
# Reporting
# ----------------------------------------------------------------------------------------------------


def describe(item: VideoPlan | SampledVideo, *, timings: bool = False) -> dict[str, Any]:
    """A JSON-able summary (deterministic unless `timings`): counts, indices, timestamps, sizes, tokens."""
    if isinstance(item, VideoPlan):
        height, width = item.output_size
        summary: dict[str, Any] = {
            "path": item.path,
            "container": item.container,
            "codec": item.codec,
            "total_frames": item.total_frames,
            "average_rate": str(item.average_rate),
            "source_fps": item.source_fps,
            "duration_seconds": item.duration_seconds,
            "keyframes": item.keyframes,
            "rotation": item.rotation,
            "coded_size": list(item.coded_size),
        }
        indices, source_size, timestamps = list(item.frame_indices), item.source_size, item.pair_timestamps
        notes = list(item.notes)
        seconds = {"demux": round(item.demux_seconds, 6)}
    else:
        height, width = item.size
        summary = {
            "path": item.path,
            "container": item.extra.get("container"),
            "codec": item.extra.get("codec"),
            "total_frames": item.total_frames,
            "average_rate": item.extra.get("average_rate"),
            "source_fps": item.source_fps,
            "duration_seconds": item.total_frames / item.source_fps,
            "rotation": item.extra.get("rotation"),
            "coded_size": item.extra.get("coded_size"),
        }
        indices, source_size, timestamps = item.frame_indices, item.source_size, item.pair_timestamps
        notes = list(item.extra.get("notes", []))
        seconds = item.extra.get("seconds", {})
        summary["decode"] = {key: value for key, value in item.extra.get("decode", {}).items()}
    tokens_per_pair = height * width // 1024
    summary |= {
        "sampled_frames": len(indices),
        "frame_indices": list(indices),
        "pair_timestamps": [round(value, 6) for value in timestamps],
        "pair_labels": [f"<{value:.1f} seconds>" for value in timestamps],
        "source_size": list(source_size),
        "output_size": [height, width],
        "tokens_per_pair": tokens_per_pair,
        "video_tokens": tokens_per_pair * math.ceil(len(indices) / 2),
        "notes": notes,
    }
    if timings:
        summary["seconds"] = seconds
    return summary


def save_frames_png(video: SampledVideo, directory: str | Path) -> list[Path]:
    """Write each sampled frame as `frame_KK_index_IIIIII.png` (K: position, I: source frame index)."""
    from PIL import Image

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for position, (frame, index) in enumerate(zip(video.frames, video.frame_indices, strict=True)):
        target = directory / f"frame_{position:02d}_index_{index:06d}.png"
        Image.fromarray(frame.permute(1, 2, 0).numpy()).save(target, format="PNG")
        written.append(target)
    return written
