"""`rankvideo tune`: the cross-validated interpolation sweep over stored scores, a report, the interpolated run."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rankvideo_cli.errors import InputError, UsageError
from rankvideo_cli.io.atomic import write_output_chunks, write_stdout
from rankvideo_cli.io.runs import iter_trec_chunks
from rankvideo_cli.jobs.inputs import read_run_reporting, report_tolerated
from rankvideo_cli.jobs.preflight import Named, check_output_file
from rankvideo_cli.messages import plural, say
from rankvideo_cli.options import RankingOptions
from rankvideo_cli.progress import StepProgress


@dataclass(frozen=True)
class TuneOptions:
    """The sweep: `measure` maximised over the grid of `alphas` x `normalizations`, chosen by `folds`-fold
    cross-validation over the judged queries (`seed` assigns them to folds); `depth` is the one the run was
    reranked with, `tag` the written run's. Checked when made: a bad grid fails before any file is read."""

    measure: str = "nDCG@10"
    alphas: str = "0:1:0.1"
    normalizations: str = "minmax,zscore"
    folds: int = 5
    seed: int = 0
    depth: int = 100
    tag: str = "rankvideo-interpolated"

    def __post_init__(self) -> None:
        from rankvideo_cli.evaluation import fusion
        from rankvideo_cli.evaluation.measures import parse_measure_specs

        RankingOptions(depth=self.depth, tag=self.tag)  # the depth and tag rules of every ranking
        fusion.grid(self.alpha_values, self.normalization_names)
        parse_measure_specs([self.measure])

    @property
    def alpha_values(self) -> list[float]:
        from rankvideo_cli.evaluation import fusion

        return fusion.parse_alphas(self.alphas)

    @property
    def normalization_names(self) -> list[str]:
        return [name.strip() for name in self.normalizations.split(",")]


def run_tune(
    run_path: Path,
    qrels_path: Path,
    scores_path: Path,
    options: TuneOptions,
    *,
    reference_model: str | None = None,
    output: Path | None = None,
    fmt: str = "table",
    console: Console | None = None,
):
    """`rankvideo tune`: the cross-validated interpolation sweep (`fusion`), a report, the interpolated run."""
    from rankvideo_cli.evaluation import fusion
    from rankvideo_cli.evaluation.measures import as_qrels_dict
    from rankvideo_cli.io.qrels import describe_tolerated, read_qrels

    if fmt not in TUNE_FORMATS:
        raise UsageError(f"--format must be one of {', '.join(TUNE_FORMATS)} for tune, got {fmt!r}")
    console = console if console is not None else Console(stderr=True, highlight=False)
    sources = [Named("the run", run_path), Named("the qrels", qrels_path), Named("--scores", scores_path)]
    check_output_file(output, sources)
    judged = read_qrels(qrels_path)
    report_tolerated(console, describe_tolerated(judged))
    run = read_run_reporting(run_path, console)
    model_scores = fusion.read_model_scores(scores_path, reference_model)
    unknown = [pair for pair in model_scores if pair[0] not in run]
    if unknown:
        raise InputError(scores_path, None, f"scores for query {unknown[0][0]!r}, which is not in {run.source}")
    result = fusion.sweep(
        run,
        model_scores,
        as_qrels_dict(judged),
        fusion.SweepOptions(
            options.measure,
            options.alpha_values,
            options.normalization_names,
            options.depth,
            options.folds,
            options.seed,
        ),
        on_config=StepProgress(console, "tune: configurations evaluated"),
    )
    if output is not None:
        ranked = fusion.cross_validated_run(run, model_scores, result, depth=options.depth)
        write_output_chunks(iter_trec_chunks(ranked, options.tag), output)
    if fmt == "json":
        write_stdout(json.dumps(fusion.sweep_dict(result), indent=2, allow_nan=False) + "\n")
    elif fmt in ("tsv", "csv"):
        write_stdout(sweep_frame(result).to_csv(sep="\t" if fmt == "tsv" else ",", index=False, lineterminator="\n"))
    else:
        _print_sweep(result, Console(highlight=False))
    chosen = result.chosen_on_all
    say(
        console,
        f"cross-validated {result.measure} {result.cross_validated:.4f} over "
        f"{plural(len(result.fold_of), 'judged query', 'judged queries')} in {options.folds} folds; on all "
        f"queries: --interpolate {chosen.alpha:g} "
        f"--normalization {chosen.normalization}" + (f"; interpolated run written to {output}" if output else ""),
    )
    return result


TUNE_FORMATS = ("table", "tsv", "csv", "json")


def sweep_frame(result):
    """The sweep as the tsv and csv print it, the table's rows: one per fold (its held-out queries, the ALPHA and
    normalisation chosen on the other folds, their mean there and on the fold), then `all`: every judged query,
    the setting chosen on all of them, its mean on all (`train_mean`, not held out) and the cross-validated mean
    (`test_mean`)."""
    import pandas as pd

    rows = [
        (
            fold.fold,
            len(fold.test_queries),
            fold.chosen.alpha,
            fold.chosen.normalization,
            fold.train_mean,
            fold.test_mean,
        )
        for fold in result.folds
    ]
    chosen = result.chosen_on_all
    rows.append(
        ("all", len(result.fold_of), chosen.alpha, chosen.normalization, result.mean(chosen), result.cross_validated)
    )
    columns = ["fold", "queries", "alpha", "normalization", "train_mean", "test_mean"]
    return pd.DataFrame(rows, columns=columns).assign(measure=result.measure)[["measure", *columns]]


def _print_sweep(result, console: Console) -> None:
    table = Table(title=f"{result.measure} by fold (chosen on the other folds)", title_justify="left")
    for column in ("fold", "queries", "ALPHA", "normalization", "train mean", "test mean"):
        table.add_column(column, justify="right")
    for fold in result.folds:
        table.add_row(
            str(fold.fold),
            str(len(fold.test_queries)),
            f"{fold.chosen.alpha:g}",
            fold.chosen.normalization,
            f"{fold.train_mean:.4f}",
            f"{fold.test_mean:.4f}",
        )
    console.print(table)
    summary = Table(show_header=False, box=None, pad_edge=False)
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    summary.add_row(f"cross-validated {result.measure}", f"{result.cross_validated:.4f}")
    chosen = result.chosen_on_all
    summary.add_row("chosen on all queries", f"ALPHA {chosen.alpha:g}, {chosen.normalization}")
    summary.add_row(f"  its {result.measure} (not held out)", f"{result.mean(chosen):.4f}")
    if not math.isnan(result.model_only):
        summary.add_row("model alone (ALPHA 1)", f"{result.model_only:.4f}")
    if not math.isnan(result.first_stage_in_head):
        summary.add_row("first-stage order, unscored last (ALPHA 0)", f"{result.first_stage_in_head:.4f}")
    console.print(summary)
