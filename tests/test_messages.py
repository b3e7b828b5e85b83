"""What rankvideo prints on stderr stays one readable line, however long the id, path or query it quotes."""

from __future__ import annotations

from rankvideo_cli.messages import LONGEST_SHOWN, printable, shorten


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
