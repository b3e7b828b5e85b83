"""Commands that need no model never import torch, transformers, PyAV or qwen-vl-utils.

Each case runs the real console entry point in a fresh interpreter (the test process itself has torch loaded)
and reports which heavy modules ended up in `sys.modules` when the command finished.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SAMPLE

HEAVY = ("torch", "torchvision", "transformers", "av", "qwen_vl_utils", "decord")

PROBE = """
import json, sys
heavy_names = json.loads(sys.argv[2])
sys.argv = ["rankvideo", *json.loads(sys.argv[1])]
from rankvideo_cli.cli import main
try:
    main()
except SystemExit as stop:
    code = stop.code
else:
    code = 0
heavy = sorted(name for name in heavy_names if name in sys.modules)
sys.stderr.write("\\nPROBE " + json.dumps({"code": code, "heavy": heavy}) + "\\n")
"""


def run_probe(args: list[str], cwd: Path) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )
    line = next(line for line in completed.stderr.splitlines() if line.startswith("PROBE "))
    return json.loads(line.removeprefix("PROBE "))


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--help"], 0),
        (["rerank", "--help"], 0),
        (["eval", str(SAMPLE / "first_stage.trec"), str(SAMPLE / "qrels.txt")], 0),
        (
            [
                "eval",
                str(SAMPLE / "first_stage.trec"),
                str(SAMPLE / "qrels.txt"),
                "--baseline",
                str(SAMPLE / "first_stage.trec"),
                "--format",
                "json",
            ],
            0,
        ),
        (["eval", "no-such-run.trec", str(SAMPLE / "qrels.txt")], 2),
        (["merge", str(SAMPLE / "first_stage.trec"), str(SAMPLE / "queries.tsv"), "--cache", "no-such-dir"], 2),
        # rerank's input errors come before the model is loaded
        (["rerank", "no-such-run.trec", str(SAMPLE / "queries.tsv"), "--videos", str(SAMPLE / "videos")], 2),
        (
            [
                "rerank",
                str(SAMPLE / "first_stage.trec"),
                str(SAMPLE / "qrels.txt"),  # not a query file
                "--videos",
                str(SAMPLE / "videos"),
            ],
            2,
        ),
        (
            [
                "rerank",
                str(SAMPLE / "first_stage.trec"),
                str(SAMPLE / "queries.tsv"),
                "--videos",
                str(SAMPLE / "videos"),
                "--devices",
                "cuda:0,cuda:0",
            ],
            2,
        ),
        # --prompt training's impossible options come before the model (and torch)
        (
            [
                "rerank",
                str(SAMPLE / "first_stage.trec"),
                str(SAMPLE / "queries.tsv"),
                "--videos",
                str(SAMPLE / "videos"),
                "--prompt",
                "training",
                "--score-mode",
                "reference",
            ],
            2,
        ),
        (
            [
                "score",
                str(SAMPLE / "videos" / "v001.mp4"),
                "-q",
                "x",
                "--prompt",
                "training",
                "--attn-implementation",
                "flash_attention_2",
            ],
            2,
        ),
        (["videos", str(SAMPLE / "multivent" / "videos"), "--json"], 0),
        (["rank", str(SAMPLE / "first_stage.trec"), "--scores", "no-such-scores.jsonl"], 2),
        (["tune", str(SAMPLE / "first_stage.trec"), str(SAMPLE / "qrels.txt"), "--scores", "no-such.jsonl"], 2),
    ],
    ids=[
        "help",
        "rerank-help",
        "eval",
        "eval-baseline-json",
        "eval-missing-run",
        "merge-no-cache",
        "rerank-missing-run",
        "rerank-bad-queries",
        "rerank-bad-devices",
        "rerank-training-prompt-reference-mode",
        "score-training-prompt-bad-attention",
        "videos",
        "rank-missing-scores",
        "tune-missing-scores",
    ],
)
def test_command_imports_no_model_stack(args: list[str], code: int, tmp_path: Path) -> None:
    outcome = run_probe(args, tmp_path)
    assert outcome["code"] == code
    assert outcome["heavy"] == []


def test_sample_never_imports_the_model_stack(tmp_path: Path) -> None:
    args = ["sample", str(SAMPLE / "first_stage.trec"), "--videos", str(SAMPLE / "videos")]
    outcome = run_probe([*args, "--frames-cache", str(tmp_path / "cache"), "--decode-workers", "1"], tmp_path)
    assert outcome["code"] == 0
    assert "transformers" not in outcome["heavy"]  # it decodes (torch, PyAV) but loads no model
    assert "av" in outcome["heavy"]
    # and its input errors come before any decoding library
    assert run_probe([*args, "--frames-cache", str(SAMPLE / "first_stage.trec")], tmp_path) == {"code": 2, "heavy": []}


def test_the_parent_of_device_workers_loads_no_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The workers load the model; the process that starts them and writes the run imports no torch."""
    args = ["rerank", str(SAMPLE / "first_stage.trec"), str(SAMPLE / "queries.tsv"), "--videos", str(SAMPLE / "videos")]
    outcome = run_probe(
        [*args, "--model", "tiny-random", "-o", str(tmp_path / "run.trec"), "--devices", "cpu,cpu"], tmp_path
    )
    assert outcome == {"code": 0, "heavy": []}
    assert (tmp_path / "run.trec").stat().st_size > 0


def test_report_imports_pyav_only(tmp_path: Path) -> None:
    """`report` decodes thumbnails with PyAV (and reads the frame cache) but never imports torch or the model."""
    multivent = SAMPLE / "multivent"
    args = [
        "report",
        str(multivent / "first_stage.trec"),
        "--baseline",
        str(multivent / "first_stage.trec"),
        "--qrels",
        str(multivent / "judgments.jsonl"),
        "--queries",
        str(multivent / "queries.csv"),
        "--videos",
        str(multivent / "videos"),
    ]
    decoded = run_probe([*args, "-o", str(tmp_path / "decoded.html")], tmp_path)
    assert decoded == {"code": 0, "heavy": ["av"]}
    sampled = run_probe(["sample", *args[1:2], *args[-2:], "--frames-cache", str(tmp_path / "frames")], tmp_path)
    assert sampled["code"] == 0
    cached = run_probe(
        [*args, "--frames-cache", str(tmp_path / "frames"), "-o", str(tmp_path / "cached.html")], tmp_path
    )
    assert cached == {"code": 0, "heavy": ["av"]}
    assert run_probe(["report", "no-such-run.trec", "-o", str(tmp_path / "x.html")], tmp_path) == {
        "code": 2,
        "heavy": [],
    }
    assert run_probe(["report", "--help"], tmp_path) == {"code": 0, "heavy": []}


def test_frames_imports_pyav_only(tmp_path: Path) -> None:
    """`frames VIDEO` plans with the torch-free sampling rules; only `--save` decodes frames with torch."""
    video = str(SAMPLE / "videos" / "v001.mp4")
    assert run_probe(["frames", video], tmp_path) == {"code": 0, "heavy": ["av"]}
    assert run_probe(["frames", video, "--json"], tmp_path) == {"code": 0, "heavy": ["av"]}
    saved = run_probe(["frames", video, "--save", str(tmp_path / "png")], tmp_path)
    assert saved["code"] == 0 and "transformers" not in saved["heavy"]
