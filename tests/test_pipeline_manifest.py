"""Run manifests: checksummed inputs, settings, fingerprints, versions, counts; shard agreement for merge."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from pipeline_helpers import DirResolver, make_run, real_sampler
from video_factory import make_video

from rankvideo_cli.errors import UsageError
from rankvideo_cli.options import DecodeOptions
from rankvideo_cli.pipeline.manifest import (
    build_manifest,
    default_manifest_path,
    describe_input,
    read_shard_manifests,
    shared_shard_settings,
    torch_threads,
    write_manifest,
)
from rankvideo_cli.pipeline.plan import Pairs
from rankvideo_cli.pipeline.score import score_pairs
from rankvideo_cli.pipeline.shards import Shard
from rankvideo_cli.pipeline.store import ScoreStore
from rankvideo_cli.scoring.fake import FakeScorer


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("manifest")
    videos = root / "videos"
    videos.mkdir()
    for index in range(3):
        make_video(videos / f"v{index}.mp4", fps=10, seconds=1.0, width=64, height=48 + 16 * index)
    run_file = root / "run.trec"
    run_file.write_text("q1 Q0 v0 1 3.0 bm25\nq1 Q0 v1 2 2.0 bm25\nq1 Q0 v2 3 1.0 bm25\nq1 Q0 v9 4 0.5 bm25\n")
    queries_file = root / "queries.tsv"
    queries_file.write_text("q1\ta red ball\n")
    return root, videos, run_file, queries_file


def scored(job, shard=None, store_dir=None):
    root, videos, _run_file, _queries_file = job
    scorer = FakeScorer()
    with ScoreStore(store_dir or root / "store", shard) as store:
        result = score_pairs(
            Pairs(make_run({"q1": ["v0", "v1", "v2", "v9"]}), {"q1": "a red ball"}, DirResolver(videos), 100),
            scorer,
            store,
            decode=DecodeOptions(decode_workers=1),
            sampler=real_sampler(),
        )
    return result, scorer


def test_manifest_records_inputs_settings_model_versions_counts_and_timing(job, tmp_path, monkeypatch):
    _root, _videos, run_file, queries_file = job
    monkeypatch.setattr("sys.argv", ["rankvideo", "rerank", "run.trec", "queries.tsv"])
    result, scorer = scored(job, store_dir=tmp_path / "store")
    described = {**scorer.fingerprint(), "device": "cpu", "dtype": "float32"}  # as a real scorer describes itself
    manifest = build_manifest(
        result=result,
        inputs={
            "run": run_file,
            "queries": queries_file,
            "stdin_run": b"q1 Q0 v0 1 3.0 x\n",
            "video_map": None,
        },
        settings={"depth": 100, "tag": "rankvideo"},
        scorer_fingerprint=described,
        runtime={"attn_implementation": "sdpa", "batch_size": 4},
    )
    assert manifest["inputs"]["run"]["sha256"] == hashlib.sha256(run_file.read_bytes()).hexdigest()
    assert manifest["inputs"]["stdin_run"]["path"] == "-"
    assert manifest["inputs"]["video_map"] is None
    assert manifest["settings"] == {"depth": 100, "tag": "rankvideo"}
    assert manifest["pipeline"]["decode_workers"] == 1
    assert manifest["model"] == described
    assert manifest["model_fingerprint"] == result.model_fingerprint
    assert (manifest["device"], manifest["dtype"]) == ("cpu", "float32")  # from the scorer fingerprint
    assert (manifest["attn_implementation"], manifest["batch_size"]) == ("sdpa", 4)
    assert manifest["torch_threads"] == torch.get_num_threads()
    for library in ("torch", "transformers", "av", "qwen-vl-utils", "rankvideo-cli"):
        assert manifest["libraries"][library], library
    assert manifest["counts"]["pairs_scored"] == 3
    assert manifest["counts"]["pairs_missing_video"] == 1
    assert manifest["counts"]["missing_videos"] == 1
    assert manifest["timings"]["wall_s"] > 0
    assert manifest["timings"]["pairs_per_s"] > 0
    assert manifest["command"] == ["rankvideo", "rerank", "run.trec", "queries.tsv"]
    path = tmp_path / "out" / "run.trec.manifest.json"
    write_manifest(path, manifest)
    assert json.loads(path.read_text()) == json.loads(json.dumps(manifest))
    assert [p.name for p in path.parent.iterdir()] == ["run.trec.manifest.json"]  # no temp file left behind


def test_a_devices_runs_thread_count_is_its_workers_when_they_agree():
    assert torch_threads([4, 4]) == 4
    assert torch_threads([4, 2]) is None
    assert torch_threads([]) is None


def test_unreadable_input_is_described_not_fatal(tmp_path):
    described = describe_input(tmp_path / "gone.tsv")
    assert described["error"]


def test_default_manifest_paths(tmp_path):
    assert default_manifest_path(tmp_path / "a.trec", tmp_path / "s", None) == tmp_path / "a.trec.manifest.json"
    assert default_manifest_path(None, tmp_path / "s", None) == tmp_path / "s" / "run.manifest.json"
    shard_path = default_manifest_path(tmp_path / "a.trec", tmp_path / "s", Shard(1, 4))
    assert shard_path == tmp_path / "s" / "shard-0001-of-0004.manifest.json"


def test_shard_manifests_must_agree(job, tmp_path):
    _root, _videos, run_file, queries_file = job
    store_dir = tmp_path / "store"
    for index in range(2):
        result, scorer = scored(job, Shard(index, 2), store_dir)
        manifest = build_manifest(
            result=result,
            inputs={"run": run_file, "queries": queries_file},
            settings={"depth": 100},
            scorer_fingerprint=scorer.fingerprint(),
        )
        write_manifest(default_manifest_path(None, store_dir, Shard(index, 2)), manifest)
    manifests = read_shard_manifests(store_dir)
    assert [m["shard"] for m in manifests] == ["0/2", "1/2"]
    shared = shared_shard_settings(manifests, store_dir)
    assert shared["settings"] == {"depth": 100}
    assert shared["model_fingerprint"] == result.model_fingerprint
    assert shared["incomplete_shards"] == []
    manifests[1]["settings"] = {"depth": 50}
    with pytest.raises(UsageError, match="ran with different settings"):
        shared_shard_settings(manifests, store_dir)
    manifests[1]["settings"] = {"depth": 100}
    manifests[1]["inputs"]["run"]["sha256"] = "0" * 64
    with pytest.raises(UsageError, match="read different run files"):
        shared_shard_settings(manifests, store_dir)
