"""The `rankvideo` application: its commands, one module per family, registered in the order `--help` lists
them."""

from __future__ import annotations

from typing import Annotated

import typer

from rankvideo_cli import __version__
from rankvideo_cli.cli.doctor import doctor
from rankvideo_cli.cli.evaluate import eval_, rank, tune
from rankvideo_cli.cli.group import OneLineErrorsGroup
from rankvideo_cli.cli.merge import merge
from rankvideo_cli.cli.report import report
from rankvideo_cli.cli.rerank import explain, rerank, score
from rankvideo_cli.cli.slurm import slurm
from rankvideo_cli.cli.videos import frames, sample, videos

app = typer.Typer(
    name="rankvideo",
    cls=OneLineErrorsGroup,
    help="Rerank text-to-video retrieval runs with Qwen3-VL rerankers (RankVideo, Qwen3-VL-Reranker); evaluate them.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"rankvideo {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Rerank text-to-video retrieval runs with Qwen3-VL rerankers (RankVideo, Qwen3-VL-Reranker); evaluate them."""


app.command()(rerank)
app.command(name="eval")(eval_)
app.command()(tune)
app.command()(rank)
app.command()(score)
app.command()(explain)
app.command()(sample)
app.command()(frames)
app.command()(videos)
app.command()(merge)
app.command()(report)
app.command()(doctor)
app.command()(slurm)


def main() -> None:
    """Console entry point."""
    app(prog_name="rankvideo")
