"""What rankvideo prints on stderr stays one readable line, however long the id, path or query it quotes."""

from __future__ import annotations

import io

import pytest

from rankvideo_cli.messages import LONGEST_SHOWN, banner, plural, printable, shorten, terminal_width, warn_loudly
from rankvideo_cli.scoring.fake import FAKE_WARNING
from rankvideo_cli.scoring.tiny import TINY_WARNING


def test_a_short_text_is_shown_whole() -> None:
    assert shorten("v001") == "v001"
    assert shorten("x" * LONGEST_SHOWN) == "x" * LONGEST_SHOWN


def test_a_long_text_keeps_its_start_and_end_and_says_how_long_it_was() -> None:
    docid = "start-" + "x" * 10_000_000 + "-end"
    shown = shorten(docid)
    assert shown.startswith("start-xxx") and shown.endswith("xxx-end")
    assert "[10,000,010 characters]" in shown
    assert len(shown) < 2 * LONGEST_SHOWN


def test_every_overlong_word_of_a_message_is_shortened() -> None:
    docid = "d" * 5_000
    message = f"no file for docid {docid!r} (tried /videos/{docid}.mp4); 3 pairs kept"
    shown = printable(message)
    assert shown.startswith("no file for docid 'ddd") and "'…[5,000 characters]…" not in shown
    assert "…[5,000 characters]…" in shown and shown.count("d'") == 1  # the id's own length, inside its quotes
    tried = f"/videos/{docid}.mp4);"  # a word: everything between two spaces
    assert " /videos/ddd" in shown and f"[{len(tried):,} characters]…ddd" in shown and "ddd.mp4); 3 pairs" in shown
    assert len(shown) < 3 * LONGEST_SHOWN


def test_a_long_message_of_short_words_is_left_whole() -> None:
    """Two short quoted names far apart are not one long quoted string."""
    message = "model 'org/model' is not in the cache (/root/.cache/hub): " + "do this " * 40 + "(no 'org/model')"
    assert printable(message) == message


def test_a_message_without_anything_long_is_unchanged() -> None:
    message = "run.trec:17: score must be a number, got 'abc'"
    assert printable(message) == message


def test_a_count_and_its_noun_agree() -> None:
    assert plural(1, "video") == "1 video" and plural(2, "video") == "2 videos" and plural(0, "video") == "0 videos"
    assert plural(1, "query", "queries") == "1 query" and plural(3, "query", "queries") == "3 queries"
    assert plural(1, "candidate video has", "candidate videos have") == "1 candidate video has"
    assert plural(4, "candidate video has", "candidate videos have") == "4 candidate videos have"


@pytest.mark.parametrize("width", [40, 60, 80, 100, 120, 300])
def test_the_tiny_random_banner_fits_the_terminal_and_stays_loud(width: int) -> None:
    lines = banner(TINY_WARNING, width).splitlines()
    assert all(len(line) <= width for line in lines)
    assert all(line.startswith("!! ") and line.endswith(" !!") for line in lines)
    assert " ".join(line.strip("! ") for line in lines) == TINY_WARNING  # every word, in order
    if width >= 80:
        assert len(lines) == 2


def test_warnings_follow_columns_and_are_plain_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    for columns, expected_lines in (("80", 1), ("50", 2)):
        monkeypatch.setenv("COLUMNS", columns)
        assert terminal_width() == int(columns)
        stream = io.StringIO()
        warn_loudly(FAKE_WARNING, framed=False, stream=stream)
        lines = stream.getvalue().splitlines()
        assert len(lines) == expected_lines and all(len(line) <= int(columns) for line in lines)
        assert " ".join(lines) == FAKE_WARNING and "\x1b" not in stream.getvalue()
    monkeypatch.setenv("COLUMNS", "80")
    stream = io.StringIO()
    warn_loudly(TINY_WARNING, stream=stream)
    assert [len(line) for line in stream.getvalue().splitlines()] == [80, 80]
    monkeypatch.delenv("COLUMNS")
    assert terminal_width(io.StringIO()) == 80  # no terminal: 80 columns


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_warning_on_a_terminal_is_bold_red_unless_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("NO_COLOR", raising=False)
    stream = _Terminal()
    warn_loudly(TINY_WARNING, stream=stream)
    assert stream.getvalue().startswith("\x1b[1;31m!! WARNING") and stream.getvalue().endswith("\x1b[0m\n")
    monkeypatch.setenv("NO_COLOR", "1")
    stream = _Terminal()
    warn_loudly(TINY_WARNING, stream=stream)
    assert "\x1b" not in stream.getvalue()
