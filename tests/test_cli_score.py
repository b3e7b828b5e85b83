"""`rankvideo score`: an unsupported library is refused in one line before the model loads (the version check
itself: test_versions.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import (
    FAKE,
    SAMPLE,
    TINY,
    TRAINING,
    VIDEOS,
    assert_refused,
    invoke,
)
from test_scoring_generate import VIDEO
from test_versions import pretend_installed
from typer.testing import CliRunner

from rankvideo_cli.cli import app


def test_the_model_is_not_loaded_with_an_unsupported_transformers(monkeypatch, tiny_model_dir) -> None:
    pretend_installed(monkeypatch, "transformers", "4.57.1")
    result = CliRunner().invoke(app, ["score", "-q", "a dog", str(VIDEO), "--model", "tiny-random"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "rankvideo: transformers 4.57.1 is installed, but rankvideo needs transformers>=5.18: "
        "pip install 'transformers>=5.18'"
    ]
    assert "Traceback" not in result.output


SCORE_FIELDS = {"logit_delta", "logit_delta_yes_minus_no", "p_yes", "logprob_yes", "logprob_no"}


def test_score_prints_json_lines_and_flags_a_missing_video(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    result = invoke("score", "--query", "a red ball", VIDEOS / "v001.mp4", missing, "--model", FAKE, "--json")
    assert result.exit_code == 1  # one video failed: the caller must notice
    good, bad = (json.loads(line) for line in result.stdout.splitlines())
    assert set(good) >= SCORE_FIELDS and "error" not in good and 0.0 < good["p_yes"] < 1.0
    assert "logit_delta" not in bad and bad["error"] == f"{missing}: missing: no such file"
    assert bad["error"] in result.stderr
    table = invoke("score", "-q", "a red ball", VIDEOS / "v001.mp4", "--model", FAKE)
    assert table.exit_code == 0 and "MEANINGLESS" in table.stderr
    video_cells = [line.split("│")[1].strip() for line in table.stdout.splitlines() if line.startswith("│")]
    assert "".join(video_cells) == str(VIDEOS / "v001.mp4")  # folded over lines, never cut


def test_score_and_frames_refuse_special_files_empty_queries_and_unwritable_save_dirs(no_model, tmp_path: Path) -> None:
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    assert_refused(invoke("score", "-q", "a dog", fifo), "not a regular file")
    assert_refused(invoke("score", "-q", "", VIDEOS / "v001.mp4"), "--query is empty")
    assert_refused(invoke("score", "-q", "   ", VIDEOS / "v001.mp4"), "--query is empty")
    assert_refused(invoke("score", "-q", "dog", VIDEOS / "v001.mp4", "--batch-size", "0"), "--batch-size")
    assert_refused(invoke("frames", fifo), "not a regular file")
    assert_refused(invoke("frames", VIDEOS / "v001.mp4", "--save", "/proc/frames"), "--save", "cannot write")


def test_score_and_explain_take_the_training_prompt(tiny_model_dir: Path) -> None:
    video = str(SAMPLE / "videos" / "v001.mp4")
    common = ["-q", "a red ball", "--model", TINY, "--json"]
    rows = {}
    for prompt in ("inference", "training"):
        result = CliRunner().invoke(app, ["score", video, *common, "--prompt", prompt])
        assert result.exit_code == 0, result.output
        rows[prompt] = json.loads(result.stdout.splitlines()[0])
    assert rows["training"]["logit_delta"] != rows["inference"]["logit_delta"]
    full = CliRunner().invoke(app, ["score", video, *common, *TRAINING, "--no-prefix-cache"])
    assert json.loads(full.stdout.splitlines()[0])["logit_delta"] == pytest.approx(
        rows["training"]["logit_delta"], abs=1e-5
    )
    explained = CliRunner().invoke(app, ["explain", video, *common, *TRAINING, "--max-new-tokens", "3"])
    assert explained.exit_code == 0, explained.output
    answer = json.loads(explained.stdout.splitlines()[0])
    assert answer["logit_delta"] == pytest.approx(rows["training"]["logit_delta"], abs=1e-5)
