"""Run manifests: a JSON record, next to the output, of everything that produced a run.

Inputs with sha256 checksums, all settings, the model fingerprint, library versions, device, dtype,
attention implementation, batch size, torch's thread count, counts and timings. Timing lives here and never in
the run file, which stays byte-identical across re-runs.

Shard runs write `shard-I-of-N.manifest.json` into the score store directory; `rankvideo merge` reads them
back (`read_shard_manifests`) to check the shards agree and to reuse their settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import sys
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rankvideo_cli.errors import RankVideoError, UsageError

if TYPE_CHECKING:
    from rankvideo_cli.pipeline.result import PipelineResult
    from rankvideo_cli.pipeline.shards import Shard

MANIFEST_VERSION = 1
LIBRARIES = ("rankvideo-cli", "torch", "torchvision", "transformers", "av", "qwen-vl-utils", "numpy")
# Keys a scorer fingerprint may carry that the manifest also shows at top level.
RUNTIME_KEYS = ("device", "dtype", "attn_implementation", "batch_size")


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def describe_input(source: Path | str | bytes | None) -> dict[str, Any] | None:
    """A path with its size and sha256, or stdin's bytes (`bytes`) with theirs."""
    if source is None:
        return None
    if isinstance(source, bytes):
        return {"path": "-", "bytes": len(source), "sha256": hashlib.sha256(source).hexdigest()}
    if str(source) == "-":
        from rankvideo_cli.io.text import stdin_digest

        digest = stdin_digest()
        return {"path": "-", "stdin": True, **(digest or {"error": "nothing was read from stdin"})}
    path = Path(source)
    try:
        return {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path)}
    except OSError as error:
        return {"path": str(path), "error": error.strerror}


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    return versions


def torch_threads(workers: list[int | None] | None = None) -> int | None:
    """The intra-op threads torch computed the scores with: on the CPU the order float32 sums are added in can
    depend on it, so two runs' bits can only be compared at the same count. A `--devices` run's is its workers'
    (`workers`, one each; None if those that computed differ; a worker that computed nothing never loads torch
    and has none), anything else's this process's; None when torch was never loaded (nothing was computed).
    Never part of a fingerprint: a store's scores stay valid at any count."""
    if workers is not None:
        computed = {threads for threads in workers if threads is not None}
        return computed.pop() if len(computed) == 1 else None
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def build_manifest(
    *,
    result: PipelineResult,
    inputs: Mapping[str, Path | str | bytes | None],
    settings: Mapping[str, Any],
    scorer_fingerprint: Mapping[str, Any] | None,
    runtime: Mapping[str, Any] | None = None,
    status: str = "complete",
    reason: str | None = None,
    output: Path | None = None,
    reranker: Mapping[str, Any] | None = None,
    options_from: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The manifest of one `rerank` (or shard, or `merge`) run. `reranker`: which reranker scored, and why
    (`jobs.rerank.describe_reranker`). `options_from`: where each option not at its default came from (the
    command line, a RANKVIDEO_<COMMAND>_<OPTION> variable, a rankvideo.toml).

    `settings` are the job-wide options, the same for every shard of an array (depth, interpolation, video
    layout, tag...): `merge` checks the shards agree on them. `runtime` overrides what the scorer
    fingerprint says about device, dtype, attention implementation and batch size.
    """
    from rankvideo_cli.pipeline.result import decode_wait_advice, decode_wait_share

    fingerprint = dict(scorer_fingerprint or {})
    runtime_info = {key: fingerprint.get(key) for key in RUNTIME_KEYS}
    runtime_info.update(runtime or {})
    counts = result.counts
    timings = result.timings
    return {
        "manifest_version": MANIFEST_VERSION,
        "status": status,  # complete, interrupted or failed
        "reason": reason,  # why it did not complete
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": list(sys.argv),
        "host": socket.gethostname(),
        "slurm": {name: value for name, value in os.environ.items() if name in _SLURM_VARIABLES} or None,
        "output": str(output) if output is not None else None,
        "inputs": {name: describe_input(source) for name, source in inputs.items()},
        "settings": dict(settings),
        "options_from": dict(sorted((options_from or {}).items())),
        "pipeline": dict(result.settings),
        "shard": str(result.shard) if result.shard is not None else None,
        "score_store": str(result.store_dir),
        "model_fingerprint": result.model_fingerprint,
        "sampling_fingerprint": result.settings_fingerprint,
        "model": fingerprint,
        "reranker": dict(reranker) if reranker is not None else None,
        **runtime_info,
        "torch_threads": torch_threads(result.settings.get("torch_threads")),
        "libraries": library_versions(),
        "counts": {
            "pairs_in_run": counts.pairs_in_run,
            "pairs_outside_shard": counts.pairs_outside_shard,
            "pairs_scored": counts.pairs_scored,
            "pairs_cached": counts.pairs_cached,
            "pairs_missing_video": counts.pairs_missing_video,
            "pairs_bad_video": counts.pairs_bad_video,
            "pairs_unscored": counts.pairs_unscored,
            "videos_in_shard": counts.videos_in_shard,
            "videos_decoded": counts.videos_decoded,
            "videos_cached": counts.videos_cached,
            "missing_videos": counts.missing_videos,
            "bad_videos": counts.bad_videos,
            "videos_known_bad": counts.videos_known_bad,
            "oom_splits": counts.oom_splits,
            "store_unreadable_lines": counts.store_unreadable_lines,
            "videos_from_frame_cache": counts.videos_from_frame_cache,
            "frame_cache_corrupt": counts.frame_cache_corrupt,
        },
        "bad_videos": {
            key: {"kind": bad.kind, "message": bad.message} for key, bad in sorted(result.bad_videos.items())
        },
        "timings": {
            "wall_s": round(timings.wall_s, 3),
            "decode_s": round(timings.decode_s, 3),
            "score_s": round(timings.score_s, 3),
            "wait_for_decode_s": round(timings.wait_s, 3),
            "wait_for_decode_share": round(decode_wait_share(timings), 4),
            "store_s": round(timings.store_s, 3),
            "pairs_per_s": round(result.pairs_per_s, 4),
        },
        "decode_bottleneck": decode_wait_advice(result),  # None unless decoding held the model back
    }


_SLURM_VARIABLES = frozenset(
    {
        "SLURM_JOB_ID",
        "SLURM_ARRAY_JOB_ID",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "SLURM_JOB_NODELIST",
        "SLURM_JOB_PARTITION",
        "SLURM_RESTART_COUNT",
    }
)


def write_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    """Atomically (temp file + rename), so a reader never sees half a manifest; a symlink is followed; the same
    permissions as every other output (`io.atomic`: the umask's, or the replaced file's)."""
    from rankvideo_cli.io.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n")


def default_manifest_path(
    output: Path | None, store_dir: Path, shard: Shard | None, reranker: str = "rankvideo"
) -> Path:
    """`OUTPUT.manifest.json`; for a shard (or a run to stdout) inside the score store directory. A shard of
    another reranker than RankVideo names it (`shard-0000-of-0004.qwen3-vl-reranker.manifest.json`): arrays of
    two rerankers may share one store, and `merge` tells their shards apart."""
    if shard is not None:
        named = "" if reranker == "rankvideo" else f".{reranker}"
        return store_dir / f"{shard.label}{named}.manifest.json"
    if output is not None:
        return output.with_name(output.name + ".manifest.json")
    return store_dir / "run.manifest.json"


def read_shard_manifests(store_dir: Path) -> list[dict[str, Any]]:
    """The manifests the shards of an array wrote into the store directory, in shard order."""
    manifests = []
    for path in sorted(store_dir.glob("shard-*.manifest.json")):
        try:
            manifests.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as error:
            raise RankVideoError(f"{path}: unreadable shard manifest: {error}") from None
    return manifests


_ONE_JOB = "merge only the shards of one job (or use a fresh --cache per job)"


def reranker_of(manifest: Mapping[str, Any]) -> str:
    """The reranker a shard ran (a manifest from before there were several: RankVideo)."""
    return str((manifest.get("reranker") or {}).get("name") or "rankvideo")


def shards_of_reranker(manifests: list[dict[str, Any]], reranker: str | None, store_dir: Path) -> list[dict[str, Any]]:
    """The shard manifests of one reranker: `reranker`'s, or, when it is None, all of them provided they are of
    one reranker (the scores of two rerankers never merge into one run)."""
    names = sorted({reranker_of(manifest) for manifest in manifests})
    if reranker is None:
        if len(names) > 1:
            raise UsageError(
                f"{store_dir}: it holds shards of {' and '.join(names)}; say which to merge with --reranker"
            )
        return manifests
    chosen = [manifest for manifest in manifests if reranker_of(manifest) == reranker]
    if manifests and not chosen:
        raise UsageError(f"{store_dir}: no shard of {reranker} (its shards are {', '.join(names)}'s)")
    return chosen


def shared_shard_settings(manifests: list[dict[str, Any]], store_dir: Path) -> dict[str, Any]:
    """What every shard of an array agreed on (settings, inputs' checksums, fingerprints), for `merge`.

    Fails when shards disagree (a shard run with other options, or on other inputs): merging their scores
    would mix two experiments.
    """
    if not manifests:
        return {}
    compared = ("settings", "model_fingerprint", "sampling_fingerprint")
    first = manifests[0]
    for manifest in manifests[1:]:
        for key in compared:
            if manifest.get(key) != first.get(key):
                pair = f"shards {first.get('shard')} and {manifest.get('shard')}"
                what = key.replace("_", " ")
                raise UsageError(f"{store_dir}: {pair} ran with different {what}; {_ONE_JOB}")
        for name, described in (manifest.get("inputs") or {}).items():
            theirs = (first.get("inputs") or {}).get(name)
            if described and theirs and described.get("sha256") != theirs.get("sha256"):
                pair = f"shards {first.get('shard')} and {manifest.get('shard')}"
                raise UsageError(f"{store_dir}: {pair} read different {name} files; {_ONE_JOB}")
    shards = {manifest.get("shard") for manifest in manifests}
    reranker = dict(first.get("reranker") or {"name": "rankvideo"})
    if "videos_fitted" in reranker:
        reranker["videos_fitted"] = sum((m.get("reranker") or {}).get("videos_fitted", 0) for m in manifests)
    return {
        "reranker": reranker,
        "settings": first.get("settings", {}),
        "model_fingerprint": first.get("model_fingerprint"),
        "sampling_fingerprint": first.get("sampling_fingerprint"),
        "inputs": first.get("inputs", {}),
        "shards": sorted(str(shard) for shard in shards if shard),
        "incomplete_shards": sorted(
            str(manifest.get("shard")) for manifest in manifests if manifest.get("status") != "complete"
        ),
    }
