"""`--prompt training` on every scoring path with the tiny model: rerank (store keys, manifest, reruns, devices),
score, explain, `VLMReranker(prompt=...)` and the PyTerrier reranker's options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import SAMPLE, rerank_args, sample_rerank_args, score_records, stored_rerank_args
from typer.testing import CliRunner

from rankvideo_cli.cli import app
from rankvideo_cli.errors import UsageError

TRAINING = ("--prompt", "training")


def _rerank(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def _manifest(run: Path) -> dict:
    return json.loads(run.with_name(run.name + ".manifest.json").read_text())


def _scores(path: Path) -> dict[tuple[str, str], float]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {(row["qid"], row["docid"]): row["logit_delta"] for row in rows if row["logit_delta"] is not None}


@pytest.fixture(scope="module")
def training_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("training")
    _rerank(*stored_rerank_args(work / "run.trec", work / "store", *TRAINING, "--scores", str(work / "s.jsonl")))
    return work


def test_the_manifest_records_the_training_prompt(training_run: Path) -> None:
    manifest = _manifest(training_run / "run.trec")
    assert manifest["status"] == "complete"
    assert manifest["model"]["prompt_format"] == "training" and manifest["model"]["prefix_cache"] == "on"


def test_the_prefix_cache_and_the_full_pass_rank_alike(training_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "full.trec"
    _rerank(*rerank_args(out, *TRAINING, "--no-prefix-cache", "--scores", str(tmp_path / "s.jsonl")))
    reused, full = _scores(training_run / "s.jsonl"), _scores(tmp_path / "s.jsonl")
    assert reused.keys() == full.keys() and len(reused) == 36
    assert max(abs(reused[key] - full[key]) for key in reused) < 1e-5
    assert _manifest(out)["model"]["prefix_cache"] == "off"


def test_the_two_prompts_never_answer_for_each_other_in_a_store(training_run: Path, tmp_path: Path) -> None:
    """One store, both prompts: each prompt's rerun finds its own scores only."""
    import shutil

    store = tmp_path / "store"
    shutil.copytree(training_run / "store", store)
    inference = _rerank(*stored_rerank_args(tmp_path / "inference.trec", store))
    assert "36 pairs scored now, 0 from the score store" in inference.stderr
    again = _rerank(*stored_rerank_args(tmp_path / "again.trec", store, *TRAINING))
    assert "0 pairs scored now, 36 from the score store" in again.stderr
    assert (tmp_path / "again.trec").read_bytes() == (training_run / "run.trec").read_bytes()
    assert len(score_records(store)) == 72
    assert (tmp_path / "inference.trec").read_bytes() != (training_run / "run.trec").read_bytes()


def test_device_workers_score_with_the_training_prompt(training_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "devices.trec"
    _rerank(*rerank_args(out, *TRAINING, "--devices", "cpu,cpu", "--cache", str(tmp_path / "store")))
    assert out.read_bytes() == (training_run / "run.trec").read_bytes()


def test_score_and_explain_take_the_training_prompt(tiny_model_dir: Path) -> None:
    video = str(SAMPLE / "videos" / "v001.mp4")
    common = ["-q", "a red ball", "--model", "tiny-random", "--json"]
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


def test_vlm_reranker_takes_the_prompt(tiny_model_dir: Path) -> None:
    from rankvideo_cli import VLMReranker

    video = str(SAMPLE / "videos" / "v001.mp4")
    reranker = VLMReranker(model_path="tiny-random", device="cpu", prompt="training")
    (row,) = reranker.score_batch(queries=["a red ball"], video_paths=[video])
    assert set(row) == {"logit_delta_yes_minus_no", "logit_delta", "p_yes", "logprob_yes", "logprob_no"}
    assert reranker.scorer.fingerprint()["prompt_format"] == "training"
    full = VLMReranker(model_path="tiny-random", device="cpu", prompt="training", prefix_cache=False)
    (same,) = full.score_batch(queries=["a red ball"], video_paths=[video])
    assert same["logit_delta"] == pytest.approx(row["logit_delta"], abs=1e-5)


def test_the_pyterrier_reranker_takes_the_prompt(tmp_path: Path) -> None:
    pytest.importorskip("pyterrier")
    from rankvideo_cli.pyterrier import RankVideoReranker

    reranker = RankVideoReranker(SAMPLE / "videos", model="tiny-random", prompt="training", cache=tmp_path / "s")
    assert reranker.scorer_options.prompt == "training" and reranker.scorer_options.prefix_cache
    with pytest.raises(UsageError, match="score-mode"):
        RankVideoReranker(
            SAMPLE / "videos", model="tiny-random", prompt="training", score_mode="reference", cache=tmp_path / "s"
        )


def test_a_merge_takes_the_prompt_its_shards_scored_with(training_run: Path, tmp_path: Path) -> None:
    """Shards of both prompts in one store: each merge gives the run of the prompt its shards' manifests name."""
    store = tmp_path / "store"
    base = ["--cache", str(store), "--decode-workers", "1"]
    for prompt in ("training", "inference"):
        for shard in ("0/2", "1/2"):
            _rerank(*sample_rerank_args(SAMPLE / "videos", "--prompt", prompt, "--shard", shard, *base))
        merged = tmp_path / f"merged-{prompt}.trec"
        args = ["merge", str(SAMPLE / "first_stage.trec"), str(SAMPLE / "queries.tsv"), "--cache", str(store)]
        result = CliRunner().invoke(app, [*args, "-o", str(merged)])
        assert result.exit_code == 0, result.output
        assert "0 pairs scored now, 36 from the score store" in result.stderr
        if prompt == "training":
            assert merged.read_bytes() == (training_run / "run.trec").read_bytes()
    inference = tmp_path / "inference.trec"
    _rerank(*rerank_args(inference))
    assert (tmp_path / "merged-inference.trec").read_bytes() == inference.read_bytes()


def test_the_frame_cache_serves_both_prompts(training_run: Path, tmp_path: Path) -> None:
    """Sampled frames do not depend on the prompt: a frame cache gives the training prompt the run decoding does."""
    frames = tmp_path / "frames"
    sample = ["sample", str(SAMPLE / "first_stage.trec"), "--videos", str(SAMPLE / "videos"), "--frames-cache"]
    assert CliRunner().invoke(app, [*sample, str(frames)]).exit_code == 0
    out = tmp_path / "cached.trec"
    _rerank(*rerank_args(out, *TRAINING, "--frames-cache", str(frames)))
    assert out.read_bytes() == (training_run / "run.trec").read_bytes()
