"""merge: the shards' score stores into one run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rankvideo_cli.cli.params import (
    MeasureOpt,
    RerankerName,
    Verbosity,
    non_empty_path,
    option_sources,
    stderr,
    user_errors,
    with_verbosity,
)
from rankvideo_cli.options import from_values


@user_errors
@with_verbosity()
def merge(
    run: Annotated[Path, typer.Argument(help="The same first-stage run the shards reranked.", parser=non_empty_path)],
    queries: Annotated[Path, typer.Argument(help="The same query file.", parser=non_empty_path)],
    cache: Annotated[
        Path, typer.Option("--cache", help="Score store directory the shards wrote to.", parser=non_empty_path)
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The run (atomic; default: stdout).", parser=non_empty_path)
    ] = None,
    allow_missing: Annotated[
        bool, typer.Option("--allow-missing", help="Write the run even if some pairs were never scored.")
    ] = False,
    qrels: Annotated[
        Path | None, typer.Option(help="Evaluate the merged run (to stderr).", parser=non_empty_path)
    ] = None,
    measures: MeasureOpt = None,
    scores: Annotated[
        Path | None,
        typer.Option(
            help="Also write the raw model scores as JSONL (input of `rankvideo tune`).", parser=non_empty_path
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Merge even if RUN or QUERIES differ from the files the shards read.")
    ] = False,
    reranker: Annotated[
        RerankerName | None,
        typer.Option("--reranker", help="Merge this reranker's shards (when the store holds several rerankers')."),
    ] = None,
    *,
    verbosity: Verbosity,  # with_verbosity
) -> None:
    """Combine the score stores of SLURM array shards into the final reranked run."""
    from rankvideo_cli.jobs.merge import run_merge
    from rankvideo_cli.jobs.request import RerankInputs, RerankOutputs

    values = {**locals(), "option_sources": option_sources()}
    inputs, outputs = from_values(RerankInputs, values), from_values(RerankOutputs, values)
    with verbosity:
        run_merge(
            inputs,
            outputs,
            stderr,
            allow_missing=allow_missing,
            force=force,
            reranker=reranker.value if reranker is not None else None,
        )
