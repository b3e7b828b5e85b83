"""The lines rankvideo prints on stderr: `rankvideo: ...`, one line each, never flooded by what they quote.

A docid, path or field can be megabytes long (a broken first stage, a concatenated field); quoted whole, one
warning would be a 20 MB line. Every message goes through `printable`, which shortens each overlong word (an
unbroken run of non-space characters: an id, a path, a field) to its start and end and says how long it was, so
the line still names what it is about. Text with spaces (a query) cannot be told apart from the message around
it: a message that quotes one shortens it with `shorten` where it is written.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

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
