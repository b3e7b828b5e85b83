"""Relevance judgments: TREC 4-column qrels and MultiVENT 2.0 JSONL, as the DataFrame ir-measures takes.

JSONL when the suffix is `.jsonl`/`.json` (a trailing `.gz` ignored) or the first non-blank character is `{`;
each line an object with `query_id` (or `qid`), `doc_id` (or `docid`) and `relevance`. Otherwise TREC
`qid iter docid relevance` (whitespace-separated, `iter` ignored as trec_eval does).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from rankvideo_cli.errors import InputError
from rankvideo_cli.io.text import display_name, numbered_lines, read_text

QRELS_COLUMNS = ["query_id", "doc_id", "relevance"]
JSON_KEYS = {"query_id": ("query_id", "qid"), "doc_id": ("doc_id", "docid"), "relevance": ("relevance",)}


def _relevance(path: str, line: int, raw: object) -> int:
    if isinstance(raw, bool):
        raise InputError(path, line, f"relevance must be an integer, got {json.dumps(raw)}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    try:
        return int(str(raw).strip())
    except ValueError:
        raise InputError(path, line, f"relevance must be an integer, got {raw!r}") from None


def _identifier(path: str, line: int, kind: str, raw: object) -> str:
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise InputError(path, line, f"{kind} must be a string or an integer, got {json.dumps(raw)}")
    value = str(raw)
    if not value or any(character.isspace() for character in value):
        raise InputError(path, line, f"{kind} must be non-empty without whitespace, got {value!r}")
    return value


def _json_record(path: str, line: int, text: str) -> tuple[str, str, object]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(path, line, f"invalid JSON: {error.msg} (column {error.colno})") from None
    if not isinstance(record, dict):
        raise InputError(path, line, "expected one JSON object per line")
    values = {}
    for column, keys in JSON_KEYS.items():
        key = next((key for key in keys if key in record), None)
        if key is None:
            raise InputError(path, line, f'missing key "{column}" (the keys are query_id, doc_id, relevance)')
        values[column] = record[key]
    return (
        _identifier(path, line, "query_id", values["query_id"]),
        _identifier(path, line, "doc_id", values["doc_id"]),
        values["relevance"],
    )


def _trec_record(path: str, line: int, text: str) -> tuple[str, str, object]:
    fields = text.split()
    if len(fields) != 4:
        raise InputError(path, line, f"expected 4 columns (qid iter docid relevance), found {len(fields)}")
    qid, _, docid, relevance = fields
    return qid, docid, relevance


def _is_jsonl(path: str | Path, text: str) -> bool:
    suffixes = [suffix.lower() for suffix in Path(str(path)).suffixes if suffix.lower() != ".gz"]
    return (bool(suffixes) and suffixes[-1] in (".jsonl", ".json")) or text.lstrip().startswith("{")


def read_qrels(path: str | Path) -> pd.DataFrame:
    """Columns query_id, doc_id (str) and relevance (int64), one row per judgment in file order.

    Raises `InputError` (file:line: problem) for: a wrong column count or missing key, a relevance that is not an
    integer, a duplicate (qid, docid) (naming the first line), a bad JSON line, an empty file, bytes that are not
    UTF-8.
    """
    text = read_text(path)
    name = display_name(path)
    parse_record = _json_record if _is_jsonl(path, text) else _trec_record
    rows: list[tuple[str, str, int]] = []
    seen_at: dict[tuple[str, str], int] = {}
    for number, line in numbered_lines(text):
        qid, docid, relevance = parse_record(name, number, line)
        first = seen_at.setdefault((qid, docid), number)
        if first != number:
            raise InputError(
                name, number, f"duplicate judgment for query {qid!r}, document {docid!r} (first at line {first})"
            )
        rows.append((qid, docid, _relevance(name, number, relevance)))
    return pd.DataFrame(rows, columns=QRELS_COLUMNS).astype(
        {"query_id": "object", "doc_id": "object", "relevance": "int64"}
    )
