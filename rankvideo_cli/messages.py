"""The lines rankvideo prints on stderr: `rankvideo: ...`, one line each, never flooded by what they quote.

A docid, path or field can be megabytes long (a broken first stage, a concatenated field); quoted whole, one
warning would be a 20 MB line. Every message goes through `printable`, which shortens each overlong word (an
unbroken run of non-space characters: an id, a path, a field) to its start and end and says how long it was, so
the line still names what it is about. Text with spaces (a query) cannot be told apart from the message around
it: a message that quotes one shortens it with `shorten` where it is written.
"""

from __future__ import annotations

import io
import os
import re
import sys
import textwrap
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console

LONGEST_SHOWN = 200  # characters of one id, path or quoted text
_HEAD, _TAIL = 120, 60
_OVERLONG = re.compile(rf"\S{{{LONGEST_SHOWN + 1},}}")


def shorten(text: str, limit: int = LONGEST_SHOWN) -> str:
    """`text` itself when it has at most `limit` characters; else its start and end around its length."""
    if len(text) <= limit:
        return text
    return f"{text[:_HEAD]}…[{len(text):,} characters]…{text[-_TAIL:]}"


def _shorten_match(match: re.Match[str]) -> str:
    text = match.group(0)
    for quote in "'\"":
        if len(text) > 2 and text[0] == text[-1] == quote:
            return quote + shorten(text[1:-1]) + quote  # the length said is the id's, not its quotes'
    return shorten(text)


def printable(message: str) -> str:
    """`message` with every overlong word shortened (see `shorten`)."""
    return _OVERLONG.sub(_shorten_match, message)


def say(console: Console, message: str) -> None:
    """One `rankvideo: ...` line on `console` (stderr), shortened where it quotes something huge."""
    console.print(f"rankvideo: {printable(message)}", markup=False, highlight=False, soft_wrap=True)


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`count` and `noun` in the number it needs: `plural(1, "video")` is "1 video", `plural(2, "video")` "2
    videos"; `many` is the plural where adding an s is wrong (`plural(n, "query", "queries")`), and may carry a
    verb along (`plural(n, "video has", "videos have")`)."""
    return f"{count} {noun if count == 1 else many if many is not None else noun + 's'}"


def terminal_width(stream: TextIO | None = None, default: int = 80) -> int:
    """The width a line on `stream` (stderr) may take: $COLUMNS where set, else the terminal's, else `default`."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size((stream if stream is not None else sys.stderr).fileno()).columns or default
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return default


def banner(text: str, width: int, *, edge: str = "!!", widest: int = 100) -> str:
    """A loud warning that fits `width` columns (at most `widest`): `text` wrapped between `edge` marks on each
    line (`!! WARNING: ... !!`), with no ruled lines; two lines at 80 columns for a sentence or two."""
    width = max(min(width, widest), 2 * len(edge) + 20)
    inner = width - 2 * (len(edge) + 1)
    lines = textwrap.wrap(text, inner, break_on_hyphens=False) or [""]
    return "\n".join(f"{edge} {line.ljust(inner)} {edge}" for line in lines)


def warn_loudly(text: str, *, framed: bool = True, stream: TextIO | None = None) -> None:
    """`text` on stderr fitted to the terminal's width: a `banner` (`framed`) or plain wrapped lines; bold red
    on a terminal (unless $NO_COLOR is set)."""
    stream = stream if stream is not None else sys.stderr
    width = terminal_width(stream)
    lines = banner(text, width) if framed else "\n".join(textwrap.wrap(text, width, break_on_hyphens=False))
    try:
        colour = stream.isatty() and not os.environ.get("NO_COLOR")
    except (AttributeError, ValueError):
        colour = False
    print(f"\x1b[1;31m{lines}\x1b[0m" if colour else lines, file=stream, flush=True)
