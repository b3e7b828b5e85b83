"""Help that fits 80 columns: every command's options in panels, each with a metavar that says what it takes
(no `<bool>`, `<list[...]>`, `<Path>`), nothing cut with an ellipsis, and `rerank --help` in at most 100 lines."""

from __future__ import annotations

import pytest
from helpers import invoke
from typer.main import get_command

from rankvideo_cli.cli import app

COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]  # a group has commands


def help_at_80_columns(monkeypatch: pytest.MonkeyPatch, *command: str) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("command", [[], *([name] for name in COMMANDS)], ids=["rankvideo", *COMMANDS])
def test_help_fits_80_columns_with_readable_metavars(command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    text = help_at_80_columns(monkeypatch, *command)
    assert max(len(line) for line in text.splitlines()) <= 80
    for unreadable in ("…", "<bool>", "<list", "<Path>", "<str>", "<int>", "<float>"):
        assert unreadable not in text, unreadable


def test_rerank_help_is_at_most_100_lines_in_panels(monkeypatch: pytest.MonkeyPatch) -> None:
    text = help_at_80_columns(monkeypatch, "rerank")
    assert len(text.splitlines()) <= 100
    for panel in ("Videos", "Model", "Ranking", "Store and cluster", "Output"):
        assert f"─ {panel} ─" in text
    videos = text.split("--videos", 1)[1].split("--video-pattern")[0]
    assert "(required)" in videos


def test_every_option_has_help_and_flags_take_no_value() -> None:
    for name, command in get_command(app).commands.items():  # type: ignore[attr-defined]  # a group has commands
        for param in command.params:
            if param.param_type_name != "option":
                continue
            assert (param.help or "").strip(), f"{name} {param.opts[0]}: no help"
            if getattr(param, "is_flag", False):
                assert not (param.metavar or "").strip(), f"{name} {param.opts[0]}"
