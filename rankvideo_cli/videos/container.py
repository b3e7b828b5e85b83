"""Opening a video with PyAV, torch-free: the file or tar member handed to FFmpeg, one demux pass (N, packet
timestamps, keyframes), and each failure told as a `VideoError` of the kind the extracted file would be.

`frames` decodes the sampled frames into tensors on top of this; the report's thumbnails read frames with this
alone, so that a command without a model imports no torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import av
import numpy as np

from rankvideo_cli.errors import RankVideoError
from rankvideo_cli.videos.index import TarMember

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

    def __init__(self, path: str | Path | TarMember, kind: str, detail: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown VideoError kind {kind!r}")
        self.path = str(path)
        self.kind = kind
        self.detail = " ".join(str(detail).split())
        super().__init__(f"{self.path}: {kind}: {self.detail}")


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


# The display rotation, as decord applies it: the sampler's frames and the report's thumbnails alike.


def rotation_turns(rotation: float) -> int:
    """Counter-clockwise quarter turns for a display rotation in degrees (PyAV `frame.rotation`)."""
    return round(rotation / 90) % 4


def rotate_rgb(rgb: np.ndarray, rotation: float) -> np.ndarray:
    """Apply a display rotation (counter-clockwise degrees) to an HWC image, as decord does."""
    turns = rotation_turns(rotation)
    return np.rot90(rgb, k=turns) if turns else rgb


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


class OpenVideo:
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
        if not isinstance(stream, av.video.stream.VideoStream):  # None: best() found no video stream
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

    def packets(self) -> Iterator[av.Packet | None]:
        """Demuxed packets of the video stream, then `FLUSH` (None) in place of PyAV's flush packet; a read error
        ends the stream (with `FLUSH`).

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
                yield FLUSH
                return
            yield FLUSH if _is_flush_packet(packet) else packet

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> OpenVideo:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


FLUSH = None  # stands for "end of stream: drain the decoder"


def _is_flush_packet(packet: av.Packet) -> bool:
    """PyAV's end-of-stream packet: no data and no timestamps."""
    return packet.size == 0 and packet.pts is None and packet.dts is None


def ffmpeg_reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)
