"""The declared dependency bounds are checked where they matter: an unsupported library is one line naming the
package and the version needed, before anything uses it."""

from __future__ import annotations

from importlib import metadata

import pytest

from rankvideo_cli.versions import UnsupportedVersion, check_installed, declared_requirements


def pretend_installed(monkeypatch: pytest.MonkeyPatch, name: str, version: str) -> None:
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda asked: version if asked == name else real(asked))


def test_the_bounds_come_from_the_package_metadata() -> None:
    declared = declared_requirements()
    assert declared["transformers"] == ">=5.18"
    assert declared["qwen-vl-utils"] == "==0.0.14"
    assert "pytest" not in declared  # extras are not requirements of a run
    check_installed("transformers", "torch", "av", "pandas")  # the versions the tests run on


def test_an_old_library_is_named_with_the_version_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    pretend_installed(monkeypatch, "transformers", "4.57.1")
    with pytest.raises(UnsupportedVersion, match=r"^transformers 4\.57\.1 is installed, but rankvideo needs "):
        check_installed("transformers")
