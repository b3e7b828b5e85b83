"""Relevance judgments: TREC 4-column qrels and MultiVENT 2.0 JSONL, as a DataFrame or as plain `Judgments`.

JSONL when the suffix is `.jsonl`/`.json` (a trailing `.gz` ignored) or the first non-blank character is `{`;
each line an object with `query_id` (or `qid`), `doc_id` (or `docid`) and `relevance`. Otherwise TREC
`qid iter docid relevance` (whitespace-separated, `iter` ignored as trec_eval does), with trec_eval 10.0's `#`
comment lines skipped. Columns after the 4th are ignored and counted, with a line on stderr (trec_eval 10.0's
get_qrels.c and ir-measures' reader refuse such a line as malformed: a file that has them is not portable).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rankvideo_cli.errors import InputError
from rankvideo_cli.io.json_input import parse_json_line
from rankvideo_cli.io.runs import COMMENTS, EXTRA_COLUMNS, Tolerated
from rankvideo_cli.io.text import display_name, iter_lines

if TYPE_CHECKING:
    import pandas as pd

EXTRA_COLUMNS_WHY = "ignored; trec_eval 10.0 and ir-measures would refuse these lines"
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
    record = parse_json_line(path, line, text)
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


def _trec_record(path: str, line: int, fields: list[str]) -> tuple[str, str, object]:
    if len(fields) < 4:
        raise InputError(path, line, f"expected 4 columns (qid iter docid relevance), found {len(fields)}")
    return fields[0], fields[2], fields[3]


def _is_jsonl(path: str | Path, first_line: str) -> bool:
    suffixes = [suffix.lower() for suffix in Path(str(path)).suffixes if suffix.lower() != ".gz"]
    return (bool(suffixes) and suffixes[-1] in (".jsonl", ".json")) or first_line.lstrip().startswith("{")


@dataclass
class Judgments:
    """The judgments as read, without pandas (`eval` starts faster): one (query_id, doc_id, relevance) per
    judgment in file order, the file's name, and what the reader tolerated."""

    rows: list[tuple[str, str, int]]
    source: str
    tolerated: Tolerated

    def by_query(self) -> dict[str, dict[str, int]]:
        """qid -> {docid: relevance}, as ir-measures takes qrels."""
        judged: dict[str, dict[str, int]] = {}
        for qid, docid, relevance in self.rows:
            judged.setdefault(qid, {})[docid] = relevance
        return judged


def describe_tolerated(judged: pd.DataFrame | Judgments) -> str | None:
    """The stderr line about what `read_qrels` (or `read_judgments`) tolerated in this file, or None."""
    if isinstance(judged, Judgments):
        tolerated, source = judged.tolerated, judged.source
    else:
        tolerated, source = judged.attrs.get("tolerated"), judged.attrs.get("source", "qrels")
    return tolerated.describe(source, 4, EXTRA_COLUMNS_WHY) if tolerated else None


def read_qrels(path: str | Path) -> pd.DataFrame:
    """Columns query_id, doc_id (str) and relevance (int64), one row per judgment in file order.

    `frame.attrs["tolerated"]` counts comment lines and lines with columns after the 4th (see the module
    docstring); `frame.attrs["source"]` names the file. Raises `InputError` as `read_judgments` does.
    """
    import pandas as pd

    judged = read_judgments(path)
    frame = pd.DataFrame(judged.rows, columns=QRELS_COLUMNS).astype(
        {"query_id": "object", "doc_id": "object", "relevance": "int64"}
    )
    frame.attrs["source"] = judged.source
    frame.attrs["tolerated"] = judged.tolerated
    return frame


def read_judgments(path: str | Path) -> Judgments:
    """The judgments of a qrels file (see the module docstring). Raises `InputError` (file:line: problem) for:
    fewer than 4 columns or a missing key, a relevance that is not an integer, a duplicate (qid, docid) (naming
    the first line), a bad JSON line, an empty file, bytes that are not UTF-8.
    """
    name = display_name(path)
    rows: list[tuple[str, str, int]] = []
    seen_at: dict[tuple[str, str], int] = {}
    tolerated = Tolerated()
    jsonl: bool | None = None
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        if jsonl is None:
            jsonl = _is_jsonl(path, line)
        if jsonl:
            qid, docid, relevance = _json_record(name, number, line)
        else:
            fields = line.split()
            if fields[0][0] == "#":
                tolerated[COMMENTS] = tolerated.get(COMMENTS, 0) + 1
                continue
            if len(fields) > 4:
                tolerated[EXTRA_COLUMNS] = tolerated.get(EXTRA_COLUMNS, 0) + 1
            qid, docid, relevance = _trec_record(name, number, fields)
        first = seen_at.setdefault((qid, docid), number)
        if first != number:
            raise InputError(
                name, number, f"duplicate judgment for query {qid!r}, document {docid!r} (first at line {first})"
            )
        rows.append((qid, docid, _relevance(name, number, relevance)))
    if not rows:
        raise InputError(name, None, "no judgments (only comments)")
    return Judgments(rows, name, tolerated)
