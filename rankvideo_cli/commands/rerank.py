"""`rankvideo rerank`: validate every option and output, read the inputs, score (here, or one worker per device),
rank, write, summarise, evaluate; the manifest says how it ended."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from rankvideo_cli.commands.finish import (
    check_bad_video_policy,
    finish_run,
    report_decoding,
)
from rankvideo_cli.commands.inputs import prepare_inputs, report_missing_videos, report_tolerated
from rankvideo_cli.commands.preflight import (
    Named,
    OutputPlan,
    check_at_least,
    check_model_name,
    check_ranking_options,
    check_rankvideo_cache,
    check_tag,
    is_stdout,
    plan_outputs,
)
from rankvideo_cli.errors import UsageError
from rankvideo_cli.io.atomic import OutputWriteError
from rankvideo_cli.messages import say
from rankvideo_cli.pipeline.devices import WorkersInterrupted, parse_devices
from rankvideo_cli.pipeline.manifest import (
    build_manifest,
    write_manifest,
)
from rankvideo_cli.pipeline.request import (
    PreparedInputs,
    RerankRequest,
    anything_to_score,
    job_settings,
)
from rankvideo_cli.pipeline.result import Interrupted, PipelineResult
from rankvideo_cli.pipeline.shards import Shard, parse_shard
from rankvideo_cli.pipeline.store import ScoreStore, check_not_in_use
from rankvideo_cli.progress import make_progress
from rankvideo_cli.scoring.base import Scorer

if TYPE_CHECKING:
    from rankvideo_cli.scoring.options import ScorerOptions
    from rankvideo_cli.videos.frame_cache import FrameCache


def validate_rerank(request: RerankRequest) -> tuple[Shard | None, OutputPlan]:
    """Every option and output location of a rerank, checked before any input is read or model loaded."""
    if request.model is not None:
        check_model_name(request.model)
    check_rankvideo_cache(request.model)
    if str(request.run_path) == "-" and str(request.queries_path) == "-":
        raise UsageError("the run and the queries cannot both be read from stdin (-)")
    if request.videos_root is None:
        raise UsageError("--videos DIR is required: the directory holding the candidate videos")
    if not Path(request.videos_root).is_dir():
        raise UsageError(f"--videos {request.videos_root}: not a directory")
    check_tag(request.tag)
    check_ranking_options(request.depth, request.interpolate, request.normalization)
    check_at_least(request.batch_size, "--batch-size")
    check_at_least(request.decode_workers, "--decode-workers")
    check_at_least(request.prefetch, "--prefetch")
    if request.frames_cache is not None:
        from rankvideo_cli.videos.frame_cache import check_frame_cache

        check_frame_cache(request.frames_cache)
    shard = parse_shard(request.shard)
    if parse_devices(request.devices) is not None:
        if shard is not None:
            raise UsageError("--devices runs every shard itself on this node; drop --shard (or --devices)")
        for name, path in (("run", request.run_path), ("queries", request.queries_path)):
            if str(path) == "-":
                raise UsageError(f"--devices: every worker reads the {name}, so it must be a file, not stdin (-)")
    if shard is not None and not is_stdout(request.output):
        raise UsageError("--shard writes scores to the score store only; build the run with `rankvideo merge`")
    if shard is not None and request.scores_path is not None:
        raise UsageError("--shard writes scores to the score store only; `rankvideo merge --scores` writes them")
    if request.qrels_path is not None:
        from rankvideo_cli.evaluation.measures import check_measures

        check_measures(request.measures)
    inputs = [Named("the run", request.run_path), Named("the queries", request.queries_path)]
    inputs += [Named("--qrels", request.qrels_path)] if request.qrels_path is not None else []
    inputs += [Named("--video-map", request.video_map)] if request.video_map is not None else []
    plan = plan_outputs(
        output=request.output,
        cache_dir=request.cache_dir,
        manifest=request.manifest_path,
        scores=request.scores_path,
        shard=shard,
        inputs=inputs,
    )
    return shard, plan


def run_rerank(
    request: RerankRequest,
    scorer_factory: Callable[[], Scorer],
    console: Console,
    scorer_options: ScorerOptions | None = None,
) -> None:
    """`rankvideo rerank`: validate, score (resumably, video-major), rank, write, summarise, evaluate.

    With `request.devices`, one worker process per device scores its shard (`pipeline/devices.py`, which needs
    `scorer_options` to load the model in each worker) and the run is built from the store.
    The manifest's status is the truth: `complete` only once the run file is written; `interrupted` (a signal)
    or `failed` with the reason otherwise.
    """
    shard, outputs = validate_rerank(request)
    if request.devices is not None and scorer_options is None:
        raise UsageError("--devices needs the scorer's options to start one worker per device")
    request.output = outputs.output
    if request.qrels_path is not None:
        from rankvideo_cli.io.qrels import describe_tolerated, read_qrels

        # fail on bad qrels now, not after hours of scoring
        report_tolerated(console, describe_tolerated(read_qrels(request.qrels_path)))
    # a rerank still writing this store: now, not after the model loads
    check_not_in_use(outputs.store_dir, shard, every_file=request.devices is not None)
    inputs = prepare_inputs(request)
    report_tolerated(console, inputs.run.tolerated.describe(inputs.run.source, 6))
    missing_pairs = report_missing_videos(request, inputs, console)
    if request.dry_run:
        from rankvideo_cli.commands.dryrun import print_plan

        print_plan(request, inputs, outputs, shard, console)
        return
    needs_model = anything_to_score(request, inputs, missing_pairs)
    if needs_model and scorer_options is not None:
        scorer_options.check_available()  # a model that cannot load leaves no store file behind
    on_devices = request.devices is not None and needs_model
    scorer = NothingToScore() if not needs_model else None if on_devices else scorer_factory()
    model_description: dict | None = None  # the workers' (--devices); else the scorer's, when the manifest is written
    result: PipelineResult | None = None
    status, reason = "failed", None

    def manifest(final_status: str, why: str | None) -> None:
        if result is None:
            return
        try:
            write_manifest(
                outputs.manifest,
                build_manifest(
                    result=result,
                    inputs={"run": request.run_path, "queries": request.queries_path},
                    settings=job_settings(request),
                    scorer_fingerprint=model_description if on_devices else describe_scorer(scorer),  # type: ignore[arg-type]
                    runtime={"device": ",".join(result.settings["devices"])} if on_devices else None,
                    status=final_status,
                    reason=why,
                    output=outputs.output,
                ),
            )
        except OutputWriteError as error:
            if final_status == "complete":
                raise
            # the run's own failure is the error to show; this only says the manifest is not there either
            say(console, f"no manifest: {error}")

    # this process writes its own store file: its lock is taken now, before the model loads (--devices: the workers)
    store = ScoreStore(outputs.store_dir, shard) if not on_devices else None
    try:
        if store is not None:
            store.writer  # noqa: B018 (opening the writer takes the lock)
        try:
            if on_devices:
                from rankvideo_cli.pipeline.devices import score_on_devices

                result, model_description = score_on_devices(
                    request,
                    inputs,
                    outputs.store_dir,
                    scorer_options,
                    console,  # type: ignore[arg-type]
                )
            else:
                result = score_here(request, inputs, outputs.store_dir, shard, scorer, console, store)  # type: ignore[arg-type]
        except BaseException as error:
            result = getattr(error, "result", None)
            raise
        if shard is not None:
            say(
                console,
                f"shard {shard}: {result.counts.pairs_scored} pairs scored, "
                f"{result.counts.pairs_cached} cached; scores in {outputs.store_dir} (merge with `rankvideo merge`)",
            )
            report_decoding(result, console)
            check_bad_video_policy(result, request.on_bad_video)
        else:
            check_bad_video_policy(result, request.on_bad_video)
            finish_run(request, inputs, result, console)
        status = "complete"
    except (Interrupted, WorkersInterrupted) as error:
        status, reason = "interrupted", str(error)
        raise
    except KeyboardInterrupt:
        status, reason = "interrupted", "KeyboardInterrupt"
        raise
    except BaseException as error:
        reason = str(error) or type(error).__name__
        raise
    finally:
        manifest(status, reason)
        if store is not None:
            store.close()


def score_here(
    request: RerankRequest,
    inputs: PreparedInputs,
    store_dir: Path,
    shard: Shard | None,
    scorer: Scorer,
    console: Console,
    store: ScoreStore | None = None,
) -> PipelineResult:
    """Score in this process, on the scorer's one device, into the score store `store_dir` (`store`: already
    opened by the caller, who closes it)."""
    from rankvideo_cli.pipeline.score import score_pairs
    from rankvideo_cli.videos.config import SamplingConfig

    with contextlib.nullcontext(store) if store is not None else ScoreStore(store_dir, shard) as store:
        return score_pairs(
            inputs.scored_run,
            inputs.queries,
            inputs.resolver,
            scorer,
            SamplingConfig(),
            store,
            depth=request.depth,
            shard=shard,
            decode_workers=request.decode_workers,
            prefetch=request.prefetch,
            retry_bad_videos=request.retry_bad_videos,
            progress=make_progress(console),
            frame_cache=open_frame_cache(request.frames_cache),
        )


def open_frame_cache(directory: Path | None) -> FrameCache | None:
    if directory is None:
        return None
    from rankvideo_cli.videos.frame_cache import FrameCache

    return FrameCache(directory, writable=False)


class NothingToScore:
    """Stands in for the model when no candidate within depth has a video file: never asked to score."""

    def fingerprint(self) -> dict[str, str]:
        return {"model": "none: no candidate within depth has a video file, so no model was loaded"}

    def score_video(self, queries, video):  # type: ignore[no-untyped-def]
        raise AssertionError("NothingToScore was asked to score a video")


def describe_scorer(scorer: Scorer) -> dict:
    describe = getattr(scorer, "describe", None)
    return describe() if callable(describe) else scorer.fingerprint()
