"""Find, check and load a Qwen3-VL checkpoint (hub id, local directory or `tiny-random`) into a scorer.

Every way loading can fail ends in a one-line `ModelLoadError` that says what to do; nothing is downloaded
when `HF_HUB_OFFLINE=1` (or `TRANSFORMERS_OFFLINE=1`). `trust_remote_code` is never enabled: RankVideo is
a plain Qwen3-VL, which transformers implements itself.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rankvideo_cli.errors import ModelLoadError, UsageError
from rankvideo_cli.scoring.base import Scorer, check_prompt_options
from rankvideo_cli.scoring.fake import FakeScorer, is_fake_model, load_fake_scorer
from rankvideo_cli.scoring.hf import LoadedModel, quiet_progress_bars
from rankvideo_cli.scoring.options import DEFAULT_MODEL, ScorerOptions, is_named_model
from rankvideo_cli.scoring.tiny import TINY_MODEL_NAME, ensure_tiny_model, warn_tiny_model

if TYPE_CHECKING:
    import torch


QWEN3_VL_MODEL_TYPE = "qwen3_vl"
ATTN_IMPLEMENTATIONS = ("sdpa", "flash_attention_2", "eager")
_DTYPES = {
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "fp32": "float32",
    "float32": "float32",
    "float": "float32",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def resolve_device(device: str | None) -> torch.device:
    """`None`: the first CUDA device if there is one, else the CPU."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError):
        raise UsageError(f"unknown device {device!r} (use cpu, cuda or cuda:N)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} requested but no CUDA device is available (use --device cpu)")
    return resolved


def resolve_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """`None`: bfloat16 on CUDA (the checkpoint's dtype), float32 elsewhere."""
    import torch

    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    name = _DTYPES.get(dtype.lower())
    if name is None:
        raise UsageError(f"unknown dtype {dtype!r} (use bfloat16, float16 or float32)")
    return getattr(torch, name)


def resolve_attn_implementation(attn_implementation: str | None, device: torch.device, dtype: torch.dtype) -> str:
    """`None`: flash_attention_2 on CUDA in half precision when flash-attn is installed, else sdpa."""
    import torch

    flash_installed = importlib.util.find_spec("flash_attn") is not None
    half = dtype in (torch.bfloat16, torch.float16)
    if attn_implementation is None:
        return "flash_attention_2" if device.type == "cuda" and half and flash_installed else "sdpa"
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise UsageError(
            f"unknown attention implementation {attn_implementation!r} (use {', '.join(ATTN_IMPLEMENTATIONS)})"
        )
    if attn_implementation == "flash_attention_2":
        if not flash_installed:
            raise UsageError("flash_attention_2 needs the flash-attn package, which is not installed (use sdpa)")
        if device.type != "cuda" or not half:
            raise UsageError("flash_attention_2 runs only on CUDA in bfloat16 or float16 (use sdpa)")
    return attn_implementation


def _offline() -> bool:
    return any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~", ".\\")) or "\\" in model or not _HUB_ID.match(model)


def _hub_cache(cache_dir: Path | None) -> str:
    if cache_dir is not None:
        return str(cache_dir)
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _check_architecture(config: dict[str, Any], where: str) -> None:
    model_type = config.get("model_type")
    if model_type != QWEN3_VL_MODEL_TYPE:
        architectures = ", ".join(config.get("architectures") or []) or "no architectures listed"
        raise ModelLoadError(
            f"{where} is a {model_type!r} model ({architectures}), not Qwen3-VL: RankVideo needs a "
            f"Qwen3VLForConditionalGeneration checkpoint such as {DEFAULT_MODEL}"
        )


def _check_local_dir(directory: Path) -> None:
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
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{config_path}: unreadable config ({error})") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{config_path}: not a JSON object")
    _check_architecture(config, str(directory))
    if not list(directory.glob("*.safetensors")) and not list(directory.glob("pytorch_model*.bin")):
        raise ModelLoadError(f"{directory} has no weights (*.safetensors): the download may be incomplete")


def _explain_hub_failure(model: str, revision: str | None, cache_dir: Path | None, error: BaseException) -> str:
    from huggingface_hub import errors as hub_errors

    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    at = f"{model}@{revision}" if revision else model
    if any(isinstance(e, hub_errors.RevisionNotFoundError) for e in chain):
        return f"revision {revision!r} of {model!r} does not exist on the Hugging Face Hub"
    if any(isinstance(e, (hub_errors.RepositoryNotFoundError, hub_errors.GatedRepoError)) for e in chain):
        return (
            f"no accessible model {model!r} on the Hugging Face Hub (misspelt, private or gated: "
            f"log in with `hf auth login`); no local directory {model!r} exists either"
        )
    if _offline():
        return (
            f"model {at!r} is not in the Hugging Face cache ({_hub_cache(cache_dir)}) and HF_HUB_OFFLINE=1 "
            f"forbids downloading it: run `hf download {model}` where there is network and point HF_HOME "
            f"(or --cache-dir) at that cache, or pass the model's local directory (there is no {model!r})"
        )
    return (
        f"could not download {at!r} from the Hugging Face Hub ({type(error).__name__}): check the network, "
        f"or set HF_HUB_OFFLINE=1 to use the cached copy, or pass the model's local directory (there is no "
        f"{model!r})"
    )


def _is_hub_id(model: str) -> bool:
    return not (is_named_model(model) or _looks_like_path(model) or Path(model).expanduser().exists())


def _hub_reachable(timeout_s: float = 2.0) -> bool:
    """Whether a TCP connection to the hub endpoint (HF_ENDPOINT) opens within `timeout_s`."""
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    endpoint = urlsplit(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _fail_fast_when_unreachable(model: str, revision: str | None, cache_path: Path | None) -> None:
    """A hub id that is not in the cache needs the network: without it, fail in a second or two with the
    one-line message, instead of huggingface_hub's half a minute of retries and warnings."""
    if _offline():
        return
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(model, "config.json", revision=revision, cache_dir=cache_path)
    if isinstance(cached, str):
        return  # a cached copy: transformers falls back to it when the hub cannot be reached
    if not _hub_reachable():
        from huggingface_hub import constants

        at = f"{model}@{revision}" if revision else model
        raise ModelLoadError(
            f"model {at!r} is not in the Hugging Face cache ({_hub_cache(cache_path)}) and the hub "
            f"({constants.ENDPOINT}) cannot be reached: run `hf download {model}` where there is network and "
            f"set HF_HUB_OFFLINE=1 and HF_HOME (or --cache-dir) to that cache, or pass the model's local "
            f"directory (there is no {model!r})"
        )


def check_model_available(options: ScorerOptions) -> None:
    """Refuse, without torch and in a second or two, a model that loading would refuse: a local directory that is
    not a Qwen3-VL checkpoint, or a hub id that is neither in the cache nor downloadable (offline, or the hub out
    of reach). Called before a run creates its score store, so such a run leaves nothing behind."""
    model, revision, cache_dir = options.model, options.revision, _cache_path(options)
    if is_named_model(model):
        return
    if not _is_hub_id(model):
        _check_local_dir(Path(model).expanduser())
        return
    if _offline():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json", revision=revision, cache_dir=cache_dir)
        if not isinstance(cached, str):
            raise ModelLoadError(_explain_hub_failure(model, revision, cache_dir, FileNotFoundError(model)))
        return
    _fail_fast_when_unreachable(model, revision, cache_dir)


def _snapshot_revision(directory: Path) -> str | None:
    """The commit hash when `directory` is a Hugging Face cache snapshot (`.../snapshots/<sha>`)."""
    if directory.parent.name == "snapshots" and _COMMIT.match(directory.name):
        return directory.name
    return None


def local_revision(directory: Path) -> str:
    """Commit hash of a hub snapshot, else a hash of config.json and the weight files' names and sizes."""
    commit = _snapshot_revision(directory.resolve())
    if commit:
        return commit
    digest = hashlib.sha256((directory / "config.json").read_bytes())
    for weights in sorted(directory.glob("*.safetensors")) + sorted(directory.glob("pytorch_model*.bin")):
        digest.update(f"\x00{weights.name}\x00{weights.stat().st_size}".encode())
    return f"local:{digest.hexdigest()[:16]}"


def load_model(options: ScorerOptions) -> LoadedModel:
    """Load a Qwen3-VL checkpoint and its processor, as `options` say (its model, revision, cache directory,
    dtype, device and attention implementation).

    `options.model` is a hub id (`revision` and `cache_dir` apply; HF_HOME and HF_HUB_OFFLINE are honoured), a
    local directory, or `tiny-random` (built on first use; prints a loud warning).
    """
    model, revision, cache_dir, dtype = options.model, options.revision, options.cache_dir, options.dtype
    device, attn_implementation = options.device, options.attn_implementation
    if is_fake_model(model):
        raise UsageError(f"{model} has no model to load; it only scores (load_scorer)")
    from rankvideo_cli.versions import check_installed

    check_installed("transformers", "torch", "torchvision", "qwen-vl-utils", "av")  # before they are used
    from transformers import AutoConfig, Qwen3VLForConditionalGeneration

    cache_path = Path(cache_dir).expanduser() if cache_dir is not None else None
    resolved_device = resolve_device(device)
    resolved_dtype = resolve_dtype(dtype, resolved_device)
    attn = resolve_attn_implementation(attn_implementation, resolved_device, resolved_dtype)

    is_tiny = model == TINY_MODEL_NAME
    local = is_tiny or _looks_like_path(model) or Path(model).expanduser().exists()
    if local and revision is not None:
        raise UsageError("--revision applies to hub ids only, not to a local directory or tiny-random")
    if is_tiny:
        warn_tiny_model()
        source: str = str(ensure_tiny_model())
    elif local:
        directory = Path(model).expanduser()
        _check_local_dir(directory)
        source = str(directory)
    else:
        source = model

    hub_kwargs: dict[str, Any] = {}
    if not local:
        _fail_fast_when_unreachable(model, revision, cache_path)
        # a cached commit cannot change: no network round trips (minutes of retries where the hub is unreachable)
        local_only = _offline() or _pinned_in_cache(model, revision, cache_path)
        hub_kwargs = {"revision": revision, "cache_dir": cache_path, "local_files_only": local_only}
        try:
            config = AutoConfig.from_pretrained(source, trust_remote_code=False, **hub_kwargs)
        except (OSError, ValueError) as error:
            raise ModelLoadError(_explain_hub_failure(model, revision, cache_path, error)) from None
        _check_architecture(config.to_dict(), f"{model!r}")

    where = model if not local else source
    try:
        with quiet_progress_bars():
            loaded = Qwen3VLForConditionalGeneration.from_pretrained(
                source,
                dtype=resolved_dtype,
                attn_implementation=attn,
                device_map=_device_map(resolved_device),
                trust_remote_code=False,
                **hub_kwargs,
            )
            processor = load_processor(source, hub_kwargs)
    except ImportError as error:
        raise ModelLoadError(f"cannot load {where}: {error}".splitlines()[0]) from None
    except (OSError, ValueError) as error:
        if local:
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ModelLoadError(f"cannot load the model in {source}: {first_line}") from None
        raise ModelLoadError(_explain_hub_failure(model, revision, cache_path, error)) from None
    if not hasattr(processor, "video_processor") or not hasattr(processor, "replace_video_token"):
        raise ModelLoadError(f"{where}: its processor ({type(processor).__name__}) is not a Qwen3-VL processor")
    loaded = loaded.to(resolved_device).eval()  # type: ignore[arg-type]  # transformers' wrapper of .to is typed for a model argument

    if is_tiny:
        model_id, model_revision = TINY_MODEL_NAME, Path(source).name
    elif local:
        model_id, model_revision = str(Path(source).resolve()), local_revision(Path(source))
    else:
        model_id, model_revision = (
            model,
            _hub_revision(model, revision, cache_path) or (revision or "unknown"),
        )
    return LoadedModel(
        model=loaded,
        processor=processor,
        model_id=model_id,
        revision=model_revision,
        dtype=resolved_dtype,
        device=resolved_device,
        attn_implementation=attn,
        is_tiny=is_tiny,
    )


_PROCESSORS: OrderedDict[tuple[str, ...], Any] = OrderedDict()
_PROCESSORS_KEPT = 2  # a fingerprint read and its load; a tokenizer holds ~100 MB of Python objects
_PROCESSORS_LOCK = threading.Lock()


def load_processor(source: str, hub_kwargs: dict[str, Any]) -> Any:
    """`AutoProcessor.from_pretrained`, once per process for the same files: a rerun's fingerprint, read before
    loading (`predict_fingerprint`), and the load that follows each parse the tokenizer (1.7 s for Qwen's 151k
    vocabulary). Only what cannot change under the same key is kept: a local directory, keyed by its files'
    names, sizes and times (an edited tokenizer is read again), or a hub snapshot at a commit hash (a branch
    or the default may move on the hub: read each time). Processors are only read from; sharing one is safe."""
    from transformers import AutoProcessor

    directory = Path(source).expanduser()
    revision = hub_kwargs.get("revision")
    if not directory.is_dir() and not (isinstance(revision, str) and _COMMIT.match(revision)):
        return AutoProcessor.from_pretrained(source, trust_remote_code=False, **hub_kwargs)
    files = sorted(
        f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"
        for path in (directory.iterdir() if directory.is_dir() else ())
        if path.is_file() and (stat := path.stat())
    )
    key = (source, *(f"{name}={value}" for name, value in sorted(hub_kwargs.items())), *files)
    with _PROCESSORS_LOCK:
        if key in _PROCESSORS:
            _PROCESSORS.move_to_end(key)
            return _PROCESSORS[key]
    processor = AutoProcessor.from_pretrained(source, trust_remote_code=False, **hub_kwargs)
    with _PROCESSORS_LOCK:
        _PROCESSORS[key] = processor
        while len(_PROCESSORS) > _PROCESSORS_KEPT:
            _PROCESSORS.popitem(last=False)
    return processor


def _pinned_in_cache(model: str, revision: str | None, cache_dir: Path | None) -> bool:
    """Whether `revision` is a commit hash whose snapshot is in the Hugging Face cache."""
    if revision is None or not _COMMIT.match(revision):
        return False
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(model, "config.json", revision=revision, cache_dir=cache_dir), str)


def _device_map(device: torch.device) -> str | None:
    """Load straight onto the GPU when transformers can (that needs accelerate); otherwise the weights load
    on the CPU and move afterwards."""
    if device.type == "cuda" and importlib.util.find_spec("accelerate") is not None:
        return str(device)
    return None


def _hub_revision(model: str, revision: str | None, cache_dir: Path | None) -> str | None:
    """The commit hash of the cached snapshot that was loaded."""
    from transformers.utils import cached_file

    try:
        path = cached_file(model, "config.json", revision=revision, cache_dir=cache_dir, local_files_only=True)
    except (OSError, ValueError):
        return None
    return _snapshot_revision(Path(path).parent) if path else None


def load_scorer(options: ScorerOptions) -> Scorer:
    """Load `model` (see `load_model`) and wrap it in a `Qwen3VLScorer` (`fake-scorer`: a `FakeScorer`).

    `options.prompt`: "inference" (the reference's, the default) or "training" (experimental; `prefix_cache`
    reuses each video's prefix across its queries, off for one full pass per pair)."""
    options.check()
    attn_implementation = check_prompt_options(
        options.prompt, options.score_mode, options.attn_implementation, options.prefix_cache
    )
    if is_fake_model(options.model):
        resolve_device(options.device)  # an unavailable --device is refused as a real model's would be
        return load_fake_scorer(options.model, **_fake_settings(options))
    if _is_hub_id(options.model):  # before torch and transformers are imported: seconds, when the hub is out of reach
        _fail_fast_when_unreachable(options.model, options.revision, _cache_path(options))
    from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer

    loaded = load_model(replace(options, attn_implementation=attn_implementation))
    return Qwen3VLScorer.from_loaded(
        loaded,
        score_mode=options.score_mode,
        batch_size=options.batch_size,
        prompt=options.prompt,
        prefix_cache=options.prefix_cache,
        reranker=options.selection().reranker.name,
        instruction=options.instruction,
    )


def _fake_settings(options: ScorerOptions) -> dict[str, Any]:
    """What the fake scorer stands for: the reranker, its prompt, instruction and score mode."""
    reranker = options.selection().reranker
    return {
        "prompt": options.prompt,
        "score_mode": options.score_mode,
        "reranker": reranker.name,
        "instruction": reranker.instruction(options),
    }


def _cache_path(options: ScorerOptions) -> Path | None:
    return Path(options.cache_dir).expanduser() if options.cache_dir is not None else None


def predict_fingerprint(options: ScorerOptions) -> dict[str, str] | None:
    """The fingerprint `load_scorer` with the same arguments would give, from the processor alone (the tokenizer
    and chat template: seconds, not the weights' minutes and gigabytes), so a run whose pairs are all in the
    score store loads no model.

    None when it cannot be known before loading: a hub id that is not cached, or one that `from_pretrained`
    could update from the network (set HF_HUB_OFFLINE=1, or pin --revision to a commit).
    """
    model, revision, prompt = options.model, options.revision, options.prompt
    if is_fake_model(model):
        resolve_device(options.device)  # as load_scorer does: a rerun refuses what the first run refused
        return FakeScorer(**_fake_settings(options)).fingerprint()
    from rankvideo_cli.scoring.base import scorer_fingerprint

    attn_implementation = check_prompt_options(
        prompt, options.score_mode, options.attn_implementation, options.prefix_cache
    )
    cache_path = _cache_path(options)
    resolved_device = resolve_device(options.device)
    resolved_dtype = resolve_dtype(options.dtype, resolved_device)
    attn = resolve_attn_implementation(attn_implementation, resolved_device, resolved_dtype)
    hub_kwargs: dict[str, Any] = {}
    source: str | Path
    if model == TINY_MODEL_NAME:
        source = ensure_tiny_model()
        model_id, model_revision = TINY_MODEL_NAME, source.name
    elif not _is_hub_id(model):
        source = Path(model).expanduser()
        _check_local_dir(source)
        model_id, model_revision = str(source.resolve()), local_revision(source)
    else:
        if not (_offline() or _pinned_in_cache(model, revision, cache_path)):
            return None
        commit = _hub_revision(model, revision, cache_path)
        if commit is None:
            return None
        source, model_id, model_revision = model, model, commit
        hub_kwargs = {"revision": commit, "cache_dir": cache_path, "local_files_only": True}
    try:
        processor = load_processor(str(source), hub_kwargs)
        recipe = options.selection().reranker.build_recipe(processor, options)
        hashed, extra = recipe.prompt_hash(), recipe.fingerprint_fields()
    except (OSError, ValueError, ImportError):
        return None  # loading says why, in its own words
    return scorer_fingerprint(
        model_id=model_id,
        revision=model_revision,
        dtype=str(resolved_dtype),
        attn_implementation=attn,
        score_mode=options.score_mode,
        prompt_hash=hashed,
        extra=extra,
    )
