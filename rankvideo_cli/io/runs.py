"""First-stage runs: TREC 6-column (optionally gzipped, or stdin) and the reference's JSON {qid: {docid: score}}.

Order rules, used everywhere in rankvideo:
- candidates of a query are in trec_eval's order: score descending, ties broken by docid descending (plain
  string comparison, which is UTF-8 byte order, as trec_eval's strcmp). The rank column is informational.
  `Candidate.first_stage_rank` is the 1-based position in that order.
- queries are sorted by qid as plain strings (`sorted()`: "q10" < "q2"), so every output is byte-deterministic
  whatever the order of the input file.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO, NamedTuple

from rankvideo_cli.errors import InputError
from rankvideo_cli.io.bulk import collector_paused
from rankvideo_cli.io.text import STDIN, check_utf8, display_name, iter_lines, open_text_lines
from rankvideo_cli.messages import plural


class Candidate(NamedTuple):
    """One candidate of a query (a named tuple: a first stage of 2.5M of them must build in a second)."""

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
        self.tolerated = Tolerated()

    @property
    def pair_count(self) -> int:
        return sum(len(candidates) for candidates in self.values())

    def scores(self) -> dict[str, dict[str, float]]:
        """qid -> {docid: score}: the shape ir-measures evaluates."""
        return {qid: {candidate.docid: candidate.score for candidate in candidates} for qid, candidates in self.items()}


def _check_identifier(path: str, line: int | None, kind: str, value: str) -> None:
    # A TREC line is whitespace-separated: an id with whitespace (possible in JSON) could not be written back.
    if not value or any(character.isspace() for character in value):
        raise InputError(path, line, f"{kind} must be non-empty without whitespace, got {value!r}")


class Tolerated(dict[str, int]):
    """Counts of the lines a reader accepted under trec_eval 10.0's rules that a stricter reader would refuse,
    by kind (`EXTRA_COLUMNS`, `NON_INTEGER_RANK`); comments are counted too (`COMMENTS`), but are no surprise."""

    def describe(self, source: str, columns: int, why: str = "ignored, as trec_eval does") -> str | None:
        """One line for stderr naming what was tolerated in `source`, or None when nothing was."""
        parts = []
        if self.get(EXTRA_COLUMNS):
            parts.append(f"{plural(self[EXTRA_COLUMNS], 'line')} with columns after the {columns}th ({why})")
        if self.get(NON_INTEGER_RANK):
            parts.append(f"{plural(self[NON_INTEGER_RANK], 'line')} with a non-integer rank (trec_eval never reads it)")
        return f"{source}: {'; '.join(parts)}" if parts else None


EXTRA_COLUMNS = "extra_columns"
NON_INTEGER_RANK = "non_integer_rank"
COMMENTS = "comments"


class RunScores(dict[str, dict[str, float]]):
    """A run as read: qid -> {docid: score}, in file order (the shape pytrec_eval and ir-measures take).

    `source` names the file, `first_line[qid]` the line where each qid first appears, `tolerated` the lines
    accepted under trec_eval 10.0's rules (extra columns, non-integer ranks) and comments skipped.
    """

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        self.first_line: dict[str, int | None] = {}
        self.tolerated = Tolerated()

    @property
    def pair_count(self) -> int:
        return sum(len(docs) for docs in self.values())


def _parse_trec_lines(
    path: str, lines: Iterator[tuple[int, str]], reread: Callable[[], Iterator[tuple[int, str]] | None]
) -> RunScores:
    """The TREC reader's hot loop (2.5M lines in a few seconds): split, check, store; nothing per line that
    can be done once. trec_eval 10.0's rules: a line whose first non-blank character is `#` is a comment,
    columns after the 6th are ignored, and the rank column is never read (only counted when not an integer)."""
    run = RunScores(path)
    first_line = run.first_line
    extra_columns = non_integer_rank = comments = 0
    isfinite = math.isfinite
    split = str.split
    for number, line in lines:
        fields = split(line)
        if not fields:
            continue
        if not line.isascii():
            check_utf8(path, number, line)
        qid = fields[0]
        if qid[0] == "#":
            comments += 1
            continue
        if len(fields) != 6:
            if len(fields) < 6:
                raise InputError(path, number, f"expected 6 columns (qid Q0 docid rank score tag), found {len(fields)}")
            extra_columns += 1
        docid, rank, raw_score = fields[2], fields[3], fields[4]
        try:
            score = float(raw_score)
        except ValueError:
            raise InputError(path, number, f"score must be a number, got {raw_score!r}") from None
        if not isfinite(score):
            raise InputError(path, number, f"score must be finite, got {raw_score!r}")
        if not rank.isdigit():
            try:
                int(rank)
            except ValueError:
                non_integer_rank += 1
        docs = run.get(qid)
        if docs is None:
            docs = run[qid] = {}
            first_line[qid] = number
        elif docid in docs:
            first = _first_occurrence(reread, qid, docid)
            raise InputError(
                path,
                number,
                f"duplicate document {docid!r} for query {qid!r}" + (f" (first at line {first})" if first else ""),
            )
        docs[docid] = score
    run.tolerated.update(
        {
            key: count
            for key, count in (
                (EXTRA_COLUMNS, extra_columns),
                (NON_INTEGER_RANK, non_integer_rank),
                (COMMENTS, comments),
            )
            if count
        }
    )
    if not run:
        raise InputError(path, None, "run has no candidates (only comments)")
    return run


def _first_occurrence(reread: Callable[[], Iterator[tuple[int, str]] | None], qid: str, docid: str) -> int | None:
    """Line of the first (qid, docid) line, found by reading the file again (only on the error path, so the
    hot loop keeps no line number per pair); None when the input cannot be read twice (stdin)."""
    lines = reread()
    if lines is None:
        return None
    for number, line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[0] == qid and fields[2] == docid:
            return number
    return None  # pragma: no cover - the duplicate was found in the same file


def _build(
    path: str, rows: dict[str, dict[str, float]], first_line: dict[str, int | None], *, consume: bool = False
) -> Run:
    """The `Run` of `rows`, each query sorted in trec_eval order; with `consume`, each query's dict is dropped
    from `rows` once built, so the two forms of a 2.5M-line run are never in memory whole at once."""
    run = Run(path, first_line)
    for qid in sorted(rows):
        ordered = sorted(rows[qid].items(), key=_SCORE_THEN_DOCID, reverse=True)
        if consume:
            del rows[qid]
        ranks = _rank_tuples(len(ordered))
        # (docid, score) + (rank,) and tuple.__new__ through map: the named tuples are built in C, not by 2.5M
        # calls of their Python __new__
        run[qid] = list(map(_new_tuple, repeat(Candidate), map(tuple.__add__, ordered, ranks)))
    return run


def run_from_scores(source: str, rows: dict[str, dict[str, float]]) -> Run:
    """The `Run` of qid -> {docid: score} read elsewhere (a PyTerrier result frame), in trec_eval order."""
    return _build(source, rows, dict.fromkeys(rows))


_RANKS: list[tuple[int]] = []


def _rank_tuples(count: int) -> list[tuple[int]]:
    """[(1,), (2,), ...] of at least `count` items, made once and shared by every query."""
    while len(_RANKS) < count:
        _RANKS.append((len(_RANKS) + 1,))
    return _RANKS


_new_tuple = tuple.__new__


_SCORE_THEN_DOCID = itemgetter(1, 0)  # (docid, score) -> (score, docid), in C


# ---------------------------------------------------------------------------------------------------------
# JSON: parsed with positions, so that every error names its line.
# ---------------------------------------------------------------------------------------------------------


class _Pairs(list[tuple[str, object]]):
    """A JSON object as its (key, value) pairs, duplicates kept (a JSON array stays a plain list)."""


_JSON_RUN_SHAPE = "expected an object {qid: {docid: score}}"


def _json_kind(value: object) -> str:
    """What a parsed JSON value is, in words, for messages about a run of the wrong shape."""
    if isinstance(value, _Pairs):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return f"a string ({json.dumps(value)})"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    return "null" if value is None else "a number"


def _json_score(path: str, qid: str, docid: str, raw: object) -> float:
    """The score of one JSON entry: a number, or a string holding one (as a TREC run's column is read)."""
    try:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise ValueError
        score = float(raw)
    except ValueError:
        problem = f"the score of document {docid!r} in query {qid!r} is {_json_kind(raw)}, not a number"
        raise InputError(path, None, f"{_JSON_RUN_SHAPE}; {problem}") from None
    if not math.isfinite(score):
        raise InputError(path, None, f"the score of document {docid!r} in query {qid!r} must be finite, got {raw!r}")
    return score


_DECODER = json.JSONDecoder(object_pairs_hook=_Pairs)
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # json.decoder.WHITESPACE, which is not public


@dataclass(frozen=True)
class _Member:
    key: str
    value: object
    key_offset: int
    value_offset: int


def _skip(text: str, offset: int) -> int:
    match = _WHITESPACE.match(text, offset)
    return match.end() if match else offset  # always a match: the pattern matches the empty string


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
        _expect(text, offset, '"', "property name enclosed in double quotes")
        key: str
        key, offset = _DECODER.raw_decode(text, offset)  # a string, at its '"'
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
        found = "an array" if text.startswith("[", start) else f"{text[start : start + 1]!r} first"
        raise InputError(path, 1, f"{_JSON_RUN_SHAPE}; found {found}")
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
                problem = f"query {qid!r} maps to {_json_kind(member.value)}, not an object"
                raise InputError(path, line, f"{_JSON_RUN_SHAPE}; {problem}")
            first_line[qid] = line
            rows[qid] = _json_candidates(path, text, member, member.value, lines)
        trailing = _skip(text, end[0])
        if trailing != len(text):
            raise json.JSONDecodeError("Extra data", text, trailing)
    except json.JSONDecodeError as error:
        raise InputError(path, error.lineno, f"invalid JSON: {error.msg} (column {error.colno})") from None
    if not any(rows.values()):
        raise InputError(path, None, "run has no candidates")
    return _build(path, rows, first_line)


def _json_candidates(path: str, text: str, query: _Member, pairs: _Pairs, lines: _Lines) -> dict[str, float]:
    """{docid: score} of one query (`pairs`: its parsed `query.value`); on a bad entry, walk the object again to
    name the entry's line."""
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
            scores[docid] = _json_score(path, query.key, docid, raw_score)
        except InputError as error:
            raise InputError(path, _entry_line(text, query, position, lines), error.problem) from None
    return scores


def _entry_line(text: str, query: _Member, position: int, lines: _Lines) -> int:
    for index, member in enumerate(_members(text, query.value_offset)):
        if index == position:
            return lines.at(member.key_offset)
    raise AssertionError("entry position out of range")  # pragma: no cover - positions come from the same text


def read_run_scores(path: str | Path, *, stdin: BinaryIO | None = None) -> RunScores:
    """Read and validate a run as qid -> {docid: score} (TREC 6-column or JSON, gzip or not; `-` is stdin).

    The format is JSON when the first non-blank character is `{` or `[`, else TREC, read as a stream under
    trec_eval 10.0's rules (`#` comment lines skipped, columns after the 6th and non-integer ranks tolerated
    and counted in `.tolerated`). Raises `InputError` (file:line: problem) for: fewer than 6 columns, a score
    that is not a finite number, a duplicate (qid, docid) (naming the first line), an empty file, bytes that
    are not UTF-8, invalid JSON, a JSON shape other than {qid: {docid: score}}, and JSON ids with whitespace
    (unwritable in TREC).
    """
    name = display_name(path)
    with collector_paused(), open_text_lines(path, stdin=stdin) as lines:
        head: list[tuple[int, str]] = []
        for number, line in lines:
            head.append((number, line))
            if line.strip():
                break
        if head and head[-1][1].lstrip()[:1] in ("{", "["):
            for number, line in head:
                if not line.isascii():
                    check_utf8(name, number, line)
            text = "".join(line for _, line in head) + "".join(_checked(name, lines))
            parsed = _parse_json(name, text.replace("\r\n", "\n"))
            scores = RunScores(name)
            scores.first_line.update(parsed.first_line)
            for qid, candidates in parsed.items():
                scores[qid] = {candidate.docid: candidate.score for candidate in candidates}
            return scores

        def reread() -> Iterator[tuple[int, str]] | None:
            return None if str(path) == STDIN else iter_lines(path)

        return _parse_trec_lines(name, itertools.chain(head, lines), reread)


def _checked(name: str, lines: Iterator[tuple[int, str]]) -> Iterator[str]:
    for number, line in lines:
        if not line.isascii():
            check_utf8(name, number, line)
        yield line


def read_run(path: str | Path, *, stdin: BinaryIO | None = None) -> Run:
    """Read and validate a run (see `read_run_scores`), each query's candidates in trec_eval order."""
    with collector_paused():
        scores = read_run_scores(path, stdin=stdin)
        run = _build(scores.source, scores, scores.first_line, consume=True)
    run.tolerated = scores.tolerated
    return run


# ---------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------


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


def format_trec_lines(ranked: Mapping[str, Sequence[Sequence]], tag: str) -> str:
    """TREC run text from qid -> documents in the intended order, each a (docid, score) pair or anything whose
    first two items are those (`ranking.RankedDoc`): queries in sorted qid order, each query's documents in the given
    order, ranks 1..n, scores as `format_score` writes them. The caller makes scores consistent with the order
    (`ranking.rerank` does)."""
    return "".join(iter_trec_chunks(ranked, tag))


def iter_trec_chunks(ranked: Mapping[str, Sequence[Sequence]], tag: str) -> Iterator[str]:
    """The text of `format_trec_lines`, one query at a time (a 2.5M-line run is never one list of lines).

    Scores are written as `format_score` writes them (`repr(score + 0.0)`), here through `map` so that the
    per-line work stays in C."""
    _check_tag(tag)
    with collector_paused():
        yield from _trec_chunks(ranked, f" {tag}\n")


def _trec_chunks(ranked: Mapping[str, Sequence[Sequence]], tag_suffix: str) -> Iterator[str]:
    for qid in sorted(ranked):
        docs = ranked[qid]
        scores = [float(doc[1]) for doc in docs]
        if not all(map(math.isfinite, scores)):
            bad = next(score for score in scores if not math.isfinite(score))
            raise ValueError(f"cannot write a non-finite score to a run: {bad!r}")
        texts = map(repr, map(float.__add__, scores, repeat(0.0)))  # + 0.0: -0.0 is written as 0.0
        # the line's pieces chained and joined in C: no per-line Python formatting
        pieces = zip(
            repeat(f"{qid} Q0 "),
            map(itemgetter(0), docs),
            repeat(" "),
            map(str, range(1, len(docs) + 1)),
            repeat(" "),
            texts,
            repeat(tag_suffix),
        )
        yield "".join(itertools.chain.from_iterable(pieces))
