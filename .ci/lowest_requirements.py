"""Print the lowest versions pyproject.toml's dependency bounds allow, one `name==version` a line, for CI's
lowest-versions job (what `uv pip install --resolution lowest-direct` picks, with pip, so that torch and
torchvision still come from configs/requirements-cpu.txt's pinned CPU pair). Extra names (e.g. `pytest`) are
taken from the dev extra the same way."""

from __future__ import annotations

import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

PINNED_ELSEWHERE = {"torch", "torchvision"}  # configs/requirements-cpu.txt


def lowest(requirement: Requirement) -> str:
    for specifier in requirement.specifier:
        if specifier.operator in (">=", "==", "~="):
            return f"{requirement.name}=={specifier.version}"
    raise SystemExit(f"{requirement}: no lower bound to install")


def main() -> None:
    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    wanted_extras = set(sys.argv[1:])
    requirements = [Requirement(line) for line in project["dependencies"]]
    requirements += [
        Requirement(line) for line in project["optional-dependencies"]["dev"] if Requirement(line).name in wanted_extras
    ]
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue  # not for this Python (tomli before 3.11)
        if requirement.name not in PINNED_ELSEWHERE:
            print(lowest(requirement))


if __name__ == "__main__":
    main()
