"""Evaluation with ir-measures: aggregates, per-query values, and a paired comparison against a baseline.

Queries judged in the qrels but absent from a run count as zero for every measure (trec_eval -c); run
queries without judgments are not evaluated. Both counts are reported.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import ir_measures
import pandas as pd
from rich.console import Console
from rich.table import Table
from scipy import stats

from rankvideo_cli.errors import UsageError

DEFAULT_MEASURES = ("nDCG@10", "nDCG@20", "R@10", "R@100", "AP", "RR")


def parse_measures(names: Sequence[str] | None) -> list:
    """ir-measures measure objects for the given names (default: DEFAULT_MEASURES); MAP is accepted for AP."""
    parsed = []
    for name in names or DEFAULT_MEASURES:
        try:
            parsed.append(ir_measures.parse_measure(name))
        except (ValueError, NameError, SyntaxError, TypeError) as error:
            raise UsageError(f"unknown measure {name!r}: {error}") from None
    return parsed


def run_frame(ranked: Mapping[str, Sequence[tuple[str, float]]]) -> pd.DataFrame:
    """A run as the DataFrame ir-measures reads (query_id, doc_id, score)."""
    rows = [(qid, docid, score) for qid, docs in ranked.items() for docid, score in docs]
    return pd.DataFrame(rows, columns=["query_id", "doc_id", "score"])


@dataclass
class RunEvaluation:
    name: str
    per_query: pd.DataFrame  # index: query_id (every judged query), columns: measure names
    missing_queries: list[str]  # judged, absent from the run: counted as zero
    unjudged_queries: list[str]  # in the run, absent from the qrels: not evaluated

    @property
    def aggregate(self) -> dict[str, float]:
        return {str(measure): float(self.per_query[measure].mean()) for measure in self.per_query.columns}


@dataclass
class Comparison:
    measure: str
    delta: float
    wins: int
    ties: int
    losses: int
    p_value: float  # paired t-test; nan when every per-query difference is zero


@dataclass
class EvalReport:
    measures: list[str]
    runs: list[RunEvaluation]  # the evaluated run first, then the baseline if any
    comparisons: list[Comparison] = field(default_factory=list)


def evaluate_run(name: str, run: pd.DataFrame, qrels: pd.DataFrame, measures: Sequence) -> RunEvaluation:
    judged = sorted(qrels["query_id"].astype(str).unique())
    run_qids = set(run["query_id"].astype(str))
    values: dict[str, dict[str, float]] = {qid: {} for qid in judged}
    for metric in ir_measures.iter_calc(list(measures), qrels, run):
        if metric.query_id in values:
            values[metric.query_id][str(metric.measure)] = float(metric.value)
    names = [str(measure) for measure in measures]
    per_query = pd.DataFrame.from_dict(values, orient="index", columns=names).fillna(0.0)
    per_query.index.name = "query_id"
    return RunEvaluation(
        name=name,
        per_query=per_query.sort_index(),
        missing_queries=[qid for qid in judged if qid not in run_qids],
        unjudged_queries=sorted(run_qids - set(judged)),
    )


def compare(run: RunEvaluation, baseline: RunEvaluation, measure: str) -> Comparison:
    ours, theirs = run.per_query[measure], baseline.per_query[measure]
    differences = ours - theirs
    # the t statistic is undefined when every difference is zero
    p_value = math.nan if (differences == 0).all() else float(stats.ttest_rel(ours, theirs).pvalue)
    return Comparison(
        measure=measure,
        delta=float(ours.mean() - theirs.mean()),
        wins=int((differences > 0).sum()),
        ties=int((differences == 0).sum()),
        losses=int((differences < 0).sum()),
        p_value=p_value,
    )


def evaluate(
    run: pd.DataFrame,
    qrels: pd.DataFrame,
    measure_names: Sequence[str] | None = None,
    *,
    baseline: pd.DataFrame | None = None,
    run_name: str = "run",
    baseline_name: str = "baseline",
) -> EvalReport:
    measures = parse_measures(measure_names)
    names = [str(measure) for measure in measures]
    report = EvalReport(measures=names, runs=[evaluate_run(run_name, run, qrels, measures)])
    if baseline is not None:
        report.runs.append(evaluate_run(baseline_name, baseline, qrels, measures))
        report.comparisons = [compare(report.runs[0], report.runs[1], name) for name in names]
    return report


# ---------------------------------------------------------------------------------------------------------
# Output formats: one small function each, chosen from a registry.
# ---------------------------------------------------------------------------------------------------------


def report_frame(report: EvalReport, *, per_query: bool = False) -> pd.DataFrame:
    """Long table: run, query_id ('all' for the mean), measure, value (+ delta/W/T/L/p for comparisons)."""
    rows = []
    for evaluation in report.runs:
        if per_query:
            for qid, values in evaluation.per_query.iterrows():
                rows += [
                    {"run": evaluation.name, "query_id": qid, "measure": m, "value": values[m]}
                    for m in report.measures
                ]
        rows += [
            {"run": evaluation.name, "query_id": "all", "measure": m, "value": v}
            for m, v in evaluation.aggregate.items()
        ]
    frame = pd.DataFrame(rows, columns=["run", "query_id", "measure", "value"])
    if report.comparisons:
        extra = pd.DataFrame(
            [
                {
                    "run": report.runs[0].name,
                    "query_id": "all",
                    "measure": c.measure,
                    "delta": c.delta,
                    "wins": c.wins,
                    "ties": c.ties,
                    "losses": c.losses,
                    "p_value": c.p_value,
                }
                for c in report.comparisons
            ]
        )
        frame = frame.merge(extra, on=["run", "query_id", "measure"], how="left")
    return frame


def _as_json(report: EvalReport, per_query: bool) -> str:
    payload = {
        "measures": report.measures,
        "runs": {
            evaluation.name: {
                "aggregate": evaluation.aggregate,
                "judged_queries": len(evaluation.per_query),
                "missing_queries_counted_as_zero": evaluation.missing_queries,
                "unjudged_queries_ignored": evaluation.unjudged_queries,
                **({"per_query": evaluation.per_query.to_dict(orient="index")} if per_query else {}),
            }
            for evaluation in report.runs
        },
        "comparison": [c.__dict__ for c in report.comparisons] if report.comparisons else None,
    }
    return json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n"


def _json_default(value: object) -> object:
    return None if isinstance(value, float) and math.isnan(value) else str(value)


FORMATTERS: dict[str, Callable[[EvalReport, bool], str]] = {
    "tsv": lambda report, per_query: report_frame(report, per_query=per_query).to_csv(sep="\t", index=False),
    "csv": lambda report, per_query: report_frame(report, per_query=per_query).to_csv(index=False),
    "json": _as_json,
}


def format_report(report: EvalReport, fmt: str, *, per_query: bool = False) -> str:
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
    for position, measure in enumerate(report.measures):
        cells = [f"{evaluation.aggregate[measure]:.4f}" for evaluation in report.runs]
        if report.comparisons:
            comparison = report.comparisons[position]
            cells += [
                f"{comparison.delta:+.4f}",
                f"{comparison.wins}/{comparison.ties}/{comparison.losses}",
                _p(comparison.p_value),
            ]
        table.add_row(measure, *cells)
    console.print(table)
    if per_query:
        detail = Table(title="per query", title_justify="left")
        detail.add_column("query_id")
        for measure in report.measures:
            detail.add_column(measure, justify="right")
        for qid, values in ours.per_query.iterrows():
            detail.add_row(str(qid), *(f"{values[m]:.4f}" for m in report.measures))
        console.print(detail)
    for evaluation in report.runs:
        if evaluation.missing_queries:
            console.print(
                f"{evaluation.name}: {len(evaluation.missing_queries)} judged queries missing from the run, "
                "counted as zero"
            )
        if evaluation.unjudged_queries:
            console.print(
                f"{evaluation.name}: {len(evaluation.unjudged_queries)} run queries have no judgments (ignored)"
            )
