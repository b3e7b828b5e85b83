"""report: a web page of what the rerankers did."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from rankvideo_cli.cli.params import (
    DEFAULT_RERANKER_NAME,
    Correction,
    FramesOfOpt,
    MeasureOpt,
    MultiventOpt,
    ReferenceModelOpt,
    Verbosity,
    VideoMapOpt,
    VideoPatternOpt,
    VideosOpt,
    non_empty_path,
    non_empty_text,
    stderr,
    user_errors,
    with_verbosity,
)
from rankvideo_cli.options import VideoSource, from_values
from rankvideo_cli.scoring.rerankers import get_reranker


@user_errors
@with_verbosity()
def report(
    runs: Annotated[
        list[Path],
        typer.Argument(
            help="The reranked runs to show, one column each (TREC or JSON; - for stdin).",
            parser=non_empty_path,
            metavar="RUN...",
        ),
    ],
    baseline: Annotated[
        Path | None,
        typer.Option(
            help="The run they came from (the first stage): shown beside them, with moves.", parser=non_empty_path
        ),
    ] = None,
    qrels: Annotated[
        Path | None, typer.Option(help="Judgments: measures, deltas, relevance of each row.", parser=non_empty_path)
    ] = None,
    queries: Annotated[
        Path | None, typer.Option(help="Query file (TSV, CSV, JSONL): the text of each query.", parser=non_empty_path)
    ] = None,
    videos: VideosOpt = None,
    video_pattern: VideoPatternOpt = "{docid}.mp4",
    multivent: MultiventOpt = False,
    video_map: VideoMapOpt = None,
    frames_cache: Annotated[
        Path | None,
        typer.Option(
            "--frames-cache", help="Sampled frames of `rankvideo sample`: used when present.", parser=non_empty_path
        ),
    ] = None,
    scores: Annotated[
        list[str] | None,
        typer.Option(
            help="A run's model scores (`rerank --scores` JSONL, or the reference's files): one per run in order, "
            "or RUN=SCORES (repeatable).",
            parser=non_empty_text,
        ),
    ] = None,
    reference_model: ReferenceModelOpt = None,
    explanations: Annotated[
        list[str] | None,
        typer.Option(
            help="A run's model answers (`rankvideo explain --json`): one per run in order, or RUN=FILE (repeatable).",
            parser=non_empty_text,
        ),
    ] = None,
    measures: MeasureOpt = None,
    correction: Annotated[
        Correction, typer.Option(help="Multiple-testing correction of the p-values, as for eval.")
    ] = Correction.holm,
    top: Annotated[int, typer.Option(help="Candidates shown per query and run.")] = 10,
    thumbnails: Annotated[int, typer.Option(help="Frames shown per video, chosen evenly among those sampled.")] = 4,
    qid: Annotated[list[str] | None, typer.Option("--qid", help="Show this query (repeatable).")] = None,
    limit: Annotated[
        int | None, typer.Option(help="Show the N queries whose first run changed most (gains and losses).")
    ] = None,
    decode_workers: Annotated[int | None, typer.Option(help="Decode threads (default: one per core).")] = None,
    output: Annotated[
        str | None,  # text, not a Path: a trailing slash (a directory to write into) must survive
        typer.Option(
            "--output",
            "-o",
            help="report.html (one file), or DIR/ (index.html with the thumbnails beside it).",
            parser=non_empty_text,
        ),
    ] = None,
    reranker: FramesOfOpt = DEFAULT_RERANKER_NAME,
    *,
    verbosity: Verbosity,  # with_verbosity
) -> None:
    """A web page of what the rerankers did: measures, charts, and per query the baseline and every run's ranking
    with the frames the model saw (no model is loaded)."""
    from rankvideo_cli.jobs.report import ReportRequest, run_report

    with verbosity:
        run_report(
            ReportRequest(
                run_paths=runs,
                baseline_path=baseline,
                qrels_path=qrels,
                queries_path=queries,
                videos=from_values(VideoSource, locals()) if videos is not None else None,
                frames_cache=frames_cache,
                scores=scores or (),
                reference_model=reference_model,
                explanations=explanations or (),
                measures=measures,
                correction=correction.value,
                top=top,
                thumbnails=thumbnails,
                qids=qid or (),
                limit=limit,
                decode_workers=decode_workers,
                output=Path(output) if output is not None else None,
                into_directory=output is not None and (output.endswith(("/", os.sep)) or Path(output).is_dir()),
                sampling=get_reranker(reranker.value).sampling,
            ),
            stderr,
        )
