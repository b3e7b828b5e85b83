"""The commands' use cases, as plain functions: read and validate inputs, run the pipeline, rank, write, report.

`cli.py` only parses options and calls these; everything here is usable (and tested) from Python.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rankvideo_cli.errors import InputError, RankVideoError, UsageError
from rankvideo_cli.io.atomic import OutputWriteError, atomic_write_text, write_output_chunks, write_stdout
from rankvideo_cli.io.queries import find_missing_queries, read_queries
from rankvideo_cli.io.runs import Run, iter_trec_chunks, read_run, read_run_scores
from rankvideo_cli.io.text import display_name
from rankvideo_cli.manifest import (
    build_manifest,
    describe_input,
    read_shard_manifests,
    shared_shard_settings,
    write_manifest,
)
from rankvideo_cli.pipeline import (
    BAD_VIDEO,
    MISSING_VIDEO,
    Interrupted,
    PipelineResult,
    decode_wait_advice,
    decode_wait_share,
    summarize_bad_videos,
)
from rankvideo_cli.preflight import (
    Named,
    OutputPlan,
    check_at_least,
    check_model_name,
    check_output_file,
    check_ranking_options,
    check_rankvideo_cache,
    check_regular_input,
    check_tag,
    is_stdout,
    parse_devices,
    plan_outputs,
)
from rankvideo_cli.progress import StepProgress, make_progress
from rankvideo_cli.ranking import (
    BELOW_DEPTH,
    RERANKED,
    UNSCORED,
    RankedDoc,
    rerank,
)
from rankvideo_cli.scoring.base import Scorer
from rankvideo_cli.shards import Shard, parse_shard
from rankvideo_cli.store import ScoreStore, check_not_in_use
from rankvideo_cli.videos import VideoResolver
from rankvideo_cli.workers import WorkersInterrupted

if TYPE_CHECKING:
    from rankvideo_cli.evaluate import EvalReport
    from rankvideo_cli.frame_cache import FrameCache
    from rankvideo_cli.scoring.options import ScorerOptions


@dataclass
class RerankRequest:
    run_path: Path
    queries_path: Path
    videos_root: Path | None = None
    video_pattern: str = "{docid}.mp4"
    multivent: bool = False
    video_map: Path | None = None
    output: Path | None = None
    tag: str = "rankvideo"
    depth: int = 100
    interpolate: float | None = None
    normalization: str = "minmax"
    on_missing_video: str = "keep"
    on_bad_video: str = "keep"
    missing_query: str = "error"
    scores_path: Path | None = None
    qrels_path: Path | None = None
    measures: Sequence[str] | None = None
    decode_workers: int | None = None
    prefetch: int | None = None
    cache_dir: Path | None = None
    shard: str | None = None
    retry_bad_videos: bool = False
    manifest_path: Path | None = None
    batch_size: int | None = None  # validated here; the scorer factory uses it
    model: str | None = None  # likewise (a near miss of tiny-random is refused at once)
    dry_run: bool = False
    frames_cache: Path | None = None  # sampled frames written by `rankvideo sample` (read only)
    devices: str | None = None  # one worker process per device (workers.py); None: this process, one device


class MemoResolver:
    """Resolves each docid once (a file-system stat on a cluster filesystem is not free), and keeps the first
    few missing docids' explanations (the paths tried) for the report."""

    def __init__(self, resolver: VideoResolver) -> None:
        self.resolver = resolver
        self._seen: dict[str, Path | None] = {}
        self.missing_examples: list[str] = []  # the first few missing docids' explanations

    def resolve(self, docid: str) -> Path | None:
        if docid not in self._seen:
            resolution = self.resolver.lookup(docid)
            self._seen[docid] = resolution.path
            if resolution.path is None and len(self.missing_examples) < 3:
                self.missing_examples.append(resolution.reason)
        return self._seen[docid]


@dataclass
class PreparedInputs:
    run: Run
    queries: dict[str, str]
    scored_run: dict[str, list]  # the run without the queries that have no text (--missing-query skip)
    skipped_queries: list[str]
    resolver: MemoResolver


def prepare_inputs(request: RerankRequest) -> PreparedInputs:
    """Read and validate every input before any model is loaded: bad input fails in a second, not an hour."""
    if request.videos_root is None:
        raise UsageError("--videos DIR is required: the directory holding the candidate videos")
    check_tag(request.tag)
    run = read_run(request.run_path)
    queries = read_queries(request.queries_path)
    missing = find_missing_queries(run, queries)
    if missing and request.missing_query == "error":
        raise InputError(
            request.run_path,
            run.first_line.get(missing[0]),
            f"query {missing[0]!r} is not in {request.queries_path} ({len(missing)} run queries have no text; "
            "--missing-query skip keeps them in first-stage order)",
        )
    resolver = build_resolver(request)
    skipped = set(missing)
    scored_run = {qid: candidates for qid, candidates in run.items() if qid not in skipped}
    return PreparedInputs(run, queries, scored_run, missing, resolver)


def build_resolver(request: RerankRequest) -> MemoResolver:
    """The docid -> video lookup of `--videos`, `--video-pattern`, `--multivent` and `--video-map`."""
    return MemoResolver(
        VideoResolver(
            request.videos_root,  # type: ignore[arg-type]
            pattern=request.video_pattern,
            video_map=request.video_map,
            multivent=request.multivent,
        )
    )


def anything_to_score(request: RerankRequest, inputs: PreparedInputs, missing_pairs: int) -> bool:
    """Whether some pair within depth has a video file: when none has, no model is loaded (seconds, not a GPU
    start)."""
    within_depth = sum(min(request.depth, len(candidates)) for candidates in inputs.scored_run.values())
    return missing_pairs < within_depth


def count_missing_videos(inputs: PreparedInputs, depth: int) -> tuple[int, int]:
    """(candidates within depth without a video file, their distinct docids)."""
    within = Counter(candidate.docid for candidates in inputs.scored_run.values() for candidate in candidates[:depth])
    resolve = inputs.resolver.resolve
    missing = [docid for docid in within if resolve(docid) is None]  # each distinct docid resolved once
    return sum(within[docid] for docid in missing), len(missing)


def _scores_jsonl(result: PipelineResult) -> str:
    lines = []
    for (qid, docid), score in sorted(result.scores.items()):
        outcome = result.outcomes.get((qid, docid))
        record = {"qid": qid, "docid": docid, "video": outcome.video if outcome else None, **score.to_dict()}
        lines.append(json.dumps(record, sort_keys=True))
    return "".join(line + "\n" for line in lines)


def drop_set(result: PipelineResult, on_missing_video: str, on_bad_video: str) -> set[tuple[str, str]]:
    statuses = [MISSING_VIDEO] * (on_missing_video == "drop") + [BAD_VIDEO] * (on_bad_video == "drop")
    return result.pairs_with(*statuses) if statuses else set()


def check_bad_video_policy(result: PipelineResult, on_bad_video: str) -> None:
    if on_bad_video == "error" and result.bad_videos:
        raise RankVideoError(
            f"{summarize_bad_videos(result)}; scores of the good videos are saved in {result.store_dir} "
            "(--on-bad-video keep or drop to write the run anyway)"
        )


def print_summary(
    console: Console,
    inputs: PreparedInputs,
    result: PipelineResult,
    ranked: dict[str, list[RankedDoc]],
    request_like: RerankRequest,
) -> None:
    provenance = count_provenance(ranked)
    written = sum(provenance.values())
    dropped = inputs.run.pair_count - written
    counts = result.counts
    parts = [
        f"{len(inputs.run)} queries, {inputs.run.pair_count} candidates in",
        f"{written} written ({provenance[RERANKED]} reranked, {provenance[UNSCORED]} unscored kept in "
        f"first-stage order, {provenance[BELOW_DEPTH]} below depth {request_like.depth})",
        f"{counts.pairs_scored} pairs scored now, {counts.pairs_cached} from the score store",
        f"{counts.pairs_missing_video} pairs without a video file ({request_like.on_missing_video})",
        f"{counts.pairs_bad_video} pairs with a bad video ({request_like.on_bad_video})",
    ]
    if dropped:
        parts.append(f"{dropped} candidates dropped as asked")
    if inputs.skipped_queries:
        parts.append(
            f"{len(inputs.skipped_queries)} queries without text kept in first-stage order "
            f"({', '.join(inputs.skipped_queries[:5])})"
        )
    console.print("rankvideo: " + "; ".join(parts), markup=False, soft_wrap=True)
    if result.bad_videos:
        console.print("rankvideo: " + summarize_bad_videos(result), markup=False, soft_wrap=True)
    _report_decoding(result, console)


def _report_decoding(result: PipelineResult, console: Console) -> None:
    """Where the decoded videos came from, how long the model waited for them, and the fix when too long."""
    counts, timings = result.counts, result.timings
    if not counts.videos_decoded:
        return
    from_cache = (
        f", {counts.videos_from_frame_cache} of them from the frame cache"
        + (f" ({counts.frame_cache_corrupt} damaged entries decoded instead)" if counts.frame_cache_corrupt else "")
        if result.settings.get("frame_cache")
        else ""
    )
    console.print(
        f"rankvideo: {counts.videos_decoded} videos sampled{from_cache}; the model waited "
        f"{timings.wait_s:.1f} s for them ({decode_wait_share(timings):.0%} of its time)",
        markup=False,
        soft_wrap=True,
    )
    advice = decode_wait_advice(result)
    if advice is not None:
        console.print(f"rankvideo: {advice}", markup=False, soft_wrap=True)


def _finish(
    request: RerankRequest,
    inputs: PreparedInputs,
    result: PipelineResult,
    console: Console,
) -> dict[str, list[RankedDoc]]:
    """Rank, write the run (atomically) and the raw scores, print the summary and the evaluation."""
    ranked = rerank(
        inputs.run,
        result.model_scores(),
        depth=request.depth,
        interpolate=request.interpolate,
        normalization=request.normalization,
        drop=drop_set(result, request.on_missing_video, request.on_bad_video),
    )
    write_output_chunks(iter_trec_chunks(ranked, request.tag), request.output)
    if request.scores_path is not None:
        atomic_write_text(request.scores_path, _scores_jsonl(result))
    print_summary(console, inputs, result, ranked, request)
    if request.qrels_path is not None:
        _evaluate_against_first_stage(ranked, inputs.run, request.qrels_path, request.measures, console)
    return ranked


def _evaluate_against_first_stage(
    ranked: dict[str, list[RankedDoc]], run: Run, qrels: Path, measures: Sequence[str] | None, console: Console
) -> None:
    """The reranked run against the first stage it came from, as a table on stderr."""
    from rankvideo_cli.evaluate import evaluate, render_table
    from rankvideo_cli.io.qrels import read_qrels

    report = evaluate(
        {qid: {doc.docid: doc.score for doc in docs} for qid, docs in ranked.items()},
        read_qrels(qrels),
        measures,
        baseline={qid: {c.docid: c.score for c in candidates} for qid, candidates in run.items()},
        run_name="reranked",
        baseline_name="first stage",
    )
    render_table(report, console)


def count_provenance(ranked: dict[str, list[RankedDoc]]) -> Counter[str]:
    """How many written lines are RERANKED, UNSCORED and BELOW_DEPTH."""
    return Counter(map(itemgetter(2), itertools.chain.from_iterable(ranked.values())))  # RankedDoc.provenance


def _job_settings(request: RerankRequest) -> dict:
    """Options every shard of an array must share (merge checks them)."""
    return {
        "depth": request.depth,
        "interpolate": request.interpolate,
        "normalization": request.normalization,
        "tag": request.tag,
        "on_missing_video": request.on_missing_video,
        "on_bad_video": request.on_bad_video,
        "missing_query": request.missing_query,
        "videos": inputs_description(request),
    }


def inputs_description(request: RerankRequest) -> dict:
    return {
        "root": str(request.videos_root),
        "pattern": None if request.video_map or request.multivent else request.video_pattern,
        "multivent": request.multivent,
        "video_map": str(request.video_map) if request.video_map else None,
    }


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
        from rankvideo_cli.frame_cache import check_frame_cache

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
        from rankvideo_cli.evaluate import check_measures

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

    With `request.devices`, one worker process per device scores its shard (`workers.py`, which needs
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
        from rankvideo_cli.dryrun import print_plan

        print_plan(request, inputs, outputs, shard, console)
        return
    needs_model = anything_to_score(request, inputs, missing_pairs)
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
                    settings=_job_settings(request),
                    scorer_fingerprint=model_description if on_devices else _describe_scorer(scorer),  # type: ignore[arg-type]
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
            console.print(f"rankvideo: no manifest: {error}", markup=False, soft_wrap=True)

    # this process writes its own store file: its lock is taken now, before the model loads (--devices: the workers)
    store = ScoreStore(outputs.store_dir, shard) if not on_devices else None
    try:
        if store is not None:
            store.writer  # noqa: B018 (opening the writer takes the lock)
        try:
            if on_devices:
                from rankvideo_cli.workers import score_on_devices

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
            console.print(
                f"rankvideo: shard {shard}: {result.counts.pairs_scored} pairs scored, "
                f"{result.counts.pairs_cached} cached; scores in {outputs.store_dir} (merge with `rankvideo merge`)",
                markup=False,
                soft_wrap=True,
            )
            _report_decoding(result, console)
            check_bad_video_policy(result, request.on_bad_video)
        else:
            check_bad_video_policy(result, request.on_bad_video)
            _finish(request, inputs, result, console)
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
    from rankvideo_cli.pipeline import score_pairs
    from rankvideo_cli.sampling_config import SamplingConfig

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
            frame_cache=_open_frame_cache(request.frames_cache),
        )


def _open_frame_cache(directory: Path | None) -> FrameCache | None:
    if directory is None:
        return None
    from rankvideo_cli.frame_cache import FrameCache

    return FrameCache(directory, writable=False)


class NothingToScore:
    """Stands in for the model when no candidate within depth has a video file: never asked to score."""

    def fingerprint(self) -> dict[str, str]:
        return {"model": "none: no candidate within depth has a video file, so no model was loaded"}

    def score_video(self, queries, video):  # type: ignore[no-untyped-def]
        raise AssertionError("NothingToScore was asked to score a video")


def report_missing_videos(request: RerankRequest, inputs: PreparedInputs, console: Console) -> int:
    """Report (or, with --on-missing-video error, refuse) the candidates without a video; their pair count."""
    missing_pairs, missing_docids = count_missing_videos(inputs, request.depth)
    if not missing_pairs:
        return 0
    rejected = inputs.resolver.resolver.rejected
    # a docid that cannot name a file under the root is never opened; say why, not just "missing"
    why = f"; {len(rejected)} of them rejected ({next(iter(rejected.values()))})" if rejected else ""
    examples = inputs.resolver.missing_examples
    tried = f"; e.g. {'; '.join(examples)}" if examples else ""
    if request.on_missing_video == "error":
        raise RankVideoError(
            f"{missing_docids} candidate videos are missing under {request.videos_root} "
            f"({missing_pairs} pairs{why}{tried}); --on-missing-video keep or drop to go on without them"
        )
    console.print(
        f"rankvideo: {missing_docids} candidate videos have no file under {request.videos_root} "
        f"({missing_pairs} pairs within depth{why}{tried}): {request.on_missing_video}",
        markup=False,
        soft_wrap=True,
    )
    return missing_pairs


def _describe_scorer(scorer: Scorer) -> dict:
    describe = getattr(scorer, "describe", None)
    return describe() if callable(describe) else scorer.fingerprint()


def run_merge(
    run: Path,
    queries: Path,
    cache: Path,
    *,
    output: Path | None,
    allow_missing: bool,
    qrels: Path | None,
    measures: Sequence[str] | None,
    console: Console,
    scores: Path | None = None,
    force: bool = False,
) -> None:
    """`rankvideo merge`: the shards' stores -> the final run, with the options the shards ran with.

    The run and queries must be the very files the shards read (their checksums are in the shard manifests):
    merging another run's stores would write a run of scores for other candidates. `force` skips that check.
    """
    from rankvideo_cli.evaluate import check_measures
    from rankvideo_cli.pipeline import merge_scores

    if not cache.is_dir():
        raise UsageError(f"--cache {cache}: not a directory")
    if qrels is not None:
        check_measures(measures)
    sources = [Named("the run", run), Named("the queries", queries)]
    sources += [Named("--qrels", qrels)] if qrels is not None else []
    manifest_path = None if not is_stdout(output) else cache / "merge.manifest.json"
    outputs = plan_outputs(
        output=output, cache_dir=cache, manifest=manifest_path, scores=scores, shard=None, inputs=sources
    )
    shared = shared_shard_settings(read_shard_manifests(cache), cache)
    settings = shared.get("settings") or {}
    videos = settings.get("videos") or {}
    if not videos.get("root"):
        raise UsageError(f"{cache}: no shard manifest found; run the shards with `rankvideo rerank --shard`")
    if shared.get("incomplete_shards") and not allow_missing:
        console.print(f"rankvideo: shards {', '.join(shared['incomplete_shards'])} did not finish", markup=False)
    request = RerankRequest(
        run_path=run,
        queries_path=queries,
        videos_root=Path(videos["root"]),
        video_pattern=videos.get("pattern") or "{docid}.mp4",
        multivent=bool(videos.get("multivent")),
        video_map=Path(videos["video_map"]) if videos.get("video_map") else None,
        output=output,
        tag=settings.get("tag", "rankvideo"),
        depth=settings.get("depth", 100),
        interpolate=settings.get("interpolate"),
        normalization=settings.get("normalization", "minmax"),
        on_missing_video=settings.get("on_missing_video", "keep"),
        on_bad_video=settings.get("on_bad_video", "keep"),
        missing_query=settings.get("missing_query", "error"),
        qrels_path=qrels,
        measures=measures,
        cache_dir=cache,
        scores_path=scores,
    )
    request.output = outputs.output
    inputs = prepare_inputs(request)
    if not force:
        _check_same_inputs(shared.get("inputs") or {}, {"run": run, "queries": queries}, cache)
    result = merge_scores(
        inputs.scored_run,
        inputs.queries,
        inputs.resolver,
        ScoreStore(cache),
        depth=request.depth,
        model_fingerprint=shared.get("model_fingerprint"),
        settings_fingerprint=shared.get("sampling_fingerprint"),
        allow_missing=allow_missing,
    )
    check_bad_video_policy(result, request.on_bad_video)
    _finish(request, inputs, result, console)
    write_manifest(
        outputs.manifest,
        build_manifest(
            result=result,
            inputs={"run": run, "queries": queries},
            settings=_job_settings(request),
            scorer_fingerprint=None,
            output=outputs.output,
        ),
    )


def _check_same_inputs(recorded: dict, given: dict[str, Path], cache: Path) -> None:
    """`UsageError` when merge's run or queries differ from the files the shards read (by sha256)."""
    for name, path in given.items():
        theirs = (recorded.get(name) or {}).get("sha256")
        ours = (describe_input(path) or {}).get("sha256")
        if theirs and ours and theirs != ours:
            raise UsageError(
                f"{path} is not the {name} the shards in {cache} were run with (sha256 {ours[:12]}, the shard "
                f"manifests say {theirs[:12]}): merge with the same {name} file, or --force to merge anyway"
            )


def _run_names(paths: Sequence[Path], baseline: Path | None) -> list[str]:
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


def report_tolerated(console: Console, *lines: str | None) -> None:
    """One stderr line per input file that had lines trec_eval 10.0 tolerates and a strict reader would not."""
    for line in lines:
        if line:
            console.print(f"rankvideo: {line}", markup=False, soft_wrap=True)


def run_eval(
    runs: Sequence[Path] | Path,
    qrels: Path,
    *,
    baseline: Path | None,
    measures: Sequence[str] | None,
    per_query: bool,
    fmt: str,
    correction: str = "holm",
    console: Console | None = None,
) -> EvalReport:
    """`rankvideo eval`: ir-measures on each RUN (and BASELINE); table to the terminal, other formats to stdout."""
    from rankvideo_cli.evaluate import CORRECTIONS, evaluate_runs, format_report, parse_measure_specs, render_table
    from rankvideo_cli.io.qrels import describe_tolerated, read_qrels

    console = console or Console(stderr=True, highlight=False)
    paths = [runs] if isinstance(runs, Path) else list(runs)
    if correction not in CORRECTIONS:
        raise UsageError(f"--correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    if sum(str(path) == "-" for path in [*paths, baseline]) > 1:
        raise UsageError("only one run can be read from stdin (-)")
    parse_measure_specs(measures)  # an unknown measure fails before any file is read
    judged = read_qrels(qrels)
    report_tolerated(console, describe_tolerated(judged))
    names = _run_names(paths, baseline)
    scores = []
    for path in [*paths, *([baseline] if baseline is not None else [])]:
        run = read_run_scores(path)
        report_tolerated(console, run.tolerated.describe(run.source, 6))
        scores.append(run)
    compared = list(zip(names[: len(paths)], scores[: len(paths)], strict=True))
    report = evaluate_runs(
        compared,
        judged,
        measures,
        baseline=(names[-1], scores[-1]) if baseline is not None else None,
        correction=correction,
    )
    if fmt == "table":
        render_table(report, Console(highlight=False), per_query=per_query)
    else:
        write_stdout(format_report(report, fmt, per_query=per_query))
    return report


def run_tune(
    run_path: Path,
    qrels_path: Path,
    scores_path: Path,
    *,
    measure: str,
    alphas: str,
    normalizations: str,
    folds: int,
    seed: int,
    depth: int,
    output: Path | None,
    tag: str,
    fmt: str,
    console: Console,
    reference_model: str | None = None,
):
    """`rankvideo tune`: the cross-validated interpolation sweep (`fusion`), a report, the interpolated run."""
    from rankvideo_cli import fusion
    from rankvideo_cli.evaluate import as_qrels_dict, parse_measure_specs
    from rankvideo_cli.io.qrels import describe_tolerated, read_qrels

    if fmt not in ("table", "json"):
        raise UsageError(f"--format must be table or json for tune, got {fmt!r}")
    check_tag(tag)
    alpha_values = fusion.parse_alphas(alphas)
    normalization_names = [name.strip() for name in normalizations.split(",")]
    fusion.grid(alpha_values, normalization_names)  # a bad grid is refused before any file is read
    parse_measure_specs([measure])
    sources = [Named("the run", run_path), Named("the qrels", qrels_path), Named("--scores", scores_path)]
    check_output_file(output, sources)
    judged = read_qrels(qrels_path)
    report_tolerated(console, describe_tolerated(judged))
    run = read_run(run_path)
    report_tolerated(console, run.tolerated.describe(run.source, 6))
    model_scores = fusion.read_model_scores(scores_path, reference_model)
    unknown = [pair for pair in model_scores if pair[0] not in run]
    if unknown:
        raise InputError(scores_path, None, f"scores for query {unknown[0][0]!r}, which is not in {run.source}")
    result = fusion.sweep(
        run,
        model_scores,
        as_qrels_dict(judged),
        measure=measure,
        alphas=alpha_values,
        normalizations=normalization_names,
        depth=depth,
        folds=folds,
        seed=seed,
        on_config=StepProgress(console, "tune: configurations evaluated"),
    )
    if output is not None:
        ranked = fusion.cross_validated_run(run, model_scores, result, depth=depth)
        write_output_chunks(iter_trec_chunks(ranked, tag), output)
    if fmt == "json":
        write_stdout(json.dumps(fusion.sweep_dict(result), indent=2, allow_nan=False) + "\n")
    else:
        _print_sweep(result, Console(highlight=False))
    chosen = result.chosen_on_all
    console.print(
        f"rankvideo: cross-validated {result.measure} {result.cross_validated:.4f} over {len(result.fold_of)} "
        f"judged queries in {folds} folds; on all queries: --interpolate {chosen.alpha:g} "
        f"--normalization {chosen.normalization}" + (f"; interpolated run written to {output}" if output else ""),
        markup=False,
        soft_wrap=True,
    )
    return result


def run_rank(
    run_path: Path,
    scores_path: Path,
    *,
    reference_model: str | None,
    output: Path | None,
    tag: str,
    depth: int,
    interpolate: float | None,
    normalization: str,
    qrels: Path | None,
    measures: Sequence[str] | None,
    console: Console,
) -> dict[str, list[RankedDoc]]:
    """`rankvideo rank`: a run reranked with stored scores (a `--scores` JSONL, or the reference's per-video
    files), exactly as `rerank` ranks (depth, unscored tail, interpolation, tie-consistent scores); no model."""
    from rankvideo_cli import fusion

    check_tag(tag)
    check_ranking_options(depth, interpolate, normalization)
    sources = [Named("the run", run_path), Named("--scores", scores_path)]
    if qrels is not None:
        from rankvideo_cli.evaluate import check_measures

        check_measures(measures)
        sources.append(Named("--qrels", qrels))
    check_output_file(output, sources)
    run = read_run(run_path)
    report_tolerated(console, run.tolerated.describe(run.source, 6))
    model_scores = fusion.read_model_scores(scores_path, reference_model)
    ranked = rerank(run, model_scores, depth=depth, interpolate=interpolate, normalization=normalization)
    write_output_chunks(iter_trec_chunks(ranked, tag), output)
    provenance = count_provenance(ranked)
    outside = sum(1 for qid, _docid in model_scores if qid not in run)
    console.print(
        f"rankvideo: {len(run)} queries, {run.pair_count} candidates; {provenance[RERANKED]} reranked with the "
        f"stored scores, {provenance[UNSCORED]} within depth {depth} without a score kept in first-stage order, "
        f"{provenance[BELOW_DEPTH]} below depth"
        + (f"; {outside} stored scores are for queries not in the run (ignored)" if outside else ""),
        markup=False,
        soft_wrap=True,
    )
    if qrels is not None:
        _evaluate_against_first_stage(ranked, run, qrels, measures, console)
    return ranked


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


def check_score_request(query: str, videos: Sequence[Path], batch_size: int | None, model: str | None = None) -> None:
    """`rankvideo score`'s arguments, before the model loads."""
    if model is not None:
        check_model_name(model)
    check_rankvideo_cache(model)
    if not query.strip():
        raise UsageError("--query is empty: give the text to score the videos against")
    check_at_least(batch_size, "--batch-size")
    for video in videos:
        check_regular_input(video, "VIDEO")


def score_videos(scorer: Scorer, query: str, videos: Sequence[Path]) -> list[dict]:
    """One row per video: path, the model card's score fields, or the reason the video could not be scored."""
    from rankvideo_cli.frames import SamplingConfig, VideoError, sample_video

    rows: list[dict] = []
    for path in videos:
        try:
            sampled = sample_video(path, SamplingConfig())
        except VideoError as error:
            rows.append({"video": str(path), "error": str(error), "error_kind": error.kind})
            continue
        (pair_score,) = scorer.score_video([query], sampled)
        rows.append({"video": str(path), **pair_score.to_dict()})
    return rows


def run_score(scorer: Scorer, query: str, videos: Sequence[Path], *, as_json: bool, console: Console) -> int:
    """Print one row per video (table or JSON lines on stdout); returns the number of unscorable videos."""
    rows = score_videos(scorer, query, videos)
    if as_json:
        for row in rows:
            write_stdout(json.dumps(row, sort_keys=True) + "\n")
    else:
        table = Table(title=f"query: {query}", title_justify="left")
        # a path is data: folded, never cut to the terminal width, and never read as rich markup
        table.add_column("video", justify="left", overflow="fold")
        for column in ("logit_delta", "p_yes", "logprob_yes", "logprob_no"):
            table.add_column(column, justify="right")
        for row in rows:
            if "error" in row:
                table.add_row(escape(row["video"]), f"[red]{row['error_kind']}[/red]", "", "", "")
            else:
                table.add_row(
                    escape(row["video"]),
                    *(f"{row[key]:.4f}" for key in ("logit_delta", "p_yes", "logprob_yes", "logprob_no")),
                )
        Console(highlight=False).print(table)
    failures = [row for row in rows if "error" in row]
    for row in failures:
        console.print(f"rankvideo: {row['error']}", markup=False, soft_wrap=True)
    return len(failures)


def run_explain(
    scorer: Scorer, query: str, videos: Sequence[Path], settings, *, as_json: bool, console: Console
) -> int:
    """`rankvideo explain`: the model's answer (its reasoning) and score for each video, as text blocks or JSON
    lines on stdout; returns the number of videos that could not be decoded."""
    from rankvideo_cli.frames import SamplingConfig, VideoError, sample_video
    from rankvideo_cli.scoring.generate import explain_video

    failures = 0
    for path in videos:
        try:
            sampled = sample_video(path, SamplingConfig())
        except VideoError as error:
            failures += 1
            console.print(f"rankvideo: {error}", markup=False, soft_wrap=True)
            if as_json:
                write_stdout(json.dumps({"video": str(path), "error": str(error), "error_kind": error.kind}) + "\n")
            continue
        ((score, answer),) = explain_video(scorer, [query], sampled, settings)  # type: ignore[arg-type]
        if as_json:
            row = {
                "video": str(path),
                "query": query,
                "text": answer.text,
                "tokens": answer.tokens,
                "finish_reason": answer.finish_reason,
                "generation": settings.describe(),
                **score.to_dict(),
            }
            write_stdout(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
        else:
            write_stdout(
                f"== {path}\nlogit_delta {score.logit_delta:.4f}  p_yes {score.p_yes:.4f}  "
                f"({answer.finish_reason}, {answer.tokens} tokens)\n{answer.text}\n\n"
            )
    return failures


def run_frames(
    video: Path, *, as_json: bool, save_dir: Path | None, console: Console, frames_cache: Path | None = None
) -> None:
    """Show what the model sees of one video; optionally save the sampled frames as PNGs, and say whether a
    frame cache holds them."""
    from rankvideo_cli.frames import SamplingConfig, describe, probe_video, sample_video, save_frames_png

    config = SamplingConfig()
    plan = probe_video(video, config)
    summary = describe(plan)
    if frames_cache is not None:
        from rankvideo_cli.frame_cache import FrameCache
        from rankvideo_cli.video_identity import content_identity

        state = FrameCache(frames_cache).state(content_identity(video), config)
        summary["frame_cache"] = {
            "status": state.status,
            "entry": str(state.path),
            "bytes": state.size_bytes,
            "detail": state.detail,
        }
    if save_dir is not None:
        written = save_frames_png(sample_video(video, config, plan=plan), save_dir)
        summary["saved_frames"] = [str(path) for path in written]
    if as_json:
        write_stdout(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows = {
        "video": summary["path"],
        "container / codec": f"{summary['container']} / {summary['codec']}",
        "frames (N, demuxed packets)": str(summary["total_frames"]),
        "fps (F, average_rate)": f"{summary['source_fps']:.6g} ({summary['average_rate']})",
        "duration": f"{summary['duration_seconds']:.3f} s",
        "rotation": f"{summary['rotation']} deg",
        "size: source -> model (HxW)": "{}x{} -> {}x{}".format(*summary["source_size"], *summary["output_size"]),
        "sampled frames": str(summary["sampled_frames"]),
        "frame indices": " ".join(map(str, summary["frame_indices"])),
        "pair timestamps": " ".join(summary["pair_labels"]),
        "video tokens": f"{summary['video_tokens']} ({summary['tokens_per_pair']} per frame pair)",
    }
    for note in summary["notes"]:
        rows.setdefault("notes", "")
        rows["notes"] += note + "; "
    if "saved_frames" in summary:
        rows["saved"] = f"{len(summary['saved_frames'])} PNGs in {save_dir}"
    if "frame_cache" in summary:
        cached = summary["frame_cache"]
        details = ", ".join(
            str(part) for part in (cached["detail"], cached["bytes"] and f"{cached['bytes']} bytes") if part
        )
        rows["frame cache"] = f"{cached['status']}{f' ({details})' if details else ''}: {cached['entry']}"
    for key, value in rows.items():
        table.add_row(key, value)
    Console(highlight=False, soft_wrap=True).print(table)
