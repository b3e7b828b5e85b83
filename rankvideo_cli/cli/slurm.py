"""slurm: the shipped sbatch templates, printed from the installed package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rankvideo_cli.cli.params import completes, non_empty_path, stderr, user_errors


@user_errors
def slurm(
    template: Annotated[
        str | None,
        typer.Argument(
            help="array, node, sample or merge (none: list them).",
            autocompletion=completes("array", "node", "sample", "merge"),
        ),
    ] = None,
    partition: Annotated[
        str | None, typer.Option(metavar="NAME", help="The partition to submit to (default: a line to edit).")
    ] = None,
    account: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="The account to charge; 'none' where the cluster has no accounts: no account line"
            " (default: a line to edit).",
        ),
    ] = None,
    time: Annotated[
        str | None,
        typer.Option(
            metavar="TIME", help="Each task's time limit, as sbatch takes it: 12:00:00 (default: a line to edit)."
        ),
    ] = None,
    setup: Annotated[
        list[str] | None,
        typer.Option(
            "--setup",
            metavar="LINE",
            help="A shell line setting up the tasks' environment, e.g. 'source /path/venv/bin/activate' (repeatable).",
        ),
    ] = None,
    frames_cache: Annotated[
        bool,
        typer.Option(
            "--frames-cache", help="array, node: the cores to read a frame cache (`rankvideo sample`), not to decode."
        ),
    ] = False,
    gpus: Annotated[int | None, typer.Option(metavar="N", help="node: the GPUs of the node (default 8).")] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the script here (atomic; default: stdout).", parser=non_empty_path),
    ] = None,
) -> None:
    """Print a shipped sbatch script (array, node, sample, merge) to adapt and submit."""
    from rankvideo_cli.jobs.slurm import ClusterSettings, run_slurm

    settings = ClusterSettings(
        partition=partition, account=account, time=time, setup=tuple(setup or ()), frames_cache=frames_cache, gpus=gpus
    )
    run_slurm(template, settings, output, stderr)
