"""Reading input files as text: gzip by magic bytes, `-` for stdin, undecodable bytes reported with their line.

`read_text` gives the whole file; `iter_lines` streams it line by line, for inputs of millions of lines (runs,
qrels) whose text need never be in memory at once."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from rankvideo_cli.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
STDIN = "-"
# What was read from stdin in this process (its size and sha256), for the manifest: stdin cannot be read twice.
_stdin_read: dict[str, int | str] = {}


def stdin_digest() -> dict[str, int | str] | None:
    """{"bytes": n, "sha256": hex} of the bytes this process read from stdin (`-`), or None if it read none."""
    return dict(_stdin_read) if _stdin_read else None


def _read_stdin(stdin: BinaryIO | None) -> bytes:
    data = (stdin if stdin is not None else sys.stdin.buffer).read()
    _stdin_read.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    return data


def display_name(path: str | Path) -> str:
    """How error messages name an input: its path as given, `<stdin>` for `-`."""
    return "<stdin>" if str(path) == STDIN else str(path)


@contextlib.contextmanager
def _open_binary(path: str | Path, stdin: BinaryIO | None) -> Iterator[io.BufferedReader]:
    name = display_name(path)
    if str(path) == STDIN:
        # read whole: its checksum goes to the manifest; buffered, so that it can be peeked like a file
        yield io.BufferedReader(io.BytesIO(_read_stdin(stdin)))
        return
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by the context manager
    except FileNotFoundError:
        raise InputError(name, None, "no such file") from None
    except IsADirectoryError:
        raise InputError(name, None, "is a directory, not a file") from None
    except OSError as error:
        raise InputError(name, None, f"cannot read: {error.strerror or error}") from None
    with stream:
        yield stream


@contextlib.contextmanager
def open_text_lines(path: str | Path, *, stdin: BinaryIO | None = None) -> Iterator[Iterator[tuple[int, str]]]:
    """(1-based line number, raw line) of every line of the file, read as a stream: for inputs of millions of
    lines (runs, qrels), whose text need never be in memory at once.

    The rules of `read_text` + `numbered_lines`: gzip by magic bytes, `-` for stdin, a BOM dropped, lines split
    at "\\n" only. Lines keep their ending (callers `split()`), blank lines are yielded too, and bytes that
    are not UTF-8 arrive as surrogate escapes: pass a line that is not ASCII to `check_utf8`. The iterator
    raises `InputError` for corrupt gzip data, and for a file with no non-blank line when it is exhausted.
    """
    name = display_name(path)
    with _open_binary(path, stdin) as raw:
        compressed = raw.peek(2)[:2] == GZIP_MAGIC
        binary: gzip.GzipFile | io.BufferedReader = gzip.GzipFile(fileobj=raw) if compressed else raw
        # newline="\n": split at "\n" only (not at a lone "\r"); decoding errors are found per line, so that
        # the message can name the line (a strict decoder fails a whole 8 KiB chunk at once)
        stream = io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape", newline="\n")
        yield _numbered(name, stream, compressed)
        stream.detach()


def _numbered(name: str, stream: io.TextIOWrapper, compressed: bool) -> Iterator[tuple[int, str]]:
    lines = iter(stream)
    number = 0
    blank = True
    try:
        for number, line in enumerate(lines, start=1):
            if number == 1:
                line = line.removeprefix("\ufeff")
            yield number, line
            if line.strip():
                blank = False
                break
        # the rest by C-level delegation: no Python frame per line of a 2.5M-line file
        yield from enumerate(lines, start=number + 1)
    except (OSError, EOFError, zlib.error) as error:
        what = "corrupt gzip data" if compressed else "cannot read"
        raise InputError(name, None, f"{what}: {error}") from None
    if blank:
        raise InputError(name, None, "empty file")


def check_utf8(name: str, number: int, line: str) -> None:
    """Raise `InputError` naming the line if `line` (from `open_text_lines`) holds bytes that are not UTF-8."""
    try:
        line.encode("utf-8")
    except UnicodeEncodeError as error:
        byte = ord(line[error.start]) - 0xDC00
        raise InputError(name, number, f"not UTF-8 text (byte 0x{byte:02x})") from None


def iter_lines(path: str | Path, *, stdin: BinaryIO | None = None) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line ending) of every line, streamed, UTF-8 checked (see
    `open_text_lines`)."""
    name = display_name(path)
    with open_text_lines(path, stdin=stdin) as lines:
        for number, line in lines:
            if not line.isascii():
                check_utf8(name, number, line)
            yield number, line.rstrip("\r\n")


def read_text(path: str | Path, *, stdin: BinaryIO | None = None) -> str:
    """The whole file as UTF-8 text (a BOM is dropped); gzip is detected by its magic bytes. `-` reads stdin.

    Raises `InputError` for a missing or unreadable file, corrupt gzip data, bytes that are not UTF-8 (with the
    line they are on) and a file with nothing but whitespace.
    """
    name = display_name(path)
    with _open_binary(path, stdin) as stream:
        try:
            data = stream.read()
        except OSError as error:
            raise InputError(name, None, f"cannot read: {error.strerror or error}") from None
    if data.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise InputError(name, None, f"corrupt gzip data: {error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise InputError(name, line, f"not UTF-8 text (byte 0x{data[error.start]:02x})") from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise InputError(name, None, "empty file")
    return text


def numbered_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, line without its line ending) for every non-blank line.

    Lines end at "\\n" only (a "\\r" before it is dropped): `str.splitlines` would also split inside a field at
    U+2028, U+0085 or a form feed, which query texts can contain, and shift every later line number.
    """
    return [(number, line.removesuffix("\r")) for number, line in enumerate(text.split("\n"), start=1) if line.strip()]
