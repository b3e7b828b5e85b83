"""`rankvideo eval`: what the command says about its inputs (the evaluation itself: test_evaluation_measures.py)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import FIRST_STAGE, QRELS, SAMPLE, Reranked, assert_refused, invoke
from helpers import write_input as write
from typer.testing import CliRunner

from rankvideo_cli.cli import app

SAMPLE_RUN = SAMPLE / "first_stage.trec"


def test_eval_refuses_a_qrels_line_with_a_repeated_key_in_one_line(tmp_path: Path) -> None:
    """json.loads would read the line as relevance 0 (the last of the two) without a word."""
    qrels = write(
        tmp_path,
        "qrels.jsonl",
        '{"query_id": "q1", "doc_id": "v001", "relevance": 1}\n'
        '{"query_id": "q1", "doc_id": "v009", "relevance": 1, "relevance": 0}\n',
    )
    result = CliRunner().invoke(app, ["eval", str(SAMPLE_RUN), str(qrels)])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr == (
        f"rankvideo: {qrels}:2: key 'relevance' appears twice in one object; which value is meant cannot be told\n"
    )


def test_eval_with_a_baseline_in_every_format(reranked: Reranked) -> None:
    table = invoke("eval", reranked.output, QRELS, "--baseline", FIRST_STAGE)
    assert table.exit_code == 0, table.output
    assert "nDCG@10" in table.stdout and "W/T/L" in table.stdout and "p (paired t)" in table.stdout
    as_json = json.loads(invoke("eval", reranked.output, QRELS, "--baseline", FIRST_STAGE, "--format", "json").stdout)
    assert [run["name"] for run in as_json["runs"]] == ["reranked.trec", "first_stage.trec"]
    assert {comparison["measure"] for comparison in as_json["comparison"]} == {
        "nDCG@10",
        "nDCG@20",
        "R@10",
        "R@100",
        "AP",
        "RR",
    }
    tsv = invoke("eval", reranked.output, QRELS, "--per-query", "--format", "tsv", "-m", "RR").stdout.splitlines()
    assert tsv[0] == "run\tquery_id\tmeasure\tvalue\tmissing_queries" and len(tsv) == 1 + 4 + 1  # 4 queries + all
    csv = invoke("eval", reranked.output, QRELS, "--format", "csv", "-m", "RR").stdout.splitlines()
    assert csv[0] == "run,query_id,measure,value,missing_queries" and csv[1].startswith("reranked.trec,all,RR,")
    assert csv[1].endswith(",0")


def test_eval_compares_several_runs_with_one_baseline(reranked: Reranked, tmp_path: Path) -> None:
    # a third system: the first stage with trec_eval 10.0 comments, extra columns and a float rank column
    lines = FIRST_STAGE.read_text().splitlines()
    tolerant = tmp_path / "tolerant.trec"
    tolerant.write_text(
        "# a run with notes\n" + "".join(f"{line} extra\n" if i % 2 else f"{line}\n" for i, line in enumerate(lines))
    )
    result = invoke(
        "eval",
        reranked.output,
        tolerant,
        QRELS,
        "--baseline",
        FIRST_STAGE,
        "-m",
        "nDCG@10",
        "-m",
        "num_rel_ret",
        "--format",
        "json",
        "--correction",
        "bonferroni",
    )
    assert result.exit_code == 0, result.output
    assert f"{tolerant}: {len(lines) // 2} lines with columns after the 6th (ignored, as trec_eval does)" in (
        result.stderr
    )
    payload = json.loads(result.stdout)
    assert [run["name"] for run in payload["runs"]] == ["reranked.trec", "tolerant.trec", "first_stage.trec"]
    assert payload["baseline"] == "first_stage.trec" and payload["correction"] == "bonferroni"
    assert payload["measures"] == ["nDCG@10", "num_rel_ret"]
    assert [(c["run"], c["measure"]) for c in payload["comparison"]] == [
        ("reranked.trec", "nDCG@10"),
        ("reranked.trec", "num_rel_ret"),
        ("tolerant.trec", "nDCG@10"),
        ("tolerant.trec", "num_rel_ret"),
    ]
    tolerant_ndcg = payload["comparison"][2]
    assert tolerant_ndcg["delta"] == 0.0 and tolerant_ndcg["ties"] == 4  # the same ranking as the baseline
    table = invoke("eval", reranked.output, tolerant, QRELS, "--baseline", FIRST_STAGE, "-m", "nDCG@10")
    assert table.exit_code == 0, table.output
    assert "(holm)" in table.stdout and "(baseline)" in table.stdout and "baseline first_stage.trec" in table.stdout
    bad = invoke("eval", reranked.output, QRELS, "--baseline", FIRST_STAGE, "--correction", "sidak")
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_eval_errors_are_one_line(tmp_path: Path) -> None:
    assert_refused(invoke("eval", FIRST_STAGE, QRELS, "-m", "bogus"), "unknown measure 'bogus'")
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 v001 1\nq1 0 v002\n")
    assert_refused(invoke("eval", FIRST_STAGE, qrels), "qrels.txt:2:")
