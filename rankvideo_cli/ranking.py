"""From model scores to the final ranking: depth, interpolation, the unscored tail, tie-consistent scores.

The intended order of a query is:
1. its top-`depth` candidates that have a model score, by final score descending, ties by docid descending;
2. its top-`depth` candidates without a model score (missing or bad video, kept), in first-stage order;
3. its candidates below `depth`, in first-stage order.

Written scores reproduce that order under trec_eval's rule (score descending, ties by docid descending):
reranked candidates keep their final score (printed round-trip exact, so distinct floats stay distinct, and
equal ones tie-break by docid exactly as in step 1); every tail candidate gets a synthetic score strictly
below the lowest reranked score and strictly decreasing: `floor(min) - 1`, `floor(min) - 2`, ...
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from rankvideo_cli.errors import UsageError
from rankvideo_cli.io.runs import Candidate

RERANKED = "reranked"
UNSCORED = "unscored"  # within depth, but the model gave no score (missing or bad video)
BELOW_DEPTH = "below_depth"

Pair = tuple[str, str]


def _minmax(values: Sequence[float]) -> list[float]:
    low, high = min(values), max(values)
    if high == low:
        return [0.0 for _ in values]
    return [(value - low) / (high - low) for value in values]


def _zscore(values: Sequence[float]) -> list[float]:
    if len(values) < 2:
        return [0.0 for _ in values]
    mean, deviation = statistics.fmean(values), statistics.pstdev(values)
    if deviation == 0:
        return [0.0 for _ in values]
    return [(value - mean) / deviation for value in values]


NORMALIZATIONS: dict[str, Callable[[Sequence[float]], list[float]]] = {
    "minmax": _minmax,
    "zscore": _zscore,
    "none": lambda values: list(values),
}


@dataclass(frozen=True)
class RankedDoc:
    docid: str
    score: float  # the score written to the run
    provenance: str  # RERANKED, UNSCORED or BELOW_DEPTH
    first_stage_rank: int


def rerank(
    run: Mapping[str, Sequence[Candidate]],
    model_scores: Mapping[Pair, float],
    *,
    depth: int = 100,
    interpolate: float | None = None,
    normalization: str = "minmax",
    drop: Collection[Pair] = frozenset(),
) -> dict[str, list[RankedDoc]]:
    """The final ranking of every query (see the module docstring). Pairs in `drop` are left out."""
    if depth < 1:
        raise UsageError(f"--depth must be at least 1, got {depth}")
    if normalization not in NORMALIZATIONS:
        raise UsageError(f"unknown normalization {normalization!r}; choose from {', '.join(NORMALIZATIONS)}")
    if interpolate is not None and not 0.0 <= interpolate <= 1.0:
        raise UsageError(f"--interpolate must be between 0 and 1, got {interpolate}")
    normalize = NORMALIZATIONS[normalization]
    ranked: dict[str, list[RankedDoc]] = {}
    for qid, candidates in run.items():
        kept = [candidate for candidate in candidates if (qid, candidate.docid) not in drop]
        head = [c for c in candidates[:depth] if (qid, c.docid) in model_scores and (qid, c.docid) not in drop]
        head_ids = {c.docid for c in head}
        within_depth = {c.docid for c in candidates[:depth]}
        final = [model_scores[qid, c.docid] for c in head]
        if interpolate is not None and head:
            model_part = normalize(final)
            first_stage_part = normalize([c.score for c in head])
            final = [
                interpolate * m + (1.0 - interpolate) * f for m, f in zip(model_part, first_stage_part, strict=True)
            ]
        order = sorted(zip(head, final, strict=True), key=lambda item: (item[1], item[0].docid), reverse=True)
        docs = [RankedDoc(c.docid, score, RERANKED, c.first_stage_rank) for c, score in order]
        tail = [c for c in kept if c.docid not in head_ids]
        floor = math.floor(min(final)) if final else 0
        for offset, candidate in enumerate(tail, start=1):
            provenance = UNSCORED if candidate.docid in within_depth else BELOW_DEPTH
            docs.append(RankedDoc(candidate.docid, float(floor - offset), provenance, candidate.first_stage_rank))
        ranked[qid] = docs
    return ranked


def as_scored_lists(ranked: Mapping[str, Sequence[RankedDoc]]) -> dict[str, list[tuple[str, float]]]:
    """qid -> (docid, score) in the intended order, for `format_trec_lines`."""
    return {qid: [(doc.docid, doc.score) for doc in docs] for qid, docs in ranked.items()}
