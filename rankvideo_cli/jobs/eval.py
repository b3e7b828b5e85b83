"""`rankvideo eval`: ir-measures over runs against qrels, compared with a baseline; a table or tsv/csv/json."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from rankvideo_cli.errors import UsageError
from rankvideo_cli.io.atomic import write_stdout
from rankvideo_cli.io.runs import read_run_scores
from rankvideo_cli.io.text import display_name
from rankvideo_cli.messages import say

if TYPE_CHECKING:
    from rankvideo_cli.evaluation.measures import EvalReport


def run_eval(
    runs: Sequence[Path] | Path,
    qrels: Path,
    *,
    baseline: Path | None,
    measures: Sequence[str] | None,
    per_query: bool,
    fmt: str | None = None,
    correction: str = "holm",
    console: Console | None = None,
) -> EvalReport:
    """`rankvideo eval`: ir-measures on each RUN (and BASELINE) to stdout, in `fmt` (table, tsv, csv, json); by
    default (None) a table on a terminal and tsv elsewhere (`eval ... | cut -f`, `> results.tsv`)."""
    from rankvideo_cli.evaluation.measures import CORRECTIONS, evaluate_runs, parse_measure_specs
    from rankvideo_cli.evaluation.tables import format_report, render_table, report_notes
    from rankvideo_cli.io.qrels import describe_tolerated, read_judgments

    console = console or Console(stderr=True, highlight=False)
    paths = [runs] if isinstance(runs, Path) else list(runs)
    if correction not in CORRECTIONS:
        raise UsageError(f"--correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    if sum(str(path) == "-" for path in [*paths, baseline]) > 1:
        raise UsageError("only one run can be read from stdin (-)")
    parse_measure_specs(measures)  # an unknown measure fails before any file is read
    judged = read_judgments(qrels)  # no pandas: the evaluation reads dicts
    say_tolerated(console, describe_tolerated(judged))
    names = run_names(paths, baseline)
    scores = []
    for path in [*paths, *([baseline] if baseline is not None else [])]:
        run = read_run_scores(path)
        say_tolerated(console, run.tolerated.describe(run.source, 6))
        scores.append(run)
    if baseline is not None:
        for run in scores[: len(paths)]:
            check_shared_queries(run.source, run, scores[-1].source, scores[-1])
    compared = list(zip(names[: len(paths)], scores[: len(paths)], strict=True))
    report = evaluate_runs(
        compared,
        judged.by_query(),
        measures,
        baseline=(names[-1], scores[-1]) if baseline is not None else None,
        correction=correction,
    )
    fmt = fmt if fmt is not None else default_format()
    if fmt == "table":
        render_table(report, Console(highlight=False), per_query=per_query)
    else:
        write_stdout(format_report(report, fmt, per_query=per_query))
        for note in report_notes(report):
            say(console, note)
    return report


def say_tolerated(console: Console, line: str | None) -> None:
    """The line about what a reader tolerated in a file, if any (as `jobs.inputs.report_tolerated`, whose module
    brings the rerank's pipeline: a tenth of eval's start-up)."""
    if line:
        say(console, line)


def default_format() -> str:
    """`eval`'s output without --format: the table for a person (stdout a terminal), else the tsv that
    ir-measures' and trec_eval's users pipe (one row per run and measure, tab-separated, a header line)."""
    try:
        return "table" if sys.stdout.isatty() else "tsv"
    except (AttributeError, ValueError):
        return "tsv"


def check_shared_queries(
    run_source: str, run_qids: Iterable[str], baseline_source: str, baseline_qids: Iterable[str]
) -> None:
    """A run and a baseline without a query in common compare nothing (every judged query would be missing from
    one side): a `UsageError` naming both files, for `eval` and `report` alike."""
    ours, theirs = sorted(run_qids), sorted(baseline_qids)
    if ours and theirs and set(ours).isdisjoint(theirs):
        raise UsageError(
            f"{run_source} and the baseline {baseline_source} share no query (e.g. {ours[0]} and {theirs[0]}): "
            "nothing to compare"
        )


def run_names(paths: Sequence[Path], baseline: Path | None) -> list[str]:
    """How the report names each run (then the baseline): its file name; the path as given where two different
    paths share a file name; `#2`, `#3` for a path given again; `(baseline)` for a baseline that is also a run."""
    short = {str(path): display_name(path) if str(path) == "-" else path.name for path in paths}
    clashing = {name for name in short.values() if list(short.values()).count(name) > 1}
    names: list[str] = []
    for path in paths:
        name = str(path) if short[str(path)] in clashing else short[str(path)]
        repeats = [str(other) for other in paths[: len(names)]].count(str(path))
        names.append(f"{name} #{repeats + 1}" if repeats else name)
    if baseline is not None:
        name = baseline.name if str(baseline) != "-" else display_name(baseline)
        names.append(f"{name} (baseline)" if name in names else name)
    return names
