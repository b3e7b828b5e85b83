"""`rankvideo sample`: frames decoded into the frame cache on CPU nodes, resumable after a kill or SIGTERM, refused
up front for a missing or read-only cache, stopped cleanly by a full disk without marking any video bad."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import SAMPLE, frame_cache_entries, invoke_ok, sample_args
from typer.testing import CliRunner

from rankvideo_cli.cli import app
from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.videos.frame_cache import FrameCache, caching_sampler
from rankvideo_cli.videos.frames import sample_video
from rankvideo_cli.videos.identity import content_identity


def test_a_killed_sample_resumes_where_it_stopped(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    command = [sys.executable, "-m", "rankvideo_cli.cli", *sample_args(cache_dir)]
    job = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(frame_cache_entries(cache_dir)) < 2:
        assert job.poll() is None, job.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    job.kill()
    job.communicate()
    done = len(frame_cache_entries(cache_dir))
    assert 2 <= done < 12, "the job finished before it was killed"

    job = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    while len(frame_cache_entries(cache_dir)) < done + 1:
        assert job.poll() is None, job.communicate()[1]
        time.sleep(0.01)
    job.send_signal(signal.SIGTERM)
    _out, err = job.communicate(timeout=120)
    if job.returncode != 0:  # the job may have finished before the signal
        assert job.returncode == 143, err
        assert "run the same command again to resume" in err and "Traceback" not in err

    finished = invoke_ok(*[*sample_args(cache_dir), "--json"])
    counts = json.loads(finished.stdout)
    assert counts["already_cached"] + counts["sampled"] == 12 and counts["already_cached"] >= done + 1
    reader = FrameCache(cache_dir)
    for entry in frame_cache_entries(cache_dir):
        assert reader.state(entry.name.removesuffix(".rvf"), SamplingConfig()).status == "cached"


def test_a_read_only_cache_never_writes(tmp_path: Path) -> None:
    cache = FrameCache(tmp_path)
    video = SAMPLE / "videos" / "v001.mp4"
    sampled = caching_sampler(cache, content_identity(video), sample_video)(video, SamplingConfig())
    assert sampled.frames.shape[0] > 0
    assert frame_cache_entries(tmp_path) == [] and cache.stats.misses == 1


def test_a_sample_stopped_by_sigterm_counts_what_is_on_disk(tmp_path: Path) -> None:
    """The videos still decoding when SIGTERM came finish and are saved; the summary counted only those it had
    taken in ("5 videos sampled" with 7-8 entries on disk), and the resume then reported the opposite split."""
    from rich.console import Console

    from rankvideo_cli.jobs.sample import SampleInterrupted, SampleRequest, run_sample
    from rankvideo_cli.options import DecodeOptions, VideoSource

    cache_dir = tmp_path / "cache"
    calls = []
    lock = threading.Lock()

    def slow_sampler(path: object, sampling: SamplingConfig) -> object:
        with lock:
            calls.append(path)
            first = len(calls) == 1
        if first:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler only sets the stop flag
        else:
            time.sleep(0.5)  # still decoding when the signal is seen
        return sample_video(path, sampling)

    request = SampleRequest(
        run_path=SAMPLE / "first_stage.trec",
        frames_cache=cache_dir,
        videos=VideoSource(SAMPLE / "videos"),
        decode=DecodeOptions(decode_workers=4),
    )
    with pytest.raises(SampleInterrupted) as stopped:
        run_sample(request, Console(stderr=True), sampler=slow_sampler)
    on_disk = len(frame_cache_entries(cache_dir))
    assert on_disk > 1, "no decode was in flight when the signal came"
    assert f": {on_disk} videos sampled in this run" in str(stopped.value)
    resumed = invoke_ok(*[*sample_args(cache_dir), "--json"])
    assert json.loads(resumed.stdout)["already_cached"] == on_disk


def test_a_full_frame_cache_stops_sample_and_marks_no_video_bad(tmp_path: Path, full_disk) -> None:
    cache = tmp_path / "cache"
    arguments = ["sample", str(SAMPLE / "first_stage.trec"), "--videos", str(SAMPLE / "videos")]
    arguments += ["--frames-cache", str(cache), "--decode-workers", "1", "--json"]
    full_disk.fill(cache)
    failed = CliRunner().invoke(app, arguments)
    assert failed.exit_code == 1, failed.output
    assert "Traceback" not in failed.output and "unexpected" not in failed.output and "bad" not in failed.stdout
    (line,) = [text for text in failed.stderr.splitlines() if "No space left on device" in text]
    assert line.startswith(f"rankvideo: --frames-cache {cache}: cannot write to the frame cache: No space left")
    assert "not marked bad" in line
    assert list(cache.rglob("*.rvf")) == []

    full_disk.free(cache)
    resumed = CliRunner().invoke(app, arguments)
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout)
    assert summary["sampled"] == 12 and summary["bad"] == 0 and summary["known_bad"] == 0
