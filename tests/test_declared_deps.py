"""Every third-party package the code and the tests import is declared.

The test command installs only what pyproject.toml declares (into a new
virtual environment), so an undeclared import fails there; this test also
fails on a machine where the package happens to be installed by hand or
arrives only as somebody else's dependency.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
TREES = ("promwire", "tests", "benchmarks", "fuzz", "scripts")
LOCAL = {"promwire", "tests", "benchmarks", "fuzz", "scripts"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs.extend(extra)
    return {_normal(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]) for r in reqs}


def _imported_top_levels() -> dict[str, str]:
    """Top-level module name -> one file importing it."""
    found: dict[str, str] = {}
    for tree in TREES:
        for path in (ROOT / tree).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names = [node.module]
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared() -> None:
    dists = packages_distributions()
    declared = _declared()
    missing = []
    for top, where in sorted(_imported_top_levels().items()):
        if top in LOCAL or top in sys.stdlib_module_names or top == "__future__":
            continue
        owners = {_normal(d) for d in dists.get(top, [])}
        if not owners:
            missing.append(f"{top} (imported by {where}) is not installed")
        elif not owners & declared:
            missing.append(f"{top} (imported by {where}) comes from {sorted(owners)}: undeclared")
    assert not missing, "\n".join(missing)


def test_the_test_command_installs_every_extra() -> None:
    script = (ROOT / "scripts" / "test").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    installed = re.search(r"-e '\.\[([^\]]*)\]'", script)
    assert installed, "scripts/test must install the package with its extras"
    assert set(installed.group(1).split(",")) == set(extras)
    assert "python3 -m venv --clear" in script
