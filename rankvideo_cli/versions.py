"""The dependency versions this package declares (pyproject.toml), checked where they matter at run time.

The lower bounds are the versions CI's lowest-versions job tests (`.ci/run`); an older library found at run
time is a one-line error naming the package and the version needed, not a traceback deep inside it.
"""

from __future__ import annotations

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


def check_installed(*names: str) -> None:
    """`UnsupportedVersion` for the first of `names` whose installed version is outside the declared range."""
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name

    declared = declared_requirements()
    for name in names:
        specifier = declared.get(canonicalize_name(name))
        if not specifier:
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise UnsupportedVersion(f"{name} is not installed; rankvideo needs {name}{specifier}") from None
        if not SpecifierSet(specifier).contains(installed, prereleases=True):
            raise UnsupportedVersion(
                f"{name} {installed} is installed, but rankvideo needs {name}{specifier}: "
                f"pip install '{name}{specifier}'"
            )
