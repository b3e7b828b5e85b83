"""Every `rankvideo` command end to end through Typer's runner, on the shipped sample and the tiny model.

Data goes to stdout or the named file, everything else to stderr; user errors are one line and a non-zero exit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import ir_measures
import pytest
from typer.testing import CliRunner, Result

from rankvideo_cli.cli import app
from rankvideo_cli.io.runs import read_run

SAMPLE = Path(__file__).resolve().parent.parent / "sample_runs"
FIRST_STAGE = SAMPLE / "first_stage.trec"
QUERIES = SAMPLE / "queries.tsv"
QRELS = SAMPLE / "qrels.txt"
VIDEOS = SAMPLE / "videos"
MISSING_DOCID = "v404"  # a candidate of the sample without a video file
SCORE_FIELDS = {"logit_delta", "logit_delta_yes_minus_no", "p_yes", "logprob_yes", "logprob_no"}


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args])


def rerank_args(*extra: str | Path) -> list[str | Path]:
    return ["rerank", FIRST_STAGE, QUERIES, "--videos", VIDEOS, "--model", "tiny-random", *extra]


def trec_lines(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rankvideo: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@dataclass
class Reranked:
    result: Result
    output: Path
    scores: dict[tuple[str, str], dict[str, float]]


@pytest.fixture(scope="module")
def reranked(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Reranked:
    work = tmp_path_factory.mktemp("cli-rerank")
    output, scores = work / "reranked.trec", work / "scores.jsonl"
    result = invoke(*rerank_args("-o", output, "--scores", scores, "--qrels", QRELS, "--tag", "rv-test"))
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in scores.read_text().splitlines()]
    return Reranked(result, output, {(record["qid"], record["docid"]): record for record in records})


def test_rerank_writes_every_input_pair_once_and_only_the_run(reranked: Reranked) -> None:
    assert reranked.result.stdout == ""  # -o: stdout carries nothing
    first_stage = read_run(FIRST_STAGE)
    rows = trec_lines(reranked.output.read_text())
    assert sorted((row[0], row[2]) for row in rows) == sorted(
        (qid, candidate.docid) for qid, candidates in first_stage.items() for candidate in candidates
    )
    assert {row[1] for row in rows} == {"Q0"} and {row[5] for row in rows} == {"rv-test"}
    for qid in first_stage:
        assert [int(row[3]) for row in rows if row[0] == qid] == list(range(1, len(first_stage[qid]) + 1))


def test_rerank_order_follows_the_model_scores_and_the_missing_video_comes_last(reranked: Reranked) -> None:
    written = read_run(reranked.output)  # ordered as trec_eval orders it: score desc, docid desc
    for qid, candidates in written.items():
        docids = [candidate.docid for candidate in candidates]
        scored = [docid for docid in docids if (qid, docid) in reranked.scores]
        by_model = sorted(scored, key=lambda docid: (reranked.scores[qid, docid]["logit_delta"], docid), reverse=True)
        assert docids[: len(scored)] == by_model
        assert docids[len(scored) :] == [MISSING_DOCID]
        for candidate in candidates[: len(scored)]:
            assert candidate.score == reranked.scores[qid, candidate.docid]["logit_delta"]


def test_rerank_raw_scores_file(reranked: Reranked) -> None:
    assert len(reranked.scores) == 36  # 4 queries x 9 candidates with a video file
    for record in reranked.scores.values():
        assert set(record) >= SCORE_FIELDS and record["video"].endswith(f"{record['docid']}.mp4")
        assert record["logit_delta"] == record["logit_delta_yes_minus_no"]
        assert record["logit_delta"] == pytest.approx(record["logprob_yes"] - record["logprob_no"], abs=1e-6)


def test_rerank_reports_on_stderr(reranked: Reranked) -> None:
    stderr = reranked.result.stderr
    assert "MEANINGLESS" in stderr  # tiny-random says loudly what it is
    assert f"1 candidate videos have no file under {VIDEOS}" in stderr
    assert "4 queries, 40 candidates in; 40 written (36 reranked, 4 unscored kept in first-stage order" in stderr
    assert "4 pairs without a video file (keep)" in stderr
    assert "nDCG@10" in stderr and "first stage" in stderr and "W/T/L" in stderr


def test_rerank_evaluation_equals_ir_measures_on_the_written_file(reranked: Reranked) -> None:
    expected = ir_measures.calc_aggregate(
        [ir_measures.nDCG @ 10],
        ir_measures.read_trec_qrels(str(QRELS)),
        ir_measures.read_trec_run(str(reranked.output)),
    )
    result = invoke("eval", reranked.output, QRELS, "-m", "nDCG@10", "--format", "json")
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.stdout)["runs"]
    assert run["aggregate"]["nDCG@10"] == expected[ir_measures.nDCG @ 10]


def test_rerank_to_stdout_is_byte_identical_to_the_file_and_to_a_fresh_run(reranked: Reranked, tmp_path: Path) -> None:
    to_stdout = invoke(*rerank_args("--tag", "rv-test", "--cache", tmp_path / "fresh-store"))
    assert to_stdout.exit_code == 0, to_stdout.output
    assert to_stdout.stdout == reranked.output.read_text()  # scored again from scratch: same bytes


def test_rerank_reads_the_run_from_stdin(reranked: Reranked, tmp_path: Path) -> None:
    runner = CliRunner()
    arguments = ["rerank", "-", str(QUERIES), "--videos", str(VIDEOS), "--model", "tiny-random", "--tag", "rv-test"]
    result = runner.invoke(app, [*arguments, "--cache", str(tmp_path / "store")], input=FIRST_STAGE.read_text())
    assert result.exit_code == 0, result.output
    assert result.stdout == reranked.output.read_text()


def test_missing_video_policies(tiny_model_dir: Path, tmp_path: Path) -> None:
    refused = invoke(*rerank_args("--on-missing-video", "error", "--cache", tmp_path / "store"))
    assert refused.exit_code != 0 and refused.stdout == ""
    assert "1 candidate videos are missing" in refused.stderr and "Traceback" not in refused.stderr

    dropped = invoke(*rerank_args("--on-missing-video", "drop", "--cache", tmp_path / "store"))
    assert dropped.exit_code == 0, dropped.output
    rows = trec_lines(dropped.stdout)
    assert len(rows) == 36 and MISSING_DOCID not in {row[2] for row in rows}
    assert "4 candidates dropped as asked" in dropped.stderr


def test_depth_keeps_the_rest_in_first_stage_order(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = invoke(*rerank_args("--depth", "3", "--cache", tmp_path / "store"))
    assert result.exit_code == 0, result.output
    rows = trec_lines(result.stdout)
    for qid, candidates in read_run(FIRST_STAGE).items():
        order = [row[2] for row in rows if row[0] == qid]
        top = [candidate.docid for candidate in candidates[:3]]
        scored = [docid for docid in top if docid != MISSING_DOCID]
        assert set(order[: len(scored)]) == set(scored)
        unscored_within_depth = [docid for docid in top if docid == MISSING_DOCID]
        assert order[len(scored) :] == unscored_within_depth + [candidate.docid for candidate in candidates[3:]]
    assert "below depth 3" in result.stderr


def test_a_symlinked_escape_or_dot_dot_docid_is_never_opened(tiny_model_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 v001 1 2.0 fs\nq1 Q0 ../videos/v002 2 1.0 fs\n")
    result = invoke("rerank", run, QUERIES, "--videos", VIDEOS, "--model", "tiny-random", "--cache", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert "1 of them rejected (docid '../videos/v002': path '../videos/v002.mp4' would leave" in result.stderr
    assert [row[2] for row in trec_lines(result.stdout)] == ["v001", "../videos/v002"]  # kept, unscored


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ("q1 Q0 v001 1 1.0 x\nq1 Q0 v002 2 abc x\n", [":2: score must be a number, got 'abc'"]),
        ("q1 Q0 v001 1 1.0\n", [":1: expected 6 columns"]),
        (
            "q1 Q0 v001 1 1.0 x\nq1 Q0 v001 2 0.5 x\n",
            [":2: duplicate document 'v001' for query 'q1' (first at line 1)"],
        ),
        ("", [": empty file"]),
        ("q9 Q0 v001 1 1.0 x\n", [":1: query 'q9' is not in", "--missing-query skip"]),
    ],
)
def test_bad_runs_are_one_line_errors_naming_file_and_line(tmp_path: Path, content: str, fragments: list[str]) -> None:
    run = tmp_path / "bad.trec"
    run.write_text(content)
    assert_one_line_error(invoke("rerank", run, *rerank_args()[2:]), *fragments)


def test_undecodable_bytes_are_a_one_line_error(tmp_path: Path) -> None:
    run = tmp_path / "latin1.trec"
    run.write_bytes(b"q1 Q0 v\xe9 1 1.0 x\n")
    assert_one_line_error(invoke("rerank", run, *rerank_args()[2:]), "latin1.trec:1: not UTF-8 text")


def test_missing_query_skip_keeps_the_query_in_first_stage_order(tiny_model_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run.trec"
    run.write_text(FIRST_STAGE.read_text() + "q9 Q0 v001 1 0.5 fs\nq9 Q0 v002 2 0.4 fs\n")
    result = invoke("rerank", run, *rerank_args("--missing-query", "skip", "--cache", tmp_path / "s")[2:])
    assert result.exit_code == 0, result.output
    assert [row[2] for row in trec_lines(result.stdout) if row[0] == "q9"] == ["v001", "v002"]
    assert "1 queries without text kept in first-stage order (q9)" in result.stderr


def test_interpolation_mixes_model_and_first_stage(tiny_model_dir: Path, tmp_path: Path) -> None:
    only_first_stage = invoke(*rerank_args("--interpolate", "0", "--cache", tmp_path / "store"))
    assert only_first_stage.exit_code == 0, only_first_stage.output
    first_stage = read_run(FIRST_STAGE)
    rows = trec_lines(only_first_stage.stdout)
    for qid, candidates in first_stage.items():
        assert [row[2] for row in rows if row[0] == qid] == [
            candidate.docid for candidate in candidates if candidate.docid != MISSING_DOCID
        ] + [MISSING_DOCID]
    out_of_range = invoke(*rerank_args("--interpolate", "1.5"))
    assert out_of_range.exit_code == 2 and "Traceback" not in out_of_range.output


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
    assert_one_line_error(invoke("eval", FIRST_STAGE, QRELS, "-m", "bogus"), "unknown measure 'bogus'")
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 v001 1\nq1 0 v002\n")
    assert_one_line_error(invoke("eval", FIRST_STAGE, qrels), "qrels.txt:2:")


def test_score_prints_json_lines_and_flags_a_missing_video(tiny_model_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    result = invoke("score", "--query", "a red ball", VIDEOS / "v001.mp4", missing, "--model", "tiny-random", "--json")
    assert result.exit_code == 1  # one video failed: the caller must notice
    good, bad = (json.loads(line) for line in result.stdout.splitlines())
    assert set(good) >= SCORE_FIELDS and "error" not in good and 0.0 < good["p_yes"] < 1.0
    assert "logit_delta" not in bad and bad["error"] == f"{missing}: missing: no such file"
    assert bad["error"] in result.stderr
    table = invoke("score", "-q", "a red ball", VIDEOS / "v001.mp4", "--model", "tiny-random")
    assert table.exit_code == 0 and "MEANINGLESS" in table.stderr
    video_cells = [line.split("│")[1].strip() for line in table.stdout.splitlines() if line.startswith("│")]
    assert "".join(video_cells) == str(VIDEOS / "v001.mp4")  # folded over lines, never cut


def test_frames_shows_what_the_model_sees(tmp_path: Path) -> None:
    result = invoke("frames", VIDEOS / "v001.mp4", "--json", "--save", tmp_path / "png")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    count = len(plan["frame_indices"])
    assert count % 2 == 0 and len(plan["pair_timestamps"]) == count // 2
    assert len(sorted((tmp_path / "png").glob("*.png"))) == count
    assert_one_line_error(invoke("frames", tmp_path / "none.mp4"), "none.mp4: missing: no such file")


def test_merge_of_shards_equals_the_single_process_run(reranked: Reranked, tmp_path: Path) -> None:
    store = tmp_path / "store"
    for index in range(2):
        shard = invoke(*rerank_args("--tag", "rv-test", "--cache", store, "--shard", f"{index}/2"))
        assert shard.exit_code == 0, shard.output
        assert shard.stdout == ""
    merged = invoke("merge", FIRST_STAGE, QUERIES, "--cache", store, "-o", tmp_path / "merged.trec")
    assert merged.exit_code == 0, merged.output
    assert (tmp_path / "merged.trec").read_bytes() == reranked.output.read_bytes()

    # another run (one candidate fewer) is not what the shards scored: refused, unless forced
    other = tmp_path / "other.trec"
    other.write_text("".join(FIRST_STAGE.read_text().splitlines(keepends=True)[1:]))
    refused = invoke("merge", other, QUERIES, "--cache", store, "-o", tmp_path / "other-merged.trec")
    assert_one_line_error(refused, "is not the run the shards", "--force")
    assert not (tmp_path / "other-merged.trec").exists()
    forced = invoke("merge", other, QUERIES, "--cache", store, "-o", tmp_path / "other-merged.trec", "--force")
    assert forced.exit_code == 0, forced.output
    assert len((tmp_path / "other-merged.trec").read_text().splitlines()) == 39
    # merge's outputs are checked like rerank's, and it can write the raw scores for `tune`
    assert_one_line_error(invoke("merge", FIRST_STAGE, QUERIES, "--cache", store, "-o", FIRST_STAGE), "same file")
    with_scores = invoke("merge", FIRST_STAGE, QUERIES, "--cache", store, "--scores", tmp_path / "s.jsonl")
    assert with_scores.exit_code == 0 and len((tmp_path / "s.jsonl").read_text().splitlines()) == 36


def test_model_that_cannot_be_found_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    result = invoke(*rerank_args()[:-2], "--model", "hltcoe/RankVideo", "--cache", tmp_path / "store")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "hltcoe/RankVideo" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("rankvideo: ") and "HF_HUB_OFFLINE" in last


def _path_parameters() -> list[tuple[str, str, bool]]:
    """(command, the parameter's name on the command line, is it an option) for every parameter of every
    command that names a file or directory, read from the commands' own declarations."""
    import typing

    import typer.models

    from rankvideo_cli.cli import non_empty_path, non_empty_text

    found = []
    for info in app.registered_commands:
        callback = info.callback
        assert callback is not None
        command = info.name or callback.__name__.replace("_", "-")
        for name, hint in typing.get_type_hints(callback, include_extras=True).items():
            declared = [
                item for item in getattr(hint, "__metadata__", ()) if isinstance(item, typer.models.ParameterInfo)
            ]
            if not declared:
                continue
            (parameter,) = declared
            if "Path" in str(hint.__origin__):
                assert parameter.parser is non_empty_path, f"{command} {name}: a path without the empty-path check"
            if parameter.parser not in (non_empty_path, non_empty_text):
                continue
            is_option = isinstance(parameter, typer.models.OptionInfo)
            flags = [flag for flag in parameter.param_decls or () if flag.startswith("--")]
            found.append((command, flags[0] if flags else f"--{name.replace('_', '-')}", is_option))
    return sorted(found)


@pytest.mark.parametrize(("command", "parameter", "is_option"), _path_parameters())
def test_every_path_parameter_refuses_an_empty_path_the_same_way(
    command: str, parameter: str, is_option: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-o "$OUT"` with OUT unset must not write ./index.html or read the working directory as an input."""
    monkeypatch.chdir(tmp_path)
    result = invoke(command, *([parameter, ""] if is_option else [""]))
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"rankvideo {command}: Invalid value for ")
    assert "an empty path (an unset shell variable?); give a file or directory name" in line
    assert list(tmp_path.iterdir()) == []


def test_the_report_and_the_runs_refuse_an_empty_output_path() -> None:
    """The cases users meet, named: each command with an output file or folder is among the parameters."""
    outputs = {(command, parameter) for command, parameter, _ in _path_parameters()}
    for command in ("rerank", "rank", "tune", "merge", "report"):
        assert (command, "--output") in outputs
    assert {
        ("rerank", "--scores"),
        ("merge", "--scores"),
        ("sample", "--frames-cache"),
        ("frames", "--save"),
    } <= outputs


def test_a_huge_docid_or_field_is_quoted_short_in_every_message(tmp_path: Path) -> None:
    """A 10 MB docid (a broken first stage) was printed whole, twice, in the missing-video warning: 20 MB."""
    huge = "x" * 10_000_000
    run = tmp_path / "run.trec"
    run.write_text(f"q1 Q0 {huge} 1 9 r\nq1 Q0 v001 2 8 r\n")
    queries = tmp_path / "queries.tsv"
    queries.write_text("q1\tpeople dancing\n")
    planned = invoke("rerank", run, queries, "--videos", VIDEOS, "--dry-run")
    assert planned.exit_code == 0
    warning = next(line for line in planned.stderr.splitlines() if "have no file under" in line)
    assert len(warning) < 1_000 and "[10,000,000 characters]" in warning
    assert len(planned.stderr) < 5_000
    run.write_text(f"q1 Q0 v001 1 {huge} r\n")  # an error quoting the bad score
    refused = invoke("rerank", run, queries, "--videos", VIDEOS, "--dry-run")
    assert_one_line_error(refused, f"{run}:1:", "characters]")
    assert len(refused.stderr) < 1_000
