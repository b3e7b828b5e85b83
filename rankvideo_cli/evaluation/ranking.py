"""From model scores to the final ranking: depth, interpolation, the unscored tail, tie-consistent scores.

The intended order of a query, given its candidates in first-stage order (`io.runs`: score desc, docid desc):
1. the *head*: its first `depth` candidates that have a (finite) model score, by final score descending, ties
   broken by docid descending. The final score is the model score, or with `interpolate=ALPHA`
   `ALPHA * norm(model) + (1 - ALPHA) * norm(first stage)`, both normalised over the head of that query;
2. its first `depth` candidates without a model score (missing or bad video kept, or a non-finite score), in
   first-stage order;
3. its candidates below `depth`, in first-stage order.
Candidates in `drop` are left out; every other candidate appears exactly once.

Written scores reproduce that order under trec_eval's rule (score descending, ties by docid descending), so
ir-measures and trec_eval evaluate exactly the intended ranking:
- head candidates keep their final score; `io.runs.format_score` writes it round-trip exact, so distinct floats
  stay distinct and equal ones tie-break by docid exactly as in step 1;
- tail candidates (steps 2 and 3) get synthetic scores strictly below the head's minimum and strictly
  decreasing: `floor(min) - 1`, `floor(min) - 2`, ... (the next float down when a float cannot hold the step);
- a query with no head at all (nothing scored, e.g. a query skipped for lack of text) keeps its first-stage
  scores: its order is the first-stage order, which those scores already produce.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Collection, Mapping, Sequence
from itertools import repeat
from operator import itemgetter
from typing import NamedTuple

from rankvideo_cli.io.bulk import collector_paused
from rankvideo_cli.io.runs import Candidate
from rankvideo_cli.options import check_ranking

RERANKED = "reranked"
UNSCORED = "unscored"  # within depth, but no model score (missing or bad video)
BELOW_DEPTH = "below_depth"

Pair = tuple[str, str]


def _scaled(values: Sequence[float]) -> tuple[list[float], float]:
    """The values divided by a power of two that keeps their differences and sums finite (scores near the float
    range, 1e308 and -1.79e308, would overflow to inf and give NaN); exact, since the divisor is a power of two."""
    largest = max((abs(value) for value in values), default=0.0)
    scale = 2.0 ** (math.frexp(largest)[1] - 1) if largest > 2.0**1000 else 1.0
    return [value / scale for value in values], scale


def _minmax(values: Sequence[float]) -> list[float]:
    scaled, _ = _scaled(values)
    low, high = min(scaled), max(scaled)
    if high == low:
        return [0.0 for _ in values]
    return [(value - low) / (high - low) for value in scaled]


def _zscore(values: Sequence[float]) -> list[float]:
    scaled, _ = _scaled(values)
    deviation = statistics.pstdev(scaled) if len(scaled) > 1 else 0.0
    if deviation == 0:
        return [0.0 for _ in values]
    mean = statistics.fmean(scaled)
    return [(value - mean) / deviation for value in scaled]


def _identity(values: Sequence[float]) -> list[float]:
    return list(values)


# Per-query normalisations for --interpolate (a constant list normalises to zeros).
NORMALIZATIONS: dict[str, Callable[[Sequence[float]], list[float]]] = {
    "minmax": _minmax,
    "zscore": _zscore,
    "none": _identity,
}


class RankedDoc(NamedTuple):
    """One line of the final run (a named tuple: millions of them are built per run)."""

    docid: str
    score: float  # the score written to the run
    provenance: str  # RERANKED, UNSCORED or BELOW_DEPTH
    first_stage_rank: int
    rank: int = 0  # 1-based position in the final ranking
    model_score: float | None = None  # the model's score (RERANKED only)


def _tail_scores(count: int, below: float) -> list[float]:
    """`count` strictly decreasing scores, all strictly below `below`: floor(below) - 1, - 2, ..."""
    base = math.floor(below)
    if abs(base) + count < 2**53:  # every integer on the way is a float: no rounding to check
        return [float(base - offset) for offset in range(1, count + 1)]
    scores: list[float] = []
    previous = below
    for offset in range(1, count + 1):
        score = float(base - offset)
        if not score < previous:  # beyond 2**53 a step of 1 is lost to rounding
            score = math.nextafter(previous, -math.inf)
        if not math.isfinite(score):
            raise ValueError("scores too close to the float range to place the unscored tail below them")
        scores.append(score)
        previous = score
    return scores


def rerank_query(
    qid: str,
    candidates: Sequence[Candidate],
    model_scores: Mapping[Pair, float],
    *,
    depth: int = 100,
    interpolate: float | None = None,
    normalization: str = "minmax",
    drop: Collection[Pair] = frozenset(),
) -> list[RankedDoc]:
    """The final ranking of one query; `candidates` in first-stage order (see the module docstring)."""
    check_ranking(depth, interpolate, normalization)
    kept = [candidate for candidate in candidates if (qid, candidate.docid) not in drop] if drop else candidates
    within_depth = {candidate.docid for candidate in candidates[:depth]}
    head: list[Candidate] = []
    model: list[float] = []
    for candidate in candidates[:depth]:  # only the first `depth` can be reranked
        if drop and (qid, candidate.docid) in drop:
            continue
        score = model_scores.get((qid, candidate.docid))
        if score is not None and math.isfinite(score):
            head.append(candidate)
            model.append(float(score))
    final = list(model)
    if interpolate is not None and head:
        normalize = NORMALIZATIONS[normalization]
        mixed = zip(normalize(model), normalize([candidate.score for candidate in head]), strict=True)
        final = [interpolate * model_part + (1.0 - interpolate) * stage_part for model_part, stage_part in mixed]
    order = sorted(range(len(head)), key=lambda index: (final[index], head[index].docid), reverse=True)
    ranked = [
        RankedDoc(head[index].docid, final[index], RERANKED, head[index].first_stage_rank, rank, model[index])
        for rank, index in enumerate(order, start=1)
    ]
    head_ids = {candidate.docid for candidate in head}
    tail = [candidate for candidate in kept if candidate.docid not in head_ids] if head_ids else kept
    tail_scores = _tail_scores(len(tail), min(final)) if head else [candidate.score for candidate in tail]
    # the tail is in first-stage order: its candidates within depth (unscored) come before those below it
    unscored = sum(1 for candidate in tail[:depth] if candidate.docid in within_depth)
    provenances = itertools.chain(repeat(UNSCORED, unscored), repeat(BELOW_DEPTH))
    start = len(ranked) + 1
    fields = zip(
        map(itemgetter(0), tail),  # docid
        tail_scores,
        provenances,
        map(itemgetter(2), tail),  # first_stage_rank
        range(start, start + len(tail)),
        repeat(None),
    )
    ranked.extend(map(_new_tuple, repeat(RankedDoc), fields))  # built in C: most of a run is its tail
    return ranked


_new_tuple = tuple.__new__


def rerank(
    run: Mapping[str, Sequence[Candidate]],
    model_scores: Mapping[Pair, float],
    *,
    depth: int = 100,
    interpolate: float | None = None,
    normalization: str = "minmax",
    drop: Collection[Pair] = frozenset(),
) -> dict[str, list[RankedDoc]]:
    """The final ranking of every query of `run` (qid -> candidates in first-stage order), in the run's qid
    order. `model_scores` maps (qid, docid) to the model's score; pairs in `drop` are left out. See the module
    docstring for the order and the written scores. Raises `OptionError` (a `UsageError`) naming the invalid option."""
    check_ranking(depth, interpolate, normalization)
    drop = drop if isinstance(drop, (set, frozenset, dict)) else set(drop)
    with collector_paused():  # millions of RankedDoc tuples: see io.bulk
        return {
            qid: rerank_query(
                qid,
                candidates,
                model_scores,
                depth=depth,
                interpolate=interpolate,
                normalization=normalization,
                drop=drop,
            )
            for qid, candidates in run.items()
        }
