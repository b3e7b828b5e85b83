"""Every VideoError kind, each from a real file made for it; messages are one line and name the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from video_factory import (
    VideoCache,
    garbled_copy,
    make_audio_only,
    make_video,
    make_video_without_frame_rate,
    truncated_copy,
)

from rankvideo_cli.errors import RankVideoError
from rankvideo_cli.report.thumbnails import video_thumbnails
from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.videos.container import VideoError
from rankvideo_cli.videos.frames import sample_video
from rankvideo_cli.videos.plan import probe_video


def failure(path: Path, *, probe: bool = True) -> VideoError:
    """The error sample_video raises (and probe_video the same, unless only decoding can find it); the report's
    thumbnails then show that error in place of frames, since the model never saw any."""
    with pytest.raises(VideoError) as caught:
        sample_video(path)
    error = caught.value
    assert isinstance(error, RankVideoError) and error.exit_code == 2
    assert error.kind in VideoError.KINDS and error.path == str(path)
    message = str(error)
    assert "\n" not in message and message.startswith(f"{path}: {error.kind}: ")
    if probe:
        with pytest.raises(VideoError) as probed:
            probe_video(path)
        assert probed.value.kind == error.kind
        strip = video_thumbnails(path, 4, SamplingConfig(), frame_cache=None)
        assert strip.images == [] and strip.problem == f"bad video: {error.kind}: {probed.value.detail}"
    return error


def test_missing_file(tmp_path: Path) -> None:
    error = failure(tmp_path / "nope.mp4")
    assert error.kind == "missing" and "no such file" in error.detail


def test_directory(tmp_path: Path) -> None:
    assert failure(tmp_path).kind == "not_a_video"


def test_audio_only_file(tmp_path: Path) -> None:
    error = failure(make_audio_only(tmp_path / "speech.m4a"))
    assert error.kind == "not_a_video" and "no video stream (streams: audio)" in error.detail


def test_garbage_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.mp4"
    path.write_bytes(bytes(range(256)) * 40)
    assert failure(path).kind == "not_a_video"


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    error = failure(path)
    assert error.kind == "not_a_video" and "empty" in error.detail


def test_text_file_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("not a video\n" * 100)
    assert failure(path).kind == "not_a_video"


@pytest.mark.parametrize("name", ["qrels.txt", "README.nfo"])
def test_text_file_that_ffmpeg_renders_as_ansi_art(tmp_path: Path, name: str) -> None:
    # FFmpeg's tty demuxer picks these extensions and would hand the model pictures of the text
    path = tmp_path / name
    path.write_text("q1 0 v001 1\n" * 100)
    error = failure(path)
    assert error.kind == "not_a_video" and "text file" in error.detail


def test_truncated_mp4_without_its_index(videos: VideoCache, tmp_path: Path) -> None:
    # ffmpeg-style MP4: the index (moov) comes last, so a cut file cannot even be opened.
    path = truncated_copy(videos.get(seconds=2), tmp_path / "cut.mp4", 0.6)
    error = failure(path)
    assert error.kind == "corrupt" and "MP4" in error.detail


def test_truncated_faststart_mp4_loses_its_last_frame(videos: VideoCache, tmp_path: Path) -> None:
    # Index first: the file opens, but the last packet is cut short and the last sampled frame is lost.
    path = truncated_copy(videos.get(seconds=2, faststart=True), tmp_path / "cut.mp4", 0.7)
    plan = probe_video(path)
    error = failure(path, probe=False)
    assert error.kind == "corrupt"
    assert f"frame {plan.frame_indices[-1]} cannot be decoded" in error.detail


def test_truncated_matroska_is_a_shorter_video(videos: VideoCache, tmp_path: Path) -> None:
    """Matroska keeps no index up front: a cut file is simply shorter, for decord as for us."""
    path = truncated_copy(videos.get(container="mkv", seconds=4), tmp_path / "cut.mkv", 0.5)
    video = sample_video(path)
    assert 40 <= video.total_frames < 100 and video.frame_indices[-1] == video.total_frames - 1


def test_damaged_data_mid_stream(videos: VideoCache, tmp_path: Path) -> None:
    path = garbled_copy(videos.get(seconds=4), tmp_path / "garbled.mp4", at=0.4)
    error = failure(path, probe=False)
    assert error.kind == "corrupt" and "decode error at packet" in error.detail


def test_damage_outside_sampled_frames_is_tolerated(videos: VideoCache, tmp_path: Path) -> None:
    """A decode error only condemns frames up to the next keyframe; unsampled ones do not matter."""
    source = videos.get(seconds=4, gop=5)
    reference = sample_video(source)
    for at in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
        path = garbled_copy(source, tmp_path / f"garbled-{at}.mp4", at=at, length=200)
        try:
            video = sample_video(path)
        except VideoError as error:
            assert error.kind == "corrupt"
            continue
        assert video.frame_indices == reference.frame_indices
        if video.extra["decode"]["fallback"]:  # the damage was seen: frames must still be the right ones
            assert video.extra["decode"]["strategy"] == "from_start"


def test_too_few_frames(tmp_path: Path) -> None:
    error = failure(make_video(tmp_path / "short.mp4", frames=1))
    assert error.kind == "too_few_frames" and error.detail.startswith("1 frame(s)")


def test_video_without_frames(tmp_path: Path) -> None:
    # The MP4 muxer drops a track that received no packet: what is left has no video stream.
    error = failure(make_video(tmp_path / "none.mp4", frames=0))
    assert error.kind == "not_a_video" and "no video stream" in error.detail


@pytest.mark.parametrize(("frames", "indices"), [(2, [0, 1]), (3, [0, 2])])
def test_two_frames_are_enough(tmp_path: Path, frames: int, indices: list[int]) -> None:
    assert sample_video(make_video(tmp_path / "short.mp4", frames=frames)).frame_indices == indices


def test_no_frame_rate(tmp_path: Path) -> None:
    error = failure(make_video_without_frame_rate(tmp_path / "frozen.mkv"))
    assert error.kind == "bad_frame_rate" and "0/0" in error.detail


@pytest.mark.parametrize(("width", "height", "ratio"), [(404, 2, "202.0"), (2, 404, "202.0"), (16, 4096, "256.0")])
def test_extreme_aspect_ratio(tmp_path: Path, width: int, height: int, ratio: str) -> None:
    error = failure(make_video(tmp_path / "strip.mp4", width=width, height=height, seconds=0.5))
    assert error.kind == "bad_aspect_ratio" and f"{width}x{height} has aspect ratio {ratio}" in error.detail


def test_aspect_ratio_200_is_still_accepted(tmp_path: Path) -> None:
    video = sample_video(make_video(tmp_path / "strip.mp4", width=400, height=2, seconds=0.5))
    assert video.source_size == (2, 400)


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown VideoError kind"):
        VideoError("x.mp4", "sad", "no")
