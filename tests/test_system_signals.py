"""Resume after crashes, end to end: `rankvideo rerank` over the shipped sample, in a real subprocess killed with
SIGKILL (once stopped with SIGTERM, once crashing by itself) at several points, then run again. The fake scorer,
slowed down, keeps the subprocess busy long enough to be interrupted where the test says.

The final run file must be byte-identical to an uninterrupted run's, and no pair may be scored twice
(every score record in the store is counted), for each reranker (qwen3-vl-reranker: crashing by itself twice).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from helpers import FAKE, manifest_of, reranker_args, score_records, stored_rerank_args
from typer.testing import CliRunner

from rankvideo_cli.cli import app


def start_rerank(output: Path, store: Path, model: str = FAKE, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "rankvideo_cli.cli", *stored_rerank_args(output, store, *extra, model=model)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def wait_for_records(job: subprocess.Popen, store: Path, at_least: int, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(score_records(store)) < at_least:
        if job.poll() is not None:
            raise AssertionError(f"rerank ended before {at_least} scores were stored: {job.communicate()[1]}")
        assert time.monotonic() < deadline, f"fewer than {at_least} scores after {timeout_s}s"
        time.sleep(0.005)


def test_killed_and_resumed_runs_give_the_uninterrupted_run_and_score_each_pair_once(tmp_path):
    reference = tmp_path / "uninterrupted.trec"
    completed = CliRunner().invoke(app, stored_rerank_args(reference, tmp_path / "reference-store"))
    assert completed.exit_code == 0, completed.output
    expected = score_records(tmp_path / "reference-store")
    assert len(expected) == len(set(expected)) == 36  # 4 queries x 9 candidates with a video file

    output, store = tmp_path / "resumed.trec", tmp_path / "store"
    # (how to stop it, after how many stored scores): while Python starts, after the first video, gracefully
    # a third of the way in, by itself (a crash 6 pairs later: no signal from outside), and two thirds in
    slow = f"{FAKE}:seconds=0.1"
    plan = [(signal.SIGKILL, 0), (signal.SIGKILL, 1), (signal.SIGTERM, 12), (None, 0), (signal.SIGKILL, 24)]
    for signum, threshold in plan:
        if signum is None:
            job = start_rerank(output, store, f"{slow},crash-after=6")
            _stdout, stderr = job.communicate(timeout=120)
            assert job.returncode == -signal.SIGKILL, stderr
            assert not output.exists()
            continue
        job = start_rerank(output, store, slow)
        if threshold == 0:
            time.sleep(1.0)
        else:
            wait_for_records(job, store, max(threshold, len(score_records(store)) + 1))
        job.send_signal(signum)
        _stdout, stderr = job.communicate(timeout=120)
        if signum == signal.SIGKILL:
            assert job.returncode == -signal.SIGKILL
        else:
            assert job.returncode == 143, stderr
            assert "Traceback" not in stderr
            assert "rankvideo: interrupted by SIGTERM: " in stderr
            assert "run the same command again to resume" in stderr
            manifest = json.loads(output.with_name(output.name + ".manifest.json").read_text())
            assert manifest["status"] == "interrupted" and "SIGTERM" in manifest["reason"]
        assert not output.exists()
    assert len(score_records(store)) < len(expected), "the run finished before the last interruption"

    final = start_rerank(output, store)
    _stdout, stderr = final.communicate(timeout=300)
    assert final.returncode == 0, stderr
    assert output.read_bytes() == reference.read_bytes()
    assert json.loads(output.with_name(output.name + ".manifest.json").read_text())["status"] == "complete"
    records = score_records(store)
    assert [pair for pair, count in Counter(records).items() if count > 1] == []
    assert sorted(records) == sorted(expected)


def test_a_qwen3_vl_reranker_run_killed_by_itself_resumes_to_the_uninterrupted_run(tmp_path):
    """SIGKILL from within (`crash-after`), then again once resumed: the final run is the uninterrupted one, byte
    for byte, and each pair was scored once."""
    chosen = reranker_args("qwen3-vl-reranker")
    reference = tmp_path / "uninterrupted.trec"
    completed = CliRunner().invoke(app, stored_rerank_args(reference, tmp_path / "reference-store", *chosen))
    assert completed.exit_code == 0, completed.output
    expected = score_records(tmp_path / "reference-store")
    assert len(expected) == len(set(expected)) == 36

    output, store = tmp_path / "resumed.trec", tmp_path / "store"
    stored = [0]
    for crash_after in (5, 7):
        job = start_rerank(output, store, f"{FAKE}:crash-after={crash_after}", *chosen)
        _stdout, stderr = job.communicate(timeout=120)
        assert job.returncode == -signal.SIGKILL, stderr
        assert not output.exists()
        stored.append(len(score_records(store)))
    assert 0 < stored[1] < stored[2] < len(expected), stored

    final = start_rerank(output, store, FAKE, *chosen)
    _stdout, stderr = final.communicate(timeout=300)
    assert final.returncode == 0, stderr
    assert f"{len(expected) - stored[-1]} pairs scored now, {stored[-1]} from the score store" in stderr
    assert output.read_bytes() == reference.read_bytes()
    manifest = manifest_of(output)
    assert manifest["status"] == "complete" and manifest["reranker"]["name"] == "qwen3-vl-reranker"
    records = score_records(store)
    assert [pair for pair, count in Counter(records).items() if count > 1] == []
    assert sorted(records) == sorted(expected)
