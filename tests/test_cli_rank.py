"""The reference code's per-video score files (`{vid}_reranking_{model}.json`) give the run `rerank` gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import FAKE, invoke

from rankvideo_cli.errors import InputError, UsageError
from rankvideo_cli.io.reference_scores import read_reference_scores

SAMPLE = Path(__file__).resolve().parent.parent / "sample_runs"


@pytest.fixture(scope="module")
def reference_files(tmp_path_factory: pytest.TempPathFactory):
    """`rerank` on the sample, its run and raw scores, and the same scores as the reference code writes them."""
    work = tmp_path_factory.mktemp("reference")
    result = invoke(
        "rerank",
        SAMPLE / "first_stage.trec",
        SAMPLE / "queries.tsv",
        "--videos",
        SAMPLE / "videos",
        "--model",
        FAKE,
        "-o",
        work / "rerank.trec",
        "--scores",
        work / "scores.jsonl",
    )
    assert result.exit_code == 0, result.output
    by_video: dict[str, dict] = {}
    for line in (work / "scores.jsonl").read_text().splitlines():
        record = json.loads(line)
        fields = {key: record[key] for key in ("logprob_yes", "logprob_no", "logit_delta", "p_yes")}
        by_video.setdefault(record["docid"], {})[record["qid"]] = fields
    directory = work / "reference"
    directory.mkdir()
    for video, scores in by_video.items():
        (directory / f"{video}_reranking_RankVideo.json").write_text(json.dumps({video: scores}, indent=2))
    (directory / "failed.log").write_text("v404: missing\n")  # the reference's own log: not a score file
    return work, directory


def test_rank_with_the_reference_files_equals_rerank(reference_files) -> None:
    work, directory = reference_files
    result = invoke("rank", SAMPLE / "first_stage.trec", "--scores", directory, "-o", work / "ranked.trec")
    assert result.exit_code == 0, result.output
    assert (work / "ranked.trec").read_bytes() == (work / "rerank.trec").read_bytes()
    assert "36 reranked with the stored scores, 4 within depth 100 without a score" in result.stderr
    from_jsonl = invoke("rank", SAMPLE / "first_stage.trec", "--scores", work / "scores.jsonl")
    assert from_jsonl.stdout == (work / "rerank.trec").read_text()
    evaluated = invoke(
        "rank",
        SAMPLE / "first_stage.trec",
        "--scores",
        directory,
        "--qrels",
        SAMPLE / "qrels.txt",
        "--interpolate",
        "0.5",
    )
    assert evaluated.exit_code == 0 and "nDCG@10" in evaluated.stderr
    tuned = invoke("tune", SAMPLE / "first_stage.trec", SAMPLE / "qrels.txt", "--scores", directory, "--folds", "2")
    assert tuned.exit_code == 0, tuned.output


def test_reference_directory_errors(reference_files, tmp_path: Path) -> None:
    _work, directory = reference_files
    assert len(read_reference_scores(directory)) == 36
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for path in directory.glob("*.json"):
        (mixed / path.name).write_text(path.read_text())
    (mixed / "v001_reranking_Other-Model.json").write_text(json.dumps({"v001": {}}))
    with pytest.raises(UsageError, match="several models"):
        read_reference_scores(mixed)
    assert len(read_reference_scores(mixed, "RankVideo")) == 36
    (mixed / "v002_reranking_RankVideo.json").write_text('{"v002": {"q1": {"logit_delta": "high"}}}')
    with pytest.raises(InputError, match="finite number"):
        read_reference_scores(mixed, "RankVideo")
    (mixed / "v002_reranking_RankVideo.json").write_text('{"v002": {"q1": \n')
    with pytest.raises(InputError, match="invalid JSON") as caught:
        read_reference_scores(mixed, "RankVideo")
    assert caught.value.line == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert invoke("rank", SAMPLE / "first_stage.trec", "--scores", empty).exit_code == 2
    refused = invoke("rank", SAMPLE / "first_stage.trec", "--scores", directory, "-o", SAMPLE / "first_stage.trec")
    assert refused.exit_code == 2 and "never overwrite" in refused.stderr


def test_a_key_given_twice_in_a_reference_file_is_refused_naming_it(reference_files, tmp_path: Path) -> None:
    """json.loads keeps the last of two equal keys: rank and tune would take one of two scores silently."""
    _work, directory = reference_files
    for repeated, level, expected_line in (
        ('{"v002": {\n "q1": {"logit_delta": 1.0},\n "q1": {"logit_delta": 9.0}}}', "query id 'q1'", 3),
        ('{"v002": {"q1": {"logit_delta": 1.0}},\n "v002": {"q1": {"logit_delta": 9.0}}}', "video id 'v002'", 2),
        ('{"v002": {"q1": {"logit_delta": 1.0,\n "logit_delta": 9.0}}}', "score field 'logit_delta'", 2),
    ):
        copied = tmp_path / f"copy-{expected_line}-{len(repeated)}"
        copied.mkdir()
        for path in directory.glob("*.json"):
            (copied / path.name).write_text(path.read_text())
        target = copied / "v002_reranking_RankVideo.json"
        target.write_text(repeated)
        for command in (
            ["rank", SAMPLE / "first_stage.trec", "--scores", copied],
            ["tune", SAMPLE / "first_stage.trec", SAMPLE / "qrels.txt", "--scores", copied, "--folds", "2"],
        ):
            result = invoke(*command)
            assert result.exit_code == 2, result.output
            assert f"{target}:{expected_line}: {level} appears twice in one object" in result.stderr
            assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
