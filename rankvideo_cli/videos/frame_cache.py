"""Sampled frames kept on disk, so a video is decoded once (on a CPU node) for every GPU job that needs it.

An entry holds what `frames.sample_video` returns for one video under one `SamplingConfig`: the resized uint8
frames and their metadata (source fps, N, indices, source size, decode diagnostics), or, for a video that
cannot be sampled, the `VideoError` it raised. Entries are keyed by the video's content identity (the one the
score store uses, `video_identity.content_identity`: another file copied over a video gets another key) and
the sampling settings' fingerprint:

    CACHE/frames-v1/<settings fingerprint>/<last 2 hex digits of the identity>/<identity>.rvf

Lossless and compressed: the frames are stored as FFV1 (FFmpeg's lossless intra codec, bundled with PyAV) in `bgr0`
pixels (a pure byte shuffle of RGB), about 2.5x smaller than the raw frames on natural video (benchmarks/README.md);
a CRC-32 of the raw frames and a CRC-32 of the header (fps, N, indices, sizes: what the processor is told) are
checked on every read, so a damaged or edited entry is decoded again, never trusted. Entries of format 1 (before the
header checksum) count as damaged: decoded again and rewritten by `sample`. Several writers may share one directory
(SLURM array tasks): each entry is written to a temporary file in its final directory and renamed over it (atomic on
POSIX file systems, NFS included), and two writers of one entry write the same frames. Stat signatures of the videos
whose identity was hashed are appended to per-writer journals (`identities/*.jsonl`), so a resumed `rankvideo
sample` only stats the videos it already did, as the score store does.
"""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rankvideo_cli.errors import RankVideoError, UsageError
from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.videos.identity import IdentityRecord, StatSignature
from rankvideo_cli.videos.index import TarMember

if TYPE_CHECKING:
    from rankvideo_cli.videos.frames import SampledVideo

FORMAT_VERSION = 2  # 2: the header carries `header_crc32`
ROOT_VERSION = 1  # the directory name (`frames-v1`): format 1 entries there are found, and replaced
MAGIC = b"RVFRAMES1\n"
_HEADER_LENGTH = struct.Struct("<I")
ENTRY_SUFFIX = ".rvf"
# FFV1 version 3 with range coding and per-slice CRCs; one thread, so an entry's bytes do not depend on the
# machine (the decode pool already runs one video per core).
_FFV1_OPTIONS = {"level": "3", "context": "1", "slicecrc": "1"}
_PIXEL_FORMAT = "bgr0"  # FFV1's lossless RGB; rgb24 <-> bgr0 is a byte shuffle in swscale
_HEAD_BYTES = 1 << 16  # a header is at most this long (32 indices and decode notes: about 1 KB)


class FrameCacheWriteError(RankVideoError):
    """The cache could not be written (no space, quota, read-only): the run stops; the video is not bad."""

    exit_code = 1

    def __init__(self, directory: Path, error: OSError) -> None:
        reason = error.strerror or str(error)
        super().__init__(
            f"--frames-cache {directory}: cannot write to the frame cache: {reason}; the videos not written are "
            "not marked bad: make room and run the same command again to go on"
        )


class CorruptEntry(Exception):
    """An entry that cannot be read back exactly: it is decoded again (and rewritten by a writer)."""


@dataclass
class FrameCacheStats:
    """What a cache did in a run; updated from the decode threads under a lock."""

    hits: int = 0  # videos read from the cache
    bad_hits: int = 0  # videos the cache knew to be bad
    misses: int = 0  # not in the cache: decoded
    corrupt: int = 0  # an entry was there but damaged: decoded
    written: int = 0  # entries written (frames or bad-video records)
    bytes_written: int = 0
    bytes_read: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)


@dataclass(frozen=True)
class EntryState:
    """`rankvideo frames --frames-cache`: whether a video is in the cache, and what the entry holds."""

    status: str  # "cached", "bad" (the cache records a VideoError), "absent", "corrupt"
    path: Path
    size_bytes: int | None = None
    detail: str | None = None


class FrameCache:
    """A directory of sampled frames; `writable=False` for GPU jobs that only read what a CPU stage wrote."""

    def __init__(self, directory: str | Path, *, writable: bool = False) -> None:
        self.directory = Path(directory)
        self.writable = writable
        self.stats = FrameCacheStats()
        self._journal_lock = threading.Lock()
        self._journal: Path | None = None

    @property
    def root(self) -> Path:
        return self.directory / f"frames-v{ROOT_VERSION}"

    def entry_path(self, identity: str, sampling: SamplingConfig) -> Path:
        return self.root / sampling.fingerprint() / identity[-2:] / f"{identity}{ENTRY_SUFFIX}"

    # -- reading --------------------------------------------------------------------------------------------

    def load(self, video_path: str | Path | TarMember, identity: str, sampling: SamplingConfig) -> SampledVideo | None:
        """The cached frames of the video at `video_path` with `identity`, or None (absent or damaged: decode
        it). A cached bad video raises its `VideoError` again."""
        return self._load(video_path, identity, sampling, _decode_entry)

    def load_arrays(
        self, video_path: str | Path | TarMember, identity: str, sampling: SamplingConfig
    ) -> CachedFrames | None:
        """`load` without torch: the frames as a numpy array (the report's thumbnails), same rules."""
        return self._load(video_path, identity, sampling, _decode_arrays)

    def _load(self, video_path: Any, identity: str, sampling: SamplingConfig, decode: Callable[..., Any]) -> Any:
        entry = self.entry_path(identity, sampling)
        try:
            data = entry.read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            self.stats.add(corrupt=1)
            return None
        try:
            header, payload = _split(data, identity, sampling)
            if "error" in header:
                from rankvideo_cli.videos.container import VideoError

                error = header["error"]
                failure = VideoError(video_path, error["kind"], error["detail"])
                self.stats.add(bad_hits=1, bytes_read=len(data))
                raise failure
            video = decode(header, payload, video_path)
        except CorruptEntry:
            self.stats.add(corrupt=1)
            return None
        self.stats.add(hits=1, bytes_read=len(data))
        return video

    def state(self, identity: str, sampling: SamplingConfig, *, full: bool = True) -> EntryState:
        """What the entry of `identity` holds: with `full`, its frames are decoded and checked; without, only its
        header and length (enough for a resume: entries are renamed into place whole)."""
        entry = self.entry_path(identity, sampling)
        try:
            if full:
                data = entry.read_bytes()
            else:
                with open(entry, "rb") as handle:
                    data = handle.read(_HEAD_BYTES)
                    length = os.fstat(handle.fileno()).st_size
        except FileNotFoundError:
            return EntryState("absent", entry)
        except OSError as error:
            return EntryState("corrupt", entry, None, str(error))
        try:
            header, payload = _split(data, identity, sampling, complete=full)
            if "error" in header:
                return EntryState("bad", entry, len(data), f"{header['error']['kind']}: {header['error']['detail']}")
            if not full:
                if length != header.get("entry_bytes"):
                    raise CorruptEntry(f"{length} bytes, the header says {header.get('entry_bytes')}")
                count, _channels, height, width = header["shape"]
                return EntryState("cached", entry, length, f"{count} frames at {height}x{width}")
            video = _decode_entry(header, payload, entry)
        except CorruptEntry as damage:
            return EntryState("corrupt", entry, len(data), str(damage))
        height, width = video.size
        return EntryState("cached", entry, len(data), f"{len(video.frame_indices)} frames at {height}x{width}")

    def known_identities(self) -> dict[tuple[str, StatSignature], str]:
        """(video key, stat signature) -> identity, from every writer's journal (damaged lines skipped)."""
        known: dict[tuple[str, StatSignature], str] = {}
        journals = self.root / "identities"
        if not journals.is_dir():
            return known
        for journal in sorted(journals.glob("*.jsonl")):
            with open(journal, encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    try:
                        record = json.loads(line)
                        signature = StatSignature(record["size"], record["mtime_ns"], record["ctime_ns"])
                        known[(record["video"], signature)] = record["id"]
                    except (ValueError, KeyError, TypeError):
                        continue
        return known

    # -- writing --------------------------------------------------------------------------------------------

    def save(self, identity: str, sampling: SamplingConfig, video: SampledVideo) -> int:
        """Write the entry of `video` (atomically); returns its size in bytes."""
        frames = video.frames.numpy()
        header = {
            "format": FORMAT_VERSION,
            "identity": identity,
            "settings": sampling.fingerprint(),
            "source_fps": video.source_fps,
            "total_frames": video.total_frames,
            "frame_indices": list(video.frame_indices),
            "source_size": list(video.source_size),
            "shape": list(frames.shape),
            "crc32": zlib.crc32(frames.tobytes()),
            "extra": _jsonable(video.extra),
        }
        return self._write(identity, sampling, header, _encode_frames(frames))

    def save_bad(self, identity: str, sampling: SamplingConfig, kind: str, detail: str) -> int:
        """Remember that this video cannot be sampled (a `VideoError`, deterministic for the same bytes)."""
        header = {
            "format": FORMAT_VERSION,
            "identity": identity,
            "settings": sampling.fingerprint(),
            "error": {"kind": kind, "detail": detail},
        }
        return self._write(identity, sampling, header, b"")

    def record_identities(self, records: Iterable[IdentityRecord]) -> None:
        """Append hashed identities to this writer's journal (one write per call)."""
        lines = "".join(json.dumps(record.to_record(), sort_keys=True) + "\n" for record in records)
        if not lines:
            return
        with self._journal_lock:
            try:
                if self._journal is None:
                    journals = self.root / "identities"
                    journals.mkdir(parents=True, exist_ok=True)
                    self._journal = journals / f"{_writer_name()}.jsonl"
                with open(self._journal, "a", encoding="utf-8") as journal:
                    journal.write(lines)
            except OSError as error:
                raise FrameCacheWriteError(self.directory, error) from None

    def _write(self, identity: str, sampling: SamplingConfig, header: dict[str, Any], payload: bytes) -> int:
        if not self.writable:
            raise RuntimeError("this frame cache was opened read-only")
        data = _join(header, payload)
        entry = self.entry_path(identity, sampling)
        temporary = entry.with_name(f".{entry.name}.{_writer_name()}.{threading.get_ident()}.tmp")
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, entry)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise FrameCacheWriteError(self.directory, error) from None
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self.stats.add(written=1, bytes_written=len(data))
        return len(data)


def check_frame_cache(directory: Path, option: str = "--frames-cache") -> None:
    """A cache read by a GPU job must exist: a mistyped path would silently decode everything again."""
    if not directory.exists():
        raise UsageError(f"{option} {directory}: no such directory (write it first with `rankvideo sample`)")
    if not directory.is_dir():
        raise UsageError(f"{option} {directory}: not a directory")


def caching_sampler(
    cache: FrameCache,
    identity: str | None,
    decode: Callable[[Any, SamplingConfig], SampledVideo],
    *,
    trust_bad: bool = True,
) -> Callable[[Any, SamplingConfig], SampledVideo]:
    """A sampler that answers from `cache` when it holds the video (`identity`), else decodes; a writable
    cache also stores what it decoded (frames, or the VideoError)."""
    from rankvideo_cli.videos.container import VideoError

    def sample(path: Any, sampling: SamplingConfig) -> SampledVideo:
        if identity is None:  # unreadable file: the decoder says why
            return decode(path, sampling)
        try:
            cached = cache.load(path, identity, sampling)
        except VideoError:
            if trust_bad:
                raise
            cached = None
        if cached is not None:
            return cached
        cache.stats.add(misses=1)
        try:
            video = decode(path, sampling)
        except VideoError as failure:
            if cache.writable:
                cache.save_bad(identity, sampling, failure.kind, failure.detail)
            raise
        if cache.writable:
            cache.save(identity, sampling, video)
        return video

    return sample


# ----------------------------------------------------------------------------------------------------------


def _writer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _canonical(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _header_checksum(header: dict[str, Any]) -> str:
    """CRC-32 of the header's canonical JSON without the checksum itself (8 hex digits: a fixed length)."""
    return f"{zlib.crc32(_canonical({k: v for k, v in header.items() if k != 'header_crc32'})):08x}"


def _join(header: dict[str, Any], payload: bytes) -> bytes:
    """MAGIC, the header's length, the header (JSON, with the entry's total length and its own checksum), the
    payload."""
    fixed = len(MAGIC) + _HEADER_LENGTH.size + len(payload)
    total = 0
    while True:  # the header holds the total length, whose digits change the header's length
        body = {**header, "entry_bytes": total}
        encoded = _canonical({**body, "header_crc32": _header_checksum(body)})
        if total == fixed + len(encoded):
            return MAGIC + _HEADER_LENGTH.pack(len(encoded)) + encoded + payload
        total = fixed + len(encoded)


def _split(
    data: bytes, identity: str, sampling: SamplingConfig, *, complete: bool = True
) -> tuple[dict[str, Any], bytes]:
    """The header and payload of an entry of `identity` under `sampling`; CorruptEntry if it is anything else."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _HEADER_LENGTH.size:
        raise CorruptEntry("not a rankvideo frame cache entry")
    start = len(MAGIC) + _HEADER_LENGTH.size
    (length,) = _HEADER_LENGTH.unpack_from(data, len(MAGIC))
    if length > _HEAD_BYTES - start or len(data) < start + length:
        raise CorruptEntry("truncated or damaged header")
    try:
        header = json.loads(data[start : start + length])
    except ValueError as error:
        raise CorruptEntry(f"damaged header: {error}") from None
    if isinstance(header, dict) and header.get("format") == 1:
        raise CorruptEntry("format 1 (written before headers had a checksum)")
    if not isinstance(header, dict) or header.get("format") != FORMAT_VERSION:
        raise CorruptEntry("unknown entry format")
    if header.get("header_crc32") != _header_checksum(header):
        raise CorruptEntry("the header does not match its checksum")
    if header.get("identity") != identity or header.get("settings") != sampling.fingerprint():
        raise CorruptEntry("the entry was written for another video or other settings")
    if complete and header.get("entry_bytes") != len(data):
        raise CorruptEntry(f"{len(data)} bytes, the header says {header.get('entry_bytes')}")
    return header, data[start + length :]


def _encode_frames(frames: Any) -> bytes:
    import av
    import numpy as np

    count, _channels, height, width = frames.shape
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as container:
        stream = container.add_stream("ffv1", rate=1, options=dict(_FFV1_OPTIONS))
        stream.width, stream.height, stream.pix_fmt = width, height, _PIXEL_FORMAT
        stream.codec_context.thread_count = 1
        for index in range(count):
            rgb = np.ascontiguousarray(frames[index].transpose(1, 2, 0))
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=_PIXEL_FORMAT)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


@dataclass
class CachedFrames:
    """An entry's frames as stored: uint8 (T, 3, H, W), RGB, at the size the model sees, and where they came from."""

    frames: Any  # numpy.ndarray
    frame_indices: list[int]
    source_fps: float
    total_frames: int
    source_size: tuple[int, int]
    extra: dict[str, Any]


def _decode_arrays(header: dict[str, Any], payload: bytes, video_path: Any = None) -> CachedFrames:
    import av
    import numpy as np

    try:
        count, channels, height, width = header["shape"]
        decoded = []
        with av.open(io.BytesIO(payload), "r", format="matroska") as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            for frame in container.decode(stream):
                decoded.append(frame.to_ndarray(format="rgb24"))
        frames = np.stack(decoded).transpose(0, 3, 1, 2) if decoded else np.zeros((0, 3, 0, 0), np.uint8)
        frames = np.ascontiguousarray(frames)
        if frames.shape != (count, channels, height, width):
            raise CorruptEntry(f"frames of shape {list(frames.shape)}, expected {header['shape']}")
        if zlib.crc32(frames.tobytes()) != header["crc32"]:
            raise CorruptEntry("the frames do not match their checksum")
        return CachedFrames(
            frames=frames,
            frame_indices=[int(index) for index in header["frame_indices"]],
            source_fps=float(header["source_fps"]),
            total_frames=int(header["total_frames"]),
            source_size=(int(header["source_size"][0]), int(header["source_size"][1])),
            extra={**header.get("extra", {}), "frame_cache": True},
        )
    except CorruptEntry:
        raise
    except (av.error.FFmpegError, EOFError, OSError, KeyError, ValueError, TypeError, IndexError) as error:
        raise CorruptEntry(f"{type(error).__name__}: {error}") from None


def _decode_entry(header: dict[str, Any], payload: bytes, video_path: Any) -> SampledVideo:
    import torch

    from rankvideo_cli.videos.frames import SampledVideo

    cached = _decode_arrays(header, payload)
    return SampledVideo(
        path=str(video_path),
        frames=torch.from_numpy(cached.frames),
        source_fps=cached.source_fps,
        total_frames=cached.total_frames,
        frame_indices=cached.frame_indices,
        source_size=cached.source_size,
        extra=cached.extra,
    )


def _jsonable(value: Any) -> Any:
    """Decode diagnostics (tuples, Fractions as strings) as JSON values."""
    return json.loads(json.dumps(value, default=str))
