"""`rankvideo merge`: the shards' score stores -> the final run, with the options the shards ran with."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from rich.console import Console

from rankvideo_cli.errors import UsageError
from rankvideo_cli.jobs.finish import finish_run
from rankvideo_cli.jobs.inputs import prepare_inputs
from rankvideo_cli.jobs.preflight import (
    is_stdout,
)
from rankvideo_cli.jobs.request import RerankInputs, RerankJob, RerankOutputs
from rankvideo_cli.messages import say
from rankvideo_cli.options import RankingOptions, VideoSource
from rankvideo_cli.pipeline.manifest import (
    build_manifest,
    describe_input,
    read_shard_manifests,
    shards_of_reranker,
    shared_shard_settings,
    write_manifest,
)
from rankvideo_cli.pipeline.store import ScoreStore
from rankvideo_cli.scoring.options import ScorerOptions
from rankvideo_cli.videos.resolver import DEFAULT_PATTERN


def run_merge(
    inputs: RerankInputs,
    outputs: RerankOutputs,
    console: Console,
    *,
    allow_missing: bool = False,
    force: bool = False,
    reranker: str | None = None,
) -> None:
    """`rankvideo merge`: the shards' stores (`outputs.cache`) -> the final run, with the options the shards ran
    with. Writes `outputs.output` (None: stdout) and `outputs.scores`.

    The run and queries must be the very files the shards read (their checksums are in the shard manifests):
    merging another run's stores would write a run of scores for other candidates. `force` skips that check.
    A store holding the shards of two rerankers merges `reranker`'s, and is refused without it.
    """
    run, queries, qrels, measures = inputs.run, inputs.queries, inputs.qrels, inputs.measures
    output, scores, cache = outputs.output, outputs.scores, outputs.cache
    if cache is None:
        raise UsageError("--cache DIR is required: the score store the shards wrote to")
    from rankvideo_cli.evaluation.measures import check_measures
    from rankvideo_cli.pipeline.merge import merge_scores

    if not cache.is_dir():
        raise UsageError(f"--cache {cache}: not a directory")
    if qrels is not None:
        check_measures(measures)
    manifest_path = None if not is_stdout(output) else cache / "merge.manifest.json"
    plan = RerankOutputs(output=output, scores=scores, cache=cache, manifest=manifest_path).plan(None, inputs.named())
    shared = shared_shard_settings(shards_of_reranker(read_shard_manifests(cache), reranker, cache), cache)
    settings = shared.get("settings") or {}
    videos = settings.get("videos") or {}
    if not videos.get("root"):
        raise UsageError(f"{cache}: no shard manifest found; run the shards with `rankvideo rerank --shard`")
    if shared.get("incomplete_shards") and not allow_missing:
        say(console, f"shards {', '.join(shared['incomplete_shards'])} did not finish")
    ranking_names = [item.name for item in fields(RankingOptions)]
    job = RerankJob(
        inputs=inputs,
        videos=VideoSource(
            videos=Path(videos["root"]),
            video_pattern=videos.get("pattern") or DEFAULT_PATTERN,
            multivent=bool(videos.get("multivent")),
            video_map=videos.get("video_map"),
        ),
        ranking=RankingOptions(**{name: settings[name] for name in ranking_names if name in settings}),
        outputs=RerankOutputs(output=plan.output, scores=scores, cache=cache),
        scorer=ScorerOptions(reranker=(shared.get("reranker") or {}).get("name")),
    )
    prepared = prepare_inputs(job)
    if not force:
        _check_same_inputs(shared.get("inputs") or {}, {"run": run, "queries": queries}, cache)
    result = merge_scores(
        prepared.pairs(job.ranking.depth),
        ScoreStore(cache),
        model_fingerprint=shared.get("model_fingerprint"),
        settings_fingerprint=shared.get("sampling_fingerprint"),
        allow_missing=allow_missing,
    )
    result.counts.videos_fitted = int((shared.get("reranker") or {}).get("videos_fitted", 0))
    finish_run(job, plan, prepared, result, console)
    write_manifest(
        plan.manifest,
        build_manifest(
            result=result,
            inputs={"run": run, "queries": queries},
            settings=job.settings(),
            scorer_fingerprint=None,
            output=plan.output,
            reranker=shared.get("reranker"),
            options_from=outputs.option_sources,
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
