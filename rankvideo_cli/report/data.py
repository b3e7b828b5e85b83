"""The report's content as plain data: per query, its measures in both runs, the top K of each side by side with
each candidate's move, judgment, scores and explanation; the explanations file read strictly.

Nothing here renders or decodes: `page.py` turns this into HTML, `thumbnails.py` makes the frames.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
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
class Row:
    """One candidate as a column of the report shows it."""

    rank: int
    docid: str
    score: float  # the run file's score
    move: str  # against the other column: "up 3", "down 2", "=", "new in top 10", "not in the run"...
    move_kind: str  # up, down, same, new, out (for the colour)
    judgment: int | None  # None: unjudged
    logit_delta: float | None = None  # from --scores
    p_yes: float | None = None
    explanation: str | None = None


@dataclass
class QuerySection:
    qid: str
    text: str | None
    run_measures: dict[str, float] = field(default_factory=dict)
    baseline_measures: dict[str, float] = field(default_factory=dict)
    delta: float | None = None  # of the first measure, run - baseline
    run_rows: list[Row] = field(default_factory=list)
    baseline_rows: list[Row] = field(default_factory=list)


def _ranks(candidates: Sequence[Candidate]) -> dict[str, int]:
    return {candidate.docid: candidate.first_stage_rank for candidate in candidates}


def _move(rank: int, other_rank: int | None, top: int, other_name: str) -> tuple[str, str]:
    if other_rank is None:
        return f"not in {other_name}", "new"
    if other_rank > top:
        return f"new in top {top} (was {other_rank})", "new"
    if other_rank == rank:
        return "=", "same"
    return (f"up {other_rank - rank}", "up") if other_rank > rank else (f"down {rank - other_rank}", "down")


def _leaves(rank: int, other_rank: int | None, top: int, other_name: str) -> tuple[str, str]:
    """A baseline row seen from the run: where the run put it."""
    if other_rank is None:
        return f"not in {other_name}", "out"
    if other_rank > top:
        return f"out of top {top} (to {other_rank})", "out"
    if other_rank == rank:
        return "=", "same"
    return (f"to {other_rank}", "up") if other_rank < rank else (f"to {other_rank}", "down")


def build_sections(
    qids: Sequence[str],
    run: Run,
    baseline: Run | None,
    *,
    top: int,
    queries: Mapping[str, str] | None,
    qrels: Mapping[str, Mapping[str, int]] | None,
    evaluation: EvalReport | None,
    model_scores: Mapping[Pair, float] | None,
) -> list[QuerySection]:
    """One section per qid, in the order given."""
    run_eval = evaluation.runs[0] if evaluation is not None else None
    base_eval = evaluation.baseline if evaluation is not None else None
    first = evaluation.measures[0] if evaluation is not None else None
    sections = []
    for qid in qids:
        section = QuerySection(qid, (queries or {}).get(qid))
        if run_eval is not None and qid in run_eval.per_query.index:
            section.run_measures = {k: float(v) for k, v in run_eval.per_query.loc[qid].items()}
        if base_eval is not None and qid in base_eval.per_query.index:
            section.baseline_measures = {k: float(v) for k, v in base_eval.per_query.loc[qid].items()}
        if first is not None and first in section.run_measures and first in section.baseline_measures:
            section.delta = section.run_measures[first] - section.baseline_measures[first]
        judged = (qrels or {}).get(qid, {})
        ours = run.get(qid, [])
        theirs = baseline.get(qid, []) if baseline is not None else []
        their_ranks, our_ranks = _ranks(theirs), _ranks(ours)

        for candidate in ours[:top]:
            move = (
                _move(candidate.first_stage_rank, their_ranks.get(candidate.docid), top, "the baseline")
                if baseline is not None
                else ("", "same")
            )
            section.run_rows.append(_row(qid, candidate, move, judged, model_scores))
        for candidate in theirs[:top]:
            move = _leaves(candidate.first_stage_rank, our_ranks.get(candidate.docid), top, "the run")
            section.baseline_rows.append(_row(qid, candidate, move, judged, model_scores))
        sections.append(section)
    return sections


def _row(
    qid: str,
    candidate: Candidate,
    move: tuple[str, str],
    judged: Mapping[str, int],
    model_scores: Mapping[Pair, float] | None,
) -> Row:
    delta = (model_scores or {}).get((qid, candidate.docid))
    return Row(
        rank=candidate.first_stage_rank,
        docid=candidate.docid,
        score=candidate.score,
        move=move[0],
        move_kind=move[1],
        judgment=judged.get(candidate.docid),
        logit_delta=delta,
        p_yes=p_yes_of(delta) if delta is not None else None,
    )


def select_queries(
    run: Run,
    baseline: Run | None,
    deltas: Mapping[str, float],
    *,
    qids: Sequence[str] | None,
    limit: int | None,
) -> list[str]:
    """The queries the report shows: `qids` as asked (each must be in the run or the baseline), else every query
    of either run; `limit` keeps the N with the largest change, half gains and half losses (by |delta| where one
    side has fewer), or the first N by qid without measures."""
    everything = sorted(set(run) | set(baseline or {}))
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
