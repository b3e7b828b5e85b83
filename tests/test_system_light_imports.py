"""Commands that need no model never import torch, transformers, PyAV or qwen-vl-utils: `--help`, input errors,
`eval`, `merge`, `rank`, `tune`, `videos`, `frames` (PyAV only), `report` and a rerun whose pairs are all in the
score store (its fingerprint is read from the model's files).

Each case runs the real console entry point in a fresh interpreter (the test process itself has torch loaded)
and reports which of the watched modules ended up in `sys.modules` when the command finished.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SAMPLE, TINY, invoke_ok, sample_rerank_args

HEAVY = ("torch", "torchvision", "transformers", "av", "qwen_vl_utils", "decord")
MODEL_STACK = ("torch", "torchvision", "transformers", "qwen_vl_utils", "decord")
# what `eval` leaves to the commands that need it: 1 s of imports against ir-measures' 0.1 s
SLOW_FOR_EVAL = ("pandas", "scipy")

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


def run_probe(args: list[str], cwd: Path, watched: tuple[str, ...] = HEAVY) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(watched)],
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
        (["slurm"], 0),
        (["slurm", "array", "--partition", "gpu", "--frames-cache"], 0),
        (["slurm", "nope"], 2),
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
        "slurm-list",
        "slurm-array",
        "slurm-unknown",
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


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The sample reranked once with tiny-random (this process: torch loads here): its run, its score store and
    its scores; and a store of two fake-scorer shards, for `merge`."""
    work = tmp_path_factory.mktemp("stored")
    first = sample_rerank_args(SAMPLE / "videos", "--cache", str(work / "store"), model=TINY)
    invoke_ok(*first, "-o", work / "run.trec", "--scores", work / "scores.jsonl")
    for index in (0, 1):
        shard = sample_rerank_args(SAMPLE / "videos", "--cache", str(work / "shards"), "--shard", f"{index}/2")
        invoke_ok(*shard)
    return work


def test_a_rerun_whose_pairs_are_all_stored_imports_no_model_stack(stored: Path, tmp_path: Path) -> None:
    """A requeued SLURM task, a finished job run again: the fingerprint comes from the model's files."""
    args = sample_rerank_args(SAMPLE / "videos", "--cache", str(stored / "store"), model=TINY)
    rerun = tmp_path / "rerun.trec"
    assert run_probe([*args, "-o", str(rerun)], tmp_path) == {"code": 0, "heavy": []}
    assert rerun.read_bytes() == (stored / "run.trec").read_bytes()


def test_commands_over_stored_scores_import_no_model_stack(stored: Path, tmp_path: Path) -> None:
    run, qrels = str(SAMPLE / "first_stage.trec"), str(SAMPLE / "qrels.txt")
    merge = ["merge", run, str(SAMPLE / "queries.tsv"), "--cache", str(stored / "shards")]
    assert run_probe([*merge, "-o", str(tmp_path / "merged.trec")], tmp_path) == {"code": 0, "heavy": []}
    assert (tmp_path / "merged.trec").stat().st_size > 0
    scores = str(stored / "scores.jsonl")
    rank = ["rank", run, "--scores", scores, "--qrels", qrels, "-o", str(tmp_path / "ranked.trec")]
    assert run_probe(rank, tmp_path) == {"code": 0, "heavy": []}
    assert run_probe(["tune", run, qrels, "--scores", scores, "--folds", "2"], tmp_path) == {"code": 0, "heavy": []}


def test_eval_against_a_baseline_imports_neither_pandas_nor_scipy(stored: Path, tmp_path: Path) -> None:
    """Its paired t-tests are `evaluation.student_t`'s and its tsv is the csv module's."""
    args = ["eval", str(stored / "run.trec"), str(SAMPLE / "qrels.txt"), "--baseline", str(SAMPLE / "first_stage.trec")]
    for fmt in ("tsv", "json", "table"):
        outcome = run_probe([*args, "--format", fmt], tmp_path, HEAVY + SLOW_FOR_EVAL)
        assert outcome == {"code": 0, "heavy": []}


def test_report_without_videos_imports_no_model_stack(stored: Path, tmp_path: Path) -> None:
    """No torch or transformers; PyAV is imported by report/page.py with or without videos to decode."""
    args = ["report", str(stored / "run.trec"), "--baseline", str(SAMPLE / "first_stage.trec")]
    args += ["--qrels", str(SAMPLE / "qrels.txt"), "--queries", str(SAMPLE / "queries.tsv")]
    outcome = run_probe([*args, "-o", str(tmp_path / "report.html")], tmp_path, MODEL_STACK)
    assert outcome == {"code": 0, "heavy": []}


def test_a_defaults_file_the_tool_cannot_use_is_refused_before_the_model_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "rankvideo.toml"
    config.write_text("[rerank]\nvidoes = '/data'\n")
    monkeypatch.setenv("RANKVIDEO_CONFIG", str(config))
    args = ["rerank", str(SAMPLE / "first_stage.trec"), str(SAMPLE / "queries.tsv"), "--videos", str(SAMPLE / "videos")]
    assert run_probe(args, tmp_path) == {"code": 2, "heavy": []}
