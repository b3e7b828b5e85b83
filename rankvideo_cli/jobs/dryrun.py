"""`rankvideo rerank --dry-run`: the plan of a rerank, from the inputs and the score store, without a model.

Read, validated and resolved exactly as the real run does it (same code), then answered from the store:
which pairs are within depth, which videos exist, which pairs the store already holds, which are left to score.
The store's scores are keyed by a model fingerprint that only a loaded model can compute, so the plan counts
the stored pairs of every model the store holds (with the current sampling settings), naming each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console

from rankvideo_cli.messages import plural, say
from rankvideo_cli.pipeline.plan import triage_pairs
from rankvideo_cli.pipeline.store import model_fingerprints, read_store, store_namespaces
from rankvideo_cli.videos.identity import VideoIdentities

if TYPE_CHECKING:
    from rankvideo_cli.jobs.preflight import OutputPlan
    from rankvideo_cli.jobs.request import RerankJob
    from rankvideo_cli.pipeline.request import PreparedInputs
    from rankvideo_cli.pipeline.shards import Shard


def dry_run_plan(job: RerankJob, inputs: PreparedInputs, outputs: OutputPlan, shard: Shard | None) -> dict:
    """The plan as data: counts for the run, and per stored model the pairs cached and left to score."""
    plan = inputs.pairs(job.ranking.depth).plan()
    selection = job.scorer.selection()
    settings = selection.reranker.sampling.fingerprint()
    videos = {key for key in plan.video_of.values() if key is not None}
    missing_pairs = sum(1 for key in plan.video_of.values() if key is None)
    missing_docids = {pair[1] for pair, key in plan.video_of.items() if key is None}
    namespaces = sorted(model for model, stored in store_namespaces(outputs.store_dir) if stored == settings)
    described = model_fingerprints(outputs.store_dir)
    by_model = []
    stored_models: list[str | None] = [*namespaces] or [None]
    for model in stored_models:
        contents = read_store(outputs.store_dir, model or "", settings)
        triage = triage_pairs(plan, contents, shard, job.decode.retry_bad_videos, VideoIdentities(contents.video_ids))
        counts = triage.counts
        fingerprint = described.get(model or "", {})
        by_model.append(
            {
                "model": model,
                "model_name": fingerprint.get("model") or fingerprint.get("name"),
                "pairs_cached": counts.pairs_cached,
                "pairs_known_bad_video": counts.pairs_bad_video,
                "pairs_to_score": counts.pairs_to_score,
                "videos_to_decode": counts.videos_to_decode,
                "pairs_outside_shard": counts.pairs_outside_shard,
            }
        )
    return {
        "queries": len(inputs.run),
        "queries_without_text": len(inputs.skipped_queries),
        "candidates": inputs.run.pair_count,
        "depth": job.ranking.depth,
        "pairs_within_depth": len(plan.pairs),
        "videos_found": len(videos),
        "missing_videos": len(missing_docids),
        "pairs_missing_video": missing_pairs,
        "shard": str(shard) if shard is not None else None,
        "score_store": str(outputs.store_dir),
        "store_exists": outputs.store_dir.is_dir(),
        "output": str(outputs.output) if outputs.output is not None else "stdout",
        "manifest": str(outputs.manifest),
        "by_stored_model": by_model,
        "reranker": selection.describe(),
    }


def print_plan(
    job: RerankJob, inputs: PreparedInputs, outputs: OutputPlan, shard: Shard | None, console: Console
) -> dict:
    """Print the plan (stderr: nothing is written, stdout stays empty) and return it."""
    plan = dry_run_plan(job, inputs, outputs, shard)
    selection = job.scorer.selection()
    lines = [
        f"reranker: {selection.reranker.name} (chosen by {selection.chosen_by})",
        f"dry run: {plural(plan['queries'], 'query', 'queries')}, {plural(plan['candidates'], 'candidate')}; "
        f"{plural(plan['pairs_within_depth'], 'pair')} within depth {plan['depth']}"
        + (
            f" ({plural(plan['queries_without_text'], 'query', 'queries')} without text kept in first-stage order)"
            if plan["queries_without_text"]
            else ""
        ),
        f"videos: {plan['videos_found']} found, {plan['missing_videos']} missing "
        f"({plural(plan['pairs_missing_video'], 'pair')}, --on-missing-video {job.ranking.on_missing_video})",
        f"score store: {plan['score_store']}"
        + ("" if plan["store_exists"] else " (new)")
        + (f"; shard {plan['shard']}" if plan["shard"] else ""),
    ]
    for entry in plan["by_stored_model"]:
        who = f"model {entry['model']}" + (f" ({entry['model_name']})" if entry["model_name"] else "")
        if entry["model"] is None:
            who = "no stored scores"
        lines.append(
            f"  {who}: {plural(entry['pairs_cached'], 'pair')} already scored, {entry['pairs_known_bad_video']} with a "
            f"known bad video, {entry['pairs_to_score']} to score ({plural(entry['videos_to_decode'], 'video')} to "
            "decode)" + (f", {entry['pairs_outside_shard']} in other shards" if plan["shard"] else "")
        )
    if len(plan["by_stored_model"]) > 1:
        lines.append("  (the store holds several models: the loaded model's fingerprint decides which applies)")
    lines.append(f"would write: {plan['output']}, manifest {plan['manifest']}; nothing was loaded or written")
    for line in lines:
        say(console, line)
    return plan
