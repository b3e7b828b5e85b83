"""`rankvideo eval`: what the command says about its inputs (the evaluation itself: test_evaluation_measures.py)."""

from __future__ import annotations

import json
import re
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
    table = invoke("eval", reranked.output, QRELS, "--baseline", FIRST_STAGE, "--format", "table")
    assert table.exit_code == 0, table.output
    assert "nDCG@10" in table.stdout and "W/T/L" in table.stdout and "p: paired t-tests" in table.stdout
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
    table = invoke(
        "eval", reranked.output, tolerant, QRELS, "--baseline", FIRST_STAGE, "-m", "nDCG@10", "--format", "table"
    )
    assert table.exit_code == 0, table.output
    assert "p (holm)" in table.stdout and "baseline first_stage.trec" in table.stdout
    assert "│ nDCG@10 │ first_stage.trec │ 0.4219 │ baseline │" in table.stdout  # the baseline's row says so
    bad = invoke("eval", reranked.output, QRELS, "--baseline", FIRST_STAGE, "--correction", "sidak")
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_eval_errors_are_one_line(tmp_path: Path) -> None:
    assert_refused(invoke("eval", FIRST_STAGE, QRELS, "-m", "bogus"), "unknown measure 'bogus'")
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 v001 1\nq1 0 v002\n")
    assert_refused(invoke("eval", FIRST_STAGE, qrels), "qrels.txt:2:")


def test_piped_eval_prints_tab_separated_values_and_format_table_still_draws_the_table(reranked: Reranked) -> None:
    """What ir-measures' and trec_eval's users pipe (`eval ... | cut -f`): one row per run and measure, a header
    line, no box characters; p-values at the table's precision."""
    piped = invoke("eval", reranked.output, QRELS, "--baseline", FIRST_STAGE)  # the runner's stdout is no terminal
    assert piped.exit_code == 0, piped.output
    rows = [line.split("\t") for line in piped.stdout.splitlines()]
    assert rows[0] == [
        "run", "query_id", "measure", "value", "missing_queries", "delta", "wins", "ties", "losses", "p_value",
        "p_value_corrected",
    ]  # fmt: skip
    assert len(rows) == 1 + 2 * 6 and {len(row) for row in rows} == {11}
    assert [row[0] for row in rows[1:]] == ["reranked.trec"] * 6 + ["first_stage.trec"] * 6
    assert not set(piped.stdout) & set("│┃━─┏┗╇")
    ndcg = dict(zip(rows[0], rows[1], strict=True))
    assert ndcg["measure"] == "nDCG@10" and ndcg["p_value"] == "0.923" and ndcg["wins"] == "1"
    assert ndcg["value"] == repr(float(ndcg["value"]))  # values whole, for programs
    assert piped.stdout == invoke("eval", reranked.output, QRELS, "--baseline", FIRST_STAGE, "--format", "tsv").stdout
    forced = invoke("eval", reranked.output, QRELS, "--baseline", FIRST_STAGE, "--format", "table")
    assert "┃ measure ┃" in forced.stdout and "\t" not in forced.stdout


def test_the_table_never_splits_a_run_name_at_80_columns(reranked: Reranked, tmp_path: Path) -> None:
    """`first_stage.t` / `rec` was one name on two lines; a name too long for the terminal loses its directories'
    start or its middle, on one line, and the tsv keeps it whole."""
    directory = tmp_path / "runs" / "bm25_with_a_long_directory_name"
    directory.mkdir(parents=True)
    (directory / "run.trec").write_bytes(reranked.output.read_bytes())
    other = tmp_path / "runs" / "another_directory"
    other.mkdir()
    (other / "run.trec").write_bytes(FIRST_STAGE.read_bytes())
    long_name = tmp_path / "reranked_with_qwen3_vl_interpolated_alpha_0.5_minmax_depth100.trec"
    long_name.write_bytes(reranked.output.read_bytes())
    for runs in ([reranked.output], [directory / "run.trec", other / "run.trec", long_name]):
        names = [str(run) if run.name == "run.trec" else run.name for run in runs]
        for baseline in (["--baseline", str(FIRST_STAGE)], []):
            result = CliRunner().invoke(
                app, ["eval", *map(str, runs), str(QRELS), *baseline, "--format", "table", "-m", "nDCG@10", "-m", "RR"],
                env={"COLUMNS": "80"},
            )  # fmt: skip
            assert result.exit_code == 0, result.output
            assert max(map(len, result.stdout.splitlines())) <= 80, result.stdout
            cells = {cell.strip() for line in result.stdout.splitlines() for cell in re.split("[│┃]", line)}
            for name in names:  # each name on one line: whole, or its start and end around an ellipsis
                assert name in cells or any(
                    "…" in cell and name.startswith(cell.split("…")[0]) and name.endswith(cell.split("…")[1])
                    for cell in cells
                ), (name, result.stdout)
            if len(runs) == 1:
                assert "…" not in result.stdout
            elif baseline:
                assert "…ectory_name/run.trec" in cells and "…r_directory/run.trec" in cells  # told apart
    piped = invoke("eval", directory / "run.trec", other / "run.trec", long_name, QRELS, "-m", "RR")
    assert {line.split("\t")[0] for line in piped.stdout.splitlines()[1:]} == {
        str(directory / "run.trec"), str(other / "run.trec"), long_name.name,
    }  # fmt: skip


def test_a_piped_eval_says_on_stderr_what_the_numbers_do_not(reranked: Reranked, tmp_path: Path) -> None:
    partial = tmp_path / "partial.trec"
    partial.write_text("".join(line + "\n" for line in FIRST_STAGE.read_text().splitlines() if line.startswith("q1 ")))
    result = invoke("eval", partial, QRELS, "-m", "RR")
    assert result.exit_code == 0, result.output
    assert "partial.trec: 3 judged queries missing from the run, counted as zero" in result.stderr
    assert result.stdout.splitlines()[1].split("\t")[4] == "3"  # missing_queries
