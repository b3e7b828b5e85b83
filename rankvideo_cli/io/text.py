"""Reading input files as text: gzip by magic bytes, `-` for stdin, undecodable bytes reported with their line."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import BinaryIO

from rankvideo_cli.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"


def read_text(path: str | Path, *, stdin: BinaryIO | None = None) -> str:
    """The whole file as UTF-8 text (a BOM is dropped). `-` reads standard input."""
    if str(path) == "-":
        data = (stdin or sys.stdin.buffer).read()
    else:
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise InputError(path, None, "no such file") from None
        except IsADirectoryError:
            raise InputError(path, None, "is a directory, not a file") from None
        except OSError as error:
            raise InputError(path, None, f"cannot read: {error.strerror or error}") from None
    if data.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise InputError(path, None, f"corrupt gzip data: {error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise InputError(path, line, f"not UTF-8 text (byte 0x{data[error.start]:02x})") from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise InputError(path, None, "empty file")
    return text


def numbered_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, line) for every non-blank line."""
    return [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
