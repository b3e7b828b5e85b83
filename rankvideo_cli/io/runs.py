"""First-stage runs: TREC 6-column (optionally gzipped, or stdin) and the reference's JSON {qid: {docid: score}}.

Order rules, used everywhere in rankvideo:
- candidates of a query are in trec_eval's order: score descending, ties broken by docid descending (plain
  string comparison, which is UTF-8 byte order, as trec_eval's strcmp). The rank column is informational.
  `Candidate.first_stage_rank` is the 1-based position in that order.
- queries are sorted by qid as plain strings (`sorted()`: "q10" < "q2"), so every output is byte-deterministic
  whatever the order of the input file.
"""

from __future__ import annotations

import json
import json.decoder
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from rankvideo_cli.errors import InputError
from rankvideo_cli.io.text import display_name, numbered_lines, read_text


@dataclass(frozen=True)
class Candidate:
    docid: str
    score: float
    first_stage_rank: int  # 1-based position in trec_eval order (score desc, docid desc)


class Run(dict[str, list[Candidate]]):
    """qid -> candidates in first-stage order; qids in sorted order.

    `source` names the file (`<stdin>` for `-`); `first_line[qid]` is the line where the qid first appears (for
    messages about a query, e.g. one missing from the query file).
    """

    def __init__(self, source: str, first_line: dict[str, int | None]) -> None:
        super().__init__()
        self.source = source
        self.first_line = first_line

    @property
    def pair_count(self) -> int:
        return sum(len(candidates) for candidates in self.values())


def trec_order(scored: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    """trec_eval's ranking of (docid, score) pairs: score descending, ties broken by docid descending."""
    return sorted(scored, key=lambda item: (item[1], item[0]), reverse=True)


def _parse_score(path: str, line: int | None, raw: object) -> float:
    if isinstance(raw, bool) or raw is None:
        raise InputError(path, line, f"score must be a number, got {json.dumps(raw)}")
    try:
        score = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(path, line, f"score must be a number, got {raw!r}") from None
    if not math.isfinite(score):
        raise InputError(path, line, f"score must be finite, got {raw!r}")
    return score


def _check_identifier(path: str, line: int | None, kind: str, value: str) -> None:
    # A TREC line is whitespace-separated: an id with whitespace (possible in JSON) could not be written back.
    if not value or any(character.isspace() for character in value):
        raise InputError(path, line, f"{kind} must be non-empty without whitespace, got {value!r}")


def _build(path: str, rows: dict[str, dict[str, float]], first_line: dict[str, int | None]) -> Run:
    run = Run(path, first_line)
    for qid in sorted(rows):
        ordered = trec_order(rows[qid].items())
        run[qid] = [Candidate(docid, score, rank) for rank, (docid, score) in enumerate(ordered, start=1)]
    return run


def _parse_trec(path: str, text: str) -> Run:
    rows: dict[str, dict[str, float]] = {}
    seen_at: dict[tuple[str, str], int] = {}
    first_line: dict[str, int | None] = {}
    for number, line in numbered_lines(text):
        fields = line.split()
        if len(fields) != 6:
            raise InputError(path, number, f"expected 6 columns (qid Q0 docid rank score tag), found {len(fields)}")
        qid, _, docid, rank, raw_score, _ = fields
        try:
            int(rank)
        except ValueError:
            raise InputError(path, number, f"rank must be an integer, got {rank!r}") from None
        score = _parse_score(path, number, raw_score)
        first_seen = seen_at.setdefault((qid, docid), number)
        if first_seen != number:
            raise InputError(
                path, number, f"duplicate document {docid!r} for query {qid!r} (first at line {first_seen})"
            )
        first_line.setdefault(qid, number)
        rows.setdefault(qid, {})[docid] = score
    return _build(path, rows, first_line)


# ---------------------------------------------------------------------------------------------------------
# JSON: parsed with positions, so that every error names its line.
# ---------------------------------------------------------------------------------------------------------


class _Pairs(list):
    """A JSON object as its (key, value) pairs, duplicates kept (a JSON array stays a plain list)."""


_DECODER = json.JSONDecoder(object_pairs_hook=_Pairs)
_WHITESPACE = json.decoder.WHITESPACE


@dataclass(frozen=True)
class _Member:
    key: str
    value: object
    key_offset: int
    value_offset: int


def _skip(text: str, offset: int) -> int:
    return _WHITESPACE.match(text, offset).end()


def _expect(text: str, offset: int, characters: str, what: str) -> int:
    if offset >= len(text) or text[offset] not in characters:
        raise json.JSONDecodeError(f"Expecting {what}", text, offset)
    return offset + 1


def _members(text: str, offset: int, end: list[int] | None = None) -> Iterator[_Member]:
    """The members of the JSON object whose `{` is at `offset`, with offsets; appends the offset after its `}`
    to `end`. Syntax errors raise `json.JSONDecodeError` (which knows its line)."""
    offset = _skip(text, _expect(text, offset, "{", "'{'"))
    closed = text.startswith("}", offset)
    offset += closed
    while not closed:
        key_offset = offset
        offset = _expect(text, offset, '"', "property name enclosed in double quotes")
        key, offset = json.decoder.scanstring(text, offset)
        value_offset = _skip(text, _expect(text, _skip(text, offset), ":", "':' delimiter"))
        value, offset = _DECODER.raw_decode(text, value_offset)
        yield _Member(key, value, key_offset, value_offset)
        offset = _expect(text, _skip(text, offset), ",}", "',' delimiter")
        closed = text[offset - 1] == "}"
        offset = offset if closed else _skip(text, offset)
    if end is not None:
        end.append(offset)


class _Lines:
    """Line numbers of increasing offsets, counted incrementally (linear in the file, not per lookup)."""

    def __init__(self, text: str) -> None:
        self.text, self.offset, self.line = text, 0, 1

    def at(self, offset: int) -> int:
        if offset < self.offset:
            self.offset, self.line = 0, 1
        self.line += self.text.count("\n", self.offset, offset)
        self.offset = offset
        return self.line


def _parse_json(path: str, text: str) -> Run:
    start = _skip(text, 0)
    if not text.startswith("{", start):
        raise InputError(path, 1, "a JSON run must be an object {qid: {docid: score}}")
    lines = _Lines(text)
    rows: dict[str, dict[str, float]] = {}
    first_line: dict[str, int | None] = {}
    end: list[int] = []
    try:
        for member in _members(text, start, end):
            line = lines.at(member.key_offset)
            qid = member.key
            _check_identifier(path, line, "query id", qid)
            if qid in rows:
                raise InputError(path, line, f"duplicate query {qid!r} (first at line {first_line[qid]})")
            if not isinstance(member.value, _Pairs):
                raise InputError(path, line, f"query {qid!r}: expected an object {{docid: score}}")
            first_line[qid] = line
            rows[qid] = _json_candidates(path, text, member, lines)
        trailing = _skip(text, end[0])
        if trailing != len(text):
            raise json.JSONDecodeError("Extra data", text, trailing)
    except json.JSONDecodeError as error:
        raise InputError(path, error.lineno, f"invalid JSON: {error.msg} (column {error.colno})") from None
    if not any(rows.values()):
        raise InputError(path, None, "run has no candidates")
    return _build(path, rows, first_line)


def _json_candidates(path: str, text: str, query: _Member, lines: _Lines) -> dict[str, float]:
    """{docid: score} of one query; on a bad entry, walk the object again to name the entry's line."""
    pairs: _Pairs = query.value  # type: ignore[assignment]
    scores: dict[str, float] = {}
    positions: dict[str, int] = {}
    for position, (docid, raw_score) in enumerate(pairs):
        try:
            _check_identifier(path, None, "document id", docid)
            first = positions.setdefault(docid, position)
            if first != position:
                first_line = _entry_line(text, query, first, lines)
                raise InputError(
                    path, None, f"duplicate document {docid!r} for query {query.key!r} (first at line {first_line})"
                )
            scores[docid] = _parse_score(path, None, raw_score)
        except InputError as error:
            raise InputError(path, _entry_line(text, query, position, lines), error.problem) from None
    return scores


def _entry_line(text: str, query: _Member, position: int, lines: _Lines) -> int:
    for index, member in enumerate(_members(text, query.value_offset)):
        if index == position:
            return lines.at(member.key_offset)
    raise AssertionError("entry position out of range")  # pragma: no cover - positions come from the same text


def read_run(path: str | Path, *, stdin: BinaryIO | None = None) -> Run:
    """Read and validate a run (TREC 6-column or JSON, gzip or not; `-` is stdin).

    The format is JSON when the first non-blank character is `{` or `[`, else TREC. Raises `InputError`
    (file:line: problem) for: a wrong column count, a rank that is not an integer, a score that is not a finite
    number, a duplicate (qid, docid) (naming the first line), an empty file, bytes that are not UTF-8, invalid
    JSON, a JSON shape other than {qid: {docid: score}}, and ids with whitespace (unwritable in TREC).
    """
    text = read_text(path, stdin=stdin)
    name = display_name(path)
    if text.lstrip()[:1] in ("{", "["):
        return _parse_json(name, text)
    return _parse_trec(name, text)


# ---------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------


class ScoredDoc(Protocol):
    @property
    def docid(self) -> str: ...

    @property
    def score(self) -> float: ...


def format_score(score: float) -> str:
    """Shortest text that parses back to the same float (`repr`): distinct scores stay distinct when read back.

    trec_eval (atof) and ir-measures (float) then see exactly the floats that were ranked, so their order
    (score descending, docid descending) equals the intended one. -0.0 is written as 0.0 (they compare equal).
    """
    value = float(score)
    if not math.isfinite(value):
        raise ValueError(f"cannot write a non-finite score to a run: {value!r}")
    return repr(value + 0.0)


def _check_tag(tag: str) -> None:
    if not tag or any(character.isspace() for character in tag):
        raise ValueError(f"run tag must be one word without whitespace, got {tag!r}")


def format_trec_run(ranked: Mapping[str, Sequence[ScoredDoc]], tag: str) -> str:
    """TREC 6-column text: queries in sorted qid order, each query's documents in the given (intended) order,
    ranks 1..n, scores from `format_score`. The caller makes scores consistent with the order
    (`ranking.rerank` does)."""
    return format_trec_lines({qid: [(doc.docid, doc.score) for doc in docs] for qid, docs in ranked.items()}, tag)


def format_trec_lines(ranked: Mapping[str, Sequence[tuple[str, float]]], tag: str) -> str:
    """TREC run text from qid -> (docid, score) in the intended order (see `format_trec_run`)."""
    _check_tag(tag)
    lines = [
        f"{qid} Q0 {docid} {rank} {format_score(score)} {tag}\n"
        for qid in sorted(ranked)
        for rank, (docid, score) in enumerate(ranked[qid], start=1)
    ]
    return "".join(lines)
