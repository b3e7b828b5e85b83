"""Atomic output: write a temp file beside the target, fsync, rename. Readers never see a half-written file."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def atomic_write_text(path: str | Path, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_output(text: str, destination: str | Path | None) -> None:
    """Write to `destination` atomically, or to stdout when it is None or `-`."""
    if destination is None or str(destination) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        atomic_write_text(destination, text)
