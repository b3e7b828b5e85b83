"""Progress of a scoring run on stderr: a live rich display on a terminal, plain periodic lines otherwise.

SLURM writes stderr to a log file, where a live display would be a mess of control codes: there the
reporter prints one self-contained line every `interval_s` seconds (and one at the end).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from rankvideo_cli.messages import plural


@dataclass
class ProgressCounts:
    """What the reporters show; the pipeline updates it in place and calls `update`."""

    pairs_total: int = 0  # pairs of this shard that need a model score (cached ones included)
    pairs_to_score: int = 0  # of those, not in the store when the run started
    pairs_scored: int = 0
    pairs_cached: int = 0
    videos_to_decode: int = 0
    videos_decoded: int = 0
    bad_videos: int = 0  # newly failed plus known from the store
    missing_videos: int = 0  # candidates whose video file does not exist (counted per docid)
    pairs_failed: int = 0  # pairs of bad videos


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def status_line(counts: ProgressCounts, elapsed_s: float) -> str:
    """One self-contained line: what a SLURM log needs to judge a job's health at a glance."""
    rate = counts.pairs_scored / elapsed_s if elapsed_s > 0 else 0.0
    left = counts.pairs_to_score - counts.pairs_scored - counts.pairs_failed
    eta = left / rate if rate > 0 else None
    percent = 100.0 * (counts.pairs_scored + counts.pairs_failed) / max(1, counts.pairs_to_score)
    return (
        f"{counts.pairs_scored}/{counts.pairs_to_score} pairs scored ({percent:.1f}%), "
        f"{rate:.2f} pairs/s, {counts.videos_decoded}/{counts.videos_to_decode} videos decoded, "
        f"{counts.pairs_cached} cached, {plural(counts.bad_videos, 'bad video')}, "
        f"{plural(counts.missing_videos, 'missing video')}, elapsed {format_duration(elapsed_s)}, "
        f"ETA {format_duration(eta) if left > 0 else '0:00:00'}"
    )


# --quiet / --verbose, in the environment so that device workers and SLURM tasks started from the command follow it
VERBOSITY_VARIABLE = "RANKVIDEO_VERBOSITY"
QUIET, NORMAL, VERBOSE = -1, 0, 1


def verbosity() -> int:
    """QUIET: no progress and no throughput report (what was written, skipped, missing or bad still prints);
    VERBOSE: a progress line after every video; NORMAL otherwise."""
    try:
        return max(QUIET, min(VERBOSE, int(os.environ.get(VERBOSITY_VARIABLE, NORMAL))))
    except ValueError:
        return NORMAL


class ProgressReporter:
    """Silent reporter; the base of the others. The pipeline calls start, update (often), note, close."""

    def start(self, counts: ProgressCounts) -> None:
        self.counts = counts
        self.started = time.monotonic()

    def update(self) -> None:
        pass

    def note(self, text: str) -> None:
        """A one-off event worth a line of its own (a bad video, an interruption)."""

    def close(self) -> None:
        pass


class LogProgress(ProgressReporter):
    """Plain lines on a non-terminal stderr, at most one per `interval_s`, plus a final one."""

    def __init__(self, console: Console, interval_s: float = 30.0, prefix: str = "rankvideo: ") -> None:
        self.console = console
        self.interval_s = interval_s
        self.prefix = prefix

    def start(self, counts: ProgressCounts) -> None:
        super().start(counts)
        self.last_line = self.started
        self._print(
            f"{plural(counts.pairs_total, 'pair')}: {counts.pairs_cached} already in the score store, "
            f"{counts.pairs_to_score} to score over {plural(counts.videos_to_decode, 'video')}"
        )

    def update(self) -> None:
        now = time.monotonic()
        if now - self.last_line >= self.interval_s:
            self.last_line = now
            self._print(status_line(self.counts, now - self.started))

    def note(self, text: str) -> None:
        self._print(text)

    def close(self) -> None:
        if hasattr(self, "counts"):
            self._print(status_line(self.counts, time.monotonic() - self.started))

    def _print(self, text: str) -> None:
        self.console.print(f"{self.prefix}{text}", markup=False, highlight=False, soft_wrap=True)


def nothing_to_score(counts: ProgressCounts) -> str:
    """The one line a run with no pair left to score shows instead of an empty bar."""
    parts = [f"{plural(counts.pairs_cached, 'pair')} already in the score store"]
    if counts.bad_videos:
        parts.append(f"{plural(counts.bad_videos, 'known bad video')}")
    if counts.missing_videos:
        parts.append(f"{plural(counts.missing_videos, 'missing video')}")
    return "nothing to score: " + ", ".join(parts)


class _FittingProgress(Progress):
    """A `Progress` whose columns are the first of `layouts` (richest first) that fits the console's width:
    on a narrow terminal the secondary columns go first, and what is left is never cut (`12345/36000` rather
    than `123…`)."""

    def __init__(self, layouts: list[tuple[ProgressColumn, ...]], **kwargs: Any) -> None:
        self.layouts = layouts
        super().__init__(*layouts[0], **kwargs)

    def layout_width(self, columns: tuple[ProgressColumn, ...]) -> int:
        """The columns a layout takes for the widest task (one space between columns)."""
        widest = 0
        for task in self.tasks:
            cells = [self.console.measure(column(task)).maximum for column in columns]
            widest = max(widest, sum(cells) + len(cells) - 1)
        return widest

    def get_renderables(self) -> Iterable[RenderableType]:
        if not hasattr(self, "live"):  # rich's __init__ renders once before it has made its console
            yield from super().get_renderables()
            return
        with self._lock:
            width = self.console.width
            self.columns = next(
                (layout for layout in self.layouts if self.layout_width(layout) <= width), self.layouts[-1]
            )
            yield self.make_tasks_table(self.tasks)


class RichProgress(ProgressReporter):
    """Live bar on a terminal: pairs done/total, pairs/s, ETA, videos, cache hits, bad and missing videos. At
    80 columns the count, rate and ETA stay whole; the videos' details, the elapsed time and the bar's length
    give way first. With nothing to score, one line says so instead of an empty bar."""

    def __init__(self, console: Console) -> None:
        self.console = console
        label = TextColumn("[bold]scoring")
        count, pairs, rate = MofNCompleteColumn(), TextColumn("pairs"), TextColumn("{task.fields[rate]}")
        elapsed, eta, remaining = TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()
        videos, videos_short = TextColumn("{task.fields[videos]}"), TextColumn("{task.fields[videos_short]}")
        self.progress = _FittingProgress(
            [
                (label, BarColumn(), count, pairs, rate, elapsed, eta, remaining, videos),
                (label, BarColumn(bar_width=20), count, pairs, rate, elapsed, eta, remaining, videos_short),
                (label, BarColumn(bar_width=12), count, pairs, rate, eta, remaining, videos_short),
                (label, BarColumn(bar_width=12), count, pairs, rate, eta, remaining),
                (label, count, pairs, rate, eta, remaining),
                (count, rate, eta, remaining),
            ],
            console=console,
            transient=False,
        )
        self.task: TaskID | None = None

    def start(self, counts: ProgressCounts) -> None:
        super().start(counts)
        if counts.pairs_to_score == 0:
            self.console.print(f"rankvideo: {nothing_to_score(counts)}", markup=False, highlight=False, soft_wrap=True)
            return
        self.progress.start()
        self.task = self.progress.add_task("scoring", total=counts.pairs_to_score, **self._fields())

    def _fields(self) -> dict[str, Any]:
        """The bar's `rate`, `videos` and `videos_short` fields."""
        counts = self.counts
        elapsed = time.monotonic() - self.started
        rate = counts.pairs_scored / elapsed if elapsed > 0 else 0.0
        videos = (
            f"videos {counts.videos_decoded}/{counts.videos_to_decode} | cached {counts.pairs_cached}"
            f" | bad {counts.bad_videos} | missing {counts.missing_videos}"
        )
        trouble = [
            f"{count} {what}"
            for count, what in ((counts.bad_videos, "bad"), (counts.missing_videos, "missing"))
            if count
        ]
        videos_short = f"videos {counts.videos_decoded}/{counts.videos_to_decode}" + "".join(f", {t}" for t in trouble)
        return {"rate": f"{rate:.2f}/s", "videos": videos, "videos_short": videos_short}

    def update(self) -> None:
        if self.task is not None:
            done = self.counts.pairs_scored + self.counts.pairs_failed
            self.progress.update(self.task, completed=done, **self._fields())

    def note(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self.task is not None:
            self.update()
            self.progress.stop()


class QuietProgress(ProgressReporter):
    """--quiet: no progress, but every note (a bad video, an interruption) still gets its line."""

    def __init__(self, console: Console, prefix: str = "rankvideo: ") -> None:
        self.console = console
        self.prefix = prefix

    def note(self, text: str) -> None:
        self.console.print(f"{self.prefix}{text}", markup=False, highlight=False, soft_wrap=True)


def make_progress(console: Console | None = None, *, interval_s: float = 30.0) -> ProgressReporter:
    """A live display when stderr is a terminal, periodic plain lines otherwise (SLURM logs, pipes); with
    --verbose a plain line after every video, with --quiet only the notes (`verbosity`)."""
    console = console if console is not None else Console(stderr=True, highlight=False)
    level = verbosity()
    if level == QUIET:
        return QuietProgress(console)
    if level == VERBOSE:
        return LogProgress(console, interval_s=0.0)
    if console.is_terminal:
        return RichProgress(console)
    return LogProgress(console, interval_s=interval_s)


class StepProgress:
    """Progress of a loop of `total` like steps (`tune`'s sweep): a bar on a terminal, otherwise a line at most
    every `interval_s` and one at the end. Call it with (done, total) after each step."""

    def __init__(self, console: Console, what: str, *, interval_s: float = 30.0) -> None:
        self.console = console
        self.what = what
        self.interval_s = interval_s
        self.started = self.last_line = time.monotonic()
        self.bar: tuple[Progress, TaskID] | None = None  # on a terminal, from the first step on

    def __call__(self, done: int, total: int) -> None:
        if verbosity() == QUIET:
            return
        if self.console.is_terminal:
            if self.bar is None:
                progress = Progress(
                    TextColumn(f"[bold]{self.what}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    TextColumn("ETA"),
                    TimeRemainingColumn(),
                    console=self.console,
                    transient=True,
                )
                progress.start()
                self.bar = progress, progress.add_task(self.what, total=total)
            progress, task = self.bar
            progress.update(task, completed=done)
            if done >= total:
                progress.stop()
            return
        now = time.monotonic()
        if now - self.last_line >= self.interval_s or (done >= total and now - self.started >= self.interval_s):
            self.last_line = now
            elapsed = now - self.started
            eta = elapsed / done * (total - done) if done else None
            self.console.print(
                f"rankvideo: {self.what}: {done}/{total}, elapsed {format_duration(elapsed)}, "
                f"ETA {format_duration(eta)}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
