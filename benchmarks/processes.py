"""Measuring one command as its own process: wall time around it and its own peak RSS (`os.wait4`)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path


def measure(command: list[str], cwd: Path | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of one process; a failure stops the benchmark with its stderr."""
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        stdout.seek(0)
        stderr.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{stderr.read().decode()[-2000:]}")
        return wall, usage.ru_maxrss / 1024, stdout.read().decode()
