"""Evaluation with ir-measures: aggregates, per-query values, and a paired comparison against a baseline.

Which queries count (trec_eval `-c`): every query in the qrels. A judged query absent from a run gets each
measure's default value (0) from ir-measures and counts in the mean; queries of the run without judgments are
not evaluated (as trec_eval). Both lists are in the report. Aggregates are computed with each measure's own
ir-measures aggregator, fed in ir-measures' order, so they equal `ir_measures.calc_aggregate` exactly.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ir_measures
import pandas as pd
from rich.console import Console
from rich.table import Table

from rankvideo_cli.errors import UsageError

DEFAULT_MEASURES = ["nDCG@10", "nDCG@20", "R@10", "R@100", "AP", "RR"]
RUN_COLUMNS = ["query_id", "doc_id", "score"]


def parse_measures(names: Sequence[str] | None) -> list[Any]:
    """ir-measures measure objects for `names` (default `DEFAULT_MEASURES`), duplicates removed, order kept.

    Accepts ir-measures names (`nDCG@10`, `AP`, `MAP`, `P(rel=2)@5`) and trec_eval names (`map`, `ndcg_cut.10`,
    `recip_rank`); anything else is a `UsageError`.
    """
    parsed: list[Any] = []
    for name in names or DEFAULT_MEASURES:
        try:
            measures = [ir_measures.parse_measure(name)]
        except (ValueError, NameError, SyntaxError, TypeError) as error:
            try:
                measures = list(ir_measures.parse_trec_measure(name))
            except (ValueError, NameError, SyntaxError, TypeError, KeyError):
                raise UsageError(f"unknown measure {name!r} ({error}); e.g. nDCG@10, R@100, AP, RR") from None
        parsed += [measure for measure in measures if measure not in parsed]
    return parsed


def run_frame(ranked: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """A run as the DataFrame ir-measures reads (query_id, doc_id, score), from qid -> (docid, score) tuples or
    objects with `.docid` and `.score` (`Candidate`, `RankedDoc`)."""
    rows = [
        (qid, *(doc if isinstance(doc, tuple) else (doc.docid, doc.score)))
        for qid, docs in ranked.items()
        for doc in docs
    ]
    return pd.DataFrame(rows, columns=RUN_COLUMNS).astype(
        {"query_id": "object", "doc_id": "object", "score": "float64"}
    )


def _as_run_frame(run: pd.DataFrame | Mapping[str, Sequence[Any]] | str | Path) -> pd.DataFrame:
    if isinstance(run, pd.DataFrame):
        return run
    if isinstance(run, (str, Path)):
        from rankvideo_cli.io.runs import read_run

        return run_frame(read_run(run))
    return run_frame(run)


@dataclass
class RunEvaluation:
    name: str
    per_query: pd.DataFrame  # index query_id (every judged query, sorted), one column per measure name
    aggregate: dict[str, float]  # measure name -> value, exactly as ir_measures.calc_aggregate
    missing_queries: list[str]  # judged, absent from the run: counted with the measure's default (0)
    unjudged_queries: list[str]  # in the run, absent from the qrels: not evaluated


@dataclass
class Comparison:
    measure: str
    delta: float  # run aggregate - baseline aggregate
    wins: int  # judged queries where the run is better
    ties: int
    losses: int
    p_value: float  # two-sided paired t-test over the judged queries; nan when undefined (no variation, < 2)


@dataclass
class EvalReport:
    measures: list[str]
    runs: list[RunEvaluation]  # the evaluated run first, then the baseline if any
    comparisons: list[Comparison] = field(default_factory=list)


def evaluate_run(name: str, run: pd.DataFrame, qrels: pd.DataFrame, measures: Sequence[Any]) -> RunEvaluation:
    """Per-query values and aggregates of one run (see the module docstring for which queries count)."""
    names = [str(measure) for measure in measures]
    judged = sorted(set(qrels["query_id"].astype(str)))
    run_qids = set(run["query_id"].astype(str))
    aggregators = {measure: measure.aggregator() for measure in measures}
    values: dict[str, dict[str, float]] = {qid: {} for qid in judged}
    for metric in ir_measures.iter_calc(list(measures), qrels, run):
        aggregators[metric.measure].add(metric.value)
        values.setdefault(metric.query_id, {})[str(metric.measure)] = float(metric.value)
    per_query = pd.DataFrame.from_dict(values, orient="index", columns=names).sort_index()
    per_query.index.name = "query_id"
    return RunEvaluation(
        name=name,
        per_query=per_query,
        aggregate={str(measure): float(aggregator.result()) for measure, aggregator in aggregators.items()},
        missing_queries=[qid for qid in judged if qid not in run_qids],
        unjudged_queries=sorted(run_qids - set(judged)),
    )


def paired_t_test(ours: Sequence[float], theirs: Sequence[float]) -> float:
    """Two-sided p-value of scipy's paired t-test; nan when it is undefined (fewer than 2 pairs, or every
    difference equal, where the statistic divides by a zero deviation)."""
    differences = [a - b for a, b in zip(ours, theirs, strict=True)]
    if len(differences) < 2 or all(difference == differences[0] for difference in differences):
        return math.nan
    from scipy import stats  # a second of import time: only when comparing

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_rel(ours, theirs).pvalue)


def compare(run: RunEvaluation, baseline: RunEvaluation, measure: str) -> Comparison:
    ours, theirs = run.per_query[measure], baseline.per_query[measure].reindex(run.per_query.index)
    differences = ours - theirs
    return Comparison(
        measure=measure,
        delta=run.aggregate[measure] - baseline.aggregate[measure],
        wins=int((differences > 0).sum()),
        ties=int((differences == 0).sum()),
        losses=int((differences < 0).sum()),
        p_value=paired_t_test(list(ours), list(theirs)),
    )


def evaluate(
    run: pd.DataFrame | Mapping[str, Sequence[Any]] | str | Path,
    qrels: pd.DataFrame,
    measure_names: Sequence[str] | None = None,
    *,
    baseline: pd.DataFrame | Mapping[str, Sequence[Any]] | str | Path | None = None,
    run_name: str = "run",
    baseline_name: str = "baseline",
) -> EvalReport:
    """Evaluate `run` (a DataFrame query_id/doc_id/score, a qid -> docs mapping, or a run file) against `qrels`
    (`io.qrels.read_qrels`), and compare with `baseline` when given. Unknown measures are a `UsageError`."""
    measures = parse_measures(measure_names)
    names = [str(measure) for measure in measures]
    report = EvalReport(measures=names, runs=[evaluate_run(run_name, _as_run_frame(run), qrels, measures)])
    if baseline is not None:
        report.runs.append(evaluate_run(baseline_name, _as_run_frame(baseline), qrels, measures))
        report.comparisons = [compare(report.runs[0], report.runs[1], name) for name in names]
    return report


# ---------------------------------------------------------------------------------------------------------
# Output formats: one small function each, chosen from a registry ("table" is `render_table`).
# ---------------------------------------------------------------------------------------------------------


def report_frame(report: EvalReport, *, per_query: bool = False) -> pd.DataFrame:
    """Long table: run, query_id ('all' for the aggregate), measure, value; with a baseline the evaluated run's
    'all' rows also carry delta, wins, ties, losses and p_value."""
    rows = []
    for evaluation in report.runs:
        if per_query:
            rows += [
                {"run": evaluation.name, "query_id": qid, "measure": measure, "value": values[measure]}
                for qid, values in evaluation.per_query.iterrows()
                for measure in report.measures
            ]
        rows += [
            {"run": evaluation.name, "query_id": "all", "measure": measure, "value": evaluation.aggregate[measure]}
            for measure in report.measures
        ]
    for comparison in report.comparisons:
        for row in rows:
            if row["run"] == report.runs[0].name and row["query_id"] == "all" and row["measure"] == comparison.measure:
                row.update(
                    delta=comparison.delta,
                    wins=comparison.wins,
                    ties=comparison.ties,
                    losses=comparison.losses,
                    p_value=comparison.p_value,
                )
    columns = ["run", "query_id", "measure", "value"]
    if report.comparisons:
        columns += ["delta", "wins", "ties", "losses", "p_value"]
    frame = pd.DataFrame(rows, columns=columns)
    if report.comparisons:
        frame = frame.astype({"wins": "Int64", "ties": "Int64", "losses": "Int64"})
    return frame


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(item) for item in value]
    return value


def report_dict(report: EvalReport, *, per_query: bool = False) -> dict[str, Any]:
    """The report as plain JSON-able data (nan p-values become None)."""
    payload = {
        "measures": report.measures,
        "runs": [
            {
                "name": evaluation.name,
                "aggregate": evaluation.aggregate,
                "judged_queries": len(evaluation.per_query),
                "missing_queries_counted_as_zero": evaluation.missing_queries,
                "unjudged_queries_ignored": evaluation.unjudged_queries,
                **(
                    {"per_query": {str(qid): values for qid, values in evaluation.per_query.to_dict("index").items()}}
                    if per_query
                    else {}
                ),
            }
            for evaluation in report.runs
        ],
        "comparison": [comparison.__dict__ for comparison in report.comparisons] or None,
    }
    return _finite_or_none(payload)


def _as_json(report: EvalReport, per_query: bool) -> str:
    return json.dumps(report_dict(report, per_query=per_query), indent=2, allow_nan=False) + "\n"


def _as_tsv(report: EvalReport, per_query: bool) -> str:
    return report_frame(report, per_query=per_query).to_csv(sep="\t", index=False, lineterminator="\n")


def _as_csv(report: EvalReport, per_query: bool) -> str:
    return report_frame(report, per_query=per_query).to_csv(index=False, lineterminator="\n")


FORMATTERS: dict[str, Callable[[EvalReport, bool], str]] = {
    "tsv": _as_tsv,
    "csv": _as_csv,
    "json": _as_json,
}


def format_report(report: EvalReport, fmt: str, *, per_query: bool = False) -> str:
    """The report as text in `fmt` (tsv, csv, json); "table" is `render_table`."""
    if fmt not in FORMATTERS:
        raise UsageError(f"unknown format {fmt!r}; choose from table, {', '.join(FORMATTERS)}")
    return FORMATTERS[fmt](report, per_query)


def _p(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3g}"


def render_table(report: EvalReport, console: Console, *, per_query: bool = False) -> None:
    """A rich table of the aggregates (and per-query rows); with a baseline: delta, W/T/L and p-value."""
    ours = report.runs[0]
    table = Table(title=f"{ours.name}: {len(ours.per_query)} judged queries", title_justify="left")
    table.add_column("measure")
    for evaluation in report.runs:
        table.add_column(evaluation.name, justify="right")
    if report.comparisons:
        for column in ("delta", "W/T/L", "p (paired t)"):
            table.add_column(column, justify="right")
    comparisons = {comparison.measure: comparison for comparison in report.comparisons}
    for measure in report.measures:
        cells = [f"{evaluation.aggregate[measure]:.4f}" for evaluation in report.runs]
        if measure in comparisons:
            comparison = comparisons[measure]
            cells += [
                f"{comparison.delta:+.4f}",
                f"{comparison.wins}/{comparison.ties}/{comparison.losses}",
                _p(comparison.p_value),
            ]
        table.add_row(measure, *cells)
    console.print(table)
    if per_query:
        for evaluation in report.runs:
            detail = Table(title=f"{evaluation.name}: per query", title_justify="left")
            detail.add_column("query_id")
            for measure in report.measures:
                detail.add_column(measure, justify="right")
            for qid, values in evaluation.per_query.iterrows():
                detail.add_row(str(qid), *(f"{values[measure]:.4f}" for measure in report.measures))
            console.print(detail)
    for evaluation in report.runs:
        if evaluation.missing_queries:
            console.print(
                f"{evaluation.name}: {len(evaluation.missing_queries)} judged queries missing from the run, "
                "counted as zero",
                markup=False,
            )
        if evaluation.unjudged_queries:
            console.print(
                f"{evaluation.name}: {len(evaluation.unjudged_queries)} run queries have no judgments (ignored)",
                markup=False,
            )
