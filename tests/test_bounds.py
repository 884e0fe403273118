"""The dependency bounds are truthful: the lowest versions CI installs are exactly
the lower bounds pyproject.toml declares, for every runtime dependency."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")


def test_ci_installs_exactly_the_declared_lower_bounds() -> None:
    lowest_file = ROOT / ".ci" / "lowest.txt"
    if not lowest_file.exists():
        pytest.skip("no .ci/lowest.txt here (an sdist)")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        [bound] = [s.version for s in requirement.specifier if s.operator == ">="]
        declared[requirement.name] = Version(bound)
    pinned = {}
    for line in lowest_file.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            [pin] = [s.version for s in requirement.specifier if s.operator == "=="]
            pinned[requirement.name] = Version(pin)
    assert pinned == declared
