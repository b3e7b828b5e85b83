"""What a real run needs, checked without loading the model: shared by `rankvideo doctor` and the dry run, so
that a dry run that passes means the real run gets past loading.

Each check is a `Finding` (ok, warn, fail or info) with what was found and, when it is not ok, what to do.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rankvideo_cli.errors import ModelLoadError, RankVideoError, UsageError
from rankvideo_cli.jobs.preflight import check_writable_directory
from rankvideo_cli.messages import plural, shorten
from rankvideo_cli.scoring.fake import is_fake_model
from rankvideo_cli.scoring.model_files import OfflineModel, resolve_model_offline
from rankvideo_cli.scoring.options import ScorerOptions
from rankvideo_cli.scoring.tiny import TINY_MODEL_NAME

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"
GIB = 1024**3
STORE_BYTES_PER_PAIR = 512  # a score record is ~300 bytes of JSON; the rest is margin
RUN_BYTES_PER_PAIR = 96  # a TREC line with a long qid and docid


@dataclass(frozen=True)
class Finding:
    """One check: `status` ok, warn, fail or info; `detail` what was found; `fix` what to do when not ok."""

    check: str
    status: str
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def line(self) -> str:
        """The problem as one line: what, then what to do."""
        return f"{self.check}: {self.detail}" + (f"; {self.fix}" if self.fix else "")

    def as_dict(self) -> dict:
        return {"check": self.check, "status": self.status, "detail": self.detail, "fix": self.fix}


class NotReady(RankVideoError):
    """A check the real run would fail: the one line per problem is already printed."""

    exit_code = 1


def check_model(options: ScorerOptions) -> tuple[Finding, OfflineModel]:
    """The model resolvable as the run will load it (`model_files.resolve_model_offline`: a local Qwen3-VL
    directory, or a hub id in the cache, at which commit), or downloadable: not cached, with the hub allowed and
    in reach (`loading.check_model_available` says why not)."""
    found = resolve_model_offline(options.model, options.revision, options.cache_dir)
    if found.kind == "fake-scorer":
        return Finding("model", OK, f"{options.model}: no weights (the test scorer)"), found
    if found.kind == TINY_MODEL_NAME and found.resolved:
        return Finding("model", WARN, "tiny-random: random weights, its scores mean nothing"), found
    if found.resolved and found.kind == "local":
        return Finding("model", OK, f"local directory {found.directory} ({found.revision})"), found
    if found.resolved:
        detail = f"{options.model} in the cache at commit {found.revision}"
        if not found.pinned:
            detail += " (online, loading may take a newer commit: --revision COMMIT or HF_HUB_OFFLINE=1 pins it)"
        return Finding("model", OK, detail), found
    if found.kind == "hub":
        from rankvideo_cli.scoring.loading import check_model_available

        try:
            check_model_available(options)  # offline, or the hub out of reach: its one-line refusal
        except ModelLoadError as error:
            return Finding("model", FAIL, str(error)), found
        missing = found.problem if found.directory is not None else f"{options.model} is not in the cache"
        return Finding("model", WARN, f"{missing}: the run will download it"), found
    return Finding("model", FAIL, found.problem or f"{options.model}: unusable"), found


def flash_attn_problem() -> str | None:
    """Why an installed flash-attn does not import (built for another torch or CUDA: the usual failure on a
    cluster), or None: not installed, or it imports."""
    import importlib
    import importlib.util

    if importlib.util.find_spec("flash_attn") is None:
        return None
    try:
        importlib.import_module("flash_attn")
    except Exception as error:  # an extension built for another torch fails in many ways: ImportError, OSError...
        return f"flash-attn is installed but does not import ({type(error).__name__}: {shorten(str(error), 160)})"
    return None


@dataclass(frozen=True)
class CudaDevice:
    """What the checks say of one CUDA device: its name, free and total memory, and bfloat16 (compute
    capability 8.0 or newer)."""

    index: int
    name: str
    free_bytes: int
    total_bytes: int
    bf16: bool

    @classmethod
    def at(cls, index: int) -> CudaDevice:
        import torch

        free, total = torch.cuda.mem_get_info(index)
        capable = torch.cuda.get_device_capability(index) >= (8, 0)
        return cls(index, torch.cuda.get_device_name(index), free, total, capable)

    def describe(self) -> str:
        return f"{self.name}, {self.free_bytes / GIB:.1f} of {self.total_bytes / GIB:.1f} GiB free"


@dataclass(frozen=True)
class DeviceChoice:
    """The device the run will use (`cpu`, `cuda:0`); `gpu` the CUDA device's name (the dry run's GPU-time
    prediction needs both; the finding's detail says the dtype and attention implementation)."""

    device: str
    gpu: str | None


def check_device(options: ScorerOptions) -> tuple[Finding, DeviceChoice | None]:
    """Device, dtype and attention implementation resolved as loading resolves them, and bfloat16 on a GPU
    that has it."""
    try:
        import torch
    except ImportError:
        return Finding("device", FAIL, "torch is not installed", "pip install rankvideo-cli's requirements"), None
    from rankvideo_cli.scoring.base import check_prompt_options
    from rankvideo_cli.scoring.loading import resolve_attn_implementation, resolve_device, resolve_dtype

    try:
        attn = check_prompt_options(
            options.prompt, options.score_mode, options.attn_implementation, options.prefix_cache
        )
        device = resolve_device(options.device)
        dtype = resolve_dtype(options.dtype, device)
        attn = resolve_attn_implementation(attn, device, dtype)
    except UsageError as error:
        return Finding("device", FAIL, str(error)), None
    if attn == "flash_attention_2" and (broken := flash_attn_problem()) is not None:
        fix = f"pass --attn-implementation sdpa, or reinstall flash-attn built for torch {torch.__version__}"
        return Finding("device", FAIL, broken, fix), None
    dtype_name = str(dtype).removeprefix("torch.")
    gpu = None
    detail = f"{device}, {dtype_name}, {attn}"
    if device.type == "cuda":
        cuda = CudaDevice.at(device.index if device.index is not None else torch.cuda.current_device())
        gpu = cuda.name
        detail = f"{device} ({cuda.describe()}), {dtype_name}, {attn}"
        if dtype == torch.bfloat16 and not cuda.bf16:
            return Finding("device", FAIL, f"{gpu} has no bfloat16", "pass --dtype fp16 or fp32"), None
    elif not is_fake_model(options.model):
        warning = Finding("device", WARN, detail + ": no GPU, scoring on the CPU takes minutes a pair")
        return warning, DeviceChoice(str(device), None)
    return Finding("device", OK, detail), DeviceChoice(str(device), gpu)


def check_space(what: str, path: Path, needed_bytes: int = 0) -> Finding:
    """`path` (or where it will be created) writable, as the run's own check tries it (a real file), with
    `needed_bytes` free (and some space free at all)."""
    try:
        target = check_writable_directory(path, what)
    except UsageError as error:
        return Finding(what, FAIL, str(error).removeprefix(f"{what} "), "choose a writable location")
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    detail = f"{path}: {size_text(free)} free"
    if needed_bytes > free or free == 0:
        needed = f", {size_text(needed_bytes)} needed" if needed_bytes else ""
        return Finding(what, FAIL, f"{detail}{needed}", "free space or choose another location")
    return Finding(what, OK, detail + (f", {size_text(needed_bytes)} needed" if needed_bytes else ""))


def size_text(size: int) -> str:
    """Bytes as a person reads them: `12.8 GiB`, `3 MiB`, `under 1 MiB`, `0 bytes`."""
    if size == 0:
        return "0 bytes"
    if size >= GIB:
        return f"{size / GIB:.1f} GiB"
    return f"{size // 1024**2} MiB" if size >= 1024**2 else "under 1 MiB"


def store_bytes(pairs_to_score: int, candidates: int) -> int:
    """Disk a run needs beside its inputs: a record per scored pair in the store, and the run itself."""
    return pairs_to_score * STORE_BYTES_PER_PAIR + candidates * RUN_BYTES_PER_PAIR


def report_problems(
    findings: list[Finding], say_line: Callable[[str], None], meaning: str = "the real run would fail"
) -> None:
    """One line per failed check (through `say_line`), then `NotReady` saying what they mean."""
    failed = [finding for finding in findings if finding.failed]
    for finding in failed:
        say_line(finding.line())
    if failed:
        raise NotReady(f"{plural(len(failed), 'problem')}: {meaning} (see above)")
