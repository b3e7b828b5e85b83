"""The dependency versions this package declares (pyproject.toml), checked where they matter at run time.

The lower bounds are the versions CI's lowest-versions job tests (`.ci/run`); an older library found at run
time is a one-line error naming the package and the version needed, not a traceback deep inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import metadata

from rankvideo_cli.errors import RankVideoError

DISTRIBUTION = "rankvideo-cli"


class UnsupportedVersion(RankVideoError):
    """An installed library is older (or newer) than this package supports."""


@cache
def declared_requirements() -> dict[str, str]:
    """{normalised distribution name: specifier} of this package's own (non-extra) requirements."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    declared: dict[str, str] = {}
    for line in metadata.requires(DISTRIBUTION) or []:
        requirement = Requirement(line)
        if requirement.marker is None:
            declared[canonicalize_name(requirement.name)] = str(requirement.specifier)
    return declared


@dataclass(frozen=True)
class OutOfBounds:
    """A declared requirement whose installed version (None: not installed) is outside `specifier`."""

    name: str
    installed: str | None
    specifier: str

    def message(self) -> str:
        if self.installed is None:
            return f"{self.name} is not installed; rankvideo needs {self.name}{self.specifier}"
        return (
            f"{self.name} {self.installed} is installed, but rankvideo needs {self.name}{self.specifier}: "
            f"pip install '{self.name}{self.specifier}'"
        )


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def out_of_bounds(*names: str) -> list[OutOfBounds]:
    """Those of `names` (none: every declared requirement) installed outside their declared range, or missing."""
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name

    declared = declared_requirements()
    found = []
    for name in names or tuple(sorted(declared)):
        specifier = declared.get(canonicalize_name(name))
        if not specifier:
            continue
        installed = installed_version(name)
        if installed is None or not SpecifierSet(specifier).contains(installed, prereleases=True):
            found.append(OutOfBounds(name, installed, specifier))
    return found


def check_installed(*names: str) -> None:
    """`UnsupportedVersion` for the first of `names` whose installed version is outside the declared range."""
    problems = out_of_bounds(*names)
    if problems:
        raise UnsupportedVersion(problems[0].message())
