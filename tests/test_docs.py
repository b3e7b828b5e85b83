"""The docs site (docs/, mkdocs.yml): every command and option documented, every page reachable, a strict build.

As sqlite-utils' tests/test_docs.py does: the CLI reference is generated from the Typer app at build time
(docs/hooks/cli_reference.py), so these tests check the app's own help texts and that the generator renders them.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
HOOK = DOCS / "hooks" / "cli_reference.py"


def _load_hook() -> Any:
    spec = importlib.util.spec_from_file_location("rankvideo_docs_cli_reference", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hook = _load_hook()
COMMANDS = hook.commands()
PARAMS = [
    pytest.param(name, param, id=f"{name} {(param.opts or [param.name])[0]}")
    for name, command in COMMANDS.items()
    for param in command.params
    if not getattr(param, "hidden", False)
]


@pytest.fixture(scope="module")
def reference() -> str:
    return hook.render_reference()


@pytest.fixture(scope="module")
def sections(reference: str) -> dict[str, str]:
    """The reference's section of each command, by name."""
    parts = re.split(r"^## rankvideo (\S+)$", reference, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_commands_are_the_apps() -> None:
    assert {"rerank", "eval", "tune", "rank", "merge", "report", "sample"} <= set(COMMANDS)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_is_in_the_reference(name: str, sections: dict[str, str]) -> None:
    assert name in sections, f"`rankvideo {name}` has no section in the generated CLI reference"
    assert f"rankvideo {name} " in sections[name], "its usage line is missing"
    assert COMMANDS[name].help, f"`rankvideo {name}` has no description"


@pytest.mark.parametrize(("name", "param"), PARAMS)
def test_every_option_has_help_and_is_in_the_reference(name: str, param: Any, sections: dict[str, str]) -> None:
    shown = param.opts if param.param_type_name == "option" else [param.metavar or param.name.upper()]
    assert (param.help or "").strip(), f"rankvideo {name} {shown[0]}: no help text (add help= in rankvideo_cli/cli/)"
    for opt in [*shown, *param.secondary_opts]:
        assert f"`{opt}`" in sections[name], f"rankvideo {name} {opt} is missing from the CLI reference"
    assert hook._text(" ".join(hook._paragraphs(param.help))) in sections[name]


def test_group_options_are_in_the_reference(reference: str) -> None:
    assert "`--version`" in reference.split("## rankvideo ", 1)[0]


def test_the_reference_page_is_generated_not_copied() -> None:
    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert hook.MARKER in page
    assert "## rankvideo" not in page and "--depth" not in page


def _nav_pages() -> list[str]:
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text.split("\nnav:\n", 1)[1]
    return re.findall(r"^\s+-\s+(?:[^:\n]+:\s+)?(\S+\.md)\s*$", nav, flags=re.MULTILINE)


def test_every_page_is_in_the_nav() -> None:
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    nav = _nav_pages()
    assert sorted(set(pages) - set(nav)) == [], "pages in docs/ missing from mkdocs.yml's nav"
    assert sorted(set(nav) - set(pages)) == [], "nav entries without a page"
    assert len(nav) == len(set(nav)), "a page twice in the nav"


def test_home_page_commands_are_the_readmes() -> None:
    """The two copy-paste commands of the home page are the README's, verbatim."""
    home = (DOCS / "index.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", home, flags=re.DOTALL)[:2]
    assert len(blocks) == 2
    for block in blocks:
        assert block in readme


def test_the_readme_is_a_front_door_whose_links_hold() -> None:
    """At most 150 lines; every page it links to exists (the site's sources, the CLI reference among them)."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert "docs/cli.md" in links and "docs/cluster.md" in links
    assert [link for link in links if not (ROOT / link).is_file()] == []


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs-material is not installed (pip install -e '.[dev]'); CI installs it")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    cli = (tmp_path / "site" / "cli" / "index.html").read_text(encoding="utf-8")
    for name in COMMANDS:
        assert f'id="rankvideo-{name}"' in cli
