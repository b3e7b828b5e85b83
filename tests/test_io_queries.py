"""Query files: TSV (with or without header), MultiVENT 2.0 CSV, JSONL; every error names file and line."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from helpers import input_error as shared_input_error
from helpers import write_input as write

from rankvideo_cli.errors import InputError
from rankvideo_cli.io.queries import check_queries_cover_run, find_missing_queries, read_queries
from rankvideo_cli.io.runs import read_run


def input_error(path: Path) -> InputError:
    return shared_input_error(lambda: read_queries(path), path)


# --------------------------------------------------------------------------------------------------
# TSV
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["", "qid\ttext\n", "query_id\tquery\n", "QID\tText\n"])
def test_tsv_with_and_without_header(tmp_path: Path, header: str) -> None:
    path = write(tmp_path, "queries.tsv", header + "q1\ta red ball\n q10 \ttext  \n")
    # ids are stripped; text loses trailing whitespace only (the reference strips the line, then splits)
    assert read_queries(path) == {"q1": "a red ball", "q10": "text"}


def test_sample_queries() -> None:
    queries = read_queries(Path(__file__).parent.parent / "sample_runs" / "queries.tsv")
    assert queries["q1"] == "a red ball" and len(queries) == 4


def test_tsv_crlf_bom_blank_lines_and_gzip(tmp_path: Path) -> None:
    text = "\ufeffqid\ttext\r\n\r\nq1\tone\r\nq2\ttwo, with a comma\r\n"
    assert read_queries(write(tmp_path, "q.tsv", text)) == {"q1": "one", "q2": "two, with a comma"}
    assert read_queries(write(tmp_path, "q.tsv.gz", gzip.compress(text.encode()))) == {
        "q1": "one",
        "q2": "two, with a comma",
    }


def test_tsv_text_with_unicode_line_separators_keeps_line_numbers(tmp_path: Path) -> None:
    # U+2028, U+0085 and form feed are not line ends: the text keeps them and later line numbers stay right
    path = write(tmp_path, "q.tsv", "q1\tone\u2028two\nq2\tthree\x85four\fand\nq3\n")
    error = input_error(path)
    assert error.line == 3
    path = write(tmp_path, "ok.tsv", "q1\tone\u2028two\nq2\tthree\x85four\n")
    assert read_queries(path) == {"q1": "one\u2028two", "q2": "three\x85four"}


@pytest.mark.parametrize(
    ("bad_line", "words"),
    [
        ("q3", ["2 tab-separated columns", "found 1"]),
        ("q3\tsome\ttext", ["2 tab-separated columns", "found 3"]),
        ("q3 has spaces only", ["found 1"]),
        ("q3\t   ", ["empty text", "'q3'"]),
        ("\ttext without id", ["empty query id"]),
        ("q1\tagain", ["duplicate query id 'q1'", "line 2"]),
    ],
)
def test_tsv_errors(tmp_path: Path, bad_line: str, words: list[str]) -> None:
    path = write(tmp_path, "q.tsv", f"qid\ttext\nq1\tone\nq2\ttwo\n\n{bad_line}\n")
    error = input_error(path)
    assert error.line == 5
    for word in words:
        assert word in error.problem


def test_header_is_only_recognised_on_the_first_line(tmp_path: Path) -> None:
    error = input_error(write(tmp_path, "q.tsv", "q1\tone\nqid\ttext\nqid\tagain\n"))
    assert error.line == 3 and "duplicate" in error.problem


@pytest.mark.parametrize(
    ("name", "content"),
    [("q.tsv", b""), ("q.tsv", b" \n\n"), ("q.tsv", b"qid\ttext\n"), ("q.csv", b"Query_id,query\n")],
)
def test_file_without_queries_is_an_error(tmp_path: Path, name: str, content: bytes) -> None:
    error = input_error(write(tmp_path, name, content))
    assert error.line is None and ("empty" in error.problem or "no queries" in error.problem)


def test_undecodable_queries(tmp_path: Path) -> None:
    error = input_error(write(tmp_path, "q.tsv", "q1\tcaf\u00e9\n".encode() + b"q2\tcaf\xe9\n"))
    assert error.line == 2 and "UTF-8" in error.problem


# --------------------------------------------------------------------------------------------------
# MultiVENT 2.0 CSV
# --------------------------------------------------------------------------------------------------


def test_multivent_csv_with_quoted_commas_and_quotes(tmp_path: Path) -> None:
    text = 'Query_id,query\n1,"fire in Paris, France"\n2,"the ""Eiffel"" tower"\n3,plain text\n4,"spans\ntwo lines"\n'
    assert read_queries(write(tmp_path, "queries.csv", text)) == {
        "1": "fire in Paris, France",
        "2": 'the "Eiffel" tower',
        "3": "plain text",
        "4": "spans\ntwo lines",
    }


def test_csv_columns_are_found_by_name(tmp_path: Path) -> None:
    text = "language,query,Query_id\nen,a dog,7\r\nde,ein Hund,8\r\n"
    assert read_queries(write(tmp_path, "q.csv", text)) == {"7": "a dog", "8": "ein Hund"}


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ('1,one\n2,"a, b",extra\n', 3, ["expected 2 columns", "found 3"]),
        ("1,one\n2\n", 3, ["expected 2 columns", "found 1"]),
        ("1,one\n\n2,\n", 4, ["empty text", "'2'"]),
        ("1,one\n1,uno\n", 3, ["duplicate query id '1'", "line 2"]),
    ],
)
def test_csv_errors(tmp_path: Path, body: str, line: int, words: list[str]) -> None:
    error = input_error(write(tmp_path, "q.csv", "Query_id,query\n" + body))
    assert error.line == line
    for word in words:
        assert word in error.problem


def test_csv_without_the_needed_header(tmp_path: Path) -> None:
    error = input_error(write(tmp_path, "q.csv", "id,description\n1,one\n"))
    assert error.line == 1 and "Query_id" in error.problem


# --------------------------------------------------------------------------------------------------
# JSONL
# --------------------------------------------------------------------------------------------------


def test_jsonl_key_variants(tmp_path: Path) -> None:
    text = '{"qid": "q1", "text": "one"}\n\n{"query_id": 2, "query": "two"}\n{"Query_id": "3", "query": "three "}\n'
    assert read_queries(write(tmp_path, "q.jsonl", text)) == {"q1": "one", "2": "two", "3": "three"}


def test_jsonl_detected_by_content_and_json_suffix(tmp_path: Path) -> None:
    text = '{"qid": "q1", "text": "one"}\n'
    assert read_queries(write(tmp_path, "queries", text)) == {"q1": "one"}
    assert read_queries(write(tmp_path, "queries.json", text)) == {"q1": "one"}


@pytest.mark.parametrize(
    ("bad_line", "words"),
    [
        ('{"qid": "q3", "text": }', ["invalid JSON"]),
        ('["q3", "text"]', ["JSON object"]),
        ('{"key": "q3", "text": "three"}', ['"qid"']),
        ('{"qid": "q3", "body": "three"}', ['"text"']),
        ('{"qid": "q3", "text": 3}', ["must be a string"]),
        ('{"qid": "q3", "text": "  "}', ["empty text", "'q3'"]),
        ('{"qid": "q1", "text": "again"}', ["duplicate query id 'q1'", "line 1"]),
        ('{"qid": "q3", "text": "three", "text": "trois"}', ["key 'text' appears twice in one object"]),
        ('{"qid": "q3", "qid": "q4", "text": "three"}', ["key 'qid' appears twice in one object"]),
    ],
)
def test_jsonl_errors(tmp_path: Path, bad_line: str, words: list[str]) -> None:
    path = write(tmp_path, "q.jsonl", '{"qid": "q1", "text": "one"}\n{"qid": "q2", "text": "two"}\n' + bad_line)
    error = input_error(path)
    assert error.line == 3
    for word in words:
        assert word in error.problem


def test_find_missing_queries_is_sorted() -> None:
    assert find_missing_queries(["q9", "q1", "q10", "q2"], {"q1": "x"}) == ["q10", "q2", "q9"]
    assert find_missing_queries({"q1": []}, {"q1": "x"}) == []


def test_csv_detected_by_content_without_suffix(tmp_path: Path) -> None:
    path = write(tmp_path, "multivent_queries", 'Query_id,query\n1,"a, b"\n')
    assert read_queries(path) == {"1": "a, b"}


def test_check_queries_cover_run_errors_at_the_run_line(tmp_path: Path) -> None:
    run = read_run(write(tmp_path, "run.trec", "q1 Q0 d1 1 1 t\nq3 Q0 d1 1 1 t\nq2 Q0 d1 1 1 t\nq2 Q0 d2 2 0 t\n"))
    queries = {"q1": "one"}
    with pytest.raises(InputError) as caught:
        check_queries_cover_run(run, queries, tmp_path / "q.tsv")
    # the first missing qid in qid order is q2, first seen on line 3 of the run
    assert (caught.value.path, caught.value.line) == (str(tmp_path / "run.trec"), 3)
    assert "'q2'" in caught.value.problem and "q.tsv" in caught.value.problem and "skip" in caught.value.problem
    assert check_queries_cover_run(run, queries, tmp_path / "q.tsv", "skip") == ["q2", "q3"]
