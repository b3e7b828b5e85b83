"""Synthesize small, deterministic test videos with PyAV (no network, no sample files).

Any codec/container/frame-rate combination the decoder must handle, with optional rotation metadata,
B-frames, variable frame rate and an audio track. Every frame carries its own frame number as a 16-cell
black/white barcode along the top edge (`read_frame_number` reads it back, after resizing too), so a test can
check which source frame it got without trusting the decoder under test.

    from video_factory import VideoCache, make_video   # pytest puts tests/ on sys.path
    make_video(tmp_path / "a.mp4", fps=Fraction(30000, 1001), seconds=10, bframes=True)
    videos = VideoCache.for_session(tmp_path_factory)   # shared by all test modules of one pytest session
    path = videos.get(codec="vp9", container="webm", seconds=3)

Files are cached by their parameters, so asking twice costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

ENCODERS = {
    "h264": "libx264",
    "hevc": "libx265",
    "mpeg4": "mpeg4",
    "vp9": "libvpx-vp9",
    "vp8": "libvpx",
    "ffv1": "ffv1",
    "mjpeg": "mjpeg",
}
CONTAINERS = {"mp4": "mp4", "mov": "mov", "mkv": "matroska", "webm": "webm", "avi": "avi", "h264": "h264"}
NTSC_RATES = {29.97: Fraction(30000, 1001), 23.976: Fraction(24000, 1001), 59.94: Fraction(60000, 1001)}
PATTERNS = ("moving", "noise", "flat")
BARCODE_BITS = 16
# Frame durations (in units of 1/fps) cycled through for variable-frame-rate videos.
VFR_DURATIONS = (1.0, 0.5, 1.5, 1.0, 2.0, 0.5, 0.5, 2.0)


def as_rate(fps: float | int | Fraction | str) -> Fraction:
    """A frame rate as an exact fraction; 29.97, 23.976 and 59.94 mean the NTSC rates (30000/1001 ...)."""
    if isinstance(fps, Fraction):
        return fps
    if isinstance(fps, str):
        return Fraction(fps)
    for approx, exact in NTSC_RATES.items():
        if abs(float(fps) - approx) < 1e-3:
            return exact
    return Fraction(fps).limit_denominator(1000)


def frame_count(fps: float | int | Fraction | str, seconds: float) -> int:
    """How many frames `make_video` writes for this rate and duration."""
    return max(1, round(float(as_rate(fps)) * seconds))


@dataclass(frozen=True)
class VideoSpec:
    """Everything that determines a synthesized file's bytes."""

    codec: str = "h264"
    container: str = "mp4"
    fps: str = "25"
    seconds: float = 2.0
    width: int = 320
    height: int = 240
    rotation: int = 0
    bframes: bool = False
    vfr: bool = False
    pattern: str = "moving"
    gop: int | None = None
    pix_fmt: str | None = None
    audio: bool = False
    frames: int | None = None  # exact frame count; overrides seconds
    faststart: bool = False  # mp4/mov: index (moov) before the data, as streaming sites serve them

    @property
    def rate(self) -> Fraction:
        return as_rate(self.fps)

    @property
    def frame_total(self) -> int:
        return self.frames if self.frames is not None else frame_count(self.rate, self.seconds)

    def key(self) -> str:
        payload = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:12]

    def filename(self) -> str:
        extras = [
            f"rot{self.rotation}" if self.rotation else "",
            "bf" if self.bframes else "",
            "vfr" if self.vfr else "",
        ]
        label = "-".join(
            part
            for part in [
                self.codec,
                f"{float(self.rate):g}fps",
                f"{self.frame_total}f",
                f"{self.width}x{self.height}",
                *extras,
                self.pattern,
                self.key(),
            ]
            if part
        )
        return f"{label}.{self.container}"


class _Painter:
    """Deterministic frame content: a drifting blocky texture, a moving box and the frame-number barcode."""

    def __init__(self, width: int, height: int, pattern: str) -> None:
        if pattern not in PATTERNS:
            raise ValueError(f"unknown pattern {pattern!r}; choose from {PATTERNS}")
        self.width, self.height, self.pattern = width, height, pattern
        rng = np.random.default_rng(width * 10007 + height)
        block_shape = (max(1, height // 8) + 1, max(1, width // 8) * 2 + 2, 3)
        blocks = rng.integers(0, 256, size=block_shape, dtype=np.uint8)
        self.texture = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)[:height, :]
        self.rng = np.random.default_rng(width + 31 * height + 7)
        gradient_x = np.linspace(0, 64, width, dtype=np.float32)[None, :]
        gradient_y = np.linspace(0, 64, height, dtype=np.float32)[:, None]
        self.gradient = (gradient_x + gradient_y).astype(np.uint8)

    def frame(self, index: int) -> np.ndarray:
        width, height = self.width, self.height
        if self.pattern == "flat":
            image = np.empty((height, width, 3), dtype=np.uint8)
            image[:] = ((index * 37) % 256, (index * 11 + 80) % 256, (index * 5 + 160) % 256)
        elif self.pattern == "noise":
            image = self.rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        else:
            shift = (index * 3) % max(1, self.texture.shape[1] - width + 1)
            image = self.texture[:, shift : shift + width] // 2
            image += self.gradient[..., None]
            box = max(2, min(width, height) // 4)
            top = (index * 5) % max(1, height - box)
            left = (index * 7) % max(1, width - box)
            image[top : top + box, left : left + box] = ((index * 53) % 256, 220, (255 - index) % 256)
        paint_frame_number(image, index)
        return image


def _barcode_cells(width: int, height: int) -> tuple[int, list[tuple[int, int]]] | None:
    if width < 2 * BARCODE_BITS or height < 16:
        return None
    band = max(4, height // 8)
    edges = np.linspace(0, width, BARCODE_BITS + 1).round().astype(int)
    return band, [(int(edges[i]), int(edges[i + 1])) for i in range(BARCODE_BITS)]


def paint_frame_number(image: np.ndarray, index: int) -> None:
    """Write `index` as a white(1)/black(0) barcode into the top band of an HWC uint8 image, in place."""
    cells = _barcode_cells(image.shape[1], image.shape[0])
    if cells is None:
        return
    band, spans = cells
    for bit, (left, right) in enumerate(spans):
        image[:band, left:right] = 255 if (index >> bit) & 1 else 0


def read_frame_number(image: Any, *, rotation: int = 0) -> int:
    """Read the barcode of a frame (HWC or CHW, numpy or torch, any size); `rotation` = metadata applied."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[2] != 3:
        array = array.transpose(1, 2, 0)
    if rotation:
        array = np.rot90(array, k=-round(rotation / 90))
    height, width = array.shape[:2]
    cells = _barcode_cells(width, height)
    if cells is None:
        raise ValueError(f"frame {width}x{height} is too small to carry a barcode")
    band, spans = cells
    rows = slice(band // 4, max(band // 4 + 1, (3 * band) // 4))
    number = 0
    for bit, (left, right) in enumerate(spans):
        margin = (right - left) // 4
        level = float(array[rows, left + margin : max(left + margin + 1, right - margin)].mean())
        if level > 127.5:
            number |= 1 << bit
    return number


def _frame_times(spec: VideoSpec) -> Iterator[tuple[int, Fraction]]:
    """(index, presentation time in seconds) for every frame."""
    step = 1 / spec.rate
    time = Fraction(0)
    for index in range(spec.frame_total):
        yield index, time
        time += step * Fraction(VFR_DURATIONS[index % len(VFR_DURATIONS)]) if spec.vfr else step


def _encoder_options(spec: VideoSpec, gop: int) -> dict[str, str]:
    # one encoder thread, and (below) no macroblock tree in x264: the factory's files must be byte-identical
    # from run to run (test_output_is_deterministic); with mbtree this x264 build was not, even single-threaded
    options = {"g": str(gop), "threads": "1"}
    if spec.codec == "h264":
        options |= {"preset": "veryfast", "crf": "26", "bf": "3" if spec.bframes else "0"}
        # mbtree off: with it, this x264 build encoded B-frame clips differently from run to run
        options["x264-params"] = "scenecut=0:open-gop=0:mbtree=0"
    elif spec.codec == "hevc":
        options |= {"preset": "ultrafast", "crf": "30"}
        options["x265-params"] = f"log-level=error:scenecut=0:bframes={3 if spec.bframes else 0}"
    elif spec.codec == "mpeg4":
        options |= {"qscale": "6", "bf": "2" if spec.bframes else "0"}
    elif spec.codec in ("vp9", "vp8"):
        # Alt-ref frames are VPx's hidden, out-of-order reference frames: the closest thing to B-frames.
        options |= {"deadline": "good" if spec.bframes else "realtime", "cpu-used": "8"}
        options |= {"crf": "35", "b": "0"}
        options |= {"auto-alt-ref": "1", "lag-in-frames": "16"} if spec.bframes else {"lag-in-frames": "0"}
    return options


def write_video(path: Path, spec: VideoSpec) -> Path:
    """Encode `spec` into `path` (written to a temporary name first, then renamed)."""
    if spec.codec not in ENCODERS:
        raise ValueError(f"unknown codec {spec.codec!r}; choose from {sorted(ENCODERS)}")
    if spec.container not in CONTAINERS:
        raise ValueError(f"unknown container {spec.container!r}; choose from {sorted(CONTAINERS)}")
    rate = spec.rate
    gop = spec.gop if spec.gop is not None else max(1, round(float(rate)))
    odd_size = spec.width % 2 or spec.height % 2
    pix_fmt = spec.pix_fmt or ("yuv444p" if spec.codec == "h264" and odd_size else None)
    pix_fmt = pix_fmt or ("yuvj420p" if spec.codec == "mjpeg" else "yuv420p")
    time_base = Fraction(1, 1000) if spec.vfr else 1 / rate
    painter = _Painter(spec.width, spec.height, spec.pattern)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    options = {"movflags": "faststart"} if spec.faststart else {}
    with av.open(str(partial), "w", format=CONTAINERS[spec.container], options=options) as container:
        stream = container.add_stream(ENCODERS[spec.codec], rate=rate)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, pix_fmt
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        stream.options = _encoder_options(spec, gop)
        if spec.rotation:
            stream.set_display_rotation(spec.rotation)
        audio = _add_audio(container, spec) if spec.audio else None
        audio_frames = _audio_frames(spec) if audio is not None else iter(())
        container.start_encoding()  # writes the header even when no frame follows (frames=0)
        next_audio = next(audio_frames, None)
        for index, seconds in _frame_times(spec):
            while audio is not None and next_audio is not None and next_audio.time <= seconds:
                container.mux(audio.encode(next_audio))
                next_audio = next(audio_frames, None)
            frame = av.VideoFrame.from_ndarray(painter.frame(index), format="rgb24")
            frame.pts = int(seconds / time_base)
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
        if audio is not None:
            while next_audio is not None:
                container.mux(audio.encode(next_audio))
                next_audio = next(audio_frames, None)
            container.mux(audio.encode())
    os.replace(partial, path)
    return path


def _add_audio(container: av.container.OutputContainer, spec: VideoSpec) -> av.audio.stream.AudioStream:
    codec = "libopus" if spec.container == "webm" else "aac"
    return container.add_stream(codec, rate=48000, layout="mono")


def _audio_frames(spec: VideoSpec, *, sample_rate: int = 48000, chunk: int = 960) -> Iterator[av.AudioFrame]:
    total = math.ceil(spec.frame_total / float(spec.rate) * sample_rate)
    for start in range(0, total, chunk):
        times = np.arange(start, min(total, start + chunk)) / sample_rate
        samples = (0.2 * np.sin(2 * np.pi * 440 * times)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        yield frame


def make_video(
    path: str | Path,
    *,
    codec: str = "h264",
    container: str = "mp4",
    fps: float | int | Fraction | str = 25,
    seconds: float = 2.0,
    width: int = 320,
    height: int = 240,
    rotation: int = 0,
    bframes: bool = False,
    vfr: bool = False,
    pattern: str = "moving",
    gop: int | None = None,
    pix_fmt: str | None = None,
    audio: bool = False,
    frames: int | None = None,
    faststart: bool = False,
) -> Path:
    """Write a synthetic video to `path` and return it.

    codec: h264 | hevc | mpeg4 | vp9 | vp8 | ffv1 | mjpeg; container: mp4 | mov | mkv | webm | avi.
    fps: exact rates as Fraction or "30000/1001"; 29.97 / 23.976 / 59.94 mean the NTSC fractions.
    rotation: display-matrix rotation in counter-clockwise degrees (as PyAV's `frame.rotation` reads it).
    bframes: B-frames (h264, hevc, mpeg4) or hidden alt-ref frames (vp8/vp9). gop: keyframe interval in
    frames (default: one second; scene-cut keyframes are off). vfr: frame durations cycle through
    `VFR_DURATIONS` x 1/fps on a millisecond clock. frames: exact frame count instead of `seconds`.
    Odd sizes use yuv444p for h264 (4:2:0 needs even sizes there). container "h264" writes a raw
    elementary stream (no timestamps). faststart: mp4/mov with the index first.
    """
    spec = VideoSpec(
        codec=codec,
        container=container,
        fps=str(as_rate(fps)),
        seconds=float(seconds),
        width=width,
        height=height,
        rotation=rotation,
        bframes=bframes,
        vfr=vfr,
        pattern=pattern,
        gop=gop,
        pix_fmt=pix_fmt,
        audio=audio,
        frames=frames,
        faststart=faststart,
    )
    return write_video(Path(path), spec)


def make_audio_only(path: str | Path, *, seconds: float = 1.0) -> Path:
    """An AAC-in-MP4 (or Opus-in-WebM, by suffix) file with no video stream."""
    path = Path(path)
    spec = VideoSpec(seconds=seconds, container="webm" if path.suffix == ".webm" else "mp4")
    with av.open(str(path), "w", format=CONTAINERS[spec.container]) as container:
        audio = _add_audio(container, spec)
        for frame in _audio_frames(spec):
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return path


def make_video_without_frame_rate(path: str | Path, *, frames: int = 10) -> Path:
    """Matroska MJPEG whose frames all carry timestamp 0: FFmpeg reports the average rate as 0/0."""
    path = Path(path)
    source = write_video(
        path.with_name(f".{path.stem}.source.mkv"),
        VideoSpec(codec="mjpeg", container="mkv", frames=frames, width=64, height=48),
    )
    with av.open(str(source)) as reader, av.open(str(path), "w", format="matroska") as writer:
        video_in = reader.streams.video[0]
        video_out = writer.add_stream_from_template(video_in)
        for packet in reader.demux(video_in):
            if packet.size == 0:
                continue
            packet.pts = packet.dts = 0
            packet.stream = video_out
            writer.mux(packet)
    source.unlink()
    return path


def truncated_copy(source: str | Path, target: str | Path, fraction: float) -> Path:
    """The first `fraction` of `source`'s bytes, as an interrupted download leaves a file."""
    data = Path(source).read_bytes()
    Path(target).write_bytes(data[: int(len(data) * fraction)])
    return Path(target)


def garbled_copy(source: str | Path, target: str | Path, *, at: float = 0.4, length: int = 3000) -> Path:
    """`source` with `length` bytes of deterministic noise written over it at `at` of its size."""
    data = bytearray(Path(source).read_bytes())
    start = int(len(data) * at)
    noise = np.random.default_rng(1).integers(0, 256, size=length, dtype=np.uint8).tobytes()
    data[start : start + length] = noise[: len(data) - start]
    Path(target).write_bytes(bytes(data))
    return Path(target)


class VideoCache:
    """Synthesized videos under one directory, each made once and named by its parameters."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @classmethod
    def for_session(cls, tmp_path_factory: Any) -> VideoCache:
        """One cache per pytest run, shared by every module that asks (pass `tmp_path_factory`), and by every
        pytest-xdist worker: a video is encoded once, the files are renamed into place whole."""
        base = tmp_path_factory.getbasetemp()
        if os.environ.get("PYTEST_XDIST_WORKER"):
            base = base.parent  # the run's directory, above each worker's own
        return cls(base / "synthesized-videos")

    def get(self, **params: Any) -> Path:
        """The video `make_video(**params)` would write; made on first use."""
        if "fps" in params:
            params["fps"] = str(as_rate(params["fps"]))
        if "seconds" in params:
            params["seconds"] = float(params["seconds"])
        spec = VideoSpec(**params)
        path = self.root / spec.filename()
        if not path.exists():
            write_video(path, spec)
        return path
