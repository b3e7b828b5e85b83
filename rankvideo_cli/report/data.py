"""The report's content as plain data: per query, its measures in the baseline and in each run, the top K of each
with each candidate's moves, judgment, scores and explanation; the explanations file read strictly.

Nothing here renders or decodes: `page.py` turns this into HTML, `thumbnails.py` makes the frames.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankvideo_cli.errors import InputError
from rankvideo_cli.evaluation.measures import EvalReport
from rankvideo_cli.io.json_input import parse_json_line
from rankvideo_cli.io.runs import Candidate, Run
from rankvideo_cli.io.text import display_name, iter_lines
from rankvideo_cli.scoring.base import p_yes_of

Pair = tuple[str, str]


@dataclass
class Move:
    """Where a candidate went, seen from one column against another: "up 3", "down 2", "=", "new in top 10 (was
    14)", "not in the baseline", "to 4", "out of top 10 (to 12)"; `kind` (up, down, same, new, out) picks the
    colour."""

    text: str
    kind: str


@dataclass
class Row:
    """One candidate as a column of the report shows it."""

    rank: int
    docid: str
    score: float  # the run file's score
    moves: list[Move]  # a run's row: against the baseline (one, none without one); a baseline row: one per run
    judgment: int | None  # None: unjudged
    logit_delta: float | None = None  # from the run's --scores
    p_yes: float | None = None
    explanation: str | None = None


@dataclass
class RunColumn:
    """One run's part of a query's section: its measures, the change of the first measure, its top K."""

    measures: dict[str, float] = field(default_factory=dict)
    delta: float | None = None  # of the first measure, run - baseline
    rows: list[Row] = field(default_factory=list)


@dataclass
class QuerySection:
    qid: str
    text: str | None
    baseline_measures: dict[str, float] = field(default_factory=dict)
    baseline_rows: list[Row] = field(default_factory=list)
    runs: list[RunColumn] = field(default_factory=list)  # in the order the runs were given

    @property
    def delta(self) -> float | None:
        """The first run's change: what --limit and the page's first order go by."""
        return self.runs[0].delta if self.runs else None


def _ranks(candidates: Sequence[Candidate]) -> dict[str, int]:
    return {candidate.docid: candidate.first_stage_rank for candidate in candidates}


def _move(rank: int, other_rank: int | None, top: int) -> Move:
    """A run's row seen from the baseline: where the baseline had it."""
    if other_rank is None:
        return Move("not in the baseline", "new")
    if other_rank > top:
        return Move(f"new in top {top} (was {other_rank})", "new")
    if other_rank == rank:
        return Move("=", "same")
    return Move(f"up {other_rank - rank}", "up") if other_rank > rank else Move(f"down {rank - other_rank}", "down")


def _leaves(rank: int, other_rank: int | None, top: int) -> Move:
    """A baseline row seen from a run: where the run put it."""
    if other_rank is None:
        return Move("not in the run", "out")
    if other_rank > top:
        return Move(f"out of top {top} (to {other_rank})", "out")
    if other_rank == rank:
        return Move("=", "same")
    return Move(f"to {other_rank}", "up" if other_rank < rank else "down")


def build_sections(
    qids: Sequence[str],
    runs: Sequence[Run],
    baseline: Run | None,
    *,
    top: int,
    queries: Mapping[str, str] | None,
    qrels: Mapping[str, Mapping[str, int]] | None,
    evaluation: EvalReport | None,
    model_scores: Sequence[Mapping[Pair, float] | None],
) -> list[QuerySection]:
    """One section per qid, in the order given; `model_scores` holds each run's --scores (None: none)."""
    first = evaluation.measures[0] if evaluation is not None else None
    run_values = [evaluation.runs[position].values if evaluation is not None else {} for position in range(len(runs))]
    compared = evaluation.baseline if evaluation is not None else None
    baseline_values = compared.values if compared is not None else {}
    sections = []
    for qid in qids:
        section = QuerySection(qid, (queries or {}).get(qid), baseline_measures=dict(baseline_values.get(qid, {})))
        judged = (qrels or {}).get(qid, {})
        theirs = baseline.get(qid, []) if baseline is not None else []
        their_ranks = _ranks(theirs)
        ours_by_run = [run.get(qid, []) for run in runs]
        for values, ours, scores in zip(run_values, ours_by_run, model_scores, strict=True):
            column = RunColumn(measures=dict(values.get(qid, {})))
            if first is not None and first in column.measures and first in section.baseline_measures:
                column.delta = column.measures[first] - section.baseline_measures[first]
            for candidate in ours[:top]:
                moves = (
                    [_move(candidate.first_stage_rank, their_ranks.get(candidate.docid), top)]
                    if baseline is not None
                    else []
                )
                column.rows.append(_row(qid, candidate, moves, judged, scores))
            section.runs.append(column)
        our_ranks = [_ranks(ours) for ours in ours_by_run]
        for candidate in theirs[:top]:
            moves = [_leaves(candidate.first_stage_rank, ranks.get(candidate.docid), top) for ranks in our_ranks]
            section.baseline_rows.append(_row(qid, candidate, moves, judged, None))
        sections.append(section)
    return sections


def _row(
    qid: str,
    candidate: Candidate,
    moves: list[Move],
    judged: Mapping[str, int],
    model_scores: Mapping[Pair, float] | None,
) -> Row:
    delta = (model_scores or {}).get((qid, candidate.docid))
    return Row(
        rank=candidate.first_stage_rank,
        docid=candidate.docid,
        score=candidate.score,
        moves=moves,
        judgment=judged.get(candidate.docid),
        logit_delta=delta,
        p_yes=p_yes_of(delta) if delta is not None else None,
    )


def score_is_logit_delta(sections: Sequence[QuerySection], position: int, tolerance: float = 5e-6) -> bool:
    """Whether the run at `position` is ranked by the model's logit_delta itself (no interpolation): then its
    score column and its logit_delta column would say the same, and the page shows one. The run file keeps 6
    decimals (`rankvideo rank`), hence the tolerance."""
    scored = [row for section in sections for row in section.runs[position].rows if row.logit_delta is not None]
    return bool(scored) and all(abs(row.score - row.logit_delta) <= tolerance for row in scored)  # type: ignore[operator]


def select_queries(
    known: Iterable[str],
    deltas: Mapping[str, float],
    *,
    qids: Sequence[str] | None,
    limit: int | None,
) -> list[str]:
    """The queries the report shows: `qids` as asked (each must be in a run or the baseline), else every `known`
    query (those of the runs and the baseline); `limit` keeps the N with the largest change (`deltas`: the first
    run's), half gains and half losses (by |delta| where one side has fewer), or the first N by qid without
    measures."""
    everything = sorted(set(known))
    if qids:
        return list(dict.fromkeys(qids))
    if limit is None or limit >= len(everything):
        return everything
    if not deltas:
        return everything[:limit]
    gains = sorted((q for q in everything if deltas.get(q, 0.0) > 0), key=lambda q: (-deltas[q], q))
    losses = sorted((q for q in everything if deltas.get(q, 0.0) < 0), key=lambda q: (deltas[q], q))
    chosen = gains[: (limit + 1) // 2] + losses[: limit // 2]
    rest = sorted((q for q in everything if q not in set(chosen)), key=lambda q: (-abs(deltas.get(q, 0.0)), q))
    chosen += rest[: limit - len(chosen)]
    return sorted(chosen, key=lambda q: (-(deltas.get(q, 0.0)), q))


def read_explanations(path: str | Path, queries: Mapping[str, str], videos: Mapping[Pair, str | None]) -> dict:
    """(qid, docid) -> the model's answer, from `rankvideo explain --json` lines (each names its query text and
    video file), matched to the run's pairs by query text and the video's real path. A line that is not such a
    row, or a second answer for the same query and video, is an error naming the line."""
    name = display_name(path)
    by_query: dict[str, list[str]] = {}
    for qid, text in queries.items():
        by_query.setdefault(text, []).append(qid)
    by_video: dict[str, list[str]] = {}
    for (qid, docid), video in videos.items():
        if video is not None:
            by_video.setdefault(os.path.realpath(video), []).append(f"{qid}\0{docid}")
    answers: dict[Pair, str] = {}
    seen: dict[tuple[str, str], int] = {}
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        record: Any = parse_json_line(name, number, line)
        if not isinstance(record, dict) or "video" not in record:
            raise InputError(name, number, "expected a `rankvideo explain --json` row (an object with 'video')")
        if "error" in record:
            continue  # explain could not decode that video: nothing to show
        if not isinstance(record.get("query"), str) or not isinstance(record.get("text"), str):
            raise InputError(name, number, "a row without 'query' and 'text' (a `rankvideo explain --json` row)")
        key = (record["query"], os.path.realpath(str(record["video"])))
        if key in seen:
            raise InputError(name, number, f"a second answer for this query and video (first at line {seen[key]})")
        seen[key] = number
        for pair in by_video.get(key[1], []):
            qid, docid = pair.split("\0")
            if qid in by_query.get(key[0], []):
                answers[(qid, docid)] = record["text"]
    return answers
