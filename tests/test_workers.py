"""`rerank --devices`: one worker process per device, each a shard into the one score store, then the run.

Two CPU workers (`--devices cpu,cpu`) stand in for two GPUs: the same processes, store files, signals and
merge as on a GPU node. The run must be byte-identical to a single-device run; a killed worker is reported
with its shard and device, the other's scores stay, and a rerun scores only what is missing; SIGTERM stops
every worker, and a rerun resumes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import rerank_args, score_records
from typer.testing import CliRunner

from rankvideo_cli.cli import app
from rankvideo_cli.errors import UsageError
from rankvideo_cli.jobs.devices import expand_devices, mixed_devices_warning, parse_devices, plan_workers
from rankvideo_cli.pipeline.shards import Shard

SAMPLE = Path(__file__).resolve().parent.parent / "sample_runs"
PAIRS_WITH_VIDEO = 36  # 4 queries x 9 candidates with a video file


def start(args: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "rankvideo_cli.cli", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())


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


def manifest_of(output: Path) -> dict:
    return json.loads(output.with_name(output.name + ".manifest.json").read_text())


def long_query(words: int, seed: int) -> str:
    """`words` words of the sample queries' vocabulary in a seeded order (about as many tokens)."""
    lines = (SAMPLE / "queries.tsv").read_text().splitlines()[1:]
    vocabulary = sorted({word for line in lines for word in line.split("\t")[1].split()})
    return " ".join(random.Random(seed).choice(vocabulary) for _ in range(words))


@pytest.fixture(scope="module")
def single_device_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The run and raw scores of a plain one-device rerank: what every --devices run must equal."""
    directory = tmp_path_factory.mktemp("single")
    output, scores = directory / "single.trec", directory / "single.scores.jsonl"
    completed = CliRunner().invoke(app, rerank_args(output, "--scores", str(scores), "--decode-workers", "1"))
    assert completed.exit_code == 0, completed.output
    return output, scores


# --- options ---------------------------------------------------------------------------------------------


def test_devices_are_parsed_and_checked() -> None:
    assert parse_devices(None) is None
    assert parse_devices("all") == ["all"]
    assert parse_devices(" ALL ") == ["all"]
    assert parse_devices("cuda:0,cuda:3") == ["cuda:0", "cuda:3"]
    assert parse_devices("0, 1") == ["cuda:0", "cuda:1"]
    assert parse_devices("cpu,cpu") == ["cpu", "cpu"]
    for bad, said in [
        ("cuda", "name the GPU's index"),
        ("cuda:0,cuda:0", "cuda:0 is named twice"),
        ("0,cuda:0", "cuda:0 is named twice"),
        ("gpu0", "'gpu0' is not a device"),
        ("cuda:0,", "'' is not a device"),
    ]:
        with pytest.raises(UsageError, match=said):
            parse_devices(bad)


def test_decode_threads_are_split_between_the_workers() -> None:
    plans = plan_workers(["cuda:0", "cuda:1", "cuda:2"], decode_workers=16)
    assert [(plan.shard, plan.device, plan.decode_workers) for plan in plans] == [
        (Shard(0, 3), "cuda:0", 5),
        (Shard(1, 3), "cuda:1", 5),
        (Shard(2, 3), "cuda:2", 5),
    ]
    assert [plan.decode_workers for plan in plan_workers(["cpu", "cpu"], decode_workers=1)] == [1, 1]


def test_only_a_run_split_between_cpu_and_gpu_is_said_not_to_be_byte_identical() -> None:
    assert mixed_devices_warning(["cpu", "cpu"]) is None
    assert mixed_devices_warning(["cuda:0", "cuda:1"]) is None
    assert mixed_devices_warning(["cuda:0", "cpu"]) == (
        "--devices cuda:0,cpu: the CPU and the GPUs compute the scores with different arithmetic, so this run is "
        "not byte-identical to a run on one device"
    )


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


# --- end to end ----------------------------------------------------------------------------------------------


def test_two_workers_write_the_single_device_run(single_device_run, tmp_path: Path) -> None:
    reference, reference_scores = single_device_run
    output, scores = tmp_path / "devices.trec", tmp_path / "devices.scores.jsonl"
    job = start(rerank_args(output, "--devices", "cpu,cpu", "--scores", str(scores)))
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
    assert manifest["model"]["model"] == "tiny-random"


def test_cpu_workers_compute_with_the_one_device_threads_so_long_queries_score_the_same_bits(tiny_model_dir, tmp_path):
    # float32 sums over thousands of query tokens are added in an order that can depend on torch's thread count:
    # workers given a share of the cores each wrote scores differing in the 7th digit from a one-device run's
    run, queries = tmp_path / "run.trec", tmp_path / "queries.tsv"
    texts = {"long": long_query(2000, seed=1), "medium": long_query(600, seed=2), "short": "a red ball"}
    queries.write_text("".join(f"{qid}\t{text}\n" for qid, text in texts.items()))
    run.write_text("".join(f"{qid} Q0 v00{rank} {rank} 0.{9 - rank} bm25\n" for qid in texts for rank in (1, 2)))

    def args(output: Path, *extra: str) -> list[str]:
        scores = output.with_suffix(".scores.jsonl")
        inputs = [str(run), str(queries), "--videos", str(SAMPLE / "videos"), "--model", "tiny-random"]
        return ["rerank", *inputs, "-o", str(output), "--scores", str(scores), *extra]

    reference = tmp_path / "single.trec"
    completed = CliRunner().invoke(app, args(reference, "--decode-workers", "1"))
    assert completed.exit_code == 0, completed.output
    output = tmp_path / "devices.trec"
    job = start(args(output, "--devices", "cpu,cpu"))
    _stdout, stderr = job.communicate(timeout=600)
    assert job.returncode == 0, stderr
    assert "not byte-identical" not in stderr

    threads = manifest_of(reference)["torch_threads"]
    assert threads >= 1
    store = tmp_path / "devices.trec.scores"
    shards = [json.loads(path.read_text()) for path in sorted(store.glob("shard-*.manifest.json"))]
    assert [shard["torch_threads"] for shard in shards] == [threads, threads]
    assert manifest_of(output)["torch_threads"] == threads
    assert manifest_of(output)["pipeline"]["torch_threads"] == [threads, threads]
    assert output.read_bytes() == reference.read_bytes()
    assert output.with_suffix(".scores.jsonl").read_bytes() == reference.with_suffix(".scores.jsonl").read_bytes()


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

    again = start(rerank_args(output, "--devices", "cpu,cpu"))
    _stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr
    assert output.read_bytes() == reference.read_bytes()
    assert f"rankvideo [shard 0/2 on cpu]: shard 0/2: 0 pairs scored, {len(kept)} cached" in stderr
    records = score_records(store)
    assert len(records) == len(set(records)) == PAIRS_WITH_VIDEO  # no pair scored twice


def test_sigterm_stops_every_worker_and_a_rerun_resumes(tiny_model_dir, tmp_path: Path) -> None:
    # one pair per forward pass, so the workers are still scoring when the signal comes (a batch size changes
    # float32 scores in their last bits, so the one-device run is made with the same one)
    reference = tmp_path / "single.trec"
    completed = CliRunner().invoke(app, rerank_args(reference, "--batch-size", "1", "--decode-workers", "1"))
    assert completed.exit_code == 0, completed.output
    output = tmp_path / "devices.trec"
    store = tmp_path / "devices.trec.scores"
    args = rerank_args(output, "--devices", "cpu,cpu", "--batch-size", "1")
    job = start(args)
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

    again = start(args)
    _stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr
    assert output.read_bytes() == reference.read_bytes()
    assert f"{PAIRS_WITH_VIDEO - len(stored)} pairs scored now, {len(stored)} from the score store" in stderr
    records = score_records(store)
    assert len(records) == len(set(records)) == PAIRS_WITH_VIDEO
