"""Reference-faithful frame decoding for RankVideo (REFERENCE.md sections 1-3).

The reference (qwen-vl-utils 0.0.14 with decord) counts a video's frames as its demuxed packets (N), takes
`n = smart_nframes(...)` of them at `torch.linspace(0, N - 1, n).round()`, applies the display rotation
and resizes with `smart_resize` + torchvision bicubic/antialias. The plan (N, the indices, the sizes, the
refusals) comes from `videos/plan.py` without torch; this module decodes what the plan's indices need:

- the plan's demux pass read every packet's pts and keyframe flag (no pixels): a decoded frame's pts maps to
  its index (decord orders frames by pts too);
- decoding seeks over GOPs that hold no sampled frame, skips unsampled non-reference frames, and converts
  and resizes only sampled frames, one at a time, so memory stays at the sampled frames plus one GOP;
- anything it cannot vouch for (a decode error, a seek landing elsewhere, a frame missing) makes it decode
  again from the start, every frame, the reference's way; a sampled frame that still cannot be produced
  fails the video with a `VideoError`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.videos.container import (
    FLUSH,
    OpenVideo,
    PacketIndex,
    VideoError,
    ffmpeg_reason,
    rotate_rgb,
)
from rankvideo_cli.videos.index import TarMember
from rankvideo_cli.videos.plan import VideoPlan, probe_video
from rankvideo_cli.videos.sampling import pair_timestamps

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


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> uint8 (..., 3, h, w), the call `fetch_video` makes (a no-op at equal size).

    `fetch_video` calls torchvision's `resize(..., BICUBIC, antialias=True)`, which for a uint8 tensor runs these
    steps in this order: add a batch dimension, cast to float32 (keeping the layout, so the same interpolation
    kernel runs), bicubic antialiased interpolation, clamp to [0, 255], round, cast back. They are written out
    here because importing torchvision costs every decoding process 1.7 s (tests hold the two bit-equal).
    """
    if list(frames.shape[-2:]) == list(size):
        return frames
    batched = frames.ndim < 4
    images = frames.unsqueeze(0) if batched else frames
    images = torch.nn.functional.interpolate(
        images.to(torch.float32), size=list(size), mode="bicubic", align_corners=False, antialias=True
    )
    resized = images.clamp(min=0, max=255).round().to(torch.uint8)
    return resized.squeeze(0) if batched else resized


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
    path: str | Path | TarMember,
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
    with OpenVideo(path) as video:
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
            packet = next(packets, FLUSH)
            if packet is None:  # FLUSH
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
    video: OpenVideo, index: PacketIndex, key_pts: int, target: int
) -> tuple[Iterator[av.Packet | None], int]:
    """Seek to a keyframe and check where the demuxer landed: a keyframe shown at or before `target`."""
    try:
        video.container.seek(key_pts, stream=video.stream, backward=True)
    except av.error.FFmpegError as error:
        raise _FastPathFailed(f"seek failed ({ffmpeg_reason(error)})") from None
    packets = video.packets()
    first = next(packets, FLUSH)
    if first is None:  # FLUSH
        raise _FastPathFailed("seek landed at the end of the stream")
    landed = index.rank(first.pts)
    if not first.is_keyframe or landed is None or landed > target:
        kind = "keyframe" if first.is_keyframe else "non-keyframe"
        raise _FastPathFailed(f"seek to pts {key_pts} landed on {kind} pts {first.pts}")
    position = index.decode_position(landed) - 1
    return itertools.chain([first], packets), position


def _decode_or_fail(context: av.video.codeccontext.VideoCodecContext, packet: av.Packet | None) -> list[av.VideoFrame]:
    try:
        return context.decode(packet)
    except av.error.FFmpegError as error:
        raise _FastPathFailed(f"decode error ({ffmpeg_reason(error)})") from None


def _decode_from_start(
    path: str | Path | TarMember,
    plan: VideoPlan,
    convert: _FrameConverter,
    log: _DecodeLog,
    *,
    by_pts: bool,
    threads: int,
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
    with OpenVideo(path) as video:
        context = video.stream.codec_context  # slice threads only: errors belong to the packet just sent
        context.thread_count = threads
        position = -1
        for packet in video.packets():
            if packet is None:  # FLUSH
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
                last_error = ffmpeg_reason(error)
                if not by_pts:
                    raise VideoError(
                        plan.path, "corrupt", f"decode error at packet {position} ({last_error})"
                    ) from None
                for lost in index.damaged_ranks(position) & wanted:
                    if lost not in kept:
                        damaged.setdefault(lost, f"decode error at packet {position} ({last_error})")
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
    path: str | Path | TarMember,
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
