"""The commands over runs and stored scores, no model: eval, tune, rank."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rankvideo_cli.cli.params import (
    Correction,
    MeasureOpt,
    OutputFormat,
    ReferenceModelOpt,
    Verbosity,
    non_empty_path,
    stderr,
    user_errors,
    with_ranking_options,
    with_verbosity,
)
from rankvideo_cli.errors import UsageError
from rankvideo_cli.options import RankingOptions, from_values


@user_errors
def eval_(
    runs_and_qrels: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUN... QRELS",
            help="One or more runs to evaluate (TREC or JSON; - for stdin), then the qrels (TREC or MultiVENT JSONL).",
            parser=non_empty_path,
        ),
    ],
    baseline: Annotated[
        Path | None,
        typer.Option(
            help="Compare every run against this one: deltas, W/T/L, paired t-tests (corrected).", parser=non_empty_path
        ),
    ] = None,
    measures: MeasureOpt = None,
    per_query: Annotated[bool, typer.Option("--per-query", help="One row per query.")] = False,
    fmt: Annotated[
        OutputFormat | None,
        typer.Option("--format", help="Default: table on a terminal, tsv when piped."),
    ] = None,
    correction: Annotated[
        Correction,
        typer.Option(help="Multiple-testing correction of each measure's p-values over the compared runs."),
    ] = Correction.holm,
) -> None:
    """Evaluate RUNs against QRELS with ir-measures (trec_eval -c: judged queries missing from a run count as
    zero)."""
    from rankvideo_cli.jobs.eval import run_eval

    if len(runs_and_qrels) < 2:
        raise UsageError("eval needs at least one RUN and the QRELS: rankvideo eval RUN... QRELS")
    *runs, qrels = runs_and_qrels
    run_eval(
        runs,
        qrels,
        baseline=baseline,
        measures=measures,
        per_query=per_query,
        fmt=fmt.value if fmt is not None else None,
        correction=correction.value,
        console=stderr,
    )


@user_errors
@with_verbosity()
def tune(
    run: Annotated[Path, typer.Argument(help="The first-stage run that was reranked.", parser=non_empty_path)],
    qrels: Annotated[Path, typer.Argument(help="Qrels: TREC 4-column or MultiVENT JSONL.", parser=non_empty_path)],
    scores: Annotated[
        Path,
        typer.Option(
            "--scores",
            help="Model scores: the JSONL of `rerank --scores` (or merge), or the reference's JSON directory.",
            parser=non_empty_path,
        ),
    ],
    reference_model: ReferenceModelOpt = None,
    measure: Annotated[str, typer.Option("--measure", "-m", help="The measure to maximise.")] = "nDCG@10",
    alphas: Annotated[str, typer.Option(help="ALPHA values: a list (0,0.5,1) or a range (0:1:0.1).")] = "0:1:0.1",
    normalizations: Annotated[
        str, typer.Option(help="Normalisations to try, comma-separated: minmax, zscore, none.")
    ] = "minmax,zscore",
    folds: Annotated[int, typer.Option(help="Cross-validation folds over the judged queries.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the (deterministic) assignment of queries to folds.")] = 0,
    depth: Annotated[int, typer.Option(help="The --depth the run was reranked with.")] = 100,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the cross-validated interpolated run here.", parser=non_empty_path),
    ] = None,
    tag: Annotated[str, typer.Option(help="Run tag of the written run.")] = "rankvideo-interpolated",
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table, tsv, csv or json.")] = OutputFormat.table,
    *,
    verbosity: Verbosity,  # with_verbosity
) -> None:
    """Choose --interpolate ALPHA (and its normalisation) by k-fold cross-validation over queries, from stored
    scores (no model is loaded); optionally write the cross-validated interpolated run."""
    from rankvideo_cli.jobs.tune import TuneOptions, run_tune

    options = from_values(TuneOptions, locals())
    with verbosity:
        run_tune(
            run, qrels, scores, options, reference_model=reference_model, output=output, fmt=fmt.value, console=stderr
        )


@user_errors
@with_verbosity()
@with_ranking_options("on_missing_video", "on_bad_video", "missing_query")
def rank(
    run: Annotated[Path, typer.Argument(help="The first-stage run.", parser=non_empty_path)],
    scores: Annotated[
        Path,
        typer.Option(
            "--scores",
            help="Stored scores: the JSONL of `rerank --scores`/`merge --scores`, or a directory of the reference "
            "code's {vid}_reranking_{model}.json files.",
            parser=non_empty_path,
        ),
    ],
    reference_model: ReferenceModelOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the run here (atomic).", parser=non_empty_path)
    ] = None,
    qrels: Annotated[
        Path | None, typer.Option(help="Evaluate against these qrels (to stderr).", parser=non_empty_path)
    ] = None,
    measures: MeasureOpt = None,
    *,
    ranking: RankingOptions,  # with_ranking_options
    verbosity: Verbosity,  # with_verbosity
) -> None:
    """Rerank RUN with stored scores, no model: ours, or the reference code's per-video JSON files."""
    from rankvideo_cli.jobs.rank import run_rank

    with verbosity:
        run_rank(
            run,
            scores,
            ranking,
            reference_model=reference_model,
            output=output,
            qrels=qrels,
            measures=measures,
            console=stderr,
        )
