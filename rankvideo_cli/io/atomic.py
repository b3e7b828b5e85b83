"""Atomic output: write a temp file beside the target, fsync, rename. Readers never see a half-written file, and
an interrupted write leaves the previous file (if any) untouched."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


def _read_umask() -> int:
    # os.umask can only be read by setting it; done once at import, before any worker thread exists.
    current = os.umask(0o022)
    os.umask(current)
    return current


# mkstemp creates 0600 files; outputs get the permissions a plain open() would give them.
_NEW_FILE_MODE = 0o666 & ~_read_umask()


@contextlib.contextmanager
def atomic_writer(path: str | Path) -> Iterator[TextIO]:
    """A UTF-8 text stream whose content replaces `path` only when the block exits without an exception.

    The parent directory is created if needed; an existing target keeps its permission bits.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = _NEW_FILE_MODE
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            yield stream
            stream.flush()
            os.fchmod(stream.fileno(), mode)
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; some file systems refuse to open or fsync a directory, which is harmless.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Replace `path` with `text` atomically (see `atomic_writer`)."""
    with atomic_writer(path) as stream:
        stream.write(text)


def write_output(text: str, destination: str | Path | None) -> None:
    """Write to `destination` atomically, or to stdout when it is None or `-`."""
    if destination is None or str(destination) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        atomic_write_text(destination, text)
