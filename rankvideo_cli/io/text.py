"""Reading input files as text: gzip by magic bytes, `-` for stdin, undecodable bytes reported with their line."""

from __future__ import annotations

import gzip
import sys
import zlib
from pathlib import Path
from typing import BinaryIO

from rankvideo_cli.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
STDIN = "-"


def display_name(path: str | Path) -> str:
    """How error messages name an input: its path as given, `<stdin>` for `-`."""
    return "<stdin>" if str(path) == STDIN else str(path)


def read_text(path: str | Path, *, stdin: BinaryIO | None = None) -> str:
    """The whole file as UTF-8 text (a BOM is dropped); gzip is detected by its magic bytes. `-` reads stdin.

    Raises `InputError` for a missing or unreadable file, corrupt gzip data, bytes that are not UTF-8 (with the
    line they are on) and a file with nothing but whitespace.
    """
    name = display_name(path)
    if str(path) == STDIN:
        data = (stdin if stdin is not None else sys.stdin.buffer).read()
    else:
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise InputError(name, None, "no such file") from None
        except IsADirectoryError:
            raise InputError(name, None, "is a directory, not a file") from None
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


def line_number(text: str, offset: int) -> int:
    """1-based line of the character at `offset` in `text`."""
    return text.count("\n", 0, offset) + 1
