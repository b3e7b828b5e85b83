"""Atomic output (rankvideo_cli/io/atomic.py): a file is replaced whole or not at all, no temporary file is left
behind, and `None` or `-` writes to stdout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rankvideo_cli.io.atomic import atomic_write_text, write_output_chunks


def test_atomic_write_creates_parents_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "run.trec"
    atomic_write_text(target, "one\n")
    atomic_write_text(target, "two\r\n")  # replaced, and bytes are written as given (no newline translation)
    assert target.read_bytes() == b"two\r\n"
    assert os.listdir(target.parent) == ["run.trec"]


def test_failed_atomic_write_keeps_the_old_file_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "run.trec"
    target.write_text("previous\n")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "half a line \ud800 never written\n")  # a lone surrogate cannot be encoded
    assert target.read_text() == "previous\n"
    assert os.listdir(tmp_path) == ["run.trec"]


def test_write_output_chunks_to_stdout_for_none_and_dash(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write_output_chunks(["a", "\n"], None)
    write_output_chunks(["b\n"], "-")
    assert capsys.readouterr().out == "a\nb\n"
    write_output_chunks(["c", "\n"], tmp_path / "file")
    assert (tmp_path / "file").read_text() == "c\n"
