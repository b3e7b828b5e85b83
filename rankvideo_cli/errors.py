"""Typed, one-line errors. The CLI turns any `RankVideoError` into `rankvideo: <message>` and exit code 2."""

from __future__ import annotations

from pathlib import Path


class RankVideoError(Exception):
    """An error the user can fix; its message is one line and needs no traceback."""

    exit_code = 2


class InputError(RankVideoError):
    """Malformed input file: the message names the file, the line (1-based) and the problem."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class ModelLoadError(RankVideoError):
    """The model could not be loaded; the message says what to do about it."""


class UsageError(RankVideoError):
    """Inconsistent options or arguments."""


class PromptOptionError(UsageError, ValueError):
    """A prompt option that cannot work: a one-line `UsageError` on the command line, a `ValueError` (the
    convention for a bad argument) to a library caller constructing a scorer."""
