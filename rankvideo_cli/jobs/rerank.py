"""`rerank`: validate the job, read the inputs, score (here, or one worker per device), rank, write, summarise,
evaluate; the manifest says how it ended. The job is a `RerankJob` (`jobs/request.py`); the command line, the
device workers, the PyTerrier reranker and Python callers all come through `run_rerank` or its steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console

from rankvideo_cli.errors import UsageError
from rankvideo_cli.io.atomic import OutputWriteError
from rankvideo_cli.jobs.devices import WorkersInterrupted, parse_devices
from rankvideo_cli.jobs.finish import check_bad_video_policy, finish_run, report_decoding
from rankvideo_cli.jobs.inputs import prepare_inputs, report_missing_videos, report_tolerated
from rankvideo_cli.jobs.preflight import Named, OutputPlan, check_rankvideo_cache, is_stdout
from rankvideo_cli.jobs.request import RerankJob
from rankvideo_cli.messages import plural, say
from rankvideo_cli.options import DecodeOptions
from rankvideo_cli.pipeline.manifest import build_manifest, write_manifest
from rankvideo_cli.pipeline.request import PreparedInputs, anything_to_score
from rankvideo_cli.pipeline.result import Interrupted, PipelineResult
from rankvideo_cli.pipeline.shards import Shard, parse_shard
from rankvideo_cli.pipeline.store import ScoreStore, check_not_in_use
from rankvideo_cli.progress import make_progress
from rankvideo_cli.scoring.base import PairScore, Scorer
from rankvideo_cli.scoring.deferred import DeferredScorer
from rankvideo_cli.scoring.loading import check_model_available
from rankvideo_cli.scoring.rerankers import Selection

if TYPE_CHECKING:
    from rankvideo_cli.videos.config import SamplingConfig
    from rankvideo_cli.videos.frames import SampledVideo


def validate_rerank(job: RerankJob) -> tuple[Shard | None, OutputPlan]:
    """The checks that span the job's groups (each group checked its own values when it was made), and every
    output location: before any input is read or model loaded."""
    job.scorer.check()
    check_rankvideo_cache(job.scorer.model)
    inputs, outputs = job.inputs, job.outputs
    if str(inputs.run) == "-" and str(inputs.queries) == "-":
        raise UsageError("the run and the queries cannot both be read from stdin (-)")
    if job.decode.frames_cache is not None:
        from rankvideo_cli.videos.frame_cache import check_frame_cache

        check_frame_cache(job.decode.frames_cache)
    shard = parse_shard(outputs.shard)
    if parse_devices(outputs.devices) is not None:
        if shard is not None:
            raise UsageError("--devices runs every shard itself on this node; drop --shard (or --devices)")
        for name, path in (("run", inputs.run), ("queries", inputs.queries)):
            if str(path) == "-":
                raise UsageError(f"--devices: every worker reads the {name}, so it must be a file, not stdin (-)")
        if job.scorer.device is not None:
            raise UsageError("--device and --devices: give one of them")
    if shard is not None and not is_stdout(outputs.output):
        raise UsageError("--shard writes scores to the score store only; build the run with `rankvideo merge`")
    if shard is not None and outputs.scores is not None:
        raise UsageError("--shard writes scores to the score store only; `rankvideo merge --scores` writes them")
    if inputs.qrels is not None:
        from rankvideo_cli.evaluation.measures import check_measures

        check_measures(inputs.measures)
    named = inputs.named()
    named += [Named("--video-map", job.videos.video_map)] if job.videos.video_map is not None else []
    return shard, outputs.plan(shard, named, job.scorer.selection().reranker.name)


def run_rerank(job: RerankJob, console: Console, scorer_factory: Callable[[], Scorer] | None = None) -> None:
    """Validate, score (resumably, video-major), rank, write, summarise, evaluate.

    The model is `job.scorer`, loaded only when a pair is not in the score store (`scorer_factory` replaces it:
    a test's fake scorer). With `job.outputs.devices`, one worker process per device scores its shard
    (`jobs/devices.py`) and the run is built from the store. The manifest's status is the truth: `complete`
    only once the run file is written; `interrupted` (a signal) or `failed` with the reason otherwise.
    """
    shard, outputs = validate_rerank(job)
    if job.inputs.qrels is not None:
        from rankvideo_cli.io.qrels import describe_tolerated, read_qrels

        # fail on bad qrels now, not after hours of scoring
        report_tolerated(console, describe_tolerated(read_qrels(job.inputs.qrels)))
    # a rerank still writing this store: now, not after the model loads
    check_not_in_use(outputs.store_dir, shard, every_file=job.outputs.devices is not None)
    selection = job.scorer.selection()
    if selection.note:
        say(console, selection.note)
    inputs = prepare_inputs(job)
    report_tolerated(console, inputs.run.tolerated.describe(inputs.run.source, 6))
    missing_pairs = report_missing_videos(inputs, job.ranking, job.videos, console)
    if job.outputs.dry_run:
        from rankvideo_cli.jobs.dryrun import print_plan

        print_plan(job, inputs, outputs, shard, console)
        return
    needs_model = anything_to_score(job.ranking.depth, inputs, missing_pairs)
    if needs_model and scorer_factory is None:
        check_model_available(job.scorer)  # a model that cannot load leaves no store file behind
    on_devices = job.outputs.devices is not None and needs_model
    scorer: Scorer | None = None
    if not needs_model:
        scorer = NothingToScore()
    elif not on_devices:
        scorer = scorer_factory() if scorer_factory is not None else DeferredScorer(job.scorer)
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
                    inputs={"run": job.inputs.run, "queries": job.inputs.queries},
                    settings=job.settings(),
                    scorer_fingerprint=model_description if scorer is None else describe_scorer(scorer),
                    reranker=describe_reranker(selection, result),
                    options_from=job.outputs.option_sources,
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
    store = ScoreStore(outputs.store_dir, shard) if scorer is not None else None
    try:
        if store is not None:
            store.writer  # noqa: B018 (opening the writer takes the lock)
        try:
            if scorer is not None and store is not None:
                result = score_here(
                    inputs, job.ranking.depth, job.decode, job.scorer.sampling(), store, scorer, console
                )
            else:
                from rankvideo_cli.jobs.devices import score_on_devices

                result, model_description = score_on_devices(job, inputs, outputs.store_dir, console)
        except BaseException as error:
            result = getattr(error, "result", None)
            raise
        if shard is not None:
            say(
                console,
                f"shard {shard}: {plural(result.counts.pairs_scored, 'pair')} scored, "
                f"{result.counts.pairs_cached} cached; scores in {outputs.store_dir} (merge with `rankvideo merge`)",
            )
            report_decoding(result, console, job.scorer.selection().reranker.name)
            check_bad_video_policy(result, job.ranking.on_bad_video)
        else:
            finish_run(job, outputs, inputs, result, console)  # the bad-video policy is checked there
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
    inputs: PreparedInputs,
    depth: int,
    decode: DecodeOptions,
    sampling: SamplingConfig,
    store: ScoreStore,
    scorer: Scorer,
    console: Console,
) -> PipelineResult:
    """Score the top `depth` candidates in this process, on the scorer's one device, with its reranker's frames
    (`sampling`), into `store` (opened by the caller, who closes it)."""
    from rankvideo_cli.pipeline.score import score_pairs

    return score_pairs(
        inputs.pairs(depth), scorer, store, decode=decode, sampling=sampling, progress=make_progress(console)
    )


def describe_reranker(selection: Selection, result: PipelineResult | None) -> dict:
    """The manifest's `reranker`: its name, what chose it, and for a reranker that fits long videos into its
    token budget, how many of this run's videos it fitted."""
    described: dict = selection.describe()
    if result is not None and selection.reranker.sampling.fit_total_pixels is not None:
        described["videos_fitted"] = result.counts.videos_fitted
    return described


class NothingToScore:
    """Stands in for the model when no candidate within depth has a video file: never asked to score."""

    def fingerprint(self) -> dict[str, str]:
        return {"model": "none: no candidate within depth has a video file, so no model was loaded"}

    def score_video(self, queries: list[str], video: SampledVideo) -> list[PairScore]:
        raise AssertionError("NothingToScore was asked to score a video")


def describe_scorer(scorer: Scorer) -> dict:
    describe = getattr(scorer, "describe", None)
    return describe() if callable(describe) else scorer.fingerprint()
