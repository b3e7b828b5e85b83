"""`rankvideo rerank`, end to end through Typer's runner (and, for device workers, in real subprocesses), on the
shipped sample with the fake scorer; the tiny model where the model's computation is the subject.

- outputs: every input pair once, the model's order, raw scores, stderr reports, stdout byte-identical to the
  file, the run from stdin, missing videos and queries, depth, interpolation, hostile docids;
- refusals before anything loads: bad options, output locations, models that cannot load (one line, exit 2,
  nothing written); dry runs; the manifest's truth;
- reruns: every pair stored (no model loads), a store another rerank is writing, a torn write;
- full disks and unwritable places (simulated where the kernel reports them to a careful writer: `fsync` fails
  with ENOSPC, as NFS and quota-limited file systems report a failed write-back);
- `--devices`: one worker per device (two CPU workers stand in for two GPUs), byte-identical to one device; a
  killed worker reported, SIGTERM stopping every worker, and the rerun scoring only what is missing;
- `--prompt training`: the manifest, the prefix cache, the store keys, workers and the frame cache;
- `--reranker qwen3-vl-reranker`: the dry run and the manifest name it, its workers write its one-device run, and
  its scores (and each `--instruction`'s) are kept apart from rankvideo's in a shared store.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import ir_measures
import pytest
import torch
from helpers import (
    FAKE,
    FIRST_STAGE,
    QRELS,
    QUERIES,
    RERANKERS,
    SAMPLE,
    TINY,
    TRAINING,
    VIDEOS,
    Reranked,
    assert_refused,
    invoke,
    invoke_ok,
    manifest_of,
    rerank_args,
    rerank_sample,
    reranker_args,
    sample_rerank_args,
    score_records,
    stored_rerank_args,
    write_inputs,
)
from typer.testing import CliRunner

from rankvideo_cli.cli import app
from rankvideo_cli.errors import UsageError
from rankvideo_cli.io.runs import read_run
from rankvideo_cli.jobs.devices import expand_devices
from rankvideo_cli.pipeline.shards import Shard
from rankvideo_cli.pipeline.store import StoreWriter

MISSING_DOCID = "v404"  # a candidate of the sample without a video file


SCORE_FIELDS = {"logit_delta", "logit_delta_yes_minus_no", "p_yes", "logprob_yes", "logprob_no"}


def trec_lines(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_rerank_writes_every_input_pair_once_and_only_the_run(reranked: Reranked) -> None:
    assert reranked.result.stdout == ""  # -o: stdout carries nothing
    first_stage = read_run(FIRST_STAGE)
    rows = trec_lines(reranked.output.read_text())
    assert sorted((row[0], row[2]) for row in rows) == sorted(
        (qid, candidate.docid) for qid, candidates in first_stage.items() for candidate in candidates
    )
    assert {row[1] for row in rows} == {"Q0"} and {row[5] for row in rows} == {"rv-test"}
    for qid in first_stage:
        assert [int(row[3]) for row in rows if row[0] == qid] == list(range(1, len(first_stage[qid]) + 1))


def test_rerank_order_follows_the_model_scores_and_the_missing_video_comes_last(reranked: Reranked) -> None:
    written = read_run(reranked.output)  # ordered as trec_eval orders it: score desc, docid desc
    for qid, candidates in written.items():
        docids = [candidate.docid for candidate in candidates]
        scored = [docid for docid in docids if (qid, docid) in reranked.scores]
        by_model = sorted(scored, key=lambda docid: (reranked.scores[qid, docid]["logit_delta"], docid), reverse=True)
        assert docids[: len(scored)] == by_model
        assert docids[len(scored) :] == [MISSING_DOCID]
        for candidate in candidates[: len(scored)]:
            assert candidate.score == reranked.scores[qid, candidate.docid]["logit_delta"]


def test_rerank_raw_scores_file(reranked: Reranked) -> None:
    assert len(reranked.scores) == 36  # 4 queries x 9 candidates with a video file
    for record in reranked.scores.values():
        assert set(record) >= SCORE_FIELDS and record["video"].endswith(f"{record['docid']}.mp4")
        assert record["logit_delta"] == record["logit_delta_yes_minus_no"]
        assert record["logit_delta"] == pytest.approx(record["logprob_yes"] - record["logprob_no"], abs=1e-6)


def test_rerank_reports_on_stderr(reranked: Reranked) -> None:
    stderr = reranked.result.stderr
    assert "MEANINGLESS" in stderr  # the fake scorer says loudly what it is
    assert f"1 candidate video has no file under {VIDEOS}" in stderr
    assert "4 queries, 40 candidates in; 40 written (36 reranked, 4 unscored kept in first-stage order" in stderr
    assert "4 pairs without a video file (keep)" in stderr
    assert "nDCG@10" in stderr and "first stage" in stderr and "W/T/L" in stderr


def test_rerank_evaluation_equals_ir_measures_on_the_written_file(reranked: Reranked) -> None:
    expected = ir_measures.calc_aggregate(
        [ir_measures.nDCG @ 10],
        ir_measures.read_trec_qrels(str(QRELS)),
        ir_measures.read_trec_run(str(reranked.output)),
    )
    result = invoke("eval", reranked.output, QRELS, "-m", "nDCG@10", "--format", "json")
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.stdout)["runs"]
    assert run["aggregate"]["nDCG@10"] == expected[ir_measures.nDCG @ 10]


def test_rerank_to_stdout_is_byte_identical_to_the_file_and_to_a_fresh_run(reranked: Reranked, tmp_path: Path) -> None:
    to_stdout = invoke(*sample_rerank_args(VIDEOS, "--tag", "rv-test", "--cache", tmp_path / "fresh-store"))
    assert to_stdout.exit_code == 0, to_stdout.output
    assert to_stdout.stdout == reranked.output.read_text()  # scored again from scratch: same bytes


def test_rerank_reads_the_run_from_stdin(reranked: Reranked, tmp_path: Path) -> None:
    runner = CliRunner()
    arguments = ["rerank", "-", str(QUERIES), "--videos", str(VIDEOS), "--model", FAKE, "--tag", "rv-test"]
    result = runner.invoke(app, [*arguments, "--cache", str(tmp_path / "store")], input=FIRST_STAGE.read_text())
    assert result.exit_code == 0, result.output
    assert result.stdout == reranked.output.read_text()


def test_missing_video_policies(tmp_path: Path) -> None:
    refused = invoke(*sample_rerank_args(VIDEOS, "--on-missing-video", "error", "--cache", tmp_path / "store"))
    assert refused.exit_code != 0 and refused.stdout == ""
    assert "1 candidate video is missing" in refused.stderr and "Traceback" not in refused.stderr

    dropped = invoke(*sample_rerank_args(VIDEOS, "--on-missing-video", "drop", "--cache", tmp_path / "store"))
    assert dropped.exit_code == 0, dropped.output
    rows = trec_lines(dropped.stdout)
    assert len(rows) == 36 and MISSING_DOCID not in {row[2] for row in rows}
    assert "4 candidates dropped as asked" in dropped.stderr


def test_depth_keeps_the_rest_in_first_stage_order(tmp_path: Path) -> None:
    result = invoke(*sample_rerank_args(VIDEOS, "--depth", "3", "--cache", tmp_path / "store"))
    assert result.exit_code == 0, result.output
    rows = trec_lines(result.stdout)
    for qid, candidates in read_run(FIRST_STAGE).items():
        order = [row[2] for row in rows if row[0] == qid]
        top = [candidate.docid for candidate in candidates[:3]]
        scored = [docid for docid in top if docid != MISSING_DOCID]
        assert set(order[: len(scored)]) == set(scored)
        unscored_within_depth = [docid for docid in top if docid == MISSING_DOCID]
        assert order[len(scored) :] == unscored_within_depth + [candidate.docid for candidate in candidates[3:]]
    assert "below depth 3" in result.stderr


def test_a_symlinked_escape_or_dot_dot_docid_is_never_opened(tmp_path: Path) -> None:
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 v001 1 2.0 fs\nq1 Q0 ../videos/v002 2 1.0 fs\n")
    result = invoke("rerank", run, QUERIES, "--videos", VIDEOS, "--model", FAKE, "--cache", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert "1 of them rejected (docid '../videos/v002': path '../videos/v002.mp4' would leave" in result.stderr
    assert [row[2] for row in trec_lines(result.stdout)] == ["v001", "../videos/v002"]  # kept, unscored


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ("q1 Q0 v001 1 1.0 x\nq1 Q0 v002 2 abc x\n", [":2: score must be a number, got 'abc'"]),
        ("q1 Q0 v001 1 1.0\n", [":1: expected 6 columns"]),
        (
            "q1 Q0 v001 1 1.0 x\nq1 Q0 v001 2 0.5 x\n",
            [":2: duplicate document 'v001' for query 'q1' (first at line 1)"],
        ),
        ("", [": empty file"]),
        ("q9 Q0 v001 1 1.0 x\n", [":1: query 'q9' is not in", "--missing-query skip"]),
    ],
)
def test_bad_runs_are_one_line_errors_naming_file_and_line(tmp_path: Path, content: str, fragments: list[str]) -> None:
    run = tmp_path / "bad.trec"
    run.write_text(content)
    assert_refused(invoke("rerank", run, *sample_rerank_args(VIDEOS)[2:]), *fragments)


def test_undecodable_bytes_are_a_one_line_error(tmp_path: Path) -> None:
    run = tmp_path / "latin1.trec"
    run.write_bytes(b"q1 Q0 v\xe9 1 1.0 x\n")
    assert_refused(invoke("rerank", run, *sample_rerank_args(VIDEOS)[2:]), "latin1.trec:1: not UTF-8 text")


def test_missing_query_skip_keeps_the_query_in_first_stage_order(tmp_path: Path) -> None:
    run = tmp_path / "run.trec"
    run.write_text(FIRST_STAGE.read_text() + "q9 Q0 v001 1 0.5 fs\nq9 Q0 v002 2 0.4 fs\n")
    result = invoke(
        "rerank", run, *sample_rerank_args(VIDEOS, "--missing-query", "skip", "--cache", tmp_path / "s")[2:]
    )
    assert result.exit_code == 0, result.output
    assert [row[2] for row in trec_lines(result.stdout) if row[0] == "q9"] == ["v001", "v002"]
    assert "1 query without text kept in first-stage order (q9)" in result.stderr


def test_interpolation_mixes_model_and_first_stage(tmp_path: Path) -> None:
    only_first_stage = invoke(*sample_rerank_args(VIDEOS, "--interpolate", "0", "--cache", tmp_path / "store"))
    assert only_first_stage.exit_code == 0, only_first_stage.output
    first_stage = read_run(FIRST_STAGE)
    rows = trec_lines(only_first_stage.stdout)
    for qid, candidates in first_stage.items():
        assert [row[2] for row in rows if row[0] == qid] == [
            candidate.docid for candidate in candidates if candidate.docid != MISSING_DOCID
        ] + [MISSING_DOCID]
    out_of_range = invoke(*sample_rerank_args(VIDEOS, "--interpolate", "1.5"))
    assert out_of_range.exit_code == 2 and "Traceback" not in out_of_range.output


def test_model_that_cannot_be_found_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    result = invoke(*sample_rerank_args(VIDEOS)[:-2], "--model", "hltcoe/RankVideo", "--cache", tmp_path / "store")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "hltcoe/RankVideo" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("rankvideo: ") and "HF_HUB_OFFLINE" in last


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (["--normalization", "zscore"], ["--normalization applies to --interpolate only"]),
        (["--depth", "0"], ["--depth must be at least 1, got 0"]),
        (["--interpolate", "1.5"], ["--interpolate must be between 0 and 1, got 1.5"]),
        (["--batch-size", "0"], ["--batch-size", "at least 1", "0"]),
        (["--batch-size", "-4"], ["--batch-size", "-4"]),
        (["--decode-workers", "0"], ["--decode-workers"]),
        (["--prefetch", "-1"], ["--prefetch"]),
        (["--shard", "2/2"], ["--shard"]),
        (["--shard", "0/2", "-o", "x.trec"], ["--shard", "merge"]),
        (["--video-pattern", "{id}.mp4"], ["--video-pattern", "{docid}"]),
        (["--tag", "two words"], ["--tag"]),
        (["--qrels", QRELS, "-m", "bogus"], ["unknown measure 'bogus'"]),
        (["--qrels", QRELS, "-m", "NumRel(rel=2)"], ["no installed ir-measures backend"]),
    ],
)
def test_bad_options_are_refused_before_the_model_loads(
    no_model, tmp_path: Path, options, fragments, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_refused(rerank_sample(*options), *fragments)
    assert list(tmp_path.iterdir()) == []  # no store, manifest or output was created


@pytest.mark.parametrize(
    ("where", "fragments"),
    [
        ("-o run", ["-o", "same file as the run", "never overwrite"]),
        ("-o queries", ["-o", "same file as the queries"]),
        ("-o qrels", ["-o", "same file as --qrels"]),
        ("--scores run", ["--scores", "same file as the run"]),
        ("--scores out", ["--scores", "-o", "same file"]),
        ("--manifest out", ["--manifest", "same file"]),
        ("-o dir", ["-o", "is a directory"]),
        ("-o under-a-file", ["-o", "not a directory"]),
        ("-o proc", ["-o", "cannot write in /proc"]),
        ("--scores sys", ["--scores", "cannot write in /sys"]),
        ("--cache file", ["--cache", "not a directory"]),
        ("-o in-store", ["-o", "inside the score store"]),
        ("-o symlink-to-run", ["same file as the run"]),
    ],
)
def test_bad_output_locations_are_refused_up_front(no_model, tmp_path: Path, where: str, fragments) -> None:
    work = tmp_path / "work"
    work.mkdir()
    run = work / "run.trec"
    run.write_bytes(FIRST_STAGE.read_bytes())
    (work / "a-file").write_text("x")
    (work / "link.trec").symlink_to(run)
    targets = {
        "run": run,
        "queries": QUERIES,
        "qrels": QRELS,
        "out": work / "out.trec",
        "dir": work,
        "under-a-file": work / "a-file" / "run.trec",
        "proc": Path("/proc/rankvideo-test.trec"),
        "sys": Path("/sys/rankvideo-test.jsonl"),
        "file": work / "a-file",
        "in-store": work / "store" / "run.trec",
        "symlink-to-run": work / "link.trec",
    }
    option, name = where.split()
    extra = [option, targets[name]]
    if option in ("--scores", "--manifest"):
        extra += ["-o", work / "out.trec"]
    if name == "in-store":
        extra += ["--cache", work / "store"]
    result = invoke("rerank", run, QUERIES, "--videos", VIDEOS, "--qrels", QRELS, *extra)
    assert_refused(result, *fragments)
    assert run.read_bytes() == FIRST_STAGE.read_bytes()
    assert not (work / "out.trec").exists() and not (work / "store").exists()


def test_dash_output_is_stdout_and_leaves_no_dash_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = rerank_sample("-o", "-")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 40
    assert sorted(path.name for path in tmp_path.iterdir()) == ["rankvideo-scores"]  # the README's default store
    manifest = json.loads((tmp_path / "rankvideo-scores" / "run.manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["output"] is None


def test_output_through_a_symlink_replaces_the_target_not_the_link(tmp_path: Path) -> None:
    target = tmp_path / "results" / "reranked.trec"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "latest.trec"
    link.symlink_to(target)
    result = rerank_sample("-o", link, "--cache", tmp_path / "store")
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert len(target.read_text().splitlines()) == 40


@pytest.mark.parametrize("reranker", RERANKERS)
def test_dry_run_prints_the_plan_loads_nothing_and_writes_nothing(
    reranker: str, no_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = rerank_sample("--dry-run", "-o", tmp_path / "out.trec", *reranker_args(reranker))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    chosen_by = "default" if reranker == "rankvideo" else "--reranker"
    assert f"rankvideo: reranker: {reranker} (chosen by {chosen_by})\n" in result.stderr
    assert "40 pairs within depth 100" in result.stderr
    assert "12 found, 1 missing (4 pairs" in result.stderr
    assert "36 to score (12 videos to decode)" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_dry_run_counts_what_the_store_already_holds(tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = rerank_sample("--cache", store, "--depth", "3")
    assert first.exit_code == 0, first.output
    plan = rerank_sample("--cache", store, "--dry-run")
    assert plan.exit_code == 0, plan.output
    records = [json.loads(line) for line in (store / "scores.jsonl").read_text().splitlines()]
    stored = sum(record["kind"] == "score" for record in records)
    assert 0 < stored < 36  # depth 3: some of the 36 pairs that have a video
    assert f"({FAKE}): {stored} pairs already scored" in plan.stderr
    assert f"{36 - stored} to score" in plan.stderr


def test_dry_run_json_is_the_plan_with_its_checks_on_stdout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = rerank_sample("--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert (plan["pairs_within_depth"], plan["videos_found"], plan["missing_videos"]) == (40, 12, 1)
    checks = {check["check"]: check for check in plan["checks"]}
    assert checks["model"]["status"] == "ok" and FAKE in checks["model"]["detail"]
    assert checks["device"]["detail"].startswith("cpu, float32")
    assert checks["score store"]["status"] == "ok"
    assert plan["predicted_gpu_time"]["seconds"] is None  # the fake scorer has no size to predict from
    assert "dry run:" not in result.stderr  # the plan is on stdout only
    assert list(tmp_path.iterdir()) == []


def test_a_dry_run_counts_the_pairs_of_this_runs_model_not_another_ones(tmp_path: Path) -> None:
    output = tmp_path / "run.trec"
    invoke_ok(*sample_rerank_args(VIDEOS, "-o", output))  # the store holds the fake scorer's 36 pairs
    plan = json.loads(invoke_ok(*sample_rerank_args(VIDEOS, "-o", output, "--dry-run", "--json", model=TINY)).stdout)
    (entry,) = plan["by_stored_model"]
    assert entry["this_run"] and entry["model_name"] == TINY
    assert (entry["pairs_cached"], entry["pairs_to_score"]) == (0, 36)
    assert plan["ok"] is True


def test_a_dry_run_checks_every_device_of_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if torch.cuda.is_available():
        pytest.xfail("this machine has a CUDA device: the refusal is for machines without one")
    monkeypatch.chdir(tmp_path)
    result = rerank_sample("--dry-run", "--devices", "cuda:0,cuda:1", "-o", tmp_path / "run.trec", model=TINY)
    assert result.exit_code == 1, result.output
    assert "rankvideo: devices: --devices: cuda:0 does not exist: 0 GPUs are visible" in result.stderr


def test_a_dry_run_on_the_cpu_predicts_no_gpu_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = rerank_sample("--dry-run", "--device", "cpu", model=TINY)
    assert result.exit_code == 0, result.output
    assert "rankvideo: GPU time: none: the run is asked to score on the CPU" in result.stderr


def test_json_without_dry_run_is_refused() -> None:
    assert_refused(rerank_sample("--json"), "--json prints the plan of a dry run: give it with --dry-run")


def test_a_dry_run_fails_on_a_model_the_real_run_could_not_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = rerank_sample("--dry-run", "--cache-dir", tmp_path / "hub", model="hltcoe/RankVideo")
    assert result.exit_code == 1, result.output
    *_, problem, summary = result.stderr.splitlines()
    assert problem.startswith("rankvideo: model: model 'hltcoe/RankVideo' is not in the Hugging Face cache")
    assert summary == "rankvideo: 1 problem: the real run would fail (see above)"
    assert "dry run: 4 queries" in result.stderr  # the plan is still shown
    assert list(tmp_path.iterdir()) == []


def test_a_dry_run_fails_on_a_device_this_machine_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if torch.cuda.is_available():
        pytest.xfail("this machine has a CUDA device: the refusal is for machines without one")
    monkeypatch.chdir(tmp_path)
    result = rerank_sample("--dry-run", "--device", "cuda", model=TINY)
    assert result.exit_code == 1, result.output
    assert "rankvideo: device: device 'cuda' requested but no CUDA device is available" in result.stderr


def test_a_dry_run_that_passes_means_the_real_run_gets_past_loading(tiny_model_dir: Path, tmp_path: Path) -> None:
    arguments = ("--depth", "1", "-o", tmp_path / "run.trec", "--device", "cpu")
    planned = rerank_sample("--dry-run", *arguments, model=TINY)
    assert planned.exit_code == 0, planned.output
    assert "warn: model: tiny-random: random weights" in planned.stderr
    assert "GPU time: none: the run is asked to score on the CPU" in planned.stderr
    ran = rerank_sample(*arguments, model=TINY)
    assert ran.exit_code == 0, ran.output
    assert manifest_of(tmp_path / "run.trec")["status"] == "complete"


def test_manifest_says_failed_with_the_reason_when_the_run_file_was_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rankvideo_cli.jobs.rerank as rerank_command

    def broken_finish(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rerank_command, "finish_run", broken_finish)
    output = tmp_path / "out.trec"
    result = rerank_sample("-o", output)
    assert result.exit_code != 0 and not output.exists()
    manifest = json.loads((tmp_path / "out.trec.manifest.json").read_text())
    assert manifest["status"] == "failed" and "No space left on device" in manifest["reason"]


def test_manifest_records_stdin_as_stdin_with_the_checksum_of_the_bytes_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    monkeypatch.chdir(tmp_path)
    (tmp_path / "-").write_text("a file literally named dash\n")
    data = FIRST_STAGE.read_bytes()
    result = invoke(
        "rerank",
        "-",
        QUERIES,
        "--videos",
        VIDEOS,
        "--model",
        FAKE,
        "-o",
        tmp_path / "out.trec",
        input=data.decode(),
    )
    assert result.exit_code == 0, result.output
    described = json.loads((tmp_path / "out.trec.manifest.json").read_text())["inputs"]["run"]
    assert described == {"path": "-", "stdin": True, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize(
    ("typo", "meant"),
    [(typo, "tiny-random") for typo in ("tiny_random", "tiny-randm", "Tiny-Random", "tinyrandom")]
    + [(typo, FAKE) for typo in ("fake_scorer", "fake-scorr", "Fake-Scorer")],
)
def test_a_near_miss_of_a_named_model_gets_a_did_you_mean(no_model, typo: str, meant: str) -> None:
    assert_refused(rerank_sample("--model", typo), f"unknown model {typo!r}", f"did you mean {meant!r}?")
    assert_refused(invoke("score", "-q", "dog", VIDEOS / "v001.mp4", "--model", typo), "did you mean")


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        (f"{FAKE}:latency=1", "'latency=1' is not one of seconds=, crash-after=, oom-above="),
        (f"{FAKE}:seconds=fast", "seconds takes a number, not 'fast'"),
        (f"{FAKE}:crash-after=-1", "crash-after must be at least 0"),
        (f"{FAKE}:seconds=nan", "seconds takes a finite number, not 'nan'"),
        (f"{FAKE}:seconds=inf", "seconds takes a finite number, not 'inf'"),
    ],
)
def test_a_fake_scorer_with_a_bad_setting_is_refused(no_model, model: str, problem: str) -> None:
    assert_refused(rerank_sample("--model", model), f"--model {model}: {problem}")


@pytest.mark.parametrize("model", [FAKE, TINY])
def test_a_revision_of_a_named_model_is_refused(no_model, model: str) -> None:
    assert_refused(
        rerank_sample("--revision", "main", model=model), f"--revision applies to hub ids only, not to {model}"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_the_fake_scorer_refuses_an_unavailable_device_first_time_and_on_a_stored_rerun(tmp_path: Path) -> None:
    """It computes nowhere, but it answers for a run as a model would: a rerun answered from the store must not
    accept what the run that filled it refused, nor write a run and then fail on its manifest."""
    store = tmp_path / "store"
    invoke_ok(*sample_rerank_args(VIDEOS, "--cache", store, "-o", tmp_path / "first.trec"))
    for name in ("fresh", "stored"):
        cache = tmp_path / name if name == "fresh" else store
        refused = rerank_sample("--device", "cuda", "--cache", cache, "-o", tmp_path / f"{name}.trec")
        assert refused.exit_code == 2 and "no CUDA device is available" in refused.stderr, refused.output
        assert not (tmp_path / f"{name}.trec").exists()


def test_an_uncached_hub_id_with_the_hub_out_of_reach_fails_at_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused at once, never leaves
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    result = invoke("score", "-q", "dog", VIDEOS / "v001.mp4", "--model", "someone/NoSuchModel")
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert "not in the Hugging Face cache" in line and "cannot be reached" in line and "hf download" in line


@pytest.mark.parametrize("offline", [False, True], ids=["hub-out-of-reach", "HF_HUB_OFFLINE"])
def test_a_rerank_whose_model_cannot_load_writes_nothing(offline: bool, tmp_path: Path, monkeypatch) -> None:
    """It left an empty OUTPUT.scores/scores.jsonl behind: the store was opened before the model was looked for."""
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1") if offline else monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused at once, never leaves
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    output = tmp_path / "out" / "reranked.trec"
    result = invoke("rerank", FIRST_STAGE, QUERIES, "--videos", VIDEOS, "--model", "someone/NoSuchModel", "-o", output)
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert "'someone/NoSuchModel' is not in the Hugging Face cache" in line and "hf download" in line
    assert ("HF_HUB_OFFLINE=1 forbids" in line) == offline and ("cannot be reached" in line) != offline
    assert not (tmp_path / "out").exists()


def test_long_docids_extensions_in_docids_and_the_paths_tried(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "v001.mp4").write_bytes((VIDEOS / "v001.mp4").read_bytes())
    long_docid = "x" * 300  # longer than NAME_MAX: stat fails with ENAMETOOLONG
    run = tmp_path / "run.trec"
    run.write_text(f"q1 Q0 v001.mp4 1 3.0 t\nq1 Q0 {long_docid} 2 2.0 t\nq1 Q0 v404.mp4 3 1.0 t\n")
    queries = tmp_path / "queries.tsv"
    queries.write_text("q1\ta person\n")
    args = ["rerank", run, queries, "--videos", videos, "--video-pattern", "{docid}", "--model", FAKE]
    result = invoke(*args, "--cache", tmp_path / "store")
    assert result.exit_code == 0, result.output
    assert "1 pair scored now" in result.stderr  # v001.mp4 resolved to itself
    assert "2 candidate videos have no file" in result.stderr and "tried v404.mp4" in result.stderr
    assert [line.split()[2] for line in result.stdout.splitlines()] == ["v001.mp4", long_docid, "v404.mp4"]
    refused = invoke(*args, "--cache", tmp_path / "store", "--on-missing-video", "error")
    assert refused.exit_code == 2 and "tried v404.mp4" in refused.stderr


def test_scores_near_the_float_range_interpolate_without_nan(tmp_path: Path) -> None:
    lines = FIRST_STAGE.read_text().splitlines()
    huge = tmp_path / "huge.trec"
    extremes = ["1e308", "-1.79e308", "1.7976931348623157e308", "-5e-324"]
    huge.write_text(
        "".join(" ".join([*line.split()[:4], extremes[index % 4], "t"]) + "\n" for index, line in enumerate(lines))
    )
    for normalization in ("minmax", "zscore", "none"):
        result = invoke(
            "rerank",
            huge,
            QUERIES,
            "--videos",
            VIDEOS,
            "--model",
            FAKE,
            "--cache",
            tmp_path / "store",
            "--interpolate",
            "0.5",
            "--normalization",
            normalization,
        )
        assert result.exit_code == 0, result.output
        scores = [float(line.split()[4]) for line in result.stdout.splitlines()]
        assert len(scores) == 40 and all(score == score and abs(score) != float("inf") for score in scores)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An uninterrupted rerank of the sample: its run and its store."""
    work = tmp_path_factory.mktemp("reference")
    result = CliRunner().invoke(app, stored_rerank_args(work / "run.trec", work / "store"))
    assert result.exit_code == 0, result.output
    return work / "run.trec", work / "store"


@pytest.fixture
def copied_store(reference, tmp_path: Path) -> Path:
    """A copy of the reference run's store, for a test to rerun into (or damage)."""
    copied = tmp_path / "store"
    shutil.copytree(reference[1], copied)
    return copied


def score_lines(store: Path) -> list[str]:
    return [line for line in (store / "scores.jsonl").read_text().splitlines() if '"kind":"score"' in line]


def test_a_rerun_with_every_pair_stored_loads_no_model(reference, copied_store: Path, tmp_path: Path, no_model) -> None:
    run, _store = reference
    copied = copied_store
    result = CliRunner().invoke(app, stored_rerank_args(tmp_path / "again.trec", copied))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "again.trec").read_bytes() == run.read_bytes()
    assert "0 pairs scored now, 36 from the score store" in result.stderr
    manifest = json.loads((tmp_path / "again.trec.manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["batch_size"].startswith("not loaded")
    reference_manifest = json.loads(run.with_name(run.name + ".manifest.json").read_text())
    assert manifest["model_fingerprint"] == reference_manifest["model_fingerprint"]


def test_a_store_another_rerank_is_writing_is_refused_before_the_model_loads(
    copied_store: Path, tmp_path: Path, no_model
) -> None:
    copied = copied_store
    with StoreWriter(copied):  # the lock a running rerank holds on scores.jsonl
        for extra in ((), ("--dry-run",), ("--retry-bad-videos",)):
            result = CliRunner().invoke(app, stored_rerank_args(tmp_path / "out.trec", copied, *extra))
            assert result.exit_code == 2, result.output
            assert f"{copied / 'scores.jsonl'}: another rankvideo process is writing this score store" in result.stderr
            assert "MEANINGLESS" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
            assert not (tmp_path / "out.trec").exists()


def test_a_run_resumed_after_a_torn_write_is_the_uninterrupted_run(
    reference, copied_store: Path, tmp_path: Path
) -> None:
    """A crash in the middle of a video's write (a node lost, NFS) leaves some of its scores stored; the rest are
    scored again in the batch they had in the uninterrupted run, so the run is the same byte for byte."""
    run, store = reference
    copied = copied_store
    lines = (copied / "scores.jsonl").read_text().splitlines(keepends=True)
    videos = Counter(json.loads(line)["video"] for line in lines if '"kind":"score"' in line)
    torn_video = max(videos, key=lambda video: (videos[video], video))
    assert videos[torn_video] >= 3
    positions = [number for number, line in enumerate(lines) if '"kind":"score"' in line and torn_video in line]
    kept = [line for number, line in enumerate(lines) if number not in positions[1:]]
    # the first of the video's scores made it, the second only half: the write was torn there
    torn = "".join(kept) + lines[positions[1]][: len(lines[positions[1]]) // 2]
    (copied / "scores.jsonl").write_text(torn)

    result = CliRunner().invoke(app, stored_rerank_args(tmp_path / "resumed.trec", copied))
    assert result.exit_code == 0, result.output
    assert f"{videos[torn_video] - 1} pairs scored now" in result.stderr
    assert (tmp_path / "resumed.trec").read_bytes() == run.read_bytes()
    assert sorted(score_lines(copied)) == sorted(score_lines(store))  # each pair stored once, with equal scores


def test_device_workers_are_not_started_over_a_store_another_job_is_writing(
    copied_store: Path, tmp_path: Path, no_model
) -> None:

    copied = copied_store
    with StoreWriter(copied, Shard(1, 2)):  # another --devices job's worker 1
        result = CliRunner().invoke(app, stored_rerank_args(tmp_path / "out.trec", copied, "--devices", "cpu,cpu"))
    assert result.exit_code == 2, result.output
    assert "scores.shard-0001-of-0002.jsonl: another rankvideo process is writing" in result.stderr
    assert "worker 0" not in result.stderr and not (tmp_path / "out.trec").exists()


def rerank_inputs(run: Path, queries: Path, *extra: str):
    arguments = ["rerank", str(run), str(queries), "--videos", str(SAMPLE / "videos"), "--model", FAKE]
    return CliRunner().invoke(app, [*arguments, "--decode-workers", "1", *extra])


def test_a_full_disk_under_the_run_file_is_one_line_and_keeps_the_old_run_and_the_store(
    tmp_path: Path, full_disk
) -> None:
    run, queries = write_inputs(tmp_path)
    disk = tmp_path / "disk"
    disk.mkdir()
    output = disk / "reranked.trec"
    output.write_text("the previous run\n")
    store = tmp_path / "store"
    full_disk.fill(disk)
    failed = rerank_inputs(
        run, queries, "-o", str(output), "--cache", str(store), "--manifest", str(tmp_path / "m.json")
    )
    assert failed.exit_code == 1, failed.output
    assert "Traceback" not in failed.output
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith(f"rankvideo: {output}: cannot write: No space left on device")
    assert output.read_text() == "the previous run\n" and list(disk.iterdir()) == [output]
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert manifest["status"] == "failed" and "No space left on device" in manifest["reason"]
    assert manifest["counts"]["pairs_scored"] == 2  # the scores are in the store: nothing to redo

    beside = rerank_inputs(run, queries, "-o", str(output), "--cache", str(store))  # the manifest on the full disk too
    assert beside.exit_code == 1 and "Traceback" not in beside.output
    assert "rankvideo: no manifest: " in beside.stderr and "0 pairs scored now" not in beside.stderr

    again = rerank_inputs(run, queries, "-o", str(tmp_path / "elsewhere.trec"), "--cache", str(store))
    assert again.exit_code == 0, again.output
    assert "0 pairs scored now, 2 from the score store" in again.stderr


def test_an_unusable_rankvideo_cache_is_refused_before_anything_loads(tmp_path: Path, monkeypatch) -> None:
    run, queries = write_inputs(tmp_path)
    not_a_folder = tmp_path / "cache-file"
    not_a_folder.write_text("a file\n")
    for cache, problem in ((not_a_folder, "exists and is not a directory"), (not_a_folder / "sub", "not a directory")):
        monkeypatch.setenv("RANKVIDEO_CACHE", str(cache))
        for arguments in (
            ["rerank", str(run), str(queries), "--videos", str(SAMPLE / "videos"), "--model", FAKE],
            ["sample", str(run), "--videos", str(SAMPLE / "videos"), "--frames-cache", str(tmp_path / "frames")],
            ["videos", str(SAMPLE / "videos")],
            ["score", "--query", "a bike", str(SAMPLE / "videos" / "v001.mp4"), "--model", FAKE],
        ):
            result = CliRunner().invoke(app, arguments)
            assert result.exit_code == 2, (arguments, result.output)
            assert result.stderr.startswith(f"rankvideo: $RANKVIDEO_CACHE {cache}: ") and problem in result.stderr
            assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "frames").exists()


def test_manifests_get_the_permissions_of_the_run(tmp_path: Path) -> None:
    _run, queries = write_inputs(tmp_path)
    only_missing = tmp_path / "only-missing.trec"
    only_missing.write_text("q1 Q0 v404 1 7.0 bm25\n")  # no video: no model is loaded
    output = tmp_path / "out.trec"
    arguments = ["rerank", str(only_missing), str(queries), "--videos", str(SAMPLE / "videos"), "-o", str(output)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    manifest = tmp_path / "out.trec.manifest.json"
    run_mode, manifest_mode = stat.S_IMODE(output.stat().st_mode), stat.S_IMODE(manifest.stat().st_mode)
    assert manifest_mode == run_mode and run_mode & 0o044  # readable by the group and others, like the run


PAIRS_WITH_VIDEO = 36  # 4 queries x 9 candidates with a video file


def start(args: list[str], **environment: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "rankvideo_cli.cli", *args]
    env = {**os.environ, **environment}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def worker_pids(job: subprocess.Popen, count: int, seen: list[str]) -> dict[int, int]:
    """Read the parent's stderr until it has announced `count` workers: {shard index: pid}."""
    pids: dict[int, int] = {}
    assert job.stderr is not None
    while len(pids) < count:
        line = job.stderr.readline()
        assert line, f"the parent ended before starting {count} workers: {''.join(seen)}"
        seen.append(line)
        if line.startswith("rankvideo: worker ") and ": pid " in line:
            index = int(line.split()[2])
            pids[index] = int(line.rsplit("pid ", 1)[1])
    return pids


def long_query(words: int, seed: int) -> str:
    """`words` words of the sample queries' vocabulary in a seeded order (about as many tokens)."""
    lines = (SAMPLE / "queries.tsv").read_text().splitlines()[1:]
    vocabulary = sorted({word for line in lines for word in line.split("\t")[1].split()})
    return " ".join(random.Random(seed).choice(vocabulary) for _ in range(words))


@pytest.fixture(scope="module")
def single_device_runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, Path]]:
    """The run and raw scores of a plain one-device rerank by a reranker (each made once): what every --devices
    run of that reranker must equal."""
    made: dict[str, tuple[Path, Path]] = {}

    def single_device_run(reranker: str) -> tuple[Path, Path]:
        if reranker not in made:
            directory = tmp_path_factory.mktemp(f"single-{reranker}")
            output, scores = directory / "single.trec", directory / "single.scores.jsonl"
            args = rerank_args(output, *reranker_args(reranker), "--scores", str(scores), "--decode-workers", "1")
            completed = CliRunner().invoke(app, args)
            assert completed.exit_code == 0, completed.output
            made[reranker] = output, scores
        return made[reranker]

    return single_device_run


@pytest.fixture(scope="module")
def single_device_run(single_device_runs) -> tuple[Path, Path]:
    """The run and raw scores of a plain one-device rankvideo rerank."""
    return single_device_runs("rankvideo")


def test_gpus_that_are_not_there_are_refused() -> None:
    import torch

    if torch.cuda.device_count():
        pytest.skip("this machine has GPUs: the refusal is for a machine without")
    with pytest.raises(UsageError, match="--devices all: no GPU is visible"):
        expand_devices(["all"])
    with pytest.raises(UsageError, match="cuda:0 does not exist: 0 GPUs are visible"):
        expand_devices(["cuda:0"])
    assert expand_devices(["cpu", "cpu"]) == ["cpu", "cpu"]


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--devices", "cpu,cpu", "--shard", "0/2"], "--devices runs every shard itself on this node"),
        (["--devices", "cpu,cpu", "--device", "cpu"], "--device and --devices: give one of them"),
        (["--devices", "cuda"], "name the GPU's index"),
        (["--devices", "cuda:1,cuda:1"], "cuda:1 is named twice"),
    ],
)
def test_bad_devices_options_fail_before_anything_runs(tmp_path: Path, extra: list[str], said: str) -> None:
    output = tmp_path / "out.trec"
    completed = CliRunner().invoke(app, rerank_args(output, *extra))
    assert completed.exit_code == 2
    assert said in completed.output
    assert list(tmp_path.iterdir()) == []


def test_devices_refuse_a_run_from_stdin(tmp_path: Path) -> None:
    args = rerank_args(tmp_path / "out.trec", "--devices", "cpu,cpu")
    args[1] = "-"
    completed = CliRunner().invoke(app, args, input=(SAMPLE / "first_stage.trec").read_text())
    assert completed.exit_code == 2
    assert "every worker reads the run, so it must be a file, not stdin" in completed.output


@pytest.mark.parametrize("reranker", RERANKERS)
def test_two_workers_write_the_single_device_run(reranker: str, single_device_runs, tmp_path: Path) -> None:
    reference, reference_scores = single_device_runs(reranker)
    output, scores = tmp_path / "devices.trec", tmp_path / "devices.scores.jsonl"
    job = start(rerank_args(output, *reranker_args(reranker), "--devices", "cpu,cpu", "--scores", str(scores)))
    _stdout, stderr = job.communicate(timeout=600)
    assert job.returncode == 0, stderr
    assert output.read_bytes() == reference.read_bytes()
    assert scores.read_bytes() == reference_scores.read_bytes()
    store = tmp_path / "devices.trec.scores"
    assert sorted(path.name for path in store.glob("scores*.jsonl")) == [
        "scores.shard-0000-of-0002.jsonl",
        "scores.shard-0001-of-0002.jsonl",
    ]
    assert Counter(score_records(store)) == Counter({pair: 1 for pair in set(score_records(store))})
    assert len(score_records(store)) == PAIRS_WITH_VIDEO
    # each worker's lines come prefixed with its shard and device; the summary counts both workers' work
    assert "rankvideo [shard 0/2 on cpu]: shard 0/2: " in stderr
    assert "rankvideo [shard 1/2 on cpu]: shard 1/2: " in stderr
    assert f"{PAIRS_WITH_VIDEO} pairs scored now, 0 from the score store" in stderr
    assert "Traceback" not in stderr
    manifest = manifest_of(output)
    assert manifest["status"] == "complete"
    assert manifest["device"] == "cpu,cpu"
    assert manifest["counts"]["pairs_scored"] == PAIRS_WITH_VIDEO
    assert manifest["pipeline"]["devices"] == ["cpu", "cpu"]
    assert manifest["model"]["model"] == FAKE
    assert manifest["reranker"]["name"] == reranker
    named = "" if reranker == "rankvideo" else f".{reranker}"
    assert sorted(path.name for path in store.glob("shard-*.manifest.json")) == [
        f"shard-0000-of-0002{named}.manifest.json",
        f"shard-0001-of-0002{named}.manifest.json",
    ]


def test_cpu_workers_compute_with_the_one_device_threads_so_long_queries_score_the_same_bits(tiny_model_dir, tmp_path):
    # float32 sums over thousands of query tokens are added in an order that can depend on torch's thread count:
    # workers given a share of the cores each wrote scores differing in the 7th digit from a one-device run's
    run, queries = tmp_path / "run.trec", tmp_path / "queries.tsv"
    texts = {"long": long_query(2000, seed=1), "medium": long_query(600, seed=2), "short": "a red ball"}
    queries.write_text("".join(f"{qid}\t{text}\n" for qid, text in texts.items()))
    run.write_text("".join(f"{qid} Q0 v00{rank} {rank} 0.{9 - rank} bm25\n" for qid in texts for rank in (1, 2)))

    def args(output: Path, *extra: str) -> list[str]:
        scores = output.with_suffix(".scores.jsonl")
        inputs = [str(run), str(queries), "--videos", str(SAMPLE / "videos"), "--model", TINY]
        return ["rerank", *inputs, "-o", str(output), "--scores", str(scores), *extra]

    # Two threads, here and in the workers' environment (conftest gives pytest-xdist workers one): a worker
    # handed a share of the cores would compute on one.
    reference = tmp_path / "single.trec"
    threads_before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        completed = CliRunner().invoke(app, args(reference, "--decode-workers", "1"))
    finally:
        torch.set_num_threads(threads_before)
    assert completed.exit_code == 0, completed.output
    output = tmp_path / "devices.trec"
    job = start(args(output, "--devices", "cpu,cpu"), OMP_NUM_THREADS="2")
    _stdout, stderr = job.communicate(timeout=600)
    assert job.returncode == 0, stderr
    assert "not byte-identical" not in stderr

    threads = manifest_of(reference)["torch_threads"]
    assert threads == 2
    store = tmp_path / "devices.trec.scores"
    shards = [json.loads(path.read_text()) for path in sorted(store.glob("shard-*.manifest.json"))]
    # a worker whose shard holds no video (the split hashes the videos' paths) computes nothing, loads no torch
    expected = [threads if shard["counts"]["pairs_scored"] else None for shard in shards]
    assert threads in expected
    assert [shard["torch_threads"] for shard in shards] == expected
    assert manifest_of(output)["torch_threads"] == threads
    assert manifest_of(output)["pipeline"]["torch_threads"] == expected
    assert output.read_bytes() == reference.read_bytes()
    assert output.with_suffix(".scores.jsonl").read_bytes() == reference.with_suffix(".scores.jsonl").read_bytes()


def rerun_on_two_workers(output: Path, reference: Path) -> str:
    """The same `--devices cpu,cpu` rerank again, which must complete with the one-device run: its stderr."""
    again = start(rerank_args(output, "--devices", "cpu,cpu"))
    _stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr
    assert output.read_bytes() == reference.read_bytes()
    return stderr


def test_a_killed_worker_is_reported_and_a_rerun_scores_only_what_is_missing(single_device_run, tmp_path):
    reference, _scores = single_device_run
    output = tmp_path / "devices.trec"
    store = tmp_path / "devices.trec.scores"
    job = start(rerank_args(output, "--devices", "cpu,cpu"))
    seen: list[str] = []
    pids = worker_pids(job, 2, seen)
    os.kill(pids[1], signal.SIGKILL)
    _stdout, rest = job.communicate(timeout=600)
    stderr = "".join(seen) + rest
    assert job.returncode == 1, stderr
    assert "rankvideo: worker 1 (shard 1/2 on cpu) killed by SIGKILL; " in stderr
    assert "run the same command again to score what is missing" in stderr
    assert "Traceback" not in stderr
    assert not output.exists()
    assert manifest_of(output)["status"] == "failed"
    kept = score_records(store)
    assert kept, "worker 0 finished its shard: its scores must be in the store"

    stderr = rerun_on_two_workers(output, reference)
    assert f"rankvideo [shard 0/2 on cpu]: shard 0/2: 0 pairs scored, {len(kept)} cached" in stderr
    records = score_records(store)
    assert len(records) == len(set(records)) == PAIRS_WITH_VIDEO  # no pair scored twice


def test_sigterm_stops_every_worker_and_a_rerun_resumes(single_device_run, tmp_path: Path) -> None:
    reference, _scores = single_device_run
    output = tmp_path / "devices.trec"
    store = tmp_path / "devices.trec.scores"
    # slow, so the workers are still scoring when the signal comes; the rerun scores at full speed
    job = start(rerank_args(output, "--devices", "cpu,cpu", model=f"{FAKE}:seconds=0.2"))
    seen: list[str] = []
    worker_pids(job, 2, seen)
    deadline = time.monotonic() + 300
    while not score_records(store):
        assert job.poll() is None, "".join(seen) + job.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    job.send_signal(signal.SIGTERM)
    _stdout, rest = job.communicate(timeout=300)
    stderr = "".join(seen) + rest
    assert job.returncode == 143, stderr
    assert "rankvideo: interrupted by SIGTERM: every worker stopped; all scores are saved in " in stderr
    assert "Traceback" not in stderr
    assert not output.exists()
    manifest = manifest_of(output)
    assert manifest["status"] == "interrupted" and "SIGTERM" in manifest["reason"]
    stored = score_records(store)
    assert 0 < len(stored) < PAIRS_WITH_VIDEO

    stderr = rerun_on_two_workers(output, reference)
    assert f"{PAIRS_WITH_VIDEO - len(stored)} pairs scored now, {len(stored)} from the score store" in stderr
    records = score_records(store)
    assert len(records) == len(set(records)) == PAIRS_WITH_VIDEO


def _scores(path: Path) -> dict[tuple[str, str], float]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {(row["qid"], row["docid"]): row["logit_delta"] for row in rows if row["logit_delta"] is not None}


def test_the_manifest_records_the_training_prompt(training_run: Path) -> None:
    manifest = manifest_of(training_run / "run.trec")
    assert manifest["status"] == "complete"
    assert manifest["model"]["prompt_format"] == "training" and manifest["model"]["prefix_cache"] == "on"


def test_the_prefix_cache_and_the_full_pass_rank_alike(training_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "full.trec"
    invoke_ok(*rerank_args(out, *TRAINING, "--no-prefix-cache", "--scores", str(tmp_path / "s.jsonl"), model=TINY))
    reused, full = _scores(training_run / "s.jsonl"), _scores(tmp_path / "s.jsonl")
    assert reused.keys() == full.keys() and len(reused) == 36
    assert max(abs(reused[key] - full[key]) for key in reused) < 1e-5
    assert manifest_of(out)["model"]["prefix_cache"] == "off"


def test_the_two_prompts_never_answer_for_each_other_in_a_store(fake_training_run: Path, tmp_path: Path) -> None:
    """One store, both prompts: each prompt's rerun finds its own scores only."""
    import shutil

    store = tmp_path / "store"
    shutil.copytree(fake_training_run / "store", store)
    inference = invoke_ok(*stored_rerank_args(tmp_path / "inference.trec", store))
    assert "36 pairs scored now, 0 from the score store" in inference.stderr
    again = invoke_ok(*stored_rerank_args(tmp_path / "again.trec", store, *TRAINING))
    assert "0 pairs scored now, 36 from the score store" in again.stderr
    assert (tmp_path / "again.trec").read_bytes() == (fake_training_run / "run.trec").read_bytes()
    assert len(score_records(store)) == 72
    assert (tmp_path / "inference.trec").read_bytes() != (fake_training_run / "run.trec").read_bytes()


def test_the_two_rerankers_and_each_instruction_never_answer_for_each_other_in_a_store(
    reference, copied_store: Path, tmp_path: Path
) -> None:
    """One store, both rerankers: each reranker's (and each instruction's) rerun finds its own scores only."""
    from rankvideo_cli.scoring.rerankers.qwen3_vl_reranker import DEFAULT_INSTRUCTION

    rankvideo_run, store = reference[0], copied_store  # rankvideo's 36 pairs
    qwen = reranker_args("qwen3-vl-reranker")
    first = invoke_ok(*stored_rerank_args(tmp_path / "qwen.trec", store, *qwen))
    assert "36 pairs scored now, 0 from the score store" in first.stderr
    for name, extra, expected in (
        ("rankvideo", [], rankvideo_run),
        ("qwen", qwen, tmp_path / "qwen.trec"),
        ("qwen-default-instruction", [*qwen, "--instruction", DEFAULT_INSTRUCTION], tmp_path / "qwen.trec"),
    ):
        again = invoke_ok(*stored_rerank_args(tmp_path / f"again-{name}.trec", store, *extra))
        assert "0 pairs scored now, 36 from the score store" in again.stderr, name
        assert (tmp_path / f"again-{name}.trec").read_bytes() == expected.read_bytes(), name

    instructed = [*qwen, "--instruction", "Find the video that shows what the query describes."]
    other = invoke_ok(*stored_rerank_args(tmp_path / "instructed.trec", store, *instructed))
    assert "36 pairs scored now, 0 from the score store" in other.stderr
    again = invoke_ok(*stored_rerank_args(tmp_path / "again-instructed.trec", store, *instructed))
    assert "0 pairs scored now, 36 from the score store" in again.stderr
    assert (tmp_path / "again-instructed.trec").read_bytes() == (tmp_path / "instructed.trec").read_bytes()

    assert len(score_records(store)) == 3 * 36
    runs = {path.read_bytes() for path in (rankvideo_run, tmp_path / "qwen.trec", tmp_path / "instructed.trec")}
    assert len(runs) == 3


def test_the_manifest_names_qwen3_vl_reranker_and_counts_the_videos_it_fitted(videos, tmp_path: Path) -> None:
    """A 720p video of 30 s takes more than qwen3-vl-reranker's 7,680 video tokens at 1 fps: it is sampled smaller,
    and counted; a 3 s one is not."""
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(SAMPLE / "videos" / "v001.mp4", folder / "v001.mp4")
    shutil.copy(videos.get(fps=2, seconds=30, width=1280, height=720, pattern="flat"), folder / "long.mp4")
    run, queries = write_inputs(tmp_path, ("v001", "long", "v404"))
    output = tmp_path / "out.trec"
    arguments = ["rerank", run, queries, "--videos", folder, "--model", FAKE, "-o", output]
    result = invoke_ok(*arguments, *reranker_args("qwen3-vl-reranker"))
    assert "1 video sampled smaller to fit qwen3-vl-reranker's token budget" in result.stderr
    manifest = manifest_of(output)
    assert manifest["status"] == "complete"
    assert manifest["reranker"] == {"name": "qwen3-vl-reranker", "chosen_by": "--reranker", "videos_fitted": 1}
    assert manifest["model"]["reranker"] == "qwen3-vl-reranker"


def test_device_workers_score_with_the_training_prompt(fake_training_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "devices.trec"
    invoke_ok(*rerank_args(out, *TRAINING, "--devices", "cpu,cpu", "--cache", str(tmp_path / "store")))
    assert out.read_bytes() == (fake_training_run / "run.trec").read_bytes()


def test_the_frame_cache_serves_both_prompts(fake_training_run: Path, tmp_path: Path) -> None:
    """Sampled frames do not depend on the prompt: a frame cache gives the training prompt the run decoding does."""
    frames = tmp_path / "frames"
    sample = ["sample", str(SAMPLE / "first_stage.trec"), "--videos", str(SAMPLE / "videos"), "--frames-cache"]
    assert CliRunner().invoke(app, [*sample, str(frames)]).exit_code == 0
    out = tmp_path / "cached.trec"
    invoke_ok(*rerank_args(out, *TRAINING, "--frames-cache", str(frames)))
    assert out.read_bytes() == (fake_training_run / "run.trec").read_bytes()
