"""First-stage run reading (TREC, gzip, stdin, JSON) and run writing.

Every malformed input must fail with one `InputError` whose message is `FILE:LINE: problem`.
"""

from __future__ import annotations

import gzip
import io
import math
import random
from pathlib import Path

import ir_measures
import pytest
from helpers import write_input as write

from rankvideo_cli.errors import InputError
from rankvideo_cli.io.runs import Candidate, format_score, format_trec_lines, read_run, run_from_scores


def input_error(path: Path | str, *, stdin: bytes | None = None) -> InputError:
    with pytest.raises(InputError) as caught:
        read_run(path, stdin=io.BytesIO(stdin) if stdin is not None else None)
    message = str(caught.value)
    assert "\n" not in message
    assert message == f"{caught.value.path}:{caught.value.line}: {caught.value.problem}" or (
        caught.value.line is None and message == f"{caught.value.path}: {caught.value.problem}"
    )
    return caught.value


def docids(candidates: list[Candidate]) -> list[str]:
    return [candidate.docid for candidate in candidates]


# --------------------------------------------------------------------------------------------------
# TREC runs
# --------------------------------------------------------------------------------------------------

TREC_WITH_TIES = """\
q2 Q0 b 1 0.5 first
q2 Q0 a 2 0.5 first
q10 Q0 x 1 3 first
q2 Q0 c 3 0.9 first
q2 Q0 d 4 -1.25 first
q2 Q0 e 5 0.5 first
"""


def test_trec_candidates_follow_trec_eval_order_not_the_rank_column(tmp_path: Path) -> None:
    run = read_run(write(tmp_path, "run.trec", TREC_WITH_TIES))
    # score descending; the three 0.5 ties by docid descending; the rank column is ignored
    assert docids(run["q2"]) == ["c", "e", "b", "a", "d"]
    assert [c.first_stage_rank for c in run["q2"]] == [1, 2, 3, 4, 5]
    assert [c.score for c in run["q2"]] == [0.9, 0.5, 0.5, 0.5, -1.25]
    assert list(run) == ["q10", "q2"]  # plain string order
    assert run.pair_count == 6
    assert run.first_line == {"q2": 1, "q10": 3}


def test_trec_order_agrees_with_ir_measures_reading_the_same_file(tmp_path: Path) -> None:
    path = write(tmp_path, "run.trec", TREC_WITH_TIES)
    ours = read_run(path)
    theirs: dict[str, list[tuple[float, str]]] = {}
    for doc in ir_measures.read_trec_run(str(path)):
        theirs.setdefault(doc.query_id, []).append((doc.score, doc.doc_id))
    for qid, scored in theirs.items():
        expected = [docid for _, docid in sorted(scored, reverse=True)]
        assert docids(ours[qid]) == expected


def test_trec_tolerates_crlf_bom_blank_lines_and_tabs(tmp_path: Path) -> None:
    text = "\ufeffq1 Q0 d1 1 2.0 t\r\n\r\n   \nq1\tQ0\td2\t2\t1.0\tt\r\n"
    run = read_run(write(tmp_path, "run.trec", text))
    assert docids(run["q1"]) == ["d1", "d2"]


def test_trec_scores_keep_full_precision(tmp_path: Path) -> None:
    # differ only in the 17th significant digit: must stay distinct and ordered
    text = "q1 Q0 low 1 0.30000000000000004 t\nq1 Q0 high 2 0.30000000000000010 t\n"
    run = read_run(write(tmp_path, "run.trec", text))
    assert docids(run["q1"]) == ["high", "low"]
    assert run["q1"][1].score == 0.30000000000000004


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("q1 Q0 d2 2 0.5", ["6 columns", "found 5"]),
        ("q1 Q0 d2", ["6 columns", "found 3"]),
        ("q1 Q0 d2 2 high tag", ["score", "'high'"]),
        ("q1 Q0 d2 2 nan tag", ["score", "finite"]),
        ("q1 Q0 d2 2 NaN tag", ["score", "finite"]),
        ("q1 Q0 d2 2 inf tag", ["score", "finite"]),
        ("q1 Q0 d2 2 -Infinity tag", ["score", "finite"]),
        ("q1 Q0 d2 2 1e400 tag", ["score", "finite"]),
        ("q1 Q0 d2 2 0x1p3 tag", ["score", "'0x1p3'"]),
    ],
)
def test_trec_bad_line_names_file_line_and_problem(tmp_path: Path, line: str, words: list[str]) -> None:
    path = write(tmp_path, "run.trec", f"q1 Q0 d1 1 1.0 tag\n\n{line}\nq1 Q0 d3 3 0.1 tag\n")
    error = input_error(path)
    assert (error.path, error.line) == (str(path), 3)
    for word in words:
        assert word in error.problem


def test_trec_eval_10_comments_are_skipped_wherever_they_occur(tmp_path: Path) -> None:
    # trec_eval 10.0 (get_trec_results.c): a line whose first non-blank character is '#' is a comment
    commented = (
        "# produced by bm25\nq1 Q0 d1 1 1.0 t\n   # indented comment\n#q1 Q0 d9 9 9.0 t\n"
        "q1 Q0 d2 2 0.5 t\n\t#\tq2 Q0 d3 1 1 t extra\n# the end"
    )
    run = read_run(write(tmp_path, "commented.trec", commented))
    assert run == read_run(write(tmp_path, "plain.trec", "q1 Q0 d1 1 1.0 t\nq1 Q0 d2 2 0.5 t\n"))
    assert run.tolerated == {"comments": 5}
    assert run.tolerated.describe(run.source, 6) is None  # comments are no surprise
    assert run.first_line == {"q1": 2}


def test_trec_eval_10_extra_columns_and_non_integer_ranks_are_tolerated_and_counted(tmp_path: Path) -> None:
    text = (
        "q1 Q0 d1 1 1.0 t\n"
        "q1 Q0 d2 2 0.5 t extra columns here\n"
        "q1 Q0 d3 2.0 0.25 t\n"
        "q1 Q0 d4 second 0.125 t 7\n"
        "q1 Q0 d5 -3 0.0 t\n"  # an integer, negative: nothing to tolerate
    )
    path = write(tmp_path, "run.trec", text)
    run = read_run(path)
    assert [(c.docid, c.score) for c in run["q1"]] == [
        ("d1", 1.0),
        ("d2", 0.5),
        ("d3", 0.25),
        ("d4", 0.125),
        ("d5", 0.0),
    ]
    assert run.tolerated == {"extra_columns": 2, "non_integer_rank": 2}
    assert run.tolerated.describe(run.source, 6) == (
        f"{path}: 2 lines with columns after the 6th (ignored, as trec_eval does); "
        "2 lines with a non-integer rank (trec_eval never reads it)"
    )


def test_a_run_of_comments_only_is_an_error(tmp_path: Path) -> None:
    error = input_error(write(tmp_path, "run.trec", "# nothing here\n# really\n"))
    assert error.line is None and "no candidates" in error.problem


def test_duplicate_on_stdin_names_its_line(tmp_path: Path) -> None:
    error = input_error("-", stdin=b"q1 Q0 d1 1 1.0 t\nq1 Q0 d1 2 0.5 t\n")
    assert (error.path, error.line) == ("<stdin>", 2) and "duplicate" in error.problem


def test_trec_duplicate_pair_names_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "run.trec", "q1 Q0 d1 1 1.0 t\nq2 Q0 d1 1 1.0 t\nq1 Q0 d2 2 0.5 t\nq1 Q0 d1 3 0.1 t\n")
    error = input_error(path)
    assert error.line == 4
    assert "duplicate" in error.problem and "'d1'" in error.problem and "'q1'" in error.problem
    assert "line 1" in error.problem


@pytest.mark.parametrize("content", [b"", b"   \n\n\t\n"])
def test_empty_run_is_an_error(tmp_path: Path, content: bytes) -> None:
    error = input_error(write(tmp_path, "run.trec", content))
    assert error.line is None and "empty" in error.problem


def test_undecodable_byte_is_reported_on_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "run.trec", b"q1 Q0 d1 1 1.0 t\nq1 Q0 d2 2 0.5 t\nq1 Q0 d\xff3 3 0.1 t\n")
    error = input_error(path)
    assert error.line == 3 and "UTF-8" in error.problem and "0xff" in error.problem


def test_missing_file_and_directory_are_input_errors(tmp_path: Path) -> None:
    assert "no such file" in input_error(tmp_path / "absent.trec").problem
    assert "directory" in input_error(tmp_path).problem


# --------------------------------------------------------------------------------------------------
# gzip and stdin
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["run.trec.gz", "run.trec"])  # detected by magic bytes, not by the name
def test_gzipped_run_is_read_by_magic_bytes(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, gzip.compress(TREC_WITH_TIES.encode()))
    assert read_run(path) == read_run(write(tmp_path, "plain.trec", TREC_WITH_TIES))


def test_gzipped_run_errors_keep_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "run.trec.gz", gzip.compress(b"q1 Q0 d1 1 1.0 t\nq1 Q0 d2 2 x t\n"))
    error = input_error(path)
    assert (error.path, error.line) == (str(path), 2)


def test_corrupt_gzip_is_an_input_error(tmp_path: Path) -> None:
    data = gzip.compress(TREC_WITH_TIES.encode())
    error = input_error(write(tmp_path, "run.trec.gz", data[: len(data) // 2]))
    assert "gzip" in error.problem
    error = input_error(write(tmp_path, "bad.trec.gz", b"\x1f\x8b" + b"garbage" * 5))
    assert "gzip" in error.problem


def test_dash_reads_stdin_plain_and_gzipped(tmp_path: Path) -> None:
    expected = read_run(write(tmp_path, "run.trec", TREC_WITH_TIES))
    assert read_run("-", stdin=io.BytesIO(TREC_WITH_TIES.encode())) == expected
    assert read_run("-", stdin=io.BytesIO(gzip.compress(TREC_WITH_TIES.encode()))) == expected


def test_stdin_errors_name_stdin_and_line() -> None:
    error = input_error("-", stdin=b"q1 Q0 d1 1 1.0 t\nq1 Q0 d2 2 0.5\n")
    assert error.path == "<stdin>" and error.line == 2


# --------------------------------------------------------------------------------------------------
# JSON runs {qid: {docid: score}}
# --------------------------------------------------------------------------------------------------


def test_json_run_matches_the_same_run_in_trec(tmp_path: Path) -> None:
    json_text = '{"q2": {"b": 0.5, "a": 0.5, "c": 0.9, "d": -1.25, "e": 0.5}, "q10": {"x": 3}}'
    from_json = read_run(write(tmp_path, "run.json", json_text))
    assert from_json == read_run(write(tmp_path, "run.trec", TREC_WITH_TIES))
    assert list(from_json) == ["q10", "q2"]


def test_gzipped_json_run(tmp_path: Path) -> None:
    run = read_run(write(tmp_path, "run.json.gz", gzip.compress(b'{"q1": {"d1": 1, "d2": 2}}')))
    assert docids(run["q1"]) == ["d2", "d1"]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('{"q1": {"d1": 1,\n  "d2": }}', 2, ["invalid JSON"]),
        ('{"q1": {"d1": 1}\n,\n}', 3, ["invalid JSON"]),
        ('{"q1": {"d1": 1}}\n{"q2": {}}', 2, ["JSON"]),
        ('{"q1": {"d1": 1},\n "q2": [1, 2]}', 2, ["'q2'", "object"]),
        ('{"q1": {"d1": 1,\n "d2": "high"}}', 2, ["score"]),
        ('{"q1": {"d1": 1,\n\n "d2": NaN}}', 3, ["score", "finite"]),
        ('{"q1": {"d1": 1,\n "d2": Infinity}}', 2, ["score", "finite"]),
        ('{"q1": {"d1": 1,\n "d2": true}}', 2, ["score"]),
        ('{"q1": {"d1": 1,\n "d2": null}}', 2, ["score"]),
        ('{"q1": {"d1": 1,\n "d1": 2}}', 2, ["duplicate", "'d1'", "line 1"]),
        ('{"q1": {"d1": 1},\n "q1": {"d2": 2}}', 2, ["duplicate", "'q1'", "line 1"]),
        ('{"q1": {"d 1": 1}}', 1, ["whitespace"]),
        ("[1, 2]", 1, ["object"]),
    ],
)
def test_json_run_errors_name_their_line(tmp_path: Path, text: str, line: int, words: list[str]) -> None:
    path = write(tmp_path, "run.json", text)
    error = input_error(path)
    assert (error.path, error.line) == (str(path), line)
    for word in words:
        assert word in error.problem


D1_OF_Q1 = "the score of document 'd1' in query 'q1' is"


@pytest.mark.parametrize(
    ("text", "line", "found"),
    [
        ('{"a": 1}', 1, "query 'a' maps to a number, not an object"),
        ('{"q1": {"d0": 1},\n "q2": [["d2", 1]]}', 2, "query 'q2' maps to an array, not an object"),
        ('{"q1": null}', 1, "query 'q1' maps to null, not an object"),
        ('{"q1": {"d0": 1,\n "d1": {"a": 1}}}', 2, f"{D1_OF_Q1} an object, not a number"),
        ('{"q1": {"d1": [1, 2]}}', 1, f"{D1_OF_Q1} an array, not a number"),
        ('{"q1": {"d1": "high"}}', 1, f'{D1_OF_Q1} a string ("high"), not a number'),
        ('{"q1": {"d1": true}}', 1, f"{D1_OF_Q1} a boolean (true), not a number"),
        ('[["a", 1]]', 1, "found an array"),
    ],
)
def test_a_json_run_of_the_wrong_shape_says_what_was_expected_and_what_was_found(
    tmp_path: Path, text: str, line: int, found: str
) -> None:
    """The message was `score must be a number, got [('a', 1)]`: a Python repr of the parser's pairs."""
    path = write(tmp_path, "run.json", text)
    assert str(input_error(path)) == f"{path}:{line}: expected an object {{qid: {{docid: score}}}}; {found}"


def test_json_run_without_candidates_is_an_error(tmp_path: Path) -> None:
    assert "no candidates" in input_error(write(tmp_path, "run.json", '{"q1": {}}')).problem


# --------------------------------------------------------------------------------------------------
# Writing runs
# --------------------------------------------------------------------------------------------------


def test_format_score_round_trips_every_float_exactly() -> None:
    generator = random.Random(7)
    values = [generator.uniform(-50, 50) for _ in range(500)]
    values += [0.1 + 0.2, 1e-300, -1e300, 5e-324, 123456789.12345678, 0.0, 1.0, -3.0]
    values += [math.nextafter(0.7, 1.0), math.nextafter(0.7, 0.0), 0.7]
    for value in values:
        assert float(format_score(value)) == value
    assert format_score(-0.0) == "0.0"


def test_format_score_refuses_non_finite_scores() -> None:
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            format_score(value)


def test_format_trec_lines_is_readable_by_ir_measures(tmp_path: Path) -> None:
    ranked = {"q2": [("b", 2.5), ("a", 2.5), ("c", -0.0)], "q10": [("z", 1 / 3)]}
    text = format_trec_lines(ranked, "mytag")
    assert text.splitlines() == [
        "q10 Q0 z 1 0.3333333333333333 mytag",
        "q2 Q0 b 1 2.5 mytag",
        "q2 Q0 a 2 2.5 mytag",
        "q2 Q0 c 3 0.0 mytag",
    ]
    path = write(tmp_path, "out.trec", text)
    parsed = [(d.query_id, d.doc_id, d.score) for d in ir_measures.read_trec_run(str(path))]
    assert sorted(parsed) == sorted((q, d, s + 0.0) for q, docs in ranked.items() for d, s in docs)
    assert read_run(path)["q2"] == [Candidate("b", 2.5, 1), Candidate("a", 2.5, 2), Candidate("c", 0.0, 3)]


@pytest.mark.parametrize("tag", ["", "two words", "tab\tbed"])
def test_format_trec_lines_refuses_an_unwritable_tag(tag: str) -> None:
    with pytest.raises(ValueError):
        format_trec_lines({"q1": [("d1", 1.0)]}, tag)


def test_runs_are_in_trec_order_score_then_docid_descending() -> None:
    run = run_from_scores("scores", {"q1": {"a": 1.0, "c": 1.0, "b": 2.0, "B": 1.0}})
    assert run["q1"] == [Candidate("b", 2.0, 1), Candidate("c", 1.0, 2), Candidate("a", 1.0, 3), Candidate("B", 1.0, 4)]
