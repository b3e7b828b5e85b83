"""Atomic output: write a temp file beside the target, fsync, rename. Readers never see a half-written file, and
an interrupted write leaves the previous file (if any) untouched."""

from __future__ import annotations

import contextlib
import os
import select
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from rankvideo_cli.errors import RankVideoError


class OutputWriteError(RankVideoError):
    """An output could not be written (a full disk, a quota, a read-only remount): the file that was there before,
    if any, is unchanged. Exit 1: the inputs were fine, the run is not written."""

    exit_code = 1

    def __init__(self, path: str | Path, error: OSError) -> None:
        reason = error.strerror or str(error)
        super().__init__(f"{path}: cannot write: {reason} (any earlier file of that name is unchanged)")
        self.path = str(path)
        self.errno = error.errno


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

    The parent directory is created if needed; an existing target keeps its permission bits. A symlink is
    followed: the file it points to is replaced (atomically), the link itself stays.
    A failure of the file system (no space, quota, read-only) is an `OutputWriteError` naming `path`.
    """
    target = Path(os.path.realpath(path))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = target.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = _NEW_FILE_MODE
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as error:
        raise OutputWriteError(path, error) from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            yield stream
            stream.flush()
            os.fchmod(stream.fileno(), mode)
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise OutputWriteError(path, error) from None
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


class StdoutClosed(Exception):
    """stdout's reader went away. Not an OSError, so that click's own EPIPE handling (exit 1) does not take it:
    the CLI exits 141 quietly, as a command killed by SIGPIPE would."""


def write_output_chunks(chunks: Iterable[str], destination: str | Path | None, *, flush_bytes: int = 1 << 20) -> None:
    """Write `chunks` to `destination` atomically (see `atomic_writer`), or to stdout in ~1 MiB writes when it is
    None or `-` (every byte: see `write_stdout`)."""
    if destination is not None and str(destination) != "-":
        with atomic_writer(destination) as stream:
            for chunk in chunks:
                stream.write(chunk)
        return
    pending: list[str] = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= flush_bytes:
            write_stdout("".join(pending))
            pending, size = [], 0
    if pending:
        write_stdout("".join(pending))


def write_stdout(text: str) -> None:
    """Write all of `text` to stdout, however the pipe takes it.

    `sys.stdout.write` loses data on a non-blocking pipe (a parent that set O_NONBLOCK, some job runners):
    the buffered writer raises `BlockingIOError` after a short write. This writes the encoded bytes with
    `os.write` until none are left, waiting for the pipe to drain when it is full. A closed pipe raises
    `StdoutClosed`, which the CLI turns into a quiet exit 141.
    """
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test runner's capture)
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    data = memoryview(text.encode(sys.stdout.encoding or "utf-8"))
    try:
        sys.stdout.flush()
        while data:
            try:
                written = os.write(descriptor, data)
            except BlockingIOError:
                select.select([], [descriptor], [])
                continue
            data = data[written:]
    except BrokenPipeError:
        raise StdoutClosed() from None


def quiet_broken_pipe() -> None:
    """After stdout's reader went away (`rankvideo ... | head`): point stdout at /dev/null, so that the flush at
    interpreter exit raises no second BrokenPipeError (the Python documentation's recipe for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
