"""Relevance judgments: TREC 4-column qrels and MultiVENT 2.0 JSONL, as the DataFrame ir-measures takes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from rankvideo_cli.errors import InputError
from rankvideo_cli.io.text import numbered_lines, read_text

QRELS_COLUMNS = ["query_id", "doc_id", "relevance"]


def _relevance(path: str | Path, line: int, raw: object) -> int:
    if isinstance(raw, bool):
        raise InputError(path, line, f"relevance must be an integer, got {raw!r}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    try:
        return int(str(raw))
    except ValueError:
        raise InputError(path, line, f"relevance must be an integer, got {raw!r}") from None


def read_qrels(path: str | Path) -> pd.DataFrame:
    """Columns query_id, doc_id (str) and relevance (int); one row per judgment, duplicates rejected."""
    text = read_text(path)
    rows: list[tuple[str, str, int]] = []
    seen_at: dict[tuple[str, str], int] = {}
    is_jsonl = text.lstrip().startswith("{")
    for number, line in numbered_lines(text):
        if is_jsonl:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(path, number, f"invalid JSON: {error.msg}") from None
            if not isinstance(record, dict) or not all(key in record for key in QRELS_COLUMNS):
                raise InputError(path, number, 'expected an object with "query_id", "doc_id" and "relevance"')
            qid, docid, relevance = str(record["query_id"]), str(record["doc_id"]), record["relevance"]
        else:
            fields = line.split()
            if len(fields) != 4:
                raise InputError(
                    path, number, f"expected 4 columns (qid iter docid relevance), found {len(fields)}"
                )
            qid, _, docid, relevance = fields
        if (qid, docid) in seen_at:
            raise InputError(
                path,
                number,
                f"duplicate judgment for query {qid!r}, document {docid!r} (first at line {seen_at[qid, docid]})",
            )
        seen_at[qid, docid] = number
        rows.append((qid, docid, _relevance(path, number, relevance)))
    return pd.DataFrame(rows, columns=QRELS_COLUMNS).astype({"relevance": "int64"})
