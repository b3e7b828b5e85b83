"""An evaluation report as people and programs read it: a rich table on the terminal, or tsv, csv and json
(one small function per format, chosen from a registry)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pandas as pd
from rich.console import Console, JustifyMethod
from rich.table import Table

from rankvideo_cli.errors import UsageError
from rankvideo_cli.evaluation.measures import Comparison, EvalReport

# ---------------------------------------------------------------------------------------------------------
# Output formats: one small function each, chosen from a registry ("table" is `render_table`).
# ---------------------------------------------------------------------------------------------------------


def report_frame(report: EvalReport, *, per_query: bool = False) -> pd.DataFrame:
    """Long table: run, query_id ('all' for the aggregate), measure, value; the 'all' rows also carry
    missing_queries (judged queries absent from that run, counted as zero), and with a baseline each compared
    run's 'all' rows carry delta, wins, ties, losses, p_value and p_value_corrected."""
    comparisons = {(c.run, c.measure): c for c in report.comparisons}
    rows = []
    for evaluation in report.runs:
        if per_query:
            rows += [
                {"run": evaluation.name, "query_id": qid, "measure": measure, "value": values[measure]}
                for qid, values in evaluation.per_query.iterrows()
                for measure in report.measures
            ]
        for measure in report.measures:
            row = {
                "run": evaluation.name,
                "query_id": "all",
                "measure": measure,
                "value": evaluation.aggregate[measure],
                "missing_queries": len(evaluation.missing_queries),
            }
            comparison = comparisons.get((evaluation.name, measure))
            if comparison is not None:
                row.update(
                    delta=comparison.delta,
                    wins=comparison.wins,
                    ties=comparison.ties,
                    losses=comparison.losses,
                    p_value=comparison.p_value,
                    p_value_corrected=comparison.p_value_corrected,
                )
            rows.append(row)
    columns = ["run", "query_id", "measure", "value", "missing_queries"]
    integer_columns = ["missing_queries"]
    if report.comparisons:
        columns += ["delta", "wins", "ties", "losses", "p_value", "p_value_corrected"]
        integer_columns += ["wins", "ties", "losses"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({column: "Int64" for column in integer_columns})


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
    baseline = report.baseline
    payload = {
        "measures": report.measures,
        "baseline": baseline.name if baseline is not None else None,
        "correction": report.correction if report.comparisons else None,
        "runs": [
            {
                "name": evaluation.name,
                "aggregate": evaluation.aggregate,
                "judged_queries": len(evaluation.per_query),
                "missing_queries": len(evaluation.missing_queries),
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


def format_value(report: EvalReport, measure: str, value: float) -> str:
    """An aggregate as the tables print it: counts as integers, other measures to 4 decimals."""
    return f"{value:.0f}" if measure in report.counts else f"{value:.4f}"


def format_delta(report: EvalReport, measure: str, value: float) -> str:
    return f"{value:+.0f}" if measure in report.counts else f"{value:+.4f}"


def format_p(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3g}"


def _title(report: EvalReport) -> str:
    judged = len(report.runs[0].per_query)
    compared = report.runs[:-1] if report.comparisons else report.runs
    names = compared[0].name if len(compared) == 1 else f"{len(compared)} runs"
    return f"{names}: {judged} judged queries"


def _values_table(report: EvalReport) -> Table:
    table = Table(title=_title(report), title_justify="left")
    table.add_column("measure")
    for evaluation in report.runs:
        table.add_column(evaluation.name, justify="right", overflow="fold")
    for measure in report.measures:
        table.add_row(
            measure, *(format_value(report, measure, evaluation.aggregate[measure]) for evaluation in report.runs)
        )
    return table


def _comparison_table(report: EvalReport) -> Table:
    """One row per (measure, run): the baseline's value first, then each run against it."""
    baseline = report.baseline
    assert baseline is not None
    table = Table(title=f"{_title(report)}; baseline {baseline.name}", title_justify="left")
    columns: list[tuple[str, JustifyMethod]] = [
        ("measure", "left"),
        ("run", "left"),
        ("value", "right"),
        ("delta", "right"),
        ("W/T/L", "right"),
        ("p (paired t)", "right"),
        (f"p ({report.correction})", "right"),
    ]
    for column, justify in columns:
        table.add_column(column, justify=justify, overflow="fold")
    by_measure: dict[str, list[Comparison]] = {}
    for comparison in report.comparisons:
        by_measure.setdefault(comparison.measure, []).append(comparison)
    values = {evaluation.name: evaluation.aggregate for evaluation in report.runs}
    for number, measure in enumerate(report.measures):
        label = baseline.name if baseline.name.endswith("(baseline)") else f"{baseline.name} (baseline)"
        table.add_row(measure, label, format_value(report, measure, baseline.aggregate[measure]), "", "", "", "")
        family = by_measure.get(measure, [])
        for position, comparison in enumerate(family):
            table.add_row(
                "",
                comparison.run,
                format_value(report, measure, values[comparison.run][measure]),
                format_delta(report, measure, comparison.delta),
                f"{comparison.wins}/{comparison.ties}/{comparison.losses}",
                format_p(comparison.p_value),
                format_p(comparison.p_value_corrected),
                end_section=position == len(family) - 1 and number < len(report.measures) - 1,
            )
    return table


def render_table(report: EvalReport, console: Console, *, per_query: bool = False) -> None:
    """A rich table of the aggregates (and per-query tables); with a baseline, one row per measure and run
    with the delta, W/T/L and the raw and corrected p-values."""
    console.print(_comparison_table(report) if report.comparisons else _values_table(report))
    if per_query:
        for evaluation in report.runs:
            detail = Table(title=f"{evaluation.name}: per query", title_justify="left")
            detail.add_column("query_id")
            for measure in report.measures:
                detail.add_column(measure, justify="right")
            for qid, values in evaluation.per_query.iterrows():
                detail.add_row(
                    str(qid), *(format_value(report, measure, values[measure]) for measure in report.measures)
                )
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
