"""First-stage runs: TREC 6-column (optionally gzipped, or stdin) and the reference's JSON {qid: {docid: score}}.

Candidates are ordered as trec_eval orders them, by score descending and ties by docid descending; the rank
column is informational. Queries are kept sorted by qid (plain string order) so that every output is
deterministic.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rankvideo_cli.errors import InputError
from rankvideo_cli.io.text import numbered_lines, read_text


@dataclass(frozen=True)
class Candidate:
    docid: str
    score: float
    first_stage_rank: int  # 1-based position in trec_eval order (score desc, docid desc)


class Run(dict[str, list[Candidate]]):
    """qid -> candidates in first-stage order; qids in sorted order. Remembers where each qid first appears."""

    def __init__(self, source: str, first_line: dict[str, int | None]) -> None:
        super().__init__()
        self.source = source
        self.first_line = first_line

    @property
    def pair_count(self) -> int:
        return sum(len(candidates) for candidates in self.values())


def trec_order(scored: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """trec_eval's ranking of (docid, score): score descending, ties broken by docid descending."""
    return sorted(scored, key=lambda item: (item[1], item[0]), reverse=True)


def _parse_score(path: str | Path, line: int | None, raw: object) -> float:
    if isinstance(raw, bool):
        raise InputError(path, line, f"score must be a number, got {raw!r}")
    try:
        score = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(path, line, f"score must be a number, got {raw!r}") from None
    if not math.isfinite(score):
        raise InputError(path, line, f"score must be finite, got {raw!r}")
    return score


def _build(path: str | Path, rows: dict[str, dict[str, float]], first_line: dict[str, int | None]) -> Run:
    run = Run(str(path), first_line)
    for qid in sorted(rows):
        ordered = trec_order(list(rows[qid].items()))
        run[qid] = [Candidate(docid, score, rank) for rank, (docid, score) in enumerate(ordered, start=1)]
    return run


def _parse_trec(path: str | Path, text: str) -> Run:
    rows: dict[str, dict[str, float]] = {}
    seen_at: dict[tuple[str, str], int] = {}
    first_line: dict[str, int | None] = {}
    for number, line in numbered_lines(text):
        fields = line.split()
        if len(fields) != 6:
            raise InputError(
                path, number, f"expected 6 columns (qid Q0 docid rank score tag), found {len(fields)}"
            )
        qid, _, docid, rank, raw_score, _ = fields
        try:
            int(rank)
        except ValueError:
            raise InputError(path, number, f"rank must be an integer, got {rank!r}") from None
        score = _parse_score(path, number, raw_score)
        if (qid, docid) in seen_at:
            raise InputError(
                path,
                number,
                f"duplicate document {docid!r} for query {qid!r} (first at line {seen_at[qid, docid]})",
            )
        seen_at[qid, docid] = number
        first_line.setdefault(qid, number)
        rows.setdefault(qid, {})[docid] = score
    return _build(path, rows, first_line)


def _parse_json(path: str | Path, text: str) -> Run:
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicate_keys(path))
    except json.JSONDecodeError as error:
        raise InputError(path, error.lineno, f"invalid JSON: {error.msg}") from None
    if not isinstance(data, dict):
        raise InputError(path, 1, "JSON run must be an object {qid: {docid: score}}")
    rows: dict[str, dict[str, float]] = {}
    for qid, docs in data.items():
        if not isinstance(docs, dict):
            raise InputError(path, None, f"query {qid!r}: expected an object {{docid: score}}")
        rows[str(qid)] = {str(docid): _parse_score(path, None, score) for docid, score in docs.items()}
    if not any(rows.values()):
        raise InputError(path, None, "run has no candidates")
    return _build(path, rows, dict.fromkeys(rows))


def _reject_duplicate_keys(path: str | Path):
    def hook(pairs: list[tuple[str, object]]) -> dict:
        keys = [key for key, _ in pairs]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise InputError(path, None, f"duplicate JSON key {duplicates[0]!r}")
        return dict(pairs)

    return hook


def read_run(path: str | Path, *, stdin: BinaryIO | None = None) -> Run:
    """Read and validate a run; raises `InputError` (file:line: problem) on anything malformed."""
    text = read_text(path, stdin=stdin)
    if text.lstrip().startswith("{"):
        return _parse_json(path, text)
    return _parse_trec(path, text)


def format_score(score: float) -> str:
    """Shortest text that parses back to the same float: distinct scores stay distinct for trec_eval."""
    return repr(float(score) + 0.0)  # + 0.0 turns -0.0 into 0.0


def format_trec_lines(ranked: dict[str, list[tuple[str, float]]], tag: str) -> str:
    """TREC run text; `ranked` maps qid -> (docid, score) in the intended order."""
    lines = [
        f"{qid} Q0 {docid} {rank} {format_score(score)} {tag}"
        for qid in sorted(ranked)
        for rank, (docid, score) in enumerate(ranked[qid], start=1)
    ]
    return "".join(line + "\n" for line in lines)
