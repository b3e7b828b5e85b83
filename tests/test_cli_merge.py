"""`rankvideo merge`: the run built from the shards in a score store equals the single-process run, for each
reranker, and takes the prompt its shards scored with; a store holding the shards of two rerankers merges the one
`--reranker` names."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import (
    FIRST_STAGE,
    QUERIES,
    RERANKERS,
    SAMPLE,
    VIDEOS,
    assert_refused,
    invoke,
    invoke_ok,
    manifest_of,
    rerank_args,
    reranker_args,
    sample_rerank_args,
)
from typer.testing import CliRunner

from rankvideo_cli.cli import app


@pytest.mark.parametrize("reranker", RERANKERS)
def test_merge_of_shards_equals_the_single_process_run(reranker: str, tmp_path: Path) -> None:
    chosen = reranker_args(reranker)
    single = tmp_path / "single.trec"
    invoke_ok(*sample_rerank_args(VIDEOS, "--tag", "rv-test", "-o", str(single), *chosen))
    store = tmp_path / "store"
    for index in range(2):
        shard = invoke(
            *sample_rerank_args(VIDEOS, "--tag", "rv-test", "--cache", store, "--shard", f"{index}/2", *chosen)
        )
        assert shard.exit_code == 0, shard.output
        assert shard.stdout == ""
    named = "" if reranker == "rankvideo" else f".{reranker}"  # another reranker's shard manifests name it
    assert sorted(path.name for path in store.glob("shard-*.manifest.json")) == [
        f"shard-0000-of-0002{named}.manifest.json",
        f"shard-0001-of-0002{named}.manifest.json",
    ]
    merged = invoke("merge", FIRST_STAGE, QUERIES, "--cache", store, "-o", tmp_path / "merged.trec")
    assert merged.exit_code == 0, merged.output
    assert (tmp_path / "merged.trec").read_bytes() == single.read_bytes()
    assert manifest_of(tmp_path / "merged.trec")["reranker"]["name"] == reranker
    other_reranker = next(name for name in RERANKERS if name != reranker)
    refused = invoke("merge", FIRST_STAGE, QUERIES, "--cache", store, "--reranker", other_reranker)
    assert_refused(refused, f"no shard of {other_reranker}", reranker)

    # another run (one candidate fewer) is not what the shards scored: refused, unless forced
    other = tmp_path / "other.trec"
    other.write_text("".join(FIRST_STAGE.read_text().splitlines(keepends=True)[1:]))
    refused = invoke("merge", other, QUERIES, "--cache", store, "-o", tmp_path / "other-merged.trec")
    assert_refused(refused, "is not the run the shards", "--force")
    assert not (tmp_path / "other-merged.trec").exists()
    forced = invoke("merge", other, QUERIES, "--cache", store, "-o", tmp_path / "other-merged.trec", "--force")
    assert forced.exit_code == 0, forced.output
    assert len((tmp_path / "other-merged.trec").read_text().splitlines()) == 39
    # merge's outputs are checked like rerank's, and it can write the raw scores for `tune`
    assert_refused(invoke("merge", FIRST_STAGE, QUERIES, "--cache", store, "-o", FIRST_STAGE), "same file")
    with_scores = invoke("merge", FIRST_STAGE, QUERIES, "--cache", store, "--scores", tmp_path / "s.jsonl")
    assert with_scores.exit_code == 0 and len((tmp_path / "s.jsonl").read_text().splitlines()) == 36


def test_a_merge_takes_the_prompt_its_shards_scored_with(fake_training_run: Path, tmp_path: Path) -> None:
    """Shards of both prompts in one store: each merge gives the run of the prompt its shards' manifests name."""
    store = tmp_path / "store"
    base = ["--cache", str(store), "--decode-workers", "1"]
    for prompt in ("training", "inference"):
        for shard in ("0/2", "1/2"):
            invoke_ok(*sample_rerank_args(SAMPLE / "videos", "--prompt", prompt, "--shard", shard, *base))
        merged = tmp_path / f"merged-{prompt}.trec"
        args = ["merge", str(SAMPLE / "first_stage.trec"), str(SAMPLE / "queries.tsv"), "--cache", str(store)]
        result = CliRunner().invoke(app, [*args, "-o", str(merged)])
        assert result.exit_code == 0, result.output
        assert "0 pairs scored now, 36 from the score store" in result.stderr
        if prompt == "training":
            assert merged.read_bytes() == (fake_training_run / "run.trec").read_bytes()
    inference = tmp_path / "inference.trec"
    invoke_ok(*rerank_args(inference))
    assert (tmp_path / "merged-inference.trec").read_bytes() == inference.read_bytes()


def test_a_store_holding_two_rerankers_shards_merges_the_one_named(tmp_path: Path) -> None:
    """Two arrays of two shards, one per reranker, in one store: a merge must be told which, and gives that
    reranker's one-process run."""
    store = tmp_path / "store"
    for reranker in RERANKERS:
        for shard in ("0/2", "1/2"):
            invoke_ok(*sample_rerank_args(VIDEOS, *reranker_args(reranker), "--shard", shard, "--cache", str(store)))
    merge = ["merge", FIRST_STAGE, QUERIES, "--cache", store]
    refused = invoke(*merge, "-o", tmp_path / "merged.trec")
    assert_refused(refused, "it holds shards of", *RERANKERS, "--reranker")
    assert not (tmp_path / "merged.trec").exists()

    runs = {}
    for reranker in RERANKERS:
        merged = tmp_path / f"merged-{reranker}.trec"
        result = invoke_ok(*merge, "--reranker", reranker, "-o", merged)
        assert "0 pairs scored now, 36 from the score store" in result.stderr
        single = tmp_path / f"single-{reranker}.trec"
        invoke_ok(*rerank_args(single, *reranker_args(reranker)))
        assert merged.read_bytes() == single.read_bytes()
        assert manifest_of(merged)["reranker"]["name"] == reranker
        runs[reranker] = merged.read_bytes()
    assert runs["rankvideo"] != runs["qwen3-vl-reranker"]
