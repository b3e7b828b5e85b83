"""The final ranking: written runs, read back by ir-measures under trec_eval's order (score desc, docid desc),
must give exactly the intended order (reranked head, unscored tail, below-depth tail), each pair once."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Collection, Mapping
from pathlib import Path

import ir_measures
import pytest

from rankvideo_cli.errors import UsageError
from rankvideo_cli.evaluation.ranking import BELOW_DEPTH, RERANKED, UNSCORED, rerank
from rankvideo_cli.io.runs import Candidate, Run, format_trec_lines, read_run

Pair = tuple[str, str]


def make_run(tmp_path: Path, rows: Mapping[str, Mapping[str, float]]) -> Run:
    """A run read from a TREC file, so candidates come in the reader's first-stage order."""
    lines = [f"{qid} Q0 {docid} 0 {score!r} fs\n" for qid, docs in rows.items() for docid, score in docs.items()]
    path = tmp_path / "first_stage.trec"
    path.write_text("".join(lines))
    return read_run(path)


def written_order(tmp_path: Path, ranked: dict, name: str = "reranked.trec") -> dict[str, list[str]]:
    """Write with format_trec_lines, read with ir-measures, order as trec_eval does: score desc, docid desc."""
    path = tmp_path / name
    path.write_text(format_trec_lines(ranked, "test"))
    per_query: dict[str, list[tuple[float, str]]] = {}
    for doc in ir_measures.read_trec_run(str(path)):
        per_query.setdefault(doc.query_id, []).append((doc.score, doc.doc_id))
    return {qid: [docid for _, docid in sorted(scored, reverse=True)] for qid, scored in per_query.items()}


# --------------------------------------------------------------------------------------------------
# A hand-built example: every kind of tie and tail
# --------------------------------------------------------------------------------------------------

FIRST_STAGE = {
    "q1": {
        "d1": 0.9,
        "d2": 0.8,  # ties with d3 in the first stage: d3 comes first (docid descending)
        "d3": 0.8,
        "d4": 0.7,
        "d5": 0.6,  # no model score: missing video
        "d6": 0.5,
        "d7": 0.4,  # below depth 6, ties with d8
        "d8": 0.4,
    },
    "q2": {"a": 3.0, "b": 2.0, "c": 1.0},  # nothing scored
    "q3": {"x": 0.3, "y": 0.2, "z": 0.1},
}
MODEL_SCORES: dict[Pair, float] = {
    ("q1", "d1"): -2.0,
    ("q1", "d2"): 1.5,  # ties with d3 in the model
    ("q1", "d3"): 1.5,
    ("q1", "d4"): 0.123456789012345,  # differ only in the 15th significant digit
    ("q1", "d6"): 0.123456789012346,
    ("q1", "d7"): 100.0,  # below depth: ignored
    ("q3", "x"): -7.25,  # all negative, with a tie
    ("q3", "y"): -7.25,
    ("q3", "z"): -0.5,
}
INTENDED = {
    "q1": ["d3", "d2", "d6", "d4", "d1", "d5", "d8", "d7"],
    "q2": ["a", "b", "c"],
    "q3": ["z", "y", "x"],
}


def test_hand_built_example_reads_back_in_the_intended_order(tmp_path: Path) -> None:
    run = make_run(tmp_path, FIRST_STAGE)
    assert [c.docid for c in run["q1"]] == ["d1", "d3", "d2", "d4", "d5", "d6", "d8", "d7"]
    ranked = rerank(run, MODEL_SCORES, depth=6)
    assert {qid: [doc.docid for doc in docs] for qid, docs in ranked.items()} == INTENDED
    assert written_order(tmp_path, ranked) == INTENDED
    q1 = {doc.docid: doc for doc in ranked["q1"]}
    assert [q1[d].provenance for d in INTENDED["q1"]] == [RERANKED] * 5 + [UNSCORED] + [BELOW_DEPTH] * 2
    assert q1["d6"].score == 0.123456789012346 and q1["d1"].score == -2.0  # model scores written unchanged
    assert [q1[d].first_stage_rank for d in INTENDED["q1"]] == [2, 3, 6, 4, 1, 5, 7, 8]
    assert [doc.rank for doc in ranked["q1"]] == list(range(1, 9))
    assert all(doc.provenance == UNSCORED for doc in ranked["q2"])


def test_tail_scores_are_strictly_below_the_head_and_decreasing(tmp_path: Path) -> None:
    ranked = rerank(make_run(tmp_path, FIRST_STAGE), MODEL_SCORES, depth=6)
    scores = [doc.score for doc in ranked["q1"]]
    head_minimum = min(doc.score for doc in ranked["q1"] if doc.provenance == RERANKED)
    tail = scores[5:]
    assert all(score < head_minimum for score in tail)
    assert all(later < earlier for earlier, later in itertools.pairwise(tail))


def test_drop_removes_exactly_the_dropped_pairs(tmp_path: Path) -> None:
    dropped = {("q1", "d5"), ("q1", "d3"), ("q1", "d7"), ("q2", "b"), ("q9", "nothing")}
    ranked = rerank(make_run(tmp_path, FIRST_STAGE), MODEL_SCORES, depth=6, drop=dropped)
    expected = {qid: [d for d in docs if (qid, d) not in dropped] for qid, docs in INTENDED.items()}
    assert written_order(tmp_path, ranked) == expected


def test_scores_far_from_zero_still_leave_room_for_the_tail(tmp_path: Path) -> None:
    # beyond 2**53 a step of 1 is lost to rounding: the tail must still sort strictly below the head
    run = make_run(tmp_path, {"q1": {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.5}})
    ranked = rerank(run, {("q1", "a"): -1e17, ("q1", "b"): -1e17}, depth=3)
    assert written_order(tmp_path, ranked) == {"q1": ["b", "a", "c", "d"]}


def test_non_finite_model_scores_count_as_unscored(tmp_path: Path) -> None:
    run = make_run(tmp_path, {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}})
    ranked = rerank(run, {("q1", "a"): math.nan, ("q1", "b"): -math.inf, ("q1", "c"): 0.0})
    assert [(doc.docid, doc.provenance) for doc in ranked["q1"]] == [("c", RERANKED), ("a", UNSCORED), ("b", UNSCORED)]
    assert written_order(tmp_path, ranked) == {"q1": ["c", "a", "b"]}


@pytest.mark.parametrize(
    ("options", "word"),
    [
        ({"depth": 0}, "depth"),
        ({"interpolate": 1.5}, "interpolate"),
        ({"interpolate": -0.1}, "interpolate"),
        ({"interpolate": 0.5, "normalization": "softmax"}, "normalization"),
    ],
)
def test_invalid_options_are_usage_errors(tmp_path: Path, options: dict, word: str) -> None:
    with pytest.raises(UsageError, match=word):
        rerank(make_run(tmp_path, FIRST_STAGE), MODEL_SCORES, **options)


# --------------------------------------------------------------------------------------------------
# Interpolation, checked against formulas written out here
# --------------------------------------------------------------------------------------------------


def minmax(values: list[float]) -> list[float]:
    low, high = min(values), max(values)
    return [0.0] * len(values) if high == low else [(v - low) / (high - low) for v in values]


def zscore(values: list[float]) -> list[float]:
    mean, deviation = statistics.fmean(values), statistics.pstdev(values)
    return [0.0] * len(values) if deviation == 0 else [(v - mean) / deviation for v in values]


def identity(values: list[float]) -> list[float]:
    return list(values)


INTERPOLATION_RUN = {"q1": {"a": 0.1, "b": 0.9, "c": 0.5, "d": 0.45, "e": 0.2, "f": 0.05}}
INTERPOLATION_MODEL = {("q1", "a"): 2.0, ("q1", "b"): 0.0, ("q1", "c"): 1.0, ("q1", "d"): 5.0, ("q1", "e"): 1.0}


@pytest.mark.parametrize(("normalization", "normalize"), [("minmax", minmax), ("zscore", zscore), ("none", identity)])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_interpolation(tmp_path: Path, normalization: str, normalize, alpha: float) -> None:
    run = make_run(tmp_path, INTERPOLATION_RUN)
    # depth 5: f (lowest first-stage score) is below depth; the head is a..e
    ranked = rerank(run, INTERPOLATION_MODEL, depth=5, interpolate=alpha, normalization=normalization)
    head = ["a", "b", "c", "d", "e"]
    model = normalize([INTERPOLATION_MODEL["q1", d] for d in head])
    stage = normalize([INTERPOLATION_RUN["q1"][d] for d in head])
    expected = {d: alpha * m + (1 - alpha) * s for d, m, s in zip(head, model, stage, strict=True)}
    got = {doc.docid: doc.score for doc in ranked["q1"] if doc.provenance == RERANKED}
    assert got.keys() == expected.keys()
    for docid, score in expected.items():
        assert got[docid] == pytest.approx(score, rel=1e-12, abs=1e-12)
    intended = [*sorted(head, key=lambda d: (got[d], d), reverse=True), "f"]
    assert [doc.docid for doc in ranked["q1"]] == intended
    assert written_order(tmp_path, ranked) == {"q1": intended}


def test_interpolation_with_a_single_scored_candidate(tmp_path: Path) -> None:
    run = make_run(tmp_path, {"q1": {"a": 1.0, "b": 0.5}})
    for normalization in ("minmax", "zscore", "none"):
        ranked = rerank(run, {("q1", "b"): 3.0}, interpolate=0.5, normalization=normalization)
        assert written_order(tmp_path, ranked) == {"q1": ["b", "a"]}


# --------------------------------------------------------------------------------------------------
# Random runs against an independent oracle
# --------------------------------------------------------------------------------------------------


def oracle(
    rows: Mapping[str, Mapping[str, float]],
    model: Mapping[Pair, float],
    depth: int,
    drop: Collection[Pair],
) -> dict[str, list[str]]:
    intended = {}
    for qid, docs in rows.items():
        first_stage = [d for _, d in sorted(((s, d) for d, s in docs.items()), reverse=True)]
        within = first_stage[:depth]
        head = [d for d in within if (qid, d) in model and (qid, d) not in drop]
        head.sort(key=lambda d: (model[qid, d], d), reverse=True)
        unscored = [d for d in within if d not in head and (qid, d) not in drop]
        below = [d for d in first_stage[depth:] if (qid, d) not in drop]
        intended[qid] = head + unscored + below
    return intended


@pytest.mark.parametrize("seed", range(12))
def test_random_runs_match_the_oracle(tmp_path: Path, seed: int) -> None:
    generator = random.Random(seed)
    # few distinct values, so ties are everywhere; some scores differ only in the last bits
    near = 0.1 + 0.2
    first_values = [1.0, 0.5, 0.5, -0.25, 2.0, near, 0.3, 0.0]
    model_values = [1.0, -1.0, 0.0, 3.5, -3.5, near, 0.3, math.nextafter(0.3, 1.0), -1e-9]
    rows: dict[str, dict[str, float]] = {}
    model: dict[Pair, float] = {}
    drop: set[Pair] = set()
    for q in range(generator.randint(1, 4)):
        qid = f"q{q}{generator.choice(['', 'b', '0'])}"
        docids = generator.sample([f"v{n:03d}" for n in range(40)] + ["V1", "v1", "a", "zz"], generator.randint(1, 25))
        rows[qid] = {docid: generator.choice(first_values) for docid in docids}
        for docid in docids:
            if generator.random() < 0.7:
                model[qid, docid] = generator.choice(model_values)
            if generator.random() < 0.1:
                drop.add((qid, docid))
    depth = generator.randint(1, 30)
    ranked = rerank(make_run(tmp_path, rows), model, depth=depth, drop=drop)
    intended = oracle(rows, model, depth, drop)
    written = written_order(tmp_path, ranked)
    assert written == {qid: docs for qid, docs in intended.items() if docs}
    pairs = [(qid, doc.docid) for qid, docs in ranked.items() for doc in docs]
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == {(qid, d) for qid, docs in rows.items() for d in docs} - drop


def test_rerank_accepts_candidates_not_from_a_file() -> None:
    run = {"q1": [Candidate("b", 2.0, 1), Candidate("a", 1.0, 2)]}
    ranked = rerank(run, {("q1", "a"): 1.0, ("q1", "b"): 0.0})
    assert [(doc.docid, doc.score) for doc in ranked["q1"]] == [("a", 1.0), ("b", 0.0)]
