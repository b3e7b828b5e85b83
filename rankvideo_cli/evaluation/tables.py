"""An evaluation report as people and programs read it: a rich table on the terminal, or tsv, csv and json
(one small function per format, chosen from a registry). The tsv and csv are written with the csv module, byte
for byte what pandas' `to_csv` wrote of `report_frame` (tested): pandas is imported only for `report_frame`."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from rankvideo_cli.errors import UsageError
from rankvideo_cli.evaluation.measures import Comparison, EvalReport
from rankvideo_cli.messages import plural

if TYPE_CHECKING:
    import pandas as pd

# ---------------------------------------------------------------------------------------------------------
# Output formats: one small function each, chosen from a registry ("table" is `render_table`).
# ---------------------------------------------------------------------------------------------------------


def report_rows(report: EvalReport, *, per_query: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    """The long table's columns and rows: run, query_id ('all' for the aggregate), measure, value; the 'all'
    rows also carry missing_queries (judged queries absent from that run, counted as zero), and with a baseline
    each compared run's 'all' rows carry delta, wins, ties, losses, p_value and p_value_corrected."""
    comparisons = {(c.run, c.measure): c for c in report.comparisons}
    rows = []
    for evaluation in report.runs:
        if per_query:
            rows += [
                {"run": evaluation.name, "query_id": qid, "measure": measure, "value": values[measure]}
                for qid, values in evaluation.values.items()
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
    if report.comparisons:
        columns += ["delta", "wins", "ties", "losses", "p_value", "p_value_corrected"]
    return columns, rows


INTEGER_COLUMNS = ("missing_queries", "wins", "ties", "losses")


def report_frame(report: EvalReport, *, per_query: bool = False) -> pd.DataFrame:
    """`report_rows` as a DataFrame (the counts as nullable integers)."""
    import pandas as pd

    columns, rows = report_rows(report, per_query=per_query)
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({column: "Int64" for column in INTEGER_COLUMNS if column in columns})


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
                "judged_queries": len(evaluation.values),
                "missing_queries": len(evaluation.missing_queries),
                "missing_queries_counted_as_zero": evaluation.missing_queries,
                "unjudged_queries_ignored": evaluation.unjudged_queries,
                **(
                    {"per_query": {str(qid): dict(values) for qid, values in evaluation.values.items()}}
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


P_COLUMNS = ("p_value", "p_value_corrected")


def _text_cell(column: str, value: Any) -> str:
    """A cell as the tsv and csv print it: p-values to the table's precision (`format_p`), numbers as Python
    (and pandas) print them, empty where there is no value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if column in P_COLUMNS:
        return format_p(value)
    return str(value)


def _delimited(report: EvalReport, per_query: bool, delimiter: str) -> str:
    columns, rows = report_rows(report, per_query=per_query)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_text_cell(column, row.get(column)) for column in columns] for row in rows)
    return buffer.getvalue()


def _as_tsv(report: EvalReport, per_query: bool) -> str:
    return _delimited(report, per_query, "\t")


def _as_csv(report: EvalReport, per_query: bool) -> str:
    return _delimited(report, per_query, ",")


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
    """A p-value as every output prints it: 3 significant digits, trailing zeros kept (0.500, 1.00, 1.23e-05);
    "-" where there is none (the tsv and csv leave the cell empty)."""
    return "-" if math.isnan(value) else f"{value:#.3g}"


def _title(report: EvalReport) -> str:
    judged = len(report.runs[0].values)
    compared = report.runs[:-1] if report.comparisons else report.runs
    names = compared[0].name if len(compared) == 1 else f"{len(compared)} runs"
    return f"{names}: {plural(judged, 'judged query', 'judged queries')}"


NARROWEST_NAME = 12  # a run name is never shortened below this many characters


def fit_name(name: str, limit: int) -> str:
    """`name` in at most `limit` characters (never fewer than `NARROWEST_NAME`), for a table on a narrow
    terminal: whole when it fits; a path keeps its end, where paths that share a file name differ
    (`…ts/bm25/run.trec`); a bare name its start and end (`reranked_wi…alpha05.trec`). The tsv, csv and json
    always carry the whole name."""
    limit = max(limit, NARROWEST_NAME)
    if len(name) <= limit:
        return name
    if "/" in name and len(name.rsplit("/", 1)[1]) < limit - 1:
        return "…" + name[len(name) - (limit - 1) :]
    tail = (limit - 1) // 2
    return name[: limit - 1 - tail] + "…" + name[len(name) - tail :]


def _narrowest(table: Table, console: Console) -> int:
    """The fewest columns `table` takes with no cell that may not wrap split or cut (measured unconstrained:
    a console's own measure is capped at its width)."""
    return console.measure(table, options=console.options.update_width(1_000_000)).minimum


def _fitted(build: Callable[[Callable[[str], str]], Table], names: list[str], console: Console) -> Table:
    """The table `build` makes with the run names whole if it fits the console's width; else with the names
    shortened (`fit_name`) just enough. A name is never folded across lines: the columns that give way are the
    headers, which wrap between words."""
    table = build(lambda name: name)
    longest = max((len(name) for name in names), default=0)
    while longest > NARROWEST_NAME:
        excess = _narrowest(table, console) - console.width
        if excess <= 0:
            break
        longest = max(NARROWEST_NAME, longest - excess)
        table = build(lambda name, limit=longest: fit_name(name, limit))  # type: ignore[misc]
    return table


def _values_table(report: EvalReport, console: Console) -> Table:
    """One row per measure, one column per run; one row per run (a column per measure) where the runs' names
    would not fit side by side."""
    names = [evaluation.name for evaluation in report.runs]

    def by_measure(shown: Callable[[str], str]) -> Table:
        table = Table()
        table.add_column("measure")
        for evaluation in report.runs:
            table.add_column(shown(evaluation.name), justify="right", no_wrap=True)
        for measure in report.measures:
            table.add_row(
                measure,
                *(format_value(report, measure, evaluation.aggregate[measure]) for evaluation in report.runs),
            )
        return table

    def by_run(shown: Callable[[str], str]) -> Table:
        table = Table()
        table.add_column("run", no_wrap=True)
        for measure in report.measures:
            table.add_column(measure, justify="right")
        for evaluation in report.runs:
            table.add_row(
                shown(evaluation.name),
                *(format_value(report, measure, evaluation.aggregate[measure]) for measure in report.measures),
            )
        return table

    table = by_measure(lambda name: name)
    if _narrowest(table, console) <= console.width:
        return table
    return _fitted(by_run, names, console)


def _comparison_table(report: EvalReport, console: Console) -> Table:
    """One row per (measure, run): the baseline's value first (its delta cell says "baseline"), then each run
    against it."""
    baseline = report.baseline
    assert baseline is not None
    by_measure: dict[str, list[Comparison]] = {}
    for comparison in report.comparisons:
        by_measure.setdefault(comparison.measure, []).append(comparison)
    values = {evaluation.name: evaluation.aggregate for evaluation in report.runs}

    def build(shown: Callable[[str], str]) -> Table:
        table = Table()
        columns: list[tuple[str, JustifyMethod, bool]] = [
            ("measure", "left", True),
            ("run", "left", True),
            ("value", "right", True),
            ("delta", "right", True),
            ("W/T/L", "right", True),
            ("p", "right", False),
            (f"p ({report.correction})", "right", False),
        ]
        for column, justify, no_wrap in columns:
            # only the p-values' headers may wrap (between words); a name or a number is never split
            table.add_column(column, justify=justify, no_wrap=no_wrap)
        for number, measure in enumerate(report.measures):
            value = format_value(report, measure, baseline.aggregate[measure])
            table.add_row(measure, shown(baseline.name), value, "baseline", "", "", "")
            family = by_measure.get(measure, [])
            for position, comparison in enumerate(family):
                table.add_row(
                    "",
                    shown(comparison.run),
                    format_value(report, measure, values[comparison.run][measure]),
                    format_delta(report, measure, comparison.delta),
                    f"{comparison.wins}/{comparison.ties}/{comparison.losses}",
                    format_p(comparison.p_value),
                    format_p(comparison.p_value_corrected),
                    end_section=position == len(family) - 1 and number < len(report.measures) - 1,
                )
        return table

    return _fitted(build, [evaluation.name for evaluation in report.runs], console)


def render_table(report: EvalReport, console: Console, *, per_query: bool = False) -> None:
    """A rich table of the aggregates (and per-query tables); with a baseline, one row per measure and run
    with the delta, W/T/L and the raw and corrected p-values."""
    if report.comparisons:
        assert report.baseline is not None
        title = f"{_title(report)}; baseline {report.baseline.name}; p: paired t-tests"
        console.print(Text(title, style="table.title"))  # above the table, wrapped at the console's width
        console.print(_comparison_table(report, console))
    else:
        console.print(Text(_title(report), style="table.title"))
        console.print(_values_table(report, console))
    if per_query:
        for evaluation in report.runs:
            console.print(Text(f"{evaluation.name}: per query", style="table.title"))
            detail = Table()
            detail.add_column("query_id")
            for measure in report.measures:
                detail.add_column(measure, justify="right")
            for qid, values in evaluation.values.items():
                detail.add_row(
                    str(qid), *(format_value(report, measure, values[measure]) for measure in report.measures)
                )
            console.print(detail)
    for note in report_notes(report):
        console.print(note, markup=False)


def report_notes(report: EvalReport) -> list[str]:
    """What the numbers do not say: judged queries a run lacks (counted as zero), run queries without judgments."""
    notes = []
    for evaluation in report.runs:
        if evaluation.missing_queries:
            notes.append(
                f"{evaluation.name}: {plural(len(evaluation.missing_queries), 'judged query', 'judged queries')} "
                "missing from the run, counted as zero"
            )
        if evaluation.unjudged_queries:
            notes.append(
                f"{evaluation.name}: "
                f"{plural(len(evaluation.unjudged_queries), 'run query has', 'run queries have')} no judgments "
                "(ignored)"
            )
    return notes
