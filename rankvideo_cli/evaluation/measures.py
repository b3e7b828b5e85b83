"""Evaluation with ir-measures: aggregates, per-query values, and paired comparisons of runs with a baseline.

Which queries count (trec_eval `-c`): every query in the qrels. A judged query absent from a run gets each
measure's value on an empty ranking: 0, except trec_eval's counts, `num_q` (1) and `num_rel` (the query's
relevant judgments), which ir-measures leaves at 0 for a query it never saw. Queries of a run without judgments
are not evaluated (as trec_eval). Both lists are in the report. Aggregates are computed with each measure's own
ir-measures aggregator, fed in ir-measures' order, so they equal `ir_measures.calc_aggregate` exactly wherever
ir-measures and trec_eval `-c` agree.

Runs and qrels go to ir-measures as dicts of dicts (its native shape, and the readers'), never through a
DataFrame of millions of rows; pandas is not imported unless a caller asks for a DataFrame (`per_query`) or
gives one, and the paired t-test is `student_t`'s, not scipy.stats' (`eval` starts in a fraction of a second).

Measures are labelled with the name the user asked for (`num_rel_ret`, not `NumRet(rel=1)`); a trec_eval name
that stands for several measures (`P.5,10`, `iprec_at_recall`) gives each the name trec_eval prints (`P_5`,
`iprec_at_recall_0.10`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import ir_measures

from rankvideo_cli.errors import UsageError
from rankvideo_cli.evaluation.student_t import paired_t_p_value

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_MEASURES = ["nDCG@10", "nDCG@20", "R@10", "R@100", "AP", "RR"]
CORRECTIONS = ("holm", "bonferroni", "none")
COUNT_MEASURES = ("NumQ", "NumRel", "NumRet")  # summed, not averaged: shown as integers
_PARSE_ERRORS = (ValueError, NameError, SyntaxError, TypeError, KeyError, AttributeError)


@dataclass(frozen=True)
class MeasureSpec:
    """An ir-measures measure and the name it is shown under."""

    label: str
    measure: Any


def _trec_label(base: str, measure: Any, varying: str) -> str:
    value = measure.params[varying]
    if (isinstance(value, float) and not value.is_integer()) or varying == "recall":
        return f"{base}_{value:.2f}"
    return f"{base}_{int(value) if isinstance(value, float) else value}"


def parse_measure_specs(names: Sequence[str] | None) -> list[MeasureSpec]:
    """Measures for `names` (default `DEFAULT_MEASURES`) with their labels; a measure asked for twice (under
    any name) is kept once, under its first name. Accepts ir-measures names (`nDCG@10`, `AP`, `P(rel=2)@5`) and
    trec_eval names (`map`, `ndcg_cut.10`, `num_rel_ret`, `P.5,10`); anything else is a `UsageError`."""
    specs: list[MeasureSpec] = []
    seen: set[Any] = set()
    for name in names or DEFAULT_MEASURES:
        try:
            expanded = [(name, ir_measures.parse_measure(name))]
        except _PARSE_ERRORS as error:
            try:
                measures = list(ir_measures.parse_trec_measure(name))
            except _PARSE_ERRORS:
                raise UsageError(f"unknown measure {name!r} ({error}); e.g. nDCG@10, R@100, AP, RR") from None
            if not measures:
                raise UsageError(f"unknown measure {name!r}; e.g. nDCG@10, R@100, AP, RR") from None
            if len(measures) == 1:
                expanded = [(name, measures[0])]
            else:
                base = name.split(".", 1)[0]
                varying = next(
                    (key for key in measures[0].params if len({str(m.params.get(key)) for m in measures}) > 1),
                    None,
                )
                expanded = [
                    (_trec_label(base, measure, varying) if varying else str(measure), measure) for measure in measures
                ]
        for label, measure in expanded:
            if measure not in seen:
                seen.add(measure)
                specs.append(MeasureSpec(label, measure))
    return specs


def check_measures(names: Sequence[str] | None) -> None:
    """Fail now (`UsageError`) on a measure that is unknown or that no installed backend computes, by evaluating
    a one-document run: `rerank --qrels` checks this before hours of scoring, not after."""
    specs = parse_measure_specs(names)
    for _ in _iter_calc([spec.measure for spec in specs], {"q": {"d": 1}}, {"q": {"d": 1.0}}):
        pass


RunScoresLike: TypeAlias = Mapping[str, Mapping[str, float]]
QrelsLike: TypeAlias = Mapping[str, Mapping[str, int]]
# a run as `evaluate` takes it: a DataFrame (query_id, doc_id, score), a run file, qid -> {docid: score}, or qid ->
# sequences of (docid, score) tuples or `.docid`/`.score` objects
RunLike: TypeAlias = "pd.DataFrame | Mapping[str, Any] | str | Path"


def is_data_frame(value: object) -> bool:
    """Whether `value` is a pandas DataFrame, without importing pandas (there is none unless it was imported)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def as_run_scores(run: RunLike) -> RunScoresLike:
    """qid -> {docid: score} from a DataFrame (query_id, doc_id, score), a run file, a qid -> {docid: score}
    mapping (returned as it is), or qid -> sequences of (docid, score) tuples or `.docid`/`.score` objects."""
    if isinstance(run, (str, Path)):
        from rankvideo_cli.io.runs import read_run_scores

        return read_run_scores(run)
    if is_data_frame(run):
        assert not isinstance(run, (Mapping, str, Path))  # for mypy: a DataFrame
        scores: dict[str, dict[str, float]] = {}
        for qid, docid, score in zip(run["query_id"], run["doc_id"], run["score"], strict=True):
            scores.setdefault(str(qid), {})[str(docid)] = float(score)
        return scores
    converted: dict[str, Mapping[str, float]] = {}
    for qid, docs in run.items():
        if isinstance(docs, Mapping):
            converted[qid] = docs
        else:
            converted[qid] = {
                doc[0] if isinstance(doc, tuple) else doc.docid: float(doc[1] if isinstance(doc, tuple) else doc.score)
                for doc in docs
            }
    return converted


def as_qrels_dict(qrels: pd.DataFrame | QrelsLike) -> QrelsLike:
    """qid -> {docid: relevance} from `io.qrels.read_qrels`'s DataFrame (or such a mapping, returned as is)."""
    if not is_data_frame(qrels):
        assert isinstance(qrels, Mapping)  # for mypy: not a DataFrame
        return qrels
    judged: dict[str, dict[str, int]] = {}
    for qid, docid, relevance in zip(qrels["query_id"], qrels["doc_id"], qrels["relevance"], strict=True):
        judged.setdefault(str(qid), {})[str(docid)] = int(relevance)
    return judged


@dataclass
class RunEvaluation:
    name: str
    values: dict[str, dict[str, float]]  # query_id (every judged query, sorted) -> measure label -> value
    aggregate: dict[str, float]  # measure label -> value (see the module docstring)
    missing_queries: list[str]  # judged, absent from the run: counted as an empty ranking (0)
    unjudged_queries: list[str]  # in the run, absent from the qrels: not evaluated

    @cached_property
    def per_query(self) -> pd.DataFrame:
        """`values` as a DataFrame: index query_id, one column per measure label (pandas imports here)."""
        import pandas as pd

        labels = list(self.aggregate)  # the measure labels, in the report's order
        frame = pd.DataFrame.from_dict(self.values, orient="index", columns=labels)
        frame.index.name = "query_id"
        return frame


@dataclass
class Comparison:
    measure: str
    delta: float  # run aggregate - baseline aggregate
    wins: int  # judged queries where the run is better
    ties: int
    losses: int
    p_value: float  # two-sided paired t-test over the judged queries; nan when undefined (no variation, < 2)
    run: str = ""  # the compared run's name
    p_value_corrected: float = math.nan  # after the report's multiple-testing correction (nan where p is nan)


@dataclass
class EvalReport:
    measures: list[str]
    runs: list[RunEvaluation]  # the evaluated runs in the order given, then the baseline if any
    comparisons: list[Comparison] = field(default_factory=list)  # per compared run, per measure
    correction: str = "holm"  # how p_value_corrected was made: holm, bonferroni or none (per measure, over runs)
    counts: set[str] = field(default_factory=set)  # labels of trec_eval's count measures (num_q, num_rel...)

    @property
    def baseline(self) -> RunEvaluation | None:
        return self.runs[-1] if self.comparisons else None


def _empty_ranking_value(measure: Any, qrels: QrelsLike, qid: str) -> float:
    """A measure's value for a judged query with no ranking, as trec_eval -c counts it."""
    name = getattr(measure, "NAME", "")
    if name == "NumQ":
        return 1.0
    if name == "NumRel":
        threshold = measure.params.get("rel") or 1
        judged = qrels.get(qid, {})
        return float(sum(1 for relevance in judged.values() if relevance >= threshold))
    return 0.0


def _iter_calc(measures: list[Any], qrels: QrelsLike, run: RunScoresLike) -> Iterator[ir_measures.Metric]:
    try:
        yield from ir_measures.iter_calc(measures, qrels, run)
    except ValueError as error:
        if "Unsupported measure" not in str(error):
            raise
        names = str(error).split(".", 1)[0].removeprefix("Unsupported measures ")
        raise UsageError(f"no installed ir-measures backend computes {names}") from None


def evaluate_run(
    name: str,
    run: RunScoresLike,
    qrels: QrelsLike,
    specs: Sequence[MeasureSpec],
) -> RunEvaluation:
    """Per-query values and aggregates of one run (see the module docstring for which queries count)."""
    labels = [spec.label for spec in specs]
    label_of = {spec.measure: spec.label for spec in specs}
    judged = sorted(qrels)
    run_qids = {qid for qid, docs in run.items() if docs}
    missing = [qid for qid in judged if qid not in run_qids]
    aggregators = {spec.measure: spec.measure.aggregator() for spec in specs}
    values: dict[str, dict[str, float]] = {qid: {} for qid in judged}
    measures = [spec.measure for spec in specs]
    missing_set = set(missing)
    for metric in _iter_calc(measures, qrels, run):
        value = float(metric.value)
        if metric.query_id in missing_set:
            value = _empty_ranking_value(metric.measure, qrels, metric.query_id)
        aggregators[metric.measure].add(value)
        values.setdefault(metric.query_id, {})[label_of[metric.measure]] = value
    for qid in judged:  # a (query, measure) ir-measures did not report counts as an empty ranking too
        for spec in specs:
            if spec.label not in values[qid]:
                value = _empty_ranking_value(spec.measure, qrels, qid)
                aggregators[spec.measure].add(value)
                values[qid][spec.label] = value
    return RunEvaluation(
        name=name,
        values={qid: {label: values[qid][label] for label in labels} for qid in sorted(values)},
        aggregate={spec.label: float(aggregators[spec.measure].result()) for spec in specs},
        missing_queries=missing,
        unjudged_queries=sorted(run_qids - set(judged)),
    )


def paired_t_test(ours: Sequence[float], theirs: Sequence[float]) -> float:
    """Two-sided p-value of scipy's paired t-test (`scipy.stats.ttest_rel`, computed by `student_t`); nan when
    it is undefined (fewer than 2 pairs, every difference equal, where the statistic divides by a zero
    deviation, or a nan value)."""
    return paired_t_p_value(ours, theirs)


def correct_p_values(p_values: Sequence[float], method: str) -> list[float]:
    """Adjusted p-values for one family of tests: Holm's step-down (default), Bonferroni, or none. nan p-values
    (undefined tests) are outside the family and stay nan. Written here because neither scipy nor ir-measures
    has Holm's method (statsmodels does, but is not worth a dependency for ten lines)."""
    if method not in CORRECTIONS:
        raise UsageError(f"unknown correction {method!r}; choose from {', '.join(CORRECTIONS)}")
    defined = [(p, index) for index, p in enumerate(p_values) if not math.isnan(p)]
    adjusted = [math.nan] * len(p_values)
    family = len(defined)
    if method == "none":
        for p, index in defined:
            adjusted[index] = p
    elif method == "bonferroni":
        for p, index in defined:
            adjusted[index] = min(1.0, p * family)
    else:
        running = 0.0
        for rank, (p, index) in enumerate(sorted(defined)):
            running = max(running, min(1.0, (family - rank) * p))
            adjusted[index] = running
    return adjusted


def compare(run: RunEvaluation, baseline: RunEvaluation, measure: str) -> Comparison:
    """The run against the baseline on one measure, over the run's judged queries (both runs have them all)."""
    ours = [values[measure] for values in run.values.values()]
    theirs = [baseline.values.get(qid, {}).get(measure, math.nan) for qid in run.values]
    differences = [a - b for a, b in zip(ours, theirs, strict=True)]
    return Comparison(
        measure=measure,
        delta=run.aggregate[measure] - baseline.aggregate[measure],
        wins=sum(difference > 0 for difference in differences),
        ties=sum(difference == 0 for difference in differences),
        losses=sum(difference < 0 for difference in differences),
        p_value=paired_t_test(ours, theirs),
        run=run.name,
    )


def evaluate_runs(
    runs: Sequence[tuple[str, RunLike]],
    qrels: pd.DataFrame | QrelsLike,
    measure_names: Sequence[str] | None = None,
    *,
    baseline: tuple[str, RunLike] | None = None,
    correction: str = "holm",
) -> EvalReport:
    """Evaluate several named runs against `qrels` and compare each with `baseline` when given: deltas, W/T/L
    and paired t-tests, the p-values of each measure corrected over the compared runs (`correction`)."""
    if correction not in CORRECTIONS:
        raise UsageError(f"unknown correction {correction!r}; choose from {', '.join(CORRECTIONS)}")
    specs = parse_measure_specs(measure_names)
    judged = as_qrels_dict(qrels)
    names = [name for name, _ in runs] + ([baseline[0]] if baseline is not None else [])
    if len(set(names)) != len(names):
        raise UsageError(f"two runs have the same name ({', '.join(names)}); name each run once")
    report = EvalReport(
        measures=[spec.label for spec in specs],
        runs=[evaluate_run(name, as_run_scores(run), judged, specs) for name, run in runs],
        correction=correction,
        counts={spec.label for spec in specs if getattr(spec.measure, "NAME", "") in COUNT_MEASURES},
    )
    if baseline is not None:
        reference = evaluate_run(baseline[0], as_run_scores(baseline[1]), judged, specs)
        compared = list(report.runs)
        report.runs.append(reference)
        for label in report.measures:
            family = [compare(evaluation, reference, label) for evaluation in compared]
            for comparison, adjusted in zip(
                family, correct_p_values([c.p_value for c in family], correction), strict=True
            ):
                comparison.p_value_corrected = adjusted
            report.comparisons += family
        # one run's comparisons in measure order, runs in the order given
        order = {evaluation.name: position for position, evaluation in enumerate(compared)}
        report.comparisons.sort(key=lambda c: (order[c.run], report.measures.index(c.measure)))
    return report


def evaluate(
    run: RunLike,
    qrels: pd.DataFrame | QrelsLike,
    measure_names: Sequence[str] | None = None,
    *,
    baseline: RunLike | None = None,
    run_name: str = "run",
    baseline_name: str = "baseline",
    correction: str = "holm",
) -> EvalReport:
    """Evaluate one `run` (a DataFrame query_id/doc_id/score, a qid -> docs mapping, or a run file) against
    `qrels` (`io.qrels.read_qrels`), and compare with `baseline` when given. Unknown measures are a
    `UsageError`."""
    return evaluate_runs(
        [(run_name, run)],
        qrels,
        measure_names,
        baseline=(baseline_name, baseline) if baseline is not None else None,
        correction=correction,
    )
