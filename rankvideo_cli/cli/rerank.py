"""The commands that load a model: rerank, score, explain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rankvideo_cli.cli.params import (
    FramesCacheOpt,
    MeasureOpt,
    MultiventOpt,
    RequiredVideosOpt,
    Verbosity,
    VideoMapOpt,
    VideoPatternOpt,
    _required_videos,
    non_empty_path,
    option_sources,
    stderr,
    user_errors,
    with_ranking_options,
    with_scorer_options,
    with_verbosity,
)
from rankvideo_cli.options import DecodeOptions, RankingOptions, from_values
from rankvideo_cli.scoring.options import ScorerOptions


@user_errors
@with_verbosity()
@with_ranking_options()
@with_scorer_options()
def rerank(
    run: Annotated[
        Path,
        typer.Argument(
            help="First-stage run: TREC (.gz ok), JSON, or - (stdin).",
            parser=non_empty_path,
        ),
    ],
    queries: Annotated[Path, typer.Argument(help="TSV qid<TAB>text, MultiVENT CSV, or JSONL.", parser=non_empty_path)],
    videos: RequiredVideosOpt = None,
    video_pattern: VideoPatternOpt = "{docid}.mp4",
    multivent: MultiventOpt = False,
    video_map: VideoMapOpt = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The run (atomic; default: stdout).", parser=non_empty_path),
    ] = None,
    scores: Annotated[Path | None, typer.Option(help="Also the raw scores, as JSONL.", parser=non_empty_path)] = None,
    qrels: Annotated[
        Path | None,
        typer.Option(help="Evaluate the run against these (stderr).", parser=non_empty_path),
    ] = None,
    measures: MeasureOpt = None,
    decode_workers: Annotated[int | None, typer.Option(help="Decode threads (default: one per core).")] = None,
    prefetch: Annotated[int | None, typer.Option(help="Decoded videos queued for the model.")] = None,
    cache: Annotated[
        Path | None,
        typer.Option("--cache", help="Score store (default: beside -o).", parser=non_empty_path),
    ] = None,
    shard: Annotated[str | None, typer.Option(help="This array task's share (auto: SLURM's).")] = None,
    retry_bad_videos: Annotated[
        bool, typer.Option("--retry-bad-videos", help="Decode again videos found bad before.")
    ] = False,
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="The run's manifest (default: beside -o).",
            parser=non_empty_path,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Check what the run needs, plan, predict; load and write nothing."),
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="With --dry-run: the plan as JSON on stdout.")] = False,
    frames_cache: FramesCacheOpt = None,
    devices: Annotated[
        str | None,
        typer.Option(help="This node's GPUs (cuda:0,cuda:1 or all), one worker each: the one-device run."),
    ] = None,
    *,
    scorer: ScorerOptions,  # the model's options (with_scorer_options)
    ranking: RankingOptions,  # with_ranking_options
    verbosity: Verbosity,  # with_verbosity
) -> None:
    """Rerank the top candidates of RUN; write a TREC run to stdout or -o."""
    from rankvideo_cli.jobs.request import RerankInputs, RerankJob, RerankOutputs
    from rankvideo_cli.jobs.rerank import run_rerank

    values = {**locals(), "option_sources": option_sources()}
    job = RerankJob(
        inputs=from_values(RerankInputs, values),
        videos=_required_videos(values),
        ranking=ranking,
        decode=from_values(DecodeOptions, values),
        outputs=from_values(RerankOutputs, values),
        scorer=scorer,
    )
    # the model loads after the inputs validate, and only when a pair is not in the score store
    with verbosity:
        run_rerank(job, stderr)


@user_errors
@with_scorer_options()
def score(
    videos: Annotated[
        list[Path], typer.Argument(help="Video files to score against the query.", parser=non_empty_path)
    ],
    query: Annotated[str, typer.Option("--query", "-q", help="Query text.")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
    *,
    scorer: ScorerOptions,  # the model's options (with_scorer_options)
) -> None:
    """Score ad-hoc (query, video) pairs."""
    from rankvideo_cli.jobs.score import check_score_request, run_score
    from rankvideo_cli.scoring.loading import load_scorer

    check_score_request(query, videos, scorer)
    loaded = load_scorer(scorer)
    failures = run_score(loaded, query, videos, scorer.sampling(), as_json=as_json, console=stderr)
    if failures:
        raise typer.Exit(1)


@user_errors
@with_scorer_options("score_mode")
def explain(
    videos: Annotated[
        list[Path], typer.Argument(help="Video files to explain the query against.", parser=non_empty_path)
    ],
    query: Annotated[str, typer.Option("--query", "-q", help="Query text.")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines (with the score) instead of text.")] = False,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest answer, in tokens.")] = 512,
    temperature: Annotated[
        float | None, typer.Option(help="Sample at this temperature (default: greedy, the same text every time).")
    ] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling (with --temperature).")] = None,
    top_k: Annotated[int | None, typer.Option(help="Top-k sampling (with --temperature).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed for sampling (with --temperature).")] = None,
    *,
    scorer: ScorerOptions,  # the model's options (with_scorer_options)
) -> None:
    """The model's full answer (its reasoning) and score for ad-hoc (query, video) pairs: the scoring prompt and
    frames, greedy decoding unless --temperature, stopping at the end of its turn or --max-new-tokens."""
    from rankvideo_cli.jobs.score import check_explain_request, check_score_request, run_explain
    from rankvideo_cli.scoring.generate import GenerationSettings
    from rankvideo_cli.scoring.loading import load_scorer

    check_score_request(query, videos, scorer)
    check_explain_request(scorer)
    settings = GenerationSettings(max_new_tokens, temperature, top_p, top_k, seed)
    failures = run_explain(
        load_scorer(scorer), query, videos, settings, scorer.sampling(), as_json=as_json, console=stderr
    )
    if failures:
        raise typer.Exit(1)
