"""Running `rerank` again: over a store another rerank is still writing (refused before anything loads), with every
pair already stored (no model is loaded), and after a torn write (the same run, byte for byte)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from helpers import stored_rerank_args
from typer.testing import CliRunner

from rankvideo_cli.cli import app
from rankvideo_cli.pipeline.store import StoreWriter


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
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


def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args, **_kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("rankvideo_cli.scoring.loading.load_model", refuse)


def score_lines(store: Path) -> list[str]:
    return [line for line in (store / "scores.jsonl").read_text().splitlines() if '"kind":"score"' in line]


def test_a_rerun_with_every_pair_stored_loads_no_model(
    reference, copied_store: Path, tmp_path: Path, monkeypatch
) -> None:
    run, _store = reference
    copied = copied_store
    no_model(monkeypatch)
    result = CliRunner().invoke(app, stored_rerank_args(tmp_path / "again.trec", copied))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "again.trec").read_bytes() == run.read_bytes()
    assert "0 pairs scored now, 36 from the score store" in result.stderr
    manifest = json.loads((tmp_path / "again.trec.manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["batch_size"].startswith("not loaded")
    reference_manifest = json.loads(run.with_name(run.name + ".manifest.json").read_text())
    assert manifest["model_fingerprint"] == reference_manifest["model_fingerprint"]


def test_a_store_another_rerank_is_writing_is_refused_before_the_model_loads(
    copied_store: Path, tmp_path: Path, monkeypatch
) -> None:
    copied = copied_store
    no_model(monkeypatch)
    with StoreWriter(copied):  # the lock a running rerank holds on scores.jsonl
        for extra in ((), ("--dry-run",), ("--retry-bad-videos",)):
            result = CliRunner().invoke(app, stored_rerank_args(tmp_path / "out.trec", copied, *extra))
            assert result.exit_code == 2, result.output
            assert f"{copied / 'scores.jsonl'}: another rankvideo process is writing this score store" in result.stderr
            assert "RANDOM-WEIGHT" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
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
    copied_store: Path, tmp_path: Path, monkeypatch
) -> None:
    from rankvideo_cli.pipeline.shards import Shard

    copied = copied_store
    no_model(monkeypatch)
    with StoreWriter(copied, Shard(1, 2)):  # another --devices job's worker 1
        result = CliRunner().invoke(app, stored_rerank_args(tmp_path / "out.trec", copied, "--devices", "cpu,cpu"))
    assert result.exit_code == 2, result.output
    assert "scores.shard-0001-of-0002.jsonl: another rankvideo process is writing" in result.stderr
    assert "worker 0" not in result.stderr and not (tmp_path / "out.trec").exists()
