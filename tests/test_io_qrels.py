"""Qrels: TREC 4-column and MultiVENT 2.0 JSONL, as the DataFrame ir-measures takes; errors name file:line."""

from __future__ import annotations

import gzip
from pathlib import Path

import ir_measures
import pandas as pd
import pytest
from helpers import SAMPLE
from helpers import input_error as shared_input_error
from helpers import write_input as write

from rankvideo_cli.errors import InputError
from rankvideo_cli.io.qrels import QRELS_COLUMNS, describe_tolerated, read_qrels

SAMPLE_QRELS = SAMPLE / "qrels.txt"


def input_error(path: Path) -> InputError:
    return shared_input_error(lambda: read_qrels(path), path)


def as_tuples(frame: pd.DataFrame) -> list[tuple[str, str, int]]:
    return [(row.query_id, row.doc_id, row.relevance) for row in frame.itertuples()]


def test_trec_qrels_match_ir_measures_reading_the_sample() -> None:
    ours = read_qrels(SAMPLE_QRELS)
    assert list(ours.columns) == QRELS_COLUMNS
    assert ours["relevance"].dtype == "int64"
    theirs = [(q.query_id, q.doc_id, q.relevance) for q in ir_measures.read_trec_qrels(str(SAMPLE_QRELS))]
    assert as_tuples(ours) == theirs


def test_trec_qrels_keep_graded_and_negative_relevance_and_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, "qrels.txt", "q2 0 d9 2\r\n\nq1 Q0 d1 -1\nq1\t0\td2\t0\n")
    assert as_tuples(read_qrels(path)) == [("q2", "d9", 2), ("q1", "d1", -1), ("q1", "d2", 0)]


def test_jsonl_qrels_with_key_variants_and_gzip(tmp_path: Path) -> None:
    text = (
        '{"query_id": "1", "doc_id": "100", "relevance": 1}\n'
        '{"query_id": 2, "doc_id": 200, "relevance": 0}\n'
        '{"qid": "3", "docid": "300", "relevance": 2.0, "extra": "ignored"}\n'
    )
    expected = [("1", "100", 1), ("2", "200", 0), ("3", "300", 2)]
    assert as_tuples(read_qrels(write(tmp_path, "qrels.jsonl", text))) == expected
    assert as_tuples(read_qrels(write(tmp_path, "judgments", text))) == expected  # detected by content
    assert as_tuples(read_qrels(write(tmp_path, "qrels.jsonl.gz", gzip.compress(text.encode())))) == expected


@pytest.mark.parametrize(
    ("bad_line", "words"),
    [
        ("q1 0 d3", ["4 columns", "found 3"]),
        ("q1 0 d3 high", ["relevance", "integer", "'high'"]),
        ("q1 0 d3 1.5", ["relevance", "integer"]),
        ("q1 0 d3 nan", ["relevance", "integer"]),
        ("q1 0 d1 0", ["duplicate", "'q1'", "'d1'", "line 1"]),
    ],
)
def test_trec_qrels_errors(tmp_path: Path, bad_line: str, words: list[str]) -> None:
    error = input_error(write(tmp_path, "qrels.txt", f"q1 0 d1 1\nq1 0 d2 0\n\n{bad_line}\nq1 0 d4 0\n"))
    assert error.line == 4
    for word in words:
        assert word in error.problem


def test_trec_eval_10_comments_skipped_and_extra_columns_tolerated(tmp_path: Path) -> None:
    path = write(
        tmp_path, "qrels.txt", "# judged by NIST\nq1 0 d1 1\n  # again\nq1 0 d2 0 assessor7 2026\n#q1 0 d3 1\n"
    )
    frame = read_qrels(path)
    assert as_tuples(frame) == [("q1", "d1", 1), ("q1", "d2", 0)]
    assert frame.attrs["tolerated"] == {"comments": 3, "extra_columns": 1}
    assert describe_tolerated(frame) == (
        f"{path}: 1 line with columns after the 4th (ignored; trec_eval 10.0 and ir-measures would refuse these lines)"
    )


def test_qrels_of_comments_only_is_an_error(tmp_path: Path) -> None:
    assert "no judgments" in input_error(write(tmp_path, "qrels.txt", "# none yet\n")).problem


@pytest.mark.parametrize(
    ("bad_line", "words"),
    [
        ('{"query_id": "1", "doc_id": "b", "relevance": }', ["invalid JSON"]),
        ('["1", "b", 1]', ["JSON object"]),
        ('{"query_id": "1", "doc_id": "b"}', ["relevance"]),
        ('{"query_id": "1", "relevance": 1}', ["doc_id"]),
        ('{"query_id": "1", "doc_id": "b", "relevance": true}', ["relevance", "integer"]),
        ('{"query_id": "1", "doc_id": "b", "relevance": 0.5}', ["relevance", "integer"]),
        ('{"query_id": "1", "doc_id": "b", "relevance": "x"}', ["relevance", "integer"]),
        ('{"query_id": null, "doc_id": "b", "relevance": 1}', ["query_id"]),
        ('{"query_id": "1", "doc_id": "a b", "relevance": 1}', ["doc_id", "whitespace"]),
        ('{"query_id": "1", "doc_id": "a", "relevance": 0}', ["duplicate", "line 1"]),
        ('{"query_id": "1", "doc_id": "b", "relevance": 1, "relevance": 0}', ["key 'relevance' appears twice"]),
        ('{"query_id": "1", "doc_id": "b", "doc_id": "c", "relevance": 1}', ["key 'doc_id' appears twice"]),
    ],
)
def test_jsonl_qrels_errors(tmp_path: Path, bad_line: str, words: list[str]) -> None:
    text = '{"query_id": "1", "doc_id": "a", "relevance": 1}\n\n' + bad_line + "\n"
    error = input_error(write(tmp_path, "qrels.jsonl", text))
    assert error.line == 3
    for word in words:
        assert word in error.problem


@pytest.mark.parametrize("content", [b"", b"\n \n"])
def test_empty_qrels(tmp_path: Path, content: bytes) -> None:
    assert "empty" in input_error(write(tmp_path, "qrels.txt", content)).problem


def test_undecodable_qrels(tmp_path: Path) -> None:
    error = input_error(write(tmp_path, "qrels.txt", b"q1 0 d1 1\nq1 0 d\x80 1\n"))
    assert error.line == 2 and "UTF-8" in error.problem
