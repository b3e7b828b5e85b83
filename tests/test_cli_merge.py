"""`rankvideo merge`: the run built from the shards in a score store equals the single-process run, and takes the
prompt its shards scored with."""

from __future__ import annotations

from pathlib import Path

from helpers import (
    FIRST_STAGE,
    QUERIES,
    SAMPLE,
    VIDEOS,
    Reranked,
    assert_refused,
    invoke,
    invoke_ok,
    rerank_args,
    sample_rerank_args,
)
from typer.testing import CliRunner

from rankvideo_cli.cli import app


def test_merge_of_shards_equals_the_single_process_run(reranked: Reranked, tmp_path: Path) -> None:
    store = tmp_path / "store"
    for index in range(2):
        shard = invoke(*sample_rerank_args(VIDEOS, "--tag", "rv-test", "--cache", store, "--shard", f"{index}/2"))
        assert shard.exit_code == 0, shard.output
        assert shard.stdout == ""
    merged = invoke("merge", FIRST_STAGE, QUERIES, "--cache", store, "-o", tmp_path / "merged.trec")
    assert merged.exit_code == 0, merged.output
    assert (tmp_path / "merged.trec").read_bytes() == reranked.output.read_bytes()

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
