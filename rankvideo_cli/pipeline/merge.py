"""`merge_scores`: a run's plan answered from the score store only (after a SLURM array or the device
workers); every pair needing a score must have one, or the shards to re-run are named."""

from __future__ import annotations

import time
from pathlib import Path

from rankvideo_cli.errors import UsageError
from rankvideo_cli.messages import plural
from rankvideo_cli.pipeline.plan import Pairs, reorder, triage_pairs
from rankvideo_cli.pipeline.result import (
    UNSCORED,
    IncompleteScores,
    Pair,
    PairOutcome,
    PipelineResult,
    PipelineTimings,
)
from rankvideo_cli.pipeline.shards import shard_of
from rankvideo_cli.pipeline.store import (
    ScoreStore,
    store_namespaces,
    writer_shard_count,
)
from rankvideo_cli.videos.identity import VideoIdentities


def merge_scores(
    pairs: Pairs,
    store: ScoreStore,
    *,
    model_fingerprint: str | None = None,
    settings_fingerprint: str | None = None,
    allow_missing: bool = False,
    shard_count: int | None = None,
) -> PipelineResult:
    """Answer the plan from the store only (after a SLURM array): every pair must have a score.

    Pairs without a video file or with a bad video are reported as such; pairs that need a score and have
    none are UNSCORED and make this fail (listing them and their shards) unless `allow_missing`.
    The fingerprints default to the only (model, settings) namespace in the store; the shard count (to
    name the shards to re-run) defaults to the one in the store's file names.
    """
    started = time.monotonic()
    model_fp, settings_fp = _pick_namespace(store.directory, model_fingerprint, settings_fingerprint)
    plan = pairs.plan()
    contents = store.read(model_fp, settings_fp)
    triage = triage_pairs(plan, contents, None, retry_bad_videos=False, identities=VideoIdentities(contents.video_ids))
    unscored: list[tuple[Pair, str]] = []
    for job in triage.jobs:
        for pair, _text in job.pairs:
            triage.outcomes[pair] = PairOutcome(UNSCORED, job.key)
            unscored.append((pair, job.key))
    counts = triage.counts
    counts.pairs_unscored = len(unscored)
    timings = PipelineTimings(wall_s=time.monotonic() - started)
    settings = {"depth": pairs.depth, "allow_missing": allow_missing}
    result = triage.result(timings, (model_fp, settings_fp), store.directory, settings)
    reorder(result, plan)
    if unscored and not allow_missing:
        if shard_count is None:
            shard_count = writer_shard_count(store.directory)
        raise IncompleteScores(_describe_unscored(unscored, shard_count, store.directory), result)
    return result


def _describe_unscored(unscored: list[tuple[Pair, str]], shard_count: int | None, directory: Path) -> str:
    ordered = sorted(unscored)
    shown = ", ".join(f"{qid}/{docid}" for (qid, docid), _key in ordered[:10])
    more = f" and {len(ordered) - 10} more" if len(ordered) > 10 else ""
    message = f"{plural(len(ordered), 'pair has', 'pairs have')} no score in {directory}: {shown}{more}"
    if shard_count:
        shards = sorted({shard_of(key, shard_count) for _pair, key in unscored})
        listed = ",".join(str(index) for index in shards)
        message += (
            f"; they belong to shards {listed} of {shard_count}: re-run them with the same arguments "
            f"(RANKVIDEO_SHARDS={shard_count} sbatch --array={listed} rerank-array.sbatch ..., "
            f"or rankvideo rerank ... --shard I/{shard_count})"
        )
    return message + "; or pass --allow-missing to keep them unscored"


def _pick_namespace(directory: Path, model: str | None, settings: str | None) -> tuple[str, str]:
    if model is not None and settings is not None:  # from the shard manifests: no need to read the store twice
        return model, settings
    namespaces = store_namespaces(directory)
    candidates = sorted(
        (m, s) for m, s in namespaces if (model is None or m == model) and (settings is None or s == settings)
    )
    if model is not None and settings is not None:
        return model, settings
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise IncompleteScores(f"{directory}: the score store holds no scores (wrong --cache?)")
    listed = ", ".join(f"model {m} settings {s} ({namespaces[(m, s)]} scores)" for m, s in candidates)
    raise UsageError(f"{directory}: the score store mixes several models or sampling settings: {listed}")
