"""Find, check and load a Qwen3-VL checkpoint (hub id, local directory or `tiny-random`) into a scorer.

Every way loading can fail ends in a one-line `ModelLoadError` that says what to do; nothing is downloaded
when `HF_HUB_OFFLINE=1` (or `TRANSFORMERS_OFFLINE=1`). `trust_remote_code` is never enabled: RankVideo is
a plain Qwen3-VL, which transformers implements itself.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rankvideo_cli.errors import ModelLoadError, UsageError
from rankvideo_cli.scoring.base import Scorer, check_prompt_options
from rankvideo_cli.scoring.fake import FakeScorer, is_fake_model, load_fake_scorer
from rankvideo_cli.scoring.hf import LoadedModel, quiet_progress_bars
from rankvideo_cli.scoring.model_files import (
    COMMIT,
    cached_snapshot,
    check_architecture,
    check_local_dir,
    hub_cache,
    incomplete_snapshot,
    is_hub_id,
    local_revision,
    looks_like_path,
    not_cached_offline,
    offline,
    resolve_model_offline,
    snapshot_revision,
)
from rankvideo_cli.scoring.options import ScorerOptions, is_named_model
from rankvideo_cli.scoring.runtime import (
    attn_implementation_for,
    device_type,
    dtype_name,
    unavailable_cuda,
)
from rankvideo_cli.scoring.tiny import TINY_MODEL_NAME, ensure_tiny_model, warn_tiny_model

if TYPE_CHECKING:
    import torch


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
        raise unavailable_cuda(device)
    return resolved


def resolve_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """`None`: bfloat16 on CUDA (the checkpoint's dtype), float32 elsewhere (`runtime.dtype_name`)."""
    import torch

    return getattr(torch, dtype_name(dtype, device.type))  # a torch.dtype by its name


def resolve_attn_implementation(attn_implementation: str | None, device: torch.device, dtype: torch.dtype) -> str:
    """`None`: flash_attention_2 on CUDA in half precision when flash-attn is installed, else sdpa
    (`runtime.attn_implementation_for`)."""
    return attn_implementation_for(attn_implementation, device.type, str(dtype).removeprefix("torch."))


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
    if offline():
        return not_cached_offline(model, revision, cache_dir)
    return (
        f"could not download {at!r} from the Hugging Face Hub ({type(error).__name__}): check the network, "
        f"or set HF_HUB_OFFLINE=1 to use the cached copy, or pass the model's local directory (there is no "
        f"{model!r})"
    )


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
    """A hub id that the cache does not hold whole needs the network: without it, fail in a second or two with
    the one-line message, instead of huggingface_hub's half a minute of retries and warnings, or transformers'
    error about a missing weight file of a download cut short."""
    snapshot = cached_snapshot(model, revision, cache_path)
    incomplete = incomplete_snapshot(model, revision, snapshot) if snapshot is not None else None
    if offline():
        if incomplete is not None:
            raise ModelLoadError(incomplete)
        return  # not cached at all: from_pretrained's failure is explained (_explain_hub_failure)
    if snapshot is not None and incomplete is None:
        return  # a whole cached copy: transformers falls back to it when the hub cannot be reached
    if not _hub_reachable():
        from huggingface_hub import constants

        if incomplete is not None:
            raise ModelLoadError(f"{incomplete}; the hub ({constants.ENDPOINT}) cannot be reached to complete it")
        at = f"{model}@{revision}" if revision else model
        raise ModelLoadError(
            f"model {at!r} is not in the Hugging Face cache ({hub_cache(cache_path)}) and the hub "
            f"({constants.ENDPOINT}) cannot be reached: run `hf download {model}` where there is network and "
            f"set HF_HUB_OFFLINE=1 and HF_HOME (or --cache-dir) to that cache, or pass the model's local "
            f"directory (there is no {model!r})"
        )


def check_model_available(options: ScorerOptions) -> None:
    """Refuse, without torch and in a second or two, a model that loading would refuse: a local directory that is
    not a Qwen3-VL checkpoint or misses weight files, or a hub id that is neither in the cache whole nor
    downloadable (offline, or the hub out of reach). Called before a run creates its score store, so such a run
    leaves nothing behind."""
    model, revision, cache_dir = options.model, options.revision, _cache_path(options)
    if is_named_model(model):
        return
    if not is_hub_id(model):
        check_local_dir(Path(model).expanduser())
        return
    if offline() and cached_snapshot(model, revision, cache_dir) is None:
        raise ModelLoadError(_explain_hub_failure(model, revision, cache_dir, FileNotFoundError(model)))
    _fail_fast_when_unreachable(model, revision, cache_dir)


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
    local = is_tiny or looks_like_path(model) or Path(model).expanduser().exists()
    if local and revision is not None:
        raise UsageError("--revision applies to hub ids only, not to a local directory or tiny-random")
    if is_tiny:
        warn_tiny_model()
        source: str = str(ensure_tiny_model())
    elif local:
        directory = Path(model).expanduser()
        check_local_dir(directory)
        source = str(directory)
    else:
        source = model

    hub_kwargs: dict[str, Any] = {}
    if not local:
        _fail_fast_when_unreachable(model, revision, cache_path)
        # a cached commit cannot change: no network round trips (minutes of retries where the hub is unreachable)
        local_only = offline() or _pinned_in_cache(model, revision, cache_path)
        hub_kwargs = {"revision": revision, "cache_dir": cache_path, "local_files_only": local_only}
        try:
            config = AutoConfig.from_pretrained(source, trust_remote_code=False, **hub_kwargs)
        except (OSError, ValueError) as error:
            raise ModelLoadError(_explain_hub_failure(model, revision, cache_path, error)) from None
        check_architecture(config.to_dict(), f"{model!r}")

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
_PROCESSORS_KEPT = 2  # a tokenizer holds ~100 MB of Python objects
_PROCESSORS_LOCK = threading.Lock()


def load_processor(source: str, hub_kwargs: dict[str, Any]) -> Any:
    """`AutoProcessor.from_pretrained`, once per process for the same files: a process that loads a model again
    (a Python session, a test run) parses the tokenizer once (1.7 s for Qwen's 151k vocabulary). Only what
    cannot change under the same key is kept: a local directory, keyed by its files' names, sizes and times (an
    edited tokenizer is read again), or a hub snapshot at a commit hash (a branch or the default may move on the
    hub: read each time). Processors are only read from; sharing one is safe."""
    from transformers import AutoProcessor

    directory = Path(source).expanduser()
    revision = hub_kwargs.get("revision")
    if not directory.is_dir() and not (isinstance(revision, str) and COMMIT.match(revision)):
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
    """Whether `revision` is a commit hash whose snapshot is in the Hugging Face cache, whole: one missing a
    weight file is loaded online, so that transformers downloads what is missing."""
    if revision is None or not COMMIT.match(revision):
        return False
    snapshot = cached_snapshot(model, revision, cache_dir)
    return snapshot is not None and incomplete_snapshot(model, revision, snapshot) is None


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
    return snapshot_revision(Path(path).parent) if path else None


def load_scorer(options: ScorerOptions) -> Scorer:
    """Load `model` (see `load_model`) and wrap it in a `Qwen3VLScorer` (`fake-scorer`: a `FakeScorer`).

    `options.prompt`: "inference" (the reference's, the default) or "training" (experimental; `prefix_cache`
    reuses each video's prefix across its queries, off for one full pass per pair)."""
    options.check()
    attn_implementation = check_prompt_options(
        options.prompt, options.score_mode, options.attn_implementation, options.prefix_cache
    )
    if is_fake_model(options.model):
        resolve_device_type(options.device)  # an unavailable --device is refused as a real model's would be
        return load_fake_scorer(options.model, **_fake_settings(options))
    if is_hub_id(options.model):  # before torch and transformers are imported: seconds, when the hub is out of reach
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


def resolve_device_type(device: str | None) -> str:
    """The type of `resolve_device(device)` ("cpu", "cuda"), torch-free where `runtime.device_type` can tell."""
    known = device_type(device)
    return known if known is not None else resolve_device(device).type


def resolve_device_name(device: str | None) -> str:
    """`str(resolve_device(device))` ("cpu", "cuda", "cuda:1"), torch-free where `runtime.device_type` can tell."""
    known = device_type(device)
    if known is None:
        return str(resolve_device(device))
    return device if device is not None else known


def predict_fingerprint(options: ScorerOptions) -> dict[str, str] | None:
    """The fingerprint `load_scorer` with the same arguments would give, from the model's files alone (its
    config, weights' names and sizes or commit, and chat template: milliseconds, no torch, transformers or
    weights), so a run whose pairs are all in the score store loads no model.

    None when it cannot be known before loading: a hub id that is not cached, or one that `from_pretrained`
    could update from the network (set HF_HUB_OFFLINE=1, or pin --revision to a commit), or a chat template this
    process cannot render as the processor would (`chat_template.template_for`).
    """
    if is_fake_model(options.model):
        resolve_device_type(options.device)  # as load_scorer does: a rerun refuses what the first run refused
        return FakeScorer(**_fake_settings(options)).fingerprint()
    from rankvideo_cli.scoring.base import scorer_fingerprint
    from rankvideo_cli.scoring.chat_template import TemplateProcessor, template_for

    attn_implementation = check_prompt_options(
        options.prompt, options.score_mode, options.attn_implementation, options.prefix_cache
    )
    on = resolve_device_type(options.device)
    dtype = dtype_name(options.dtype, on)
    attn = attn_implementation_for(attn_implementation, on, dtype)
    if options.model == TINY_MODEL_NAME:
        ensure_tiny_model()  # built by the first run; built here only where its cache was removed since
    files = resolve_model_offline(options.model, options.revision, _cache_path(options))
    if files.problem is not None or files.directory is None or files.revision is None or not files.pinned:
        return None  # loading refuses it, or finds the commit it loads, in its own words
    if files.kind == "hub" and not COMMIT.match(files.revision):
        return None  # loading names such a snapshot's revision in its own way
    try:
        template = template_for(files.directory)
        if template is None:
            return None
        recipe = options.selection().reranker.build_recipe(TemplateProcessor(template), options)
        hashed, extra = recipe.prompt_hash(), recipe.fingerprint_fields()
    except (OSError, ValueError, ImportError):
        return None  # loading says why, in its own words
    return scorer_fingerprint(
        model_id=files.model_id,
        revision=files.revision,
        dtype=dtype,
        attn_implementation=attn,
        score_mode=options.score_mode,
        prompt_hash=hashed,
        extra=extra,
    )
