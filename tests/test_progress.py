"""The live progress bar on a terminal: what it keeps at 80 columns, and the one line it shows instead of an
empty bar when nothing is left to score (the plain log lines: test_pipeline_score.py)."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from rankvideo_cli.progress import ProgressCounts, RichProgress

ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


def last_frame(counts: ProgressCounts, width: int, scored: int = 12345) -> str:
    """The bar's last frame on a terminal `width` columns wide, after `scored` pairs in 100 s."""
    buffer = io.StringIO()
    progress = RichProgress(Console(file=buffer, width=width, force_terminal=True, color_system=None))
    progress.start(counts)
    progress.started -= 100.0
    counts.pairs_scored, counts.videos_decoded = scored, 400
    progress.update()
    progress.close()
    return ANSI.sub("", buffer.getvalue()).replace("\r", "\n").strip().splitlines()[-1]


def counts_to_score() -> ProgressCounts:
    return ProgressCounts(
        pairs_total=36000, pairs_to_score=36000, videos_to_decode=1200, bad_videos=1, missing_videos=3
    )


@pytest.mark.parametrize("width", [60, 80, 100])
def test_at_80_columns_the_bar_keeps_count_rate_and_eta_whole(width: int) -> None:
    frame = last_frame(counts_to_score(), width)
    assert len(frame) <= width and "…" not in frame, frame
    assert "12345/36000 pairs" in frame and "123.4" in frame and "/s" in frame, frame
    assert re.search(r"ETA (\d+:\d\d:\d\d|-:--:--)", frame), frame
    assert "━" in frame  # still a bar


def test_the_secondary_columns_go_first_and_return_on_a_wide_terminal() -> None:
    narrow = last_frame(counts_to_score(), 80)
    assert "videos" not in narrow and "0:01:40" not in narrow  # the videos' details and the elapsed time went
    middle = last_frame(counts_to_score(), 100)
    assert "videos 400/1200, 1 bad, 3 missing" in middle
    wide = last_frame(counts_to_score(), 200)
    assert "videos 400/1200 | cached 0 | bad 1 | missing 3" in wide
    tiny = last_frame(counts_to_score(), 40)
    assert "12345/36000" in tiny and "ETA" in tiny and len(tiny) <= 40 and "…" not in tiny


def test_nothing_left_to_score_is_one_line_not_an_empty_bar() -> None:
    buffer = io.StringIO()
    progress = RichProgress(Console(file=buffer, width=80, force_terminal=True, color_system=None))
    progress.start(ProgressCounts(pairs_total=36, pairs_to_score=0, pairs_cached=36, missing_videos=1))
    progress.update()
    progress.close()
    assert ANSI.sub("", buffer.getvalue()) == (
        "rankvideo: nothing to score: 36 pairs already in the score store, 1 missing video\n"
    )
