"""`rankvideo tune` on the sample: its report, its cross-validated run, its refusals and its progress (the sweep
itself: test_evaluation_fusion.py)."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from helpers import SAMPLE
from typer.testing import CliRunner

from rankvideo_cli.cli import app
from rankvideo_cli.evaluation.fusion import parse_alphas
from rankvideo_cli.io.runs import read_run


def test_tune_command_on_the_sample(tmp_path: Path) -> None:
    run = read_run(SAMPLE / "first_stage.trec")
    rng = random.Random(1)
    scores = tmp_path / "scores.jsonl"
    scores.write_text(
        "".join(
            json.dumps({"qid": qid, "docid": c.docid, "logit_delta": rng.gauss(0, 2)}) + "\n"
            for qid, candidates in run.items()
            for c in candidates
        )
    )
    output = tmp_path / "tuned.trec"
    args = ["tune", str(SAMPLE / "first_stage.trec"), str(SAMPLE / "qrels.txt"), "--scores", str(scores)]
    result = CliRunner().invoke(app, [*args, "--folds", "2", "-o", str(output), "--format", "json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert len(payload["folds"]) == 2 and len(payload["grid"]) == 22
    assert "cross-validated nDCG@10" in result.stderr
    written = read_run(output)
    assert {qid: {c.docid for c in cands} for qid, cands in written.items()} == {
        qid: {c.docid for c in cands} for qid, cands in run.items()
    }
    again = tmp_path / "again.trec"
    CliRunner().invoke(app, [*args, "--folds", "2", "-o", str(again)])
    assert again.read_bytes() == output.read_bytes()
    for bad in (["--folds", "1"], ["--alphas", "2"], ["-o", str(scores)], ["--normalizations", "l2"]):
        failed = CliRunner().invoke(app, [*args, *bad])
        assert failed.exit_code == 2 and "Traceback" not in failed.output, failed.output


def test_tune_refuses_a_grid_too_fine_or_reversed_at_once(tmp_path: Path) -> None:
    """`--alphas 0:1:1e-7` ran silently for more than 10 minutes; `1:0:0.1` said it needed at least one ALPHA."""
    scores = tmp_path / "scores.jsonl"
    scores.write_text('{"qid": "q1", "docid": "v001", "logit_delta": 1.0}\n')
    args = ["tune", str(SAMPLE / "first_stage.trec"), str(SAMPLE / "qrels.txt"), "--scores", str(scores)]
    expected = {
        "0:1:1e-7": "--alphas 0:1:1e-7 gives 10,000,001 values; at most 1,001 (e.g. 0:1:0.001)",
        "0:1:1e-4": "--alphas 0:1:1e-4 gives 10,001 values; at most 1,001",
        "1:0:0.1": "--alphas 1:0:0.1: the range is reversed (START 1 > STOP 0): write 0:1:0.1",
        "0:1:-0.1": "the step must be above 0",
        ",".join(["0.5"] * 1002): "gives 1,002 values",
    }
    for alphas, words in expected.items():
        started = time.monotonic()
        failed = CliRunner().invoke(app, [*args, "--alphas", alphas])
        assert failed.exit_code == 2 and words in failed.stderr, failed.output
        assert failed.stdout == "" and len(failed.stderr.strip().splitlines()) == 1
        assert time.monotonic() - started < 10
    assert len(parse_alphas("0:1:0.001")) == 1001


def test_a_long_sweep_says_how_far_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rankvideo_cli import progress

    run = read_run(SAMPLE / "first_stage.trec")
    scores = tmp_path / "scores.jsonl"
    scores.write_text(
        "".join(
            json.dumps({"qid": qid, "docid": c.docid, "logit_delta": float(rank)}) + "\n"
            for qid, candidates in run.items()
            for rank, c in enumerate(candidates)
        )
    )
    clock = iter(range(0, 10_000, 7))  # each look at the clock is 7 s later
    monkeypatch.setattr(progress.time, "monotonic", lambda: float(next(clock)))
    args = ["tune", str(SAMPLE / "first_stage.trec"), str(SAMPLE / "qrels.txt"), "--scores", str(scores)]
    result = CliRunner().invoke(app, [*args, "--alphas", "0:1:0.1", "--folds", "2"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "tune: configurations evaluated" in line]
    assert lines and lines[-1].startswith("rankvideo: tune: configurations evaluated: 22/22, elapsed")


def test_every_format_tune_lists_works(tmp_path: Path) -> None:
    """`tune --format` listed tsv and csv and refused them; each now prints the table's rows (a row per fold and
    `all`: the setting chosen on every query, its mean there and the cross-validated mean)."""
    run = read_run(SAMPLE / "first_stage.trec")
    scores = tmp_path / "scores.jsonl"
    scores.write_text(
        "".join(
            json.dumps({"qid": qid, "docid": c.docid, "logit_delta": float(len(c.docid) + i)}) + "\n"
            for qid, candidates in run.items()
            for i, c in enumerate(candidates)
        )
    )
    args = [
        "tune",
        str(SAMPLE / "first_stage.trec"),
        str(SAMPLE / "qrels.txt"),
        "--scores",
        str(scores),
        "--folds",
        "2",
    ]
    payload = json.loads(CliRunner().invoke(app, [*args, "--format", "json"]).stdout)
    for fmt, separator in (("tsv", "\t"), ("csv", ",")):
        result = CliRunner().invoke(app, [*args, "--format", fmt])
        assert result.exit_code == 0, result.output
        rows = [line.split(separator) for line in result.stdout.splitlines()]
        assert rows[0] == ["measure", "fold", "queries", "alpha", "normalization", "train_mean", "test_mean"]
        assert [row[1] for row in rows[1:]] == ["0", "1", "all"] and {row[0] for row in rows[1:]} == {"nDCG@10"}
        assert float(rows[-1][6]) == payload["cross_validated"] and int(rows[-1][2]) == 4
        assert float(rows[-1][3]) == payload["chosen_on_all"]["alpha"]
        assert "cross-validated nDCG@10" in result.stderr
    table = CliRunner().invoke(app, [*args, "--format", "table"])
    assert table.exit_code == 0 and "by fold" in table.stdout
