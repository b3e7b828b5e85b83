"""A `--model` as files on this machine, without torch, transformers or the network: which directory holds it
(a Hugging Face cache snapshot at a commit, a local directory, `tiny-random`'s) and what the fingerprint calls it
(`model_id`, `revision`), or one line saying why it cannot be found offline and what to do.

Loading (`loading.load_model`) checks a model with these same rules before it reads the weights; `rankvideo
doctor`, the dry run and the fingerprint a fully stored rerun needs read them without loading anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rankvideo_cli.errors import ModelLoadError
from rankvideo_cli.scoring.fake import is_fake_model
from rankvideo_cli.scoring.options import DEFAULT_MODEL, is_named_model
from rankvideo_cli.scoring.tiny import TINY_MODEL_DIRNAME, TINY_MODEL_NAME, cache_root

QWEN3_VL_MODEL_TYPE = "qwen3_vl"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def offline() -> bool:
    """Whether HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) forbids the network."""
    return any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~", ".\\")) or "\\" in model or not _HUB_ID.match(model)


def is_hub_id(model: str) -> bool:
    return not (is_named_model(model) or looks_like_path(model) or Path(model).expanduser().exists())


def hub_cache(cache_dir: str | Path | None) -> Path:
    """`cache_dir` (--cache-dir), else huggingface_hub's (HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from huggingface_hub import constants  # its constants alone: milliseconds, not the client's 0.1 s

    return Path(constants.HF_HUB_CACHE)


def cached_snapshot(model: str, revision: str | None, cache_dir: str | Path | None) -> Path | None:
    """The snapshot directory of `model` at `revision` (a commit, or a branch or tag the cache's refs/ name; None:
    main) whose config.json is in the cache: `huggingface_hub.try_to_load_from_cache`'s rules, without importing
    its client. Its weights may still be missing (a download cut short): `incomplete_snapshot` says."""
    repo = hub_cache(cache_dir) / f"models--{model.replace('/', '--')}"
    wanted = revision or "main"
    ref = repo / "refs" / wanted
    if ref.is_file():
        wanted = ref.read_text(encoding="utf-8")
    snapshot = repo / "snapshots" / wanted
    if "/" in wanted or wanted in ("", ".", "..") or not (snapshot / "config.json").is_file():
        return None
    return snapshot


def snapshot_revision(directory: Path) -> str | None:
    """The commit hash when `directory` is a Hugging Face cache snapshot (`.../snapshots/<sha>`)."""
    if directory.parent.name == "snapshots" and COMMIT.match(directory.name):
        return directory.name
    return None


def local_revision(directory: Path) -> str:
    """Commit hash of a hub snapshot, else a hash of config.json and the weight files' names and sizes."""
    commit = snapshot_revision(directory.resolve())
    if commit:
        return commit
    digest = hashlib.sha256((directory / "config.json").read_bytes())
    for weights in sorted(directory.glob("*.safetensors")) + sorted(directory.glob("pytorch_model*.bin")):
        if not weights.is_file():
            continue  # a broken link has no size; loading never reads it
        digest.update(f"\x00{weights.name}\x00{weights.stat().st_size}".encode())
    return f"local:{digest.hexdigest()[:16]}"


def check_architecture(config: dict[str, Any], where: str) -> None:
    model_type = config.get("model_type")
    if model_type != QWEN3_VL_MODEL_TYPE:
        architectures = ", ".join(config.get("architectures") or []) or "no architectures listed"
        raise ModelLoadError(
            f"{where} is a {model_type!r} model ({architectures}), not Qwen3-VL: RankVideo needs a "
            f"Qwen3VLForConditionalGeneration checkpoint such as {DEFAULT_MODEL}"
        )


def read_config(config_path: Path) -> dict[str, Any]:
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{config_path}: unreadable config ({error})") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{config_path}: not a JSON object")
    return config


def check_local_dir(directory: Path) -> None:
    """Refuse a directory that is not a Qwen3-VL checkpoint with its weights (a one-line `ModelLoadError`)."""
    if not directory.exists():
        raise ModelLoadError(
            f"model directory {directory} does not exist: pass a directory holding config.json and the "
            f"weights, or a Hugging Face hub id such as {DEFAULT_MODEL}"
        )
    if not directory.is_dir():
        raise ModelLoadError(f"{directory} is a file: --model takes a model directory or a hub id")
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(
            f"{directory} has no config.json: not a transformers model directory (pass the directory holding "
            "config.json, the *.safetensors weights and the processor files)"
        )
    check_architecture(read_config(config_path), str(directory))
    missing = missing_weights(directory)
    if missing is not None:
        raise ModelLoadError(f"{directory} is incomplete: {missing} (download or copy the model's files into it again)")


# What transformers' from_pretrained loads, in its order: one weights file, else the index and the shards it
# names; safetensors before the older pytorch format.
WEIGHT_LAYOUTS = (
    ("model.safetensors", "model.safetensors.index.json"),
    ("pytorch_model.bin", "pytorch_model.bin.index.json"),
)
_SHARD = re.compile(r"^model-\d+-of-\d+\.safetensors$")


def missing_weights(directory: Path) -> str | None:
    """None when `directory` holds every weight file loading reads; else what is missing, as a phrase
    ("model-00002-of-00004.safetensors is missing"). Only names are looked at, never the weights' contents: a
    file that is there is taken as whole. A link whose target is gone counts as missing: the hub's cache links
    a snapshot's files into blobs/, and a blob removed, or never finished, leaves such a link behind."""
    for single, index in WEIGHT_LAYOUTS:
        if (directory / single).is_file():
            return None
        if (directory / index).is_file():
            return missing_shards(directory, index)
    for single, index in WEIGHT_LAYOUTS:
        for name in (single, index):
            if (directory / name).is_symlink():
                return f"{name} is missing"
    if any(_SHARD.match(path.name) for path in directory.glob("model-*.safetensors")):
        return "model.safetensors.index.json is missing"  # shards without the index that names them
    return "neither model.safetensors nor model.safetensors.index.json is there"


def missing_shards(directory: Path, index: str) -> str | None:
    """None when every shard `index`'s weight_map names is in `directory`; else the first missing one, and how
    many more."""
    try:
        weight_map = json.loads((directory / index).read_text(encoding="utf-8"))["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"{index} is unreadable (not JSON with a weight_map)"
    missing = [shard for shard in shards if not (directory / str(shard)).is_file()]
    if not missing:
        return None
    if len(missing) == 1:
        return f"{missing[0]} is missing"
    return f"{missing[0]} and {len(missing) - 1} more of its {len(shards)} shards are missing"


def incomplete_snapshot(model: str, revision: str | None, snapshot: Path) -> str | None:
    """None when the cached `snapshot` of `model` holds every weight file loading reads; else one line saying
    which is missing and how to complete it."""
    missing = missing_weights(snapshot)
    if missing is None:
        return None
    download = f"hf download {model}" + (f" --revision {revision}" if revision else "")
    return f"{model} at commit {snapshot.name} in the cache is incomplete: {missing} (run `{download}` again)"


def not_cached_offline(model: str, revision: str | None, cache_dir: str | Path | None) -> str:
    at = f"{model}@{revision}" if revision else model
    return (
        f"model {at!r} is not in the Hugging Face cache ({hub_cache(cache_dir)}) and HF_HUB_OFFLINE=1 "
        f"forbids downloading it: run `hf download {model}` where there is network and point HF_HOME "
        f"(or --cache-dir) at that cache, or pass the model's local directory (there is no {model!r})"
    )


@dataclass(frozen=True)
class OfflineModel:
    """What `--model` is on this machine (see `resolve_model_offline`)."""

    model: str  # as given
    kind: str  # "hub", "local", "tiny-random" or "fake-scorer"
    directory: Path | None  # its files: a cache snapshot, the directory, tiny-random's; None for fake-scorer
    model_id: str  # the fingerprint's `model`: the hub id, the directory's absolute path, `tiny-random`
    revision: str | None  # the fingerprint's `revision`: a commit, `local:<hash>`, `tiny-random-v1`; None: unknown
    problem: str | None = None  # None: usable offline; else one line saying why not and what to do
    pinned: bool = True  # False: a hub id at a branch (or main) that loading online could move to a newer commit

    @property
    def resolved(self) -> bool:
        return self.problem is None


def resolve_model_offline(model: str, revision: str | None = None, cache_dir: str | Path | None = None) -> OfflineModel:
    """`model` (a hub id, a local directory, `tiny-random` or `fake-scorer`) as files on this machine, with no
    network, torch or transformers: milliseconds. `revision` (hub ids only: a commit, branch or tag; None: main)
    and `cache_dir` (the Hugging Face cache; None: HF_HUB_CACHE / HF_HOME's) are `--revision` and `--cache-dir`.

    A problem is what loading would refuse before reading weights: a directory that is not a Qwen3-VL checkpoint,
    a hub id (or that revision of it) not in the cache, a directory or cached snapshot missing weight files (a
    download cut short), `--revision` given for a local model. A hub id whose snapshot is in the cache whole is
    resolved even online; `pinned` says whether the commit is the one loading would use there (a commit given,
    or HF_HUB_OFFLINE=1) or one the hub could replace. `tiny-random` not built yet is no problem: it is built on
    first use, offline (its `directory` is where).
    """
    if is_fake_model(model):
        return OfflineModel(model, "fake-scorer", None, model, None)
    local = model == TINY_MODEL_NAME or not is_hub_id(model)
    if local and revision is not None:
        problem = "--revision applies to hub ids only, not to a local directory or tiny-random"
        return OfflineModel(model, "local", None, model, None, problem)
    if model == TINY_MODEL_NAME:
        return OfflineModel(model, TINY_MODEL_NAME, cache_root() / TINY_MODEL_DIRNAME, model, TINY_MODEL_DIRNAME)
    if local:
        directory = Path(model).expanduser()
        try:
            check_local_dir(directory)
        except ModelLoadError as error:
            return OfflineModel(model, "local", directory, model, None, str(error))
        return OfflineModel(model, "local", directory, str(directory.resolve()), local_revision(directory))
    snapshot = cached_snapshot(model, revision, cache_dir)
    pinned = offline() or (revision is not None and COMMIT.match(revision) is not None)
    if snapshot is None:
        return OfflineModel(model, "hub", None, model, None, not_cached_offline(model, revision, cache_dir), pinned)
    try:
        check_architecture(read_config(snapshot / "config.json"), repr(model))
    except ModelLoadError as error:
        return OfflineModel(model, "hub", snapshot, model, snapshot.name, str(error), pinned)
    incomplete = incomplete_snapshot(model, revision, snapshot)
    return OfflineModel(model, "hub", snapshot, model, snapshot.name, incomplete, pinned)
