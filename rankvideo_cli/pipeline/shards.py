"""Deterministic splitting of a rerank job into shards, by video, for SLURM job arrays.

Every video belongs to exactly one shard, chosen by a stable hash of its key (the resolved video path),
so each video is decoded by one shard only, and the split is the same on every machine and Python version.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from rankvideo_cli.errors import UsageError

_SLURM_ARRAY_VARIABLES = (
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_STEP",
    "SLURM_ARRAY_TASK_MAX",
)
_SHARD_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True, order=True)
class Shard:
    """Shard `index` (0-based) of `count`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise UsageError(f"--shard: the shard count must be at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise UsageError(f"--shard: the index must be in 0..{self.count - 1}, got {self.index}")

    def owns(self, video_key: str) -> bool:
        return shard_of(video_key, self.count) == self.index

    @property
    def label(self) -> str:
        """File-name friendly, sorts in index order: 'shard-0003-of-0008'."""
        width = max(4, len(str(self.count - 1)))
        return f"shard-{self.index:0{width}d}-of-{self.count:0{width}d}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(video_key: str, count: int) -> int:
    """The shard a video belongs to: sha256 of its key, not Python's per-process salted hash()."""
    digest = hashlib.sha256(video_key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(spec: str | None, environ: Mapping[str, str] | None = None) -> Shard | None:
    """Parse `--shard`: None (no sharding), 'I/N' with 0 <= I < N, or 'auto' (from the SLURM array variables).

    'auto' reads SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT, SLURM_ARRAY_TASK_MIN and (if set)
    SLURM_ARRAY_TASK_STEP, so `--array=0-7`, `--array=1-8` and `--array=0-14:2` all give shards 0..7 of 8.
    Outside SLURM, 'auto' means no sharding (the same script runs on a workstation); inside a SLURM job that
    is not an array it is an error, since the user most likely forgot `--array`.
    With RANKVIDEO_SHARDS=N set, array task I is shard I/N whatever the array: how chosen shards are re-run
    (`RANKVIDEO_SHARDS=8 sbatch --array=3,5 ...`); without it an array with gaps is refused, since its task
    count is not the shard count.
    """
    if spec is None:
        return None
    text = spec.strip()
    if text.lower() == "auto":
        return _shard_from_slurm(os.environ if environ is None else environ)
    match = _SHARD_SPEC.match(text)
    if not match:
        raise UsageError(f"--shard: expected I/N (for example 0/8) or 'auto', got {spec!r}")
    return Shard(int(match.group(1)), int(match.group(2)))


def _shard_from_slurm(environ: Mapping[str, str]) -> Shard | None:
    task_id = environ.get("SLURM_ARRAY_TASK_ID")
    fixed_count = environ.get("RANKVIDEO_SHARDS", "").strip()
    if fixed_count:
        if task_id is None:
            raise UsageError("--shard auto: RANKVIDEO_SHARDS is set but this is not an array job: submit with --array")
        if not (fixed_count.isdigit() and task_id.strip().isdigit()):
            raise UsageError(f"--shard auto: RANKVIDEO_SHARDS={fixed_count!r} is not a shard count")
        return Shard(int(task_id), int(fixed_count))
    if task_id is None:
        if environ.get("SLURM_JOB_ID") is not None:
            raise UsageError(
                "--shard auto: this SLURM job is not an array job (SLURM_ARRAY_TASK_ID is unset); "
                "submit with sbatch --array=0-N or pass --shard I/N"
            )
        return None
    values = {}
    for name in _SLURM_ARRAY_VARIABLES:
        raw = environ.get(name)
        if raw is None:
            continue
        try:
            values[name] = int(raw)
        except ValueError:
            raise UsageError(f"--shard auto: {name}={raw!r} is not an integer") from None
    if "SLURM_ARRAY_TASK_COUNT" not in values:
        raise UsageError("--shard auto: SLURM_ARRAY_TASK_COUNT is unset (SLURM < 17.02?); pass --shard I/N")
    count = values["SLURM_ARRAY_TASK_COUNT"]
    offset = values["SLURM_ARRAY_TASK_ID"] - values.get("SLURM_ARRAY_TASK_MIN", 0)
    step = values.get("SLURM_ARRAY_TASK_STEP", 1) or 1
    if offset % step:
        raise UsageError(
            f"--shard auto: array task {values['SLURM_ARRAY_TASK_ID']} is not on the array's step {step}; "
            "use a contiguous --array=0-N (or --array=A-B:S) or pass --shard I/N"
        )
    if "SLURM_ARRAY_TASK_MAX" in values and "SLURM_ARRAY_TASK_MIN" in values:
        span = (values["SLURM_ARRAY_TASK_MAX"] - values["SLURM_ARRAY_TASK_MIN"]) // step + 1
        if span != count:
            raise UsageError(
                f"--shard auto: the array has gaps ({count} tasks from {values['SLURM_ARRAY_TASK_MIN']} to "
                f"{values['SLURM_ARRAY_TASK_MAX']}), so its size is not the shard count; to re-run some shards, "
                "set RANKVIDEO_SHARDS to the shard count of the first submission"
            )
    index = offset // step
    if not 0 <= index < count:
        raise UsageError(
            f"--shard auto: array task {values['SLURM_ARRAY_TASK_ID']} maps to shard {index} of {count}; "
            "use a contiguous --array=0-N (or --array=A-B:S) or pass --shard I/N"
        )
    return Shard(index, count)
