"""The package's layout by stage holds: every import runs down the stages, and no modules import each other in a
circle (imports inside functions and under TYPE_CHECKING count: a lazy import is still an arrow).

Stages, top to bottom (a module may import its own package and any stage below its own):
cli and pyterrier > jobs > pipeline, report > scoring, evaluation > options > videos > io > progress, versions >
messages > errors.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rankvideo_cli"
STAGES = [
    {"cli", "pyterrier"},
    {"jobs"},
    {"pipeline", "report"},
    {"scoring", "evaluation"},
    {"options"},
    {"videos"},
    {"io"},
    {"progress", "versions"},
    {"messages"},  # the lines on stderr: how they are shortened, worded (plurals) and fitted to the terminal
    {"errors"},
]
RANK = {name: rank for rank, names in enumerate(STAGES) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found.update(name for name in names if name in modules)  # `from rankvideo_cli.videos import frames`
            if node.module in modules:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return {module_name(path): imported_modules(path, modules) - {module_name(path)} for path in paths}


def stage_of(module: str) -> str | None:
    """`rankvideo_cli.pipeline.score` -> 'pipeline'; the package itself (its version, the lazy VLMReranker) has
    no stage."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_belongs_to_a_stage() -> None:
    unplaced = sorted(module for module in import_graph() if stage_of(module) not in RANK and module != "rankvideo_cli")
    assert unplaced == []


def test_imports_run_down_the_stages() -> None:
    upward = []
    for module, imports in import_graph().items():
        source = stage_of(module)
        if source is None:
            continue  # rankvideo_cli/__init__.py: the public facade, importing VLMReranker lazily
        for target in imports:
            destination = stage_of(target)
            if destination is None or destination == source:
                continue
            if RANK[destination] <= RANK[source]:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_import_circle() -> None:
    graph = import_graph()
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                circles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert circles == []


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from rankvideo_cli.pipeline.store import ScoreStore\n")
    modules = {"rankvideo_cli.pipeline.store", "rankvideo_cli.pipeline"}
    assert imported_modules(source, modules) == {"rankvideo_cli.pipeline.store"}
