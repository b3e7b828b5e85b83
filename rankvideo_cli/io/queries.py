"""Query files: TSV `qid<TAB>text` (optional header), MultiVENT 2.0 CSV (`Query_id,query`), JSONL.

The format comes from the suffix (`.jsonl`/`.json`, `.csv`, `.tsv`/`.txt`; a trailing `.gz` is ignored), else from
the content (`{` first: JSONL; a first line with commas, no tab and a query-id column: CSV; else TSV).

Query text is used verbatim except for trailing whitespace, which is removed (the reference reads its TSV with
`line.strip().split("\\t")`); query ids are stripped of surrounding whitespace.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from rankvideo_cli.errors import InputError
from rankvideo_cli.io.json_input import parse_json_line
from rankvideo_cli.io.runs import Run
from rankvideo_cli.io.text import display_name, numbered_lines, read_text

# Column / key names, compared case-insensitively.
QID_NAMES = ("qid", "query_id", "queryid", "query-id", "id", "topic_id")
TEXT_NAMES = ("text", "query", "query_text", "title")


class _Collector:
    """Validates and collects (qid, text) records: non-empty id and text, no duplicate id."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.queries: dict[str, str] = {}
        self.lines: dict[str, int] = {}

    def add(self, line: int, qid: str, text: str) -> None:
        qid, text = qid.strip(), text.rstrip()
        if not qid:
            raise InputError(self.path, line, "empty query id")
        if any(character.isspace() for character in qid):
            raise InputError(self.path, line, f"query id must not contain whitespace, got {qid!r}")
        if not text.strip():
            raise InputError(self.path, line, f"empty text for query {qid!r}")
        first = self.lines.setdefault(qid, line)
        if first != line:
            raise InputError(self.path, line, f"duplicate query id {qid!r} (first at line {first})")
        self.queries[qid] = text


def _find(names: Iterable[str], wanted: tuple[str, ...]) -> str | None:
    by_lower = {name.strip().lower(): name for name in names}
    return next((by_lower[key] for key in wanted if key in by_lower), None)


def _parse_jsonl(path: str, text: str) -> dict[str, str]:
    collector = _Collector(path)
    for number, line in numbered_lines(text):
        record = parse_json_line(path, number, line)
        if not isinstance(record, dict):
            raise InputError(path, number, "expected one JSON object per line")
        qid_key, text_key = _find(record, QID_NAMES), _find(record, TEXT_NAMES)
        if qid_key is None or text_key is None:
            raise InputError(
                path, number, f'expected keys "qid" (or "query_id") and "text" (or "query"), found {sorted(record)}'
            )
        qid, query = record[qid_key], record[text_key]
        if isinstance(qid, bool) or not isinstance(qid, (str, int)):
            raise InputError(path, number, f"query id must be a string or an integer, got {json.dumps(qid)}")
        if not isinstance(query, str):
            raise InputError(path, number, f"query text must be a string, got {json.dumps(query)}")
        collector.add(number, str(qid), query)
    return collector.queries


def _parse_csv(path: str, text: str) -> dict[str, str]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    collector = _Collector(path)
    try:
        header = next(reader)
        qid_column, text_column = _find(header, QID_NAMES), _find(header, TEXT_NAMES)
        if qid_column is None or text_column is None:
            raise InputError(
                path, 1, f"CSV header needs a query id column (Query_id) and a query column, found {header}"
            )
        qid_at, text_at = header.index(qid_column), header.index(text_column)
        while True:
            start = reader.line_num + 1  # a quoted field may span lines: report where the record starts
            row = next(reader, None)
            if row is None:
                break
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise InputError(path, start, f"expected {len(header)} columns like the header, found {len(row)}")
            collector.add(start, row[qid_at], row[text_at])
    except csv.Error as error:
        raise InputError(path, reader.line_num, f"malformed CSV: {error}") from None
    return collector.queries


def _parse_tsv(path: str, text: str) -> dict[str, str]:
    collector = _Collector(path)
    for position, (number, line) in enumerate(numbered_lines(text)):
        fields = line.split("\t")
        if len(fields) != 2:
            raise InputError(path, number, f"expected 2 tab-separated columns (qid, text), found {len(fields)}")
        is_header = _find(fields[:1], QID_NAMES) is not None and _find(fields[1:], TEXT_NAMES) is not None
        if position == 0 and is_header:
            continue
        collector.add(number, fields[0], fields[1])
    return collector.queries


PARSERS: dict[str, Callable[[str, str], dict[str, str]]] = {
    "jsonl": _parse_jsonl,
    "csv": _parse_csv,
    "tsv": _parse_tsv,
}
SUFFIX_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".txt": "tsv"}


def detect_format(path: str | Path, text: str) -> str:
    """'jsonl', 'csv' or 'tsv' (see the module docstring)."""
    suffixes = [suffix.lower() for suffix in Path(str(path)).suffixes if suffix.lower() != ".gz"]
    if suffixes and suffixes[-1] in SUFFIX_FORMATS:
        return SUFFIX_FORMATS[suffixes[-1]]
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return "jsonl"
    first_line = stripped.split("\n", 1)[0]
    if "\t" not in first_line and "," in first_line and _find(first_line.split(","), QID_NAMES) is not None:
        return "csv"
    return "tsv"


def read_queries(path: str | Path) -> dict[str, str]:
    """qid -> query text, in file order. Raises `InputError` (file:line: problem) for: a duplicate qid (naming
    the first line), empty text or id, missing columns or keys, a bad JSON line, malformed CSV, an empty file,
    bytes that are not UTF-8."""
    text = read_text(path)
    name = display_name(path)
    queries = PARSERS[detect_format(path, text)](name, text)
    if not queries:
        raise InputError(name, None, "no queries (only a header)")
    return queries


def find_missing_queries(run_qids: Iterable[str], queries: Mapping[str, str]) -> list[str]:
    """Run qids that have no text in the query file, sorted."""
    return sorted(qid for qid in run_qids if qid not in queries)


def check_queries_cover_run(
    run: Run,
    queries: Mapping[str, str],
    queries_path: str | Path,
    missing: str = "error",
) -> list[str]:
    """The run's qids without query text (sorted), which the caller keeps in first-stage order.

    `missing` is the `--missing-query` policy, "error" or "skip" (`options.QueryPolicy`, a str, compares equal to
    its value). With "error" the first of them (in qid order) is an `InputError` at the run line where it first
    appears.
    """
    absent = find_missing_queries(run, queries)
    if absent and missing == "error":
        raise InputError(
            run.source,
            run.first_line.get(absent[0]),
            f"query {absent[0]!r} is not in {display_name(queries_path)} ({len(absent)} run queries have no text; "
            "--missing-query skip keeps them in first-stage order)",
        )
    return absent
