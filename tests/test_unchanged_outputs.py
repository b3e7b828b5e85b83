"""The shipped samples' outputs as the code before the layout-by-stage move wrote them.

A move of modules must change no output: the reranked run, the `--scores` JSONL and the manifest (less what
differs between machines and runs: timings, clock, host, argv, library versions, torch's thread count) of the
README's first command and of the flat sample, with `tiny-random`, match what main at b5ff30e wrote
(tests/data/sample-outputs). The tiny model's weights are hashed too, so that a failure says whether the model or
the code changed.

Everything but the scores must match byte for byte. The scores are compared to SCORE_TOLERANCE, not bit for bit:
torch picks its CPU kernels by the instructions the processor has, so the same code, weights and inputs give
float32 scores that differ in the 6th-7th significant digit from one CPU to another (seen here: up to 6.7e-6 in
`logit_delta` between the AMD EPYC the first goldens were hashed on and an AVX-512 Intel Xeon, and between
`ATEN_CPU_CAPABILITY=avx2` and `avx512` on the Xeon). On one machine they are bit-identical (test_pipeline,
test_resume). The goldens here were written by b5ff30e on an Intel Xeon (AVX-512), where the current code
writes the same bytes; the closest two scores of a query are 0.14 apart, so the tolerance cannot hide a
reordering.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
from helpers import SAMPLE
from typer.testing import CliRunner

from rankvideo_cli.cli import app

GOLDEN = Path(__file__).parent / "data" / "sample-outputs"

# Fields of a manifest that describe the machine and the moment rather than the inputs and the settings.
VARYING_FIELDS = ("timings", "created_at", "host", "command", "libraries", "decode_bottleneck", "torch_threads")
VARYING_MODEL_FIELDS = ("torch", "transformers")

# Absolute, on logits and log-probabilities of magnitude <= ~15 and on p_yes: 15x the cross-CPU drift seen.
SCORE_TOLERANCE = 1e-4

MULTIVENT_ARGS = [
    "rerank",
    "sample_runs/multivent/first_stage.trec",
    "sample_runs/multivent/queries.csv",
    "--videos",
    "sample_runs/multivent/videos",
    "--model",
    "tiny-random",
    "--qrels",
    "sample_runs/multivent/judgments.jsonl",
    "-o",
    "sample_runs/out/reranked.trec",
    "--scores",
    "sample_runs/out/reranked.scores.jsonl",
]
FLAT_ARGS = [
    "rerank",
    "sample_runs/first_stage.trec",
    "sample_runs/queries.tsv",
    "--videos",
    "sample_runs/videos",
    "--model",
    "tiny-random",
    "-o",
    "sample_runs/out/flat.trec",
    "--scores",
    "sample_runs/out/flat.scores.jsonl",
]

TINY_WEIGHTS_SHA256 = "294007808aa806303cd801a8d58d193c70440643d4e70d7e3fd383ec6e7283c0"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stable_manifest(path: Path) -> dict:
    manifest = json.loads(path.read_text())
    for field in VARYING_FIELDS:
        manifest.pop(field)
    for field in VARYING_MODEL_FIELDS:
        manifest["model"].pop(field)
    return manifest


def split_run(path: Path) -> tuple[list[list[str]], list[float]]:
    """The run's lines less their score column, and the scores."""
    rows = [line.split(" ") for line in path.read_text().splitlines()]
    return [row[:4] + row[5:] for row in rows], [float(row[4]) for row in rows]


def split_scores(path: Path) -> tuple[list[dict], list[float]]:
    """The JSONL's records less their float fields, and those floats in record order."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    floats = [value for record in records for value in record.values() if isinstance(value, float)]
    rest = [{key: value for key, value in record.items() if not isinstance(value, float)} for record in records]
    return rest, floats


def assert_close(got: list[float], expected: list[float]) -> None:
    assert len(got) == len(expected)
    worst = max((abs(a - b) for a, b in zip(got, expected, strict=True)), default=0.0)
    assert all(math.isfinite(value) for value in got)
    assert worst <= SCORE_TOLERANCE, f"a score moved by {worst:.3g} (tolerance {SCORE_TOLERANCE:g})"


@pytest.fixture
def sample_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of `sample_runs/` (no `out/`) as the working directory, so the manifest's relative paths match."""
    shutil.copytree(SAMPLE, tmp_path / "sample_runs", ignore=shutil.ignore_patterns("out", "__pycache__"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_tiny_model_is_the_one_the_outputs_were_recorded_with(tiny_model_dir: Path) -> None:
    weights = sorted(tiny_model_dir.glob("*.safetensors"))
    assert weights
    assert sha256(b"".join(path.read_bytes() for path in weights)) == TINY_WEIGHTS_SHA256


@pytest.mark.parametrize(("sample", "args"), [("multivent", MULTIVENT_ARGS), ("flat", FLAT_ARGS)])
def test_sample_outputs_match_the_recorded_ones(
    sample: str, args: list[str], sample_copy: Path, tiny_model_dir: Path
) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = Path(args[args.index("-o") + 1])
    scores = Path(args[args.index("--scores") + 1])
    golden = GOLDEN / sample

    run_rows, run_scores = split_run(run)
    golden_rows, golden_scores = split_run(golden / "run.trec")
    assert run_rows == golden_rows  # qids, docids, ranks, tag and line order
    assert_close(run_scores, golden_scores)

    records, record_floats = split_scores(scores)
    golden_records, golden_floats = split_scores(golden / "scores.jsonl")
    assert records == golden_records  # pairs, order, keys and video paths
    assert_close(record_floats, golden_floats)

    assert stable_manifest(run.with_name(run.name + ".manifest.json")) == json.loads(
        (golden / "manifest.json").read_text()
    )


def test_a_store_written_before_the_move_is_read_back(sample_copy: Path, tiny_model_dir: Path) -> None:
    """The score store's fingerprints hold no module names: the flat sample's store as main at b5ff30e wrote it
    (tests/data/store-before-layout) answers every pair of a rerun, whose run carries the stored scores exactly."""
    store = sample_copy / "store"
    shutil.copytree(Path(__file__).parent / "data" / "store-before-layout", store)
    args = [*FLAT_ARGS[: FLAT_ARGS.index("--scores")], "--cache", str(store)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "0 pairs scored now, 36 from the score store" in result.stderr

    stored = {}
    for line in (store / "scores.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["kind"] == "score":
            stored[record["qid"], record["docid"]] = record["logit_delta"]
    rows, scores = split_run(Path("sample_runs/out/flat.trec"))
    written = {(row[0], row[2]): score for row, score in zip(rows, scores, strict=True)}
    assert {pair: written[pair] for pair in stored} == stored
    assert rows == split_run(GOLDEN / "flat" / "run.trec")[0]
