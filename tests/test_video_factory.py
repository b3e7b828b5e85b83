"""tests/video_factory.py makes what it is asked for (other test modules and the sample data rely on it)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from video_factory import VideoCache, as_rate, frame_count, make_video, paint_frame_number, read_frame_number


def packets(path: Path) -> list[av.Packet]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [packet for packet in container.demux(stream) if packet.size]


def test_rates() -> None:
    assert as_rate(29.97) == Fraction(30000, 1001) and as_rate("30000/1001") == Fraction(30000, 1001)
    assert as_rate(23.976) == Fraction(24000, 1001) and as_rate(59.94) == Fraction(60000, 1001)
    assert as_rate(25) == 25 and as_rate(12.5) == Fraction(25, 2)
    assert frame_count(30, 10) == 300 and frame_count(24, 1.3) == 31 and frame_count(29.97, 5) == 150


@pytest.mark.parametrize(
    "params",
    [
        {"codec": "h264", "container": "mp4", "fps": 25},
        {"codec": "h264", "container": "mkv", "fps": 29.97},
        {"codec": "mpeg4", "container": "avi", "fps": 24},
        {"codec": "vp9", "container": "webm", "fps": 60},
        {"codec": "hevc", "container": "mov", "fps": 30},
    ],
)
def test_codec_container_rate_size(videos: VideoCache, params: dict) -> None:
    path = videos.get(seconds=1, width=160, height=96, **params)
    assert path.suffix == f".{params['container']}"
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == params["codec"]
        assert stream.average_rate == as_rate(params["fps"])
        assert (stream.width, stream.height) == (160, 96)
        decoded = list(container.decode(stream))
    assert len(decoded) == len(packets(path)) == frame_count(params["fps"], 1)
    assert [read_frame_number(frame.to_ndarray(format="rgb24")) for frame in decoded] == list(range(len(decoded)))


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata(videos: VideoCache, rotation: int) -> None:
    with av.open(str(videos.get(rotation=rotation, seconds=0.2))) as container:
        assert next(container.decode(video=0)).rotation % 360 == rotation % 360


@pytest.mark.parametrize("codec", ["h264", "mpeg4", "hevc"])
def test_b_frames_reorder_packets(videos: VideoCache, codec: str) -> None:
    with_b = [packet.pts for packet in packets(videos.get(codec=codec, bframes=True, seconds=1))]
    without = [packet.pts for packet in packets(videos.get(codec=codec, seconds=1))]
    assert with_b != sorted(with_b)
    assert without == sorted(without)


def test_gop_sets_the_keyframe_interval(videos: VideoCache) -> None:
    found = [i for i, packet in enumerate(packets(videos.get(seconds=4, gop=30))) if packet.is_keyframe]
    assert found == [0, 30, 60, 90]


def test_variable_frame_rate(videos: VideoCache) -> None:
    times = [float(packet.pts * packet.time_base) for packet in packets(videos.get(vfr=True, seconds=2))]
    steps = np.round(np.diff(sorted(times)) * 25, 3)
    assert set(steps.tolist()) == {0.5, 1.0, 1.5, 2.0}


def test_audio_track_and_faststart(videos: VideoCache) -> None:
    with av.open(str(videos.get(audio=True, seconds=1))) as container:
        assert sorted(stream.type for stream in container.streams) == ["audio", "video"]
    data = videos.get(faststart=True, seconds=1).read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    data = videos.get(seconds=1).read_bytes()
    assert data.index(b"moov") > data.index(b"mdat")


def test_cache_makes_each_file_once(videos: VideoCache) -> None:
    first = videos.get(seconds=0.4, pattern="noise")
    stamp = first.stat().st_mtime_ns
    assert videos.get(seconds=0.4, pattern="noise") == first and first.stat().st_mtime_ns == stamp
    assert videos.get(seconds=0.4, pattern="flat") != first


def test_output_is_deterministic(tmp_path: Path) -> None:
    one = make_video(tmp_path / "a.mp4", seconds=1, bframes=True)
    two = make_video(tmp_path / "b.mp4", seconds=1, bframes=True)
    assert one.read_bytes() == two.read_bytes()


def test_barcode_survives_scaling_and_rotation() -> None:
    image = np.zeros((120, 160, 3), dtype=np.uint8)
    paint_frame_number(image, 40_000)
    assert read_frame_number(image) == 40_000
    assert read_frame_number(np.repeat(np.repeat(image, 3, axis=0), 2, axis=1)) == 40_000
    assert read_frame_number(np.rot90(image, k=-1), rotation=-90) == 40_000
    assert read_frame_number(image.transpose(2, 0, 1)) == 40_000
