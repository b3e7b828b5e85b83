"""--quiet and --verbose on the long commands: --quiet drops the progress and the throughput report but never
what was written, skipped, missing or bad; --verbose prints a progress line after every video."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from helpers import FAKE, SAMPLE, assert_refused, invoke, invoke_ok, write_inputs

from rankvideo_cli.progress import VERBOSITY_VARIABLE


def videos_with_a_bad_one(tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("v001.mp4", "v002.mp4"):
        shutil.copy(SAMPLE / "videos" / name, folder / name)
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    return folder


def rerank(tmp_path: Path, *extra: str):
    tmp_path.mkdir(exist_ok=True)
    run, queries = write_inputs(tmp_path, ("v001", "v002", "broken", "v404"))
    return invoke_ok(
        "rerank",
        run,
        queries,
        "--videos",
        videos_with_a_bad_one(tmp_path),
        "--model",
        FAKE,
        "--cache",
        tmp_path / "s",
        *extra,
    )


def test_quiet_keeps_what_was_skipped_missing_or_bad(tmp_path: Path) -> None:
    result = rerank(tmp_path, "--quiet")
    assert "1 candidate video has no file" in result.stderr  # missing
    assert "bad video (" in result.stderr  # bad, as it happens
    assert "1 pair with a bad video (keep)" in result.stderr and "4 written" in result.stderr  # the summary
    assert "pairs scored (" not in result.stderr and "the model waited" not in result.stderr
    assert len(result.stdout.splitlines()) == 4
    assert VERBOSITY_VARIABLE not in os.environ  # restored after the command


def test_verbose_prints_a_progress_line_after_every_video(tmp_path: Path) -> None:
    normal = rerank(tmp_path / "normal")
    verbose = rerank(tmp_path / "verbose", "--verbose")
    assert verbose.stdout == normal.stdout
    progress = [line for line in verbose.stderr.splitlines() if "pairs scored (" in line]
    assert len(progress) >= 3  # one per video (two good, one bad), then the last
    assert len(progress) > len([line for line in normal.stderr.splitlines() if "pairs scored (" in line])


def test_quiet_and_verbose_are_exclusive(tmp_path: Path) -> None:
    run, queries = write_inputs(tmp_path)
    result = invoke("rerank", run, queries, "--videos", SAMPLE / "videos", "--model", FAKE, "--quiet", "--verbose")
    assert_refused(result, "--quiet and --verbose are exclusive")
