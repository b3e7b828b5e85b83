"""Where and how a model runs, by name and without torch: the device type, the dtype and the attention
implementation that loading picks (`loading.resolve_device`, `resolve_dtype`, `resolve_attn_implementation` are
these rules with torch's objects), so a fingerprint can be predicted without importing torch.

Whether CUDA is there is asked of what torch would ask: torch's build (its `version.py` names the CUDA it was
built for, or None) and the CUDA driver (`cuInit`, `cuDriverGetVersion` and `cuDeviceGetCount` of libcuda
through ctypes, which honour CUDA_VISIBLE_DEVICES as torch does; a driver older than torch's CUDA counts as
none, as torch finds none). A question these cannot answer (a ROCm build, a device type other than cpu
and cuda) returns None, and the caller asks torch itself.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import re
from pathlib import Path

from rankvideo_cli.errors import UsageError

ATTN_IMPLEMENTATIONS = ("sdpa", "flash_attention_2", "eager")
DTYPE_NAMES = {
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "fp32": "float32",
    "float32": "float32",
    "float": "float32",
}
HALF_PRECISION = ("bfloat16", "float16")
# the devices whose type the string tells: `cpu`, `cuda`, `cuda:N` (torch.device's spelling)
_PLAIN_DEVICE = re.compile(r"^(?P<type>cpu|cuda)(:(?P<index>0|[1-9][0-9]*))?$")
_BUILT_FOR = re.compile(r"^(?P<name>cuda|hip)\s*(:[^=]*)?=\s*(?P<value>.+?)\s*$", re.MULTILINE)


def torch_cuda_build() -> str | None:
    """The CUDA version the installed torch was built for ("13.0"; its `torch/version.py`), "" for a CPU build;
    None for a ROCm build (whose `torch.cuda` is HIP) or when torch is not there to read."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text(encoding="utf-8")
    except OSError:
        return None
    built_for = {match["name"]: match["value"].strip("'\"") for match in _BUILT_FOR.finditer(text)}
    if built_for.get("hip", "None") != "None" or "cuda" not in built_for:
        return None
    return "" if built_for["cuda"] == "None" else built_for["cuda"]


def cuda_driver_devices(built_for: str) -> int:
    """How many CUDA devices the driver shows this process (CUDA_VISIBLE_DEVICES applied) that a torch built for
    CUDA `built_for` can use: 0 without a driver, or with one older than that CUDA's major version (torch then
    finds no device either).

    `cuInit` creates no context: torch initialises the same driver later in this process. A process that forks
    after it cannot use CUDA in the child (as after torch's own initialisation); rankvideo's device workers are
    new processes (`subprocess`), and its decode workers use no CUDA."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    version, count = ctypes.c_int(0), ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDriverGetVersion(ctypes.byref(version)) != 0:
        return 0
    if version.value // 1000 < int(built_for.split(".")[0]):
        return 0
    if driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


@functools.cache
def cuda_available() -> bool | None:
    """`torch.cuda.is_available()` without importing torch; None where only torch can tell (see the module)."""
    built_for = torch_cuda_build()
    if built_for is None:
        return None
    return bool(built_for) and cuda_driver_devices(built_for) > 0


def device_type(device: str | None) -> str | None:
    """The type ("cpu", "cuda") of the device loading would pick for `device` (None: CUDA if there is some,
    else the CPU), refusing the same unavailable CUDA device; None where only torch can tell."""
    if device is None:
        available = cuda_available()
        return None if available is None else ("cuda" if available else "cpu")
    plain = _PLAIN_DEVICE.match(device)
    if plain is None:
        return None  # mps, xpu, a misspelling...: torch.device says what it is
    if plain["type"] == "cpu":
        return "cpu"
    available = cuda_available()
    if available is None:
        return None
    if not available:
        raise unavailable_cuda(device)
    return "cuda"


def unavailable_cuda(device: str) -> UsageError:
    return UsageError(f"device {device!r} requested but no CUDA device is available (use --device cpu)")


def dtype_name(dtype: str | None, device_type: str) -> str:
    """`None`: bfloat16 on CUDA (the checkpoint's dtype), float32 elsewhere."""
    if dtype is None:
        return "bfloat16" if device_type == "cuda" else "float32"
    name = DTYPE_NAMES.get(dtype.lower())
    if name is None:
        raise UsageError(f"unknown dtype {dtype!r} (use bfloat16, float16 or float32)")
    return name


def attn_implementation_for(attn_implementation: str | None, device_type: str, dtype_name: str) -> str:
    """`None`: flash_attention_2 on CUDA in half precision when flash-attn is installed, else sdpa."""
    flash_installed = importlib.util.find_spec("flash_attn") is not None
    half = dtype_name in HALF_PRECISION
    if attn_implementation is None:
        return "flash_attention_2" if device_type == "cuda" and half and flash_installed else "sdpa"
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise UsageError(
            f"unknown attention implementation {attn_implementation!r} (use {', '.join(ATTN_IMPLEMENTATIONS)})"
        )
    if attn_implementation == "flash_attention_2":
        if not flash_installed:
            raise UsageError("flash_attention_2 needs the flash-attn package, which is not installed (use sdpa)")
        if device_type != "cuda" or not half:
            raise UsageError("flash_attention_2 runs only on CUDA in bfloat16 or float16 (use sdpa)")
    return attn_implementation
