"""`rankvideo.pyterrier.RankVideoReranker` in PyTerrier pipelines (`%`, `>>`, `pt.Experiment`), without Java.

Its results must be the run `rankvideo rerank` writes for the same first stage (same order, same scores), for each
reranker and instruction, a second `pt.Experiment` must take every score from the store, and rows without a video
stay in the results. `read_topics` reads a query file as `rerank` does (a header row is no query), and the docs'
example, run as written, prints what the docs show and gives `rerank`'s run.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from helpers import FAKE, SAMPLE, TINY, invoke_ok, reranker_args, sample_rerank_args
from typer.testing import CliRunner

from rankvideo_cli.cli import app
from rankvideo_cli.errors import InputError, RankVideoError, UsageError
from rankvideo_cli.evaluation.measures import evaluate
from rankvideo_cli.io.qrels import read_qrels
from rankvideo_cli.io.queries import read_queries
from rankvideo_cli.io.runs import read_run_scores
from rankvideo_cli.scoring.options import ScorerOptions

pt = pytest.importorskip("pyterrier", reason="the pyterrier extra is part of the dev install")

from rankvideo_cli.pyterrier import RankVideoReranker, read_topics, results_to_run  # noqa: E402

CANDIDATES = 40  # 4 queries x 10 candidates, one of them (v404) without a video file
SCORED = 36


@pytest.fixture(scope="module")
def topics() -> pd.DataFrame:
    queries = read_queries(SAMPLE / "queries.tsv")
    return pd.DataFrame({"qid": list(queries), "query": list(queries.values())})


@pytest.fixture(scope="module")
def first_stage(topics: pd.DataFrame):
    """The sample's first-stage run as a PyTerrier retriever (a result frame with query texts and ranks)."""
    run = read_run_scores(SAMPLE / "first_stage.trec")
    rows = [(qid, docno, score) for qid, docs in run.items() for docno, score in docs.items()]
    results = pd.DataFrame(rows, columns=["qid", "docno", "score"]).merge(topics, on="qid")
    return pt.Transformer.from_df(pt.model.add_ranks(results))


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str | None], Path]:
    """`rankvideo rerank`'s run of the sample by a reranker, with an instruction or its own (each made once)."""
    made: dict[tuple[str, str | None], Path] = {}

    def cli_run(reranker: str, instruction: str | None) -> Path:
        if (reranker, instruction) not in made:
            output = tmp_path_factory.mktemp("cli") / "reranked.trec"
            args = ["rerank", str(SAMPLE / "first_stage.trec"), str(SAMPLE / "queries.tsv"), "--videos"]
            args += [str(SAMPLE / "videos"), "--model", FAKE, "-o", str(output), "--decode-workers", "1"]
            args += [*reranker_args(reranker), *(["--instruction", instruction] if instruction is not None else [])]
            completed = CliRunner().invoke(app, args)
            assert completed.exit_code == 0, completed.output
            made[reranker, instruction] = output
        return made[reranker, instruction]

    return cli_run


@pytest.fixture(scope="module")
def cli_run(cli_runs) -> Path:
    return cli_runs("rankvideo", None)


def trec_lines(frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(qid, docno, score) in the frame's order, the score as the run file writes it (repr)."""
    return [(row.qid, row.docno, repr(float(row.score))) for row in frame.itertuples()]


def run_file_lines(path: Path) -> list[tuple[str, str, str]]:
    return [(fields[0], fields[2], fields[4]) for fields in (line.split() for line in path.read_text().splitlines())]


@pytest.mark.parametrize(
    ("chosen", "instruction"),
    [
        (None, None),
        ("qwen3-vl-reranker", None),
        ("qwen3-vl-reranker", "Find the video that shows what the query describes."),
    ],
    ids=["rankvideo", "qwen3-vl-reranker", "qwen3-vl-reranker-instruction"],
)
def test_the_pipeline_gives_the_run_of_rankvideo_rerank(
    chosen, instruction, first_stage, topics, cli_runs, tmp_path, capsys
) -> None:
    reranker = RankVideoReranker(
        videos=SAMPLE / "videos",
        model=FAKE,
        cache=tmp_path / "store",
        decode_workers=1,
        reranker=chosen,
        instruction=instruction,
    )
    results = (first_stage % 100 >> reranker)(topics)
    assert len(results) == CANDIDATES  # the v404 rows (no video) are kept
    assert trec_lines(results) == run_file_lines(cli_runs(chosen or "rankvideo", instruction))
    for _qid, group in results.groupby("qid"):
        assert group["rank"].tolist() == list(range(len(group)))
        assert group["docno"].iloc[-1] == "v404"  # unscored: after the scored rows of its query
    assert set(results.columns) == {"qid", "docno", "score", "rank", "query"}
    assert reranker.last_result.counts.pairs_scored == SCORED
    said = capsys.readouterr().err
    assert "4 pairs without a video file (keep)" in said
    assert f"; reranker {chosen or 'rankvideo'}\n" in said
    assert not pt.java.started() and "jnius" not in sys.modules  # no Java: only the transformer API is used


def test_experiment_compares_and_reuses_the_stored_scores(first_stage, topics, cli_run, tmp_path) -> None:
    qrels = read_qrels(SAMPLE / "qrels.txt")
    qrels_frame = qrels.rename(columns={"query_id": "qid", "doc_id": "docno", "relevance": "label"})
    reranker = RankVideoReranker(
        videos=SAMPLE / "videos", model=FAKE, cache=tmp_path / "store", decode_workers=1, verbose=False
    )
    pipeline = first_stage % 100 >> reranker

    def experiment() -> pd.DataFrame:
        return pt.Experiment(
            [first_stage, pipeline],
            topics,
            qrels_frame,
            eval_metrics=["ndcg_cut_10", "map"],
            names=["first stage", "rankvideo"],
            baseline=0,
        )

    table = experiment()
    assert reranker.last_result.counts.pairs_scored == SCORED
    expected = evaluate(cli_run, qrels, ["nDCG@10", "AP"]).runs[0].aggregate  # `rankvideo eval` of the CLI's run
    reranked = table.set_index("name").loc["rankvideo"]
    assert reranked["ndcg_cut_10"] == pytest.approx(expected["nDCG@10"], abs=1e-12)
    assert reranked["map"] == pytest.approx(expected["AP"], abs=1e-12)

    again = experiment()  # the store answers: nothing is scored twice
    assert reranker.last_result.counts.pairs_scored == 0
    assert reranker.last_result.counts.pairs_cached == SCORED
    pd.testing.assert_frame_equal(again, table)


def test_the_missing_video_policy_applies(first_stage, topics, tmp_path) -> None:
    dropping = RankVideoReranker(
        videos=SAMPLE / "videos",
        model=FAKE,
        cache=tmp_path / "store",
        decode_workers=1,
        on_missing_video="drop",
        verbose=False,
    )
    results = (first_stage >> dropping)(topics)
    assert len(results) == SCORED and "v404" not in set(results["docno"])
    refusing = RankVideoReranker(
        videos=SAMPLE / "videos", model=FAKE, cache=tmp_path / "store", on_missing_video="error"
    )
    with pytest.raises(RankVideoError, match="1 candidate video is missing"):
        (first_stage >> refusing)(topics)


def test_bad_frames_and_options_are_refused_plainly(tmp_path) -> None:
    with pytest.raises(UsageError, match="needs a result frame with query, score \\(or rank\\)"):
        results_to_run(pd.DataFrame({"qid": ["q1"], "docno": ["v001"]}))
    with pytest.raises(UsageError, match=r"\(q1, v001\) appears twice"):
        results_to_run(pd.DataFrame({"qid": ["q1", "q1"], "docno": ["v001"] * 2, "query": ["a"] * 2, "score": [1, 2]}))
    with pytest.raises(UsageError, match="query 'q1' has two texts"):
        results_to_run(pd.DataFrame({"qid": ["q1", "q1"], "docno": ["a", "b"], "query": ["x", "y"], "score": [1, 2]}))
    with pytest.raises(UsageError, match="score must be finite"):
        results_to_run(pd.DataFrame({"qid": ["q1"], "docno": ["a"], "query": ["x"], "score": [float("nan")]}))
    with pytest.raises(UsageError, match="on_bad_video must be one of keep, drop, error"):
        RankVideoReranker(videos=SAMPLE / "videos", on_bad_video="skip", cache=tmp_path / "store")
    with pytest.raises(UsageError, match="not a directory"):
        RankVideoReranker(videos=tmp_path / "nowhere", cache=tmp_path / "store")


def test_a_rank_without_scores_gives_the_first_stage_order(topics) -> None:
    frame = pd.DataFrame({"qid": ["q1"] * 3, "docno": ["b", "a", "c"], "query": ["x"] * 3, "rank": [0, 1, 2]})
    run, queries = results_to_run(frame)
    assert [candidate.docid for candidate in run["q1"]] == ["b", "a", "c"]
    assert queries == {"q1": "x"}


def test_an_empty_frame_gives_an_empty_frame(tmp_path) -> None:
    reranker = RankVideoReranker(videos=SAMPLE / "videos", model=FAKE, cache=tmp_path / "store")
    empty = pd.DataFrame({"qid": [], "docno": [], "query": [], "score": [], "rank": []})
    assert reranker(empty).empty


def test_the_pyterrier_reranker_takes_the_prompt(tmp_path: Path) -> None:
    pytest.importorskip("pyterrier")
    from rankvideo_cli.pyterrier import RankVideoReranker

    reranker = RankVideoReranker(SAMPLE / "videos", model=TINY, prompt="training", cache=tmp_path / "s")
    assert reranker.scorer_options.prompt == "training" and reranker.scorer_options.prefix_cache
    with pytest.raises(UsageError, match="score-mode"):
        RankVideoReranker(
            SAMPLE / "videos", model=TINY, prompt="training", score_mode="reference", cache=tmp_path / "s"
        )


def test_rankvideo_pyterrier_is_the_reranker() -> None:
    import rankvideo.pyterrier

    assert rankvideo.pyterrier.RankVideoReranker is RankVideoReranker
    assert rankvideo.pyterrier.read_topics is read_topics


def test_without_pyterrier_the_import_says_what_to_install() -> None:
    probe = "import sys; sys.modules['pyterrier'] = None; import rankvideo.pyterrier"  # None: as if not installed
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "ImportError: rankvideo.pyterrier needs PyTerrier: pip install 'rankvideo-cli[pyterrier]' "
        "(or -e '.[pyterrier]')"
    )


def test_the_model_keywords_are_the_scorer_options_fields(tmp_path) -> None:
    fields = {field.name for field in dataclasses.fields(ScorerOptions)}
    assert fields <= set(inspect.signature(RankVideoReranker).parameters)
    reranker = RankVideoReranker(SAMPLE / "videos", model=FAKE, cache_dir=tmp_path / "hub", cache=tmp_path / "s")
    assert reranker.scorer_options.cache_dir == str(tmp_path / "hub")


def test_read_topics_reads_a_query_file_as_rerank_does(tmp_path) -> None:
    topics = read_topics(SAMPLE / "queries.tsv")
    assert list(topics.columns) == ["qid", "query"]
    assert topics["qid"].tolist() == ["q1", "q2", "q3", "q4"]  # the header row, `qid<TAB>text`, is no query
    assert dict(zip(topics["qid"], topics["query"], strict=True)) == read_queries(SAMPLE / "queries.tsv")
    multivent = read_topics(SAMPLE / "multivent" / "queries.csv")  # `Query_id,query`
    assert dict(zip(multivent["qid"], multivent["query"], strict=True)) == read_queries(
        SAMPLE / "multivent" / "queries.csv"
    )
    # why not pt.io.read_topics: its single-line format takes the header row for a query
    assert pt.io.read_topics(str(SAMPLE / "queries.tsv"), format="singleline")["qid"].iloc[0] == "qid"
    repeated = tmp_path / "queries.tsv"
    repeated.write_text("q1\ta\nq1\tb\n")
    with pytest.raises(InputError, match="duplicate query id 'q1'"):
        read_topics(repeated)


def test_the_docs_example_runs_as_written_and_gives_the_rerank_run(
    tiny_model_dir, tmp_path, monkeypatch, capsys
) -> None:
    """docs/python-api.md's PyTerrier example, executed unchanged in a copy of the sample's folder: it prints the
    table the page shows, its topics hold the four queries (no header row), and its pipeline's results are the run
    `rankvideo rerank --model tiny-random` writes for the same inputs."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "python-api.md").read_text()
    code, shown = re.search(
        r"## PyTerrier: `RankVideoReranker`.*?```python\n(.*?)```\n\n```\n(.*?)```", page, re.S
    ).groups()
    shutil.copytree(SAMPLE, tmp_path / "sample_runs", ignore=shutil.ignore_patterns("out"))
    monkeypatch.chdir(tmp_path)
    example: dict = {}
    exec(compile(code, "docs/python-api.md", "exec"), example)
    assert capsys.readouterr().out == shown

    topics = example["topics"]
    assert topics["qid"].tolist() == ["q1", "q2", "q3", "q4"]
    assert dict(zip(topics["qid"], topics["query"], strict=True)) == read_queries(SAMPLE / "queries.tsv")
    results = (example["first_stage"] % 100 >> example["rankvideo"])(topics)
    assert example["rankvideo"].last_result.counts.pairs_cached == SCORED  # the example's own scores
    run = tmp_path / "reranked.trec"
    invoke_ok(*sample_rerank_args(SAMPLE / "videos", "-o", str(run), model=TINY))
    assert trec_lines(results) == run_file_lines(run)
