"""`rankvideo rerank --dry-run`: the plan of a rerank, from the inputs and the score store, without a model.

Read, validated and resolved exactly as the real run does it (same code), then answered from the store:
which pairs are within depth, which videos exist, which pairs the store already holds, which are left to score.
The store's scores are keyed by the model's fingerprint, which is read from the model's files: the plan counts
the pairs this run's model has stored. Where the files cannot tell (a model not on this machine), it counts the
stored pairs of every model the store holds (with the current sampling settings), naming each, and of a model
it holds nothing of.

Then what the real run needs is checked as the real run will meet it (`jobs/readiness.py`): the model resolvable
offline (or downloadable), the device, dtype and attention implementation, room for the store; and the GPU time
the pairs left are predicted to take (`scoring/throughput.py`: an analytic floor, marked as predicted). A failed
check is one line and exit 1: a dry run that passes means the real run gets past loading.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING

from rich.console import Console

from rankvideo_cli.errors import RankVideoError, UsageError
from rankvideo_cli.io.atomic import write_stdout
from rankvideo_cli.jobs.devices import expand_devices, parse_devices
from rankvideo_cli.jobs.readiness import (
    FAIL,
    DeviceChoice,
    Finding,
    check_device,
    check_model,
    check_space,
    report_problems,
    store_bytes,
)
from rankvideo_cli.messages import plural, say
from rankvideo_cli.pipeline.plan import triage_pairs
from rankvideo_cli.pipeline.store import fingerprint_hash, model_fingerprints, read_store, store_namespaces
from rankvideo_cli.scoring.throughput import Prediction, model_size, predict
from rankvideo_cli.videos.identity import VideoIdentities

if TYPE_CHECKING:
    from rankvideo_cli.jobs.preflight import OutputPlan
    from rankvideo_cli.jobs.request import RerankJob
    from rankvideo_cli.pipeline.request import PreparedInputs
    from rankvideo_cli.pipeline.shards import Shard
    from rankvideo_cli.scoring.model_files import OfflineModel
    from rankvideo_cli.scoring.options import ScorerOptions


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
    this_model, predicted = predicted_store_key(job.scorer)
    # the model's own namespace when its fingerprint is known from its files; else every stored model, and None:
    # a model the store holds nothing of
    stored_models: list[str | None] = [this_model] if this_model is not None else [*namespaces, None]
    by_model = []
    for model in stored_models:
        contents = read_store(outputs.store_dir, model or "", settings)
        triage = triage_pairs(plan, contents, shard, job.decode.retry_bad_videos, VideoIdentities(contents.video_ids))
        counts = triage.counts
        fingerprint = described.get(model or "") or (predicted if model == this_model else None) or {}
        by_model.append(
            {
                "model": model,
                "this_run": model is not None and model == this_model,
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


def predicted_store_key(options: ScorerOptions) -> tuple[str | None, dict[str, str] | None]:
    """The store key of the model the run will load, and its fingerprint, from the model's files
    (`loading.predict_fingerprint`, torch-free); (None, None) when only loading could tell."""
    from rankvideo_cli.scoring.loading import predict_fingerprint

    try:
        fingerprint = predict_fingerprint(options)
    except RankVideoError:
        return None, None  # the readiness checks name the problem
    return (fingerprint_hash(fingerprint), fingerprint) if fingerprint else (None, None)


def check_devices(job: RerankJob) -> tuple[list[Finding], list[DeviceChoice]]:
    """The one device of the run, or each of `--devices` (checked against the visible GPUs, as the workers'
    start checks them)."""
    listed = parse_devices(job.outputs.devices)
    if listed is None:
        finding, choice = check_device(job.scorer)
        return [finding], [choice] if choice is not None else []
    try:
        expanded = expand_devices(listed)
    except UsageError as error:
        return [Finding("devices", FAIL, str(error))], []
    findings, choices = [], []
    for device in expanded:
        finding, choice = check_device(replace(job.scorer, device=device))
        findings.append(finding)
        choices += [choice] if choice is not None else []
    return findings, choices


def check_readiness(job: RerankJob, plan: dict, outputs: OutputPlan) -> tuple[list[Finding], Prediction]:
    """What the real run needs (`jobs/readiness.py`): the model resolvable as it will load, the device, dtype and
    attention implementation, room for the store and the run; and the GPU time the plan's pairs are predicted
    to take."""
    model, found = check_model(job.scorer)
    devices, choices = check_devices(job)
    worst = max(plan["by_stored_model"], key=lambda entry: entry["pairs_to_score"])
    to_score, videos = worst["pairs_to_score"], worst["videos_to_decode"]
    space = check_space("score store", outputs.store_dir, store_bytes(to_score, plan["candidates"]))
    return [model, *devices, space], predict_gpu_time(job, choices, to_score, videos, found)


def predict_gpu_time(
    job: RerankJob, choices: list[DeviceChoice], pairs: int, videos: int, found: OfflineModel
) -> Prediction:
    """The predicted time of `pairs` on the run's GPUs (split between them with --devices); on a machine
    without one (a login node), on the GPUs the prediction knows; none for a run asked to use the CPU."""
    if any(choice.device == "cpu" for choice in choices) and (job.scorer.device or job.outputs.devices):
        return Prediction(pairs, None, None, "none: the run is asked to score on the CPU")
    gpus = [choice.gpu for choice in choices if choice.gpu is not None]
    prediction = predict(
        pairs,
        pairs / videos if videos else 1.0,
        job.scorer.selection().reranker.name,
        model_size(found.directory, job.scorer.model),
        gpus[0] if gpus else None,
    )
    if len(gpus) > 1 and prediction.seconds is not None:
        basis = f"{prediction.basis}; split over {len(gpus)} GPUs"
        return replace(prediction, seconds=prediction.seconds / len(gpus), basis=basis)
    return prediction


def print_plan(
    job: RerankJob, inputs: PreparedInputs, outputs: OutputPlan, shard: Shard | None, console: Console
) -> dict:
    """Print the plan (stderr; with `--json` on stdout) and the checks of what the real run needs; a failed
    check is one line each and `NotReady` (exit 1): a dry run that passes means the real run gets past
    loading."""
    plan = dry_run_plan(job, inputs, outputs, shard)
    findings, prediction = check_readiness(job, plan, outputs)
    plan["ok"] = not any(finding.failed for finding in findings)
    plan["checks"] = [finding.as_dict() for finding in findings]
    plan["predicted_gpu_time"] = prediction.as_dict()
    if job.outputs.json:
        write_stdout(json.dumps(plan, indent=2, sort_keys=True) + "\n")
    else:
        for line in plan_lines(job, plan, findings, prediction):
            say(console, line)
    report_problems(findings, lambda line: say(console, line))
    return plan


def plan_lines(job: RerankJob, plan: dict, findings: list[Finding], prediction: Prediction) -> list[str]:
    """The plan for a person: counts, the store, the checks, the predicted GPU time."""
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
        named = f" ({entry['model_name']})" if entry["model_name"] else ""
        owner = "this run's model" if entry["this_run"] else "model"
        who = f"{owner} {entry['model']}{named}"
        if entry["model"] is None:
            who = "a model the store holds nothing of" if len(plan["by_stored_model"]) > 1 else "no stored scores"
        lines.append(
            f"  {who}: {plural(entry['pairs_cached'], 'pair')} already scored, {entry['pairs_known_bad_video']} with a "
            f"known bad video, {entry['pairs_to_score']} to score ({plural(entry['videos_to_decode'], 'video')} to "
            "decode)" + (f", {entry['pairs_outside_shard']} in other shards" if plan["shard"] else "")
        )
    if len(plan["by_stored_model"]) > 1:
        lines.append("  (which applies is decided by the loaded model's fingerprint: its files could not tell)")
    lines += [f"{finding.status}: {finding.check}: {finding.detail}" for finding in findings if not finding.failed]
    lines.append(f"GPU time: {describe_prediction(prediction)}")
    lines.append(f"would write: {plan['output']}, manifest {plan['manifest']}; nothing was loaded or written")
    return lines


def describe_prediction(prediction: Prediction) -> str:
    if prediction.seconds is None:
        return prediction.basis
    if prediction.pairs == 0:
        return "none (nothing to score)"
    seconds = round(prediction.seconds)
    hours, rest = divmod(seconds, 3600)
    duration = f"{max(seconds, 1)} s" if seconds < 60 else f"{hours}h {rest // 60:02d}m"
    return (
        f"{duration} for {plural(prediction.pairs, 'pair')} at {prediction.pairs_per_second} pairs/s, "
        f"{prediction.basis}"
    )
