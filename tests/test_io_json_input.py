"""A key given twice in one JSON object is an error naming file, line and key, in every reader of a user's JSON
or JSONL input (json.loads keeps the last of the two without a word); and the fast path that only re-parses a
text that could hold a repeat misses none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import input_error
from helpers import write_input as write

from rankvideo_cli.evaluation.fusion import read_model_scores
from rankvideo_cli.io.json_input import RepeatedKeyError, loads_unique
from rankvideo_cli.io.qrels import read_qrels
from rankvideo_cli.io.queries import read_queries
from rankvideo_cli.io.reference_scores import read_reference_scores
from rankvideo_cli.report.data import read_explanations

REPEATED = "appears twice in one object; which value is meant cannot be told"


@pytest.mark.parametrize(
    "text",
    [
        '{"query": "Paris: the riots", "at": "12:30", "url": "http://x"}',  # colons inside strings
        '{"a": "\\":", "b\\":": "\\":\\":"}',  # escaped quotes before colons, in values and keys
        '{"a" : {"b" : [{"c": 1}, {"c": 2}]}, "c": 3}',  # one key in sibling and nested objects
        '[{"a": 1}, {"a": 2}, [{"a": {"a": 3}}]]',
        '"a:b"',
        "{}",
        "[1, 2.5, null]",
    ],
)
def test_a_text_without_a_repeated_key_reads_as_json_loads_reads_it(text: str) -> None:
    assert loads_unique(text) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "key", "depth", "line"),
    [
        ('{"a": 1, "a": 2}', "a", 0, 1),
        ('{"a" : 1,\n "a"\t: 2}', "a", 0, 2),  # whitespace before the colon
        ('{"a": 1, "\\u0061": 2}', "a", 0, None),  # the same key, once spelled with an escape
        ('{"a": "x:y:z", "b": 1, "a": 2}', "a", 0, 1),  # colons in strings: more colons than keys anyway
        ('[{"k": 1}, {"b": {"c": 1,\n"c": 2}}]', "c", 1, 2),  # in an array, one level down
        ('{"o": {"k": 1, "k": 2}, "o": 3}', "o", 0, 1),  # two repeats: the outermost is named
    ],
)
def test_a_repeated_key_is_found_at_any_depth(text: str, key: str, depth: int, line: int | None) -> None:
    with pytest.raises(RepeatedKeyError) as caught:
        loads_unique(text)
    assert (caught.value.key, caught.value.depth, caught.value.line) == (key, depth, line)


@pytest.mark.parametrize(
    ("name", "first_line", "repeated_line", "key", "read"),
    [
        (
            "qrels.jsonl",
            '{"query_id": "q1", "doc_id": "v001", "relevance": 1}',
            '{"query_id": "q1", "doc_id": "v009", "relevance": 1, "relevance": 0}',
            "relevance",
            read_qrels,
        ),
        (
            "queries.jsonl",
            '{"qid": "q1", "text": "a dog"}',
            '{"qid": "q2", "text": "a cat", "text": "a bird"}',
            "text",
            read_queries,
        ),
        (
            "scores.jsonl",
            '{"qid": "q1", "docid": "v001", "logit_delta": 0.5}',
            '{"qid": "q1", "docid": "v002", "logit_delta": 0.5, "logit_delta": -3.0}',
            "logit_delta",
            read_model_scores,
        ),
        (
            "explanations.jsonl",
            '{"query": "a dog", "video": "v001.mp4", "text": "yes"}',
            '{"query": "a dog", "video": "v002.mp4", "text": "yes", "text": "no"}',
            "text",
            lambda path: read_explanations(path, {}, {}),
        ),
    ],
)
def test_every_jsonl_reader_refuses_a_repeated_key_with_one_message(
    tmp_path: Path, name: str, first_line: str, repeated_line: str, key: str, read
) -> None:
    path = write(tmp_path, name, f"{first_line}\n{repeated_line}\n")
    error = input_error(lambda: read(path), path)
    assert str(error) == f"{path}:2: key {key!r} {REPEATED}"


def test_the_reference_files_refuse_a_repeated_key_through_the_same_rule(tmp_path: Path) -> None:
    path = write(tmp_path, "v001_reranking_M.json", '{"v001": {"q1": {"logit_delta": 1.0,\n "logit_delta": 9.0}}}')
    error = input_error(lambda: read_reference_scores(tmp_path), path)
    assert error.line == 2 and error.problem.startswith("score field 'logit_delta' appears twice in one object")
