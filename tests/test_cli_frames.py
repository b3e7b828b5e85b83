"""`rankvideo frames VIDEO`: what the model sees of a video (the frames, their times and sizes), and whether the
frame cache holds them."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import SAMPLE, VIDEOS, assert_refused, invoke, invoke_ok, sample_args


def test_frames_shows_what_the_model_sees(tmp_path: Path) -> None:
    result = invoke("frames", VIDEOS / "v001.mp4", "--json", "--save", tmp_path / "png")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    count = len(plan["frame_indices"])
    assert count % 2 == 0 and len(plan["pair_timestamps"]) == count // 2
    assert len(sorted((tmp_path / "png").glob("*.png"))) == count
    assert_refused(invoke("frames", tmp_path / "none.mp4"), "none.mp4: missing: no such file")


def test_frames_says_whether_a_video_is_cached(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    video = SAMPLE / "videos" / "v002.mp4"
    absent = invoke_ok(*["frames", str(video), "--frames-cache", str(cache_dir), "--json"])
    assert json.loads(absent.stdout)["frame_cache"]["status"] == "absent"
    invoke_ok(*sample_args(cache_dir))
    present = json.loads(invoke_ok(*["frames", str(video), "--frames-cache", str(cache_dir), "--json"]).stdout)
    assert present["frame_cache"]["status"] == "cached" and present["frame_cache"]["bytes"] > 0
    assert "frame cache" in invoke_ok(*["frames", str(video), "--frames-cache", str(cache_dir)]).stdout
