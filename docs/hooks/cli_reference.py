"""MkDocs hook: the CLI reference (docs/cli.md), generated from the Typer app at build time.

docs/cli.md holds a marker line; `on_page_markdown` replaces it with every command's usage, description and
options (name, metavar, default, help), read from `rankvideo_cli.cli:app` through the same calls that render
`--help`, so the reference cannot drift from the code. tests/test_docs.py imports `render_reference`.
"""

from __future__ import annotations

import html
import inspect
import re
from typing import Any

MARKER = "<!-- rankvideo-cli-reference -->"
PAGE = "cli.md"


def _command_tree() -> tuple[Any, Any]:
    """The Typer app as its click group, and the root context `--help` uses."""
    import typer.main

    from rankvideo_cli.cli import app

    group = typer.main.get_command(app)
    return group, group.context_class(group, info_name="rankvideo")


def commands() -> dict[str, Any]:
    """Every command of the app, in the order `rankvideo --help` lists them."""
    group, ctx = _command_tree()
    return {name: group.get_command(ctx, name) for name in group.list_commands(ctx)}


def _text(value: str) -> str:
    """Help text as Markdown: HTML-escaped outside `code spans`, single line breaks joined."""
    parts = value.split("`")
    if len(parts) % 2 == 0:  # an unmatched backtick: escape it all
        return html.escape(value, quote=False)
    return "`".join(part if i % 2 else html.escape(part, quote=False) for i, part in enumerate(parts))


def _paragraphs(value: str) -> list[str]:
    value = inspect.cleandoc(value).partition("\f")[0]
    return [re.sub(r"\s*\n\s*", " ", p.strip("\b\n")).strip() for p in value.split("\n\n") if p.strip()]


def _code(value: str) -> str:
    fence = "``" if "`" in value else "`"
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def _usage(command: Any, ctx: Any) -> str:
    usage: str = command.get_usage(ctx)
    return usage.removeprefix("Usage:").strip()


def _metavar(param: Any, ctx: Any) -> str | None:
    """The value's metavar as `--help` shows it; None for a flag, which takes no value."""
    if getattr(param, "is_flag", False):
        return None
    display = getattr(param, "display_type_rich", None)
    shown = display(ctx=ctx) if display is not None else param.make_metavar(ctx)
    return str(shown).strip() or None if shown is not None else None


def _default(param: Any, ctx: Any) -> str | None:
    """The default as `--help` shows it ("[default: ...]"), or None where it shows none."""
    extract = getattr(param, "_extract_default_help_str", None)
    if extract is None:
        return None if param.default in (None, (), []) else str(param.default)
    value = extract(ctx=ctx)
    show_is_str = isinstance(param.show_default, str)
    if not show_is_str and (value is None or not (param.show_default or ctx.show_default)):
        return None
    shown = param._get_default_string(ctx=ctx, show_default_is_str=show_is_str, default_value=value)
    return str(shown) if shown else None


def _param_lines(param: Any, ctx: Any) -> list[str]:
    if param.param_type_name == "argument":
        names = [param.metavar or param.name.upper()]
    else:
        names = [*param.opts, *param.secondary_opts]
    line = "- " + " / ".join(_code(name) for name in names)
    metavar = _metavar(param, ctx)
    if metavar:
        line += f" {_code(metavar)}"
    if param.required:
        line += " **(required)**"
    help_text = " ".join(_paragraphs(param.help or ""))
    if help_text:
        line += f": {_text(help_text)}"
    default = _default(param, ctx)
    if default is not None:
        line += f" *Default:* {_code(default)}."
    return [line]


def _params_by_panel(command: Any, ctx: Any) -> dict[str, list[Any]]:
    panels: dict[str, list[Any]] = {}
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        default_panel = "Arguments" if param.param_type_name == "argument" else "Options"
        panel = getattr(param, "rich_help_panel", None) or default_panel
        panels.setdefault(panel, []).append(param)
    arguments = {k: v for k, v in panels.items() if v[0].param_type_name == "argument"}
    options = {k: v for k, v in panels.items() if v[0].param_type_name != "argument"}
    ordered = dict(sorted(arguments.items(), key=lambda kv: kv[0] != "Arguments"))
    ordered.update(sorted(options.items(), key=lambda kv: kv[0] != "Options"))
    return ordered


def render_command(name: str, command: Any, parent: Any) -> str:
    ctx = command.context_class(command, info_name=name, parent=parent)
    lines = [f"## rankvideo {name}", "", "```text", _usage(command, ctx), "```", ""]
    for paragraph in _paragraphs(command.help or ""):
        lines += [_text(paragraph), ""]
    for panel, params in _params_by_panel(command, ctx).items():
        lines += [f"**{_text(panel)}**", ""]
        for param in params:
            lines += _param_lines(param, ctx)
        lines.append("")
    if command.epilog:
        for paragraph in _paragraphs(command.epilog):
            lines += [_text(paragraph), ""]
    return "\n".join(lines)


def render_reference() -> str:
    """The whole reference as Markdown: the group's own options, then one section per command."""
    group, ctx = _command_tree()
    lines = ["```text", _usage(group, ctx), "```", ""]
    for paragraph in _paragraphs(group.help or ""):
        lines += [_text(paragraph), ""]
    lines += ["| command | what it does |", "| --- | --- |"]
    for name, command in commands().items():
        summary = _paragraphs(command.help or "")[:1] or [""]
        anchor = f"rankvideo-{name}"
        lines.append(f"| [`{name}`](#{anchor}) | {_text(summary[0]).replace('|', '&#124;')} |")
    lines += ["", "**Options of `rankvideo` itself**", ""]
    for param in group.get_params(ctx):
        if not getattr(param, "hidden", False):
            lines += _param_lines(param, ctx)
    lines.append("")
    for name, command in commands().items():
        lines += [render_command(name, command, ctx), ""]
    return "\n".join(lines).rstrip() + "\n"


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"docs/{PAGE} lost its marker line {MARKER}")
    return markdown.replace(MARKER, render_reference())
