"""Query files: TSV `qid<TAB>text` (optional header), MultiVENT 2.0 CSV (`Query_id,query`), JSONL."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from rankvideo_cli.errors import InputError
from rankvideo_cli.io.text import numbered_lines, read_text

QID_KEYS = ("qid", "query_id", "Query_id")
TEXT_KEYS = ("text", "query")
TSV_HEADERS = {"qid", "query_id", "id", "queryid"}


def _add(
    queries: dict[str, str], where: dict[str, int], path: str | Path, line: int, qid: str, text: str
) -> None:
    qid, text = qid.strip(), text.strip()
    if not qid:
        raise InputError(path, line, "empty query id")
    if not text:
        raise InputError(path, line, f"empty text for query {qid!r}")
    if qid in queries:
        raise InputError(path, line, f"duplicate query id {qid!r} (first at line {where[qid]})")
    queries[qid], where[qid] = text, line


def _parse_jsonl(path: str | Path, text: str) -> dict[str, str]:
    queries: dict[str, str] = {}
    where: dict[str, int] = {}
    for number, line in numbered_lines(text):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(path, number, f"invalid JSON: {error.msg}") from None
        if not isinstance(record, dict):
            raise InputError(path, number, "expected a JSON object per line")
        qid = next((record[key] for key in QID_KEYS if key in record), None)
        query = next((record[key] for key in TEXT_KEYS if key in record), None)
        if qid is None or query is None:
            raise InputError(path, number, 'expected keys "qid" (or "query_id") and "text" (or "query")')
        if not isinstance(query, str):
            raise InputError(path, number, f"query text must be a string, got {query!r}")
        _add(queries, where, path, number, str(qid), query)
    return queries


def _parse_csv(path: str | Path, text: str) -> dict[str, str]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    columns = {name.strip(): position for position, name in enumerate(header)}
    qid_column = next((columns[key] for key in QID_KEYS if key in columns), None)
    text_column = next((columns[key] for key in TEXT_KEYS if key in columns), None)
    if qid_column is None or text_column is None:
        raise InputError(path, 1, f"CSV header needs Query_id and query columns, found {header}")
    queries: dict[str, str] = {}
    where: dict[str, int] = {}
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise InputError(path, reader.line_num, f"expected {len(header)} columns, found {len(row)}")
            _add(queries, where, path, reader.line_num, row[qid_column], row[text_column])
    except csv.Error as error:
        raise InputError(path, reader.line_num, f"malformed CSV: {error}") from None
    return queries


def _parse_tsv(path: str | Path, text: str) -> dict[str, str]:
    queries: dict[str, str] = {}
    where: dict[str, int] = {}
    for position, (number, line) in enumerate(numbered_lines(text)):
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 2:
            raise InputError(
                path, number, f"expected 2 tab-separated columns (qid, text), found {len(fields)}"
            )
        if position == 0 and fields[0].strip().lower() in TSV_HEADERS:
            continue
        _add(queries, where, path, number, fields[0], fields[1])
    return queries


def read_queries(path: str | Path) -> dict[str, str]:
    """qid -> query text. The format comes from the suffix (.jsonl/.json, .csv), else the content, else TSV."""
    text = read_text(path)
    suffixes = [suffix.lower() for suffix in Path(str(path)).suffixes if suffix.lower() != ".gz"]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in (".jsonl", ".json") or text.lstrip().startswith("{"):
        queries = _parse_jsonl(path, text)
    elif suffix == ".csv":
        queries = _parse_csv(path, text)
    else:
        queries = _parse_tsv(path, text)
    if not queries:
        raise InputError(path, None, "no queries")
    return queries


def find_missing_queries(
    run_qids: Iterable[str],
    queries: Mapping[str, str],
) -> list[str]:
    """Run qids that have no text in the query file, sorted."""
    return sorted(qid for qid in run_qids if qid not in queries)
