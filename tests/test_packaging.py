"""pyproject.toml declares what the project needs, pinned as the lock file pins it.

`pip install .` (the Dockerfile, anyone packaging enclave) must get every direct dependency
that requirements/base.in lists, at the version `make install` tests with; a dependency
added to one list and not the other fails here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Installed apart by the Makefile: torch first (a CPU build), then the --no-deps packages.
APART = {"torch"}


def _name(spec: str) -> str:
    return re.split(r"[\[=<>!~ ;]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-") \
        .replace(".", "-")


def _listed(path: Path) -> list[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def _lock() -> dict[str, str]:
    pins = {}
    for line in _listed(REPO / "requirements" / "lock.txt"):
        name, _, version = line.partition("==")
        pins[_name(name)] = version.split(";")[0].strip()
    return pins


def test_pyproject_declares_every_direct_dependency_at_its_locked_version() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    by_name = {_name(d): d for d in declared}
    base = _listed(REPO / "requirements" / "base.in")
    nodeps = _listed(REPO / "requirements" / "nodeps.txt")
    missing = [b for b in base if _name(b) not in by_name]
    assert not missing, f"in requirements/base.in but not in pyproject.toml: {missing}"
    extra = set(by_name) - {_name(b) for b in base + nodeps} - APART
    assert not extra, f"in pyproject.toml but in no requirements file: {sorted(extra)}"
    lock = _lock()
    for spec in base:
        pinned = by_name[_name(spec)]
        assert "==" in pinned, f"{pinned}: pin it"
        extras = re.search(r"\[[^\]]*\]", spec)
        assert extras is None or extras.group() in pinned, f"{pinned}: extras as in base.in"
        assert pinned.split("==")[1] == lock[_name(spec)], f"{pinned}: lock.txt has {lock[_name(spec)]}"
    for spec in nodeps:
        if _name(spec) in by_name:
            assert by_name[_name(spec)].split("==")[1] == spec.split("==")[1]
