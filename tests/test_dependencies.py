"""``pyproject.toml`` is true to the code: every third-party import of the package is declared (in
``dependencies`` or an extra), every declared dependency is imported, and test-only packages are dev extras."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("copernicus_bench", "tasks", "baselines", "models")
TEST_DIRS = ("tests", "benchmarks")
#: dev tools that are run, not imported.
TOOLS = {"pytest-timeout", "ruff"}
#: import name → distribution, for optional packages that may not be installed here.
NOT_INSTALLED = {"transformers": "transformers", "ray": "ray", "cv2": "opencv-python-headless"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    return _norm(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req).group(0))


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def imported_distributions(dirs: tuple[str, ...]) -> dict[str, set[str]]:
    """Distribution → files importing it, from every absolute import (module level or inside functions)
    and every ``pytest.importorskip``."""
    local = {p.stem for d in dirs for p in (REPO / d).rglob("*.py")}
    dists = packages_distributions()
    found: dict[str, set[str]] = {}
    for d in dirs:
        for path in (REPO / d).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "importorskip"
                      and node.args and isinstance(node.args[0], ast.Constant)):
                    names = [str(node.args[0].value)]  # pytest.importorskip("ray")
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in sys.stdlib_module_names or top == "copernicus_bench" or top in local:
                        continue
                    for dist in dists.get(top) or [NOT_INSTALLED.get(top, top)]:
                        found.setdefault(_norm(dist), set()).add(str(path.relative_to(REPO)))
    return found


def test_parses_requirement_names():
    assert _requirement_name("ray[default]>=2.9") == "ray" and _requirement_name("PyYAML>=6") == "pyyaml"
    assert _requirement_name("huggingface_hub>=0.23") == "huggingface-hub"


def test_every_package_import_is_declared_and_every_dependency_is_imported():
    project = _pyproject()["project"]
    main = {_requirement_name(r) for r in project["dependencies"]}
    extras = {k: {_requirement_name(r) for r in v} for k, v in project["optional-dependencies"].items()}
    optional = set().union(*(v for k, v in extras.items() if k != "dev"))
    used = imported_distributions(PACKAGE_DIRS)
    undeclared = {d: sorted(f)[:3] for d, f in used.items() if d not in main | optional}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
    unused = main - set(used)
    assert not unused, f"declared in pyproject.toml dependencies but never imported: {sorted(unused)}"
    for extra, names in extras.items():
        if extra != "dev":
            assert names <= set(used), f"extra '{extra}' declares {sorted(names - set(used))}, never imported"


def test_test_only_packages_are_dev_extras():
    project = _pyproject()["project"]
    main = {_requirement_name(r) for r in project["dependencies"]}
    dev = {_requirement_name(r) for r in project["optional-dependencies"]["dev"]}
    used = imported_distributions(TEST_DIRS)
    undeclared = {d: sorted(f)[:3] for d, f in used.items() if d not in main | dev}
    assert not undeclared, f"tests import packages missing from the dev extras: {undeclared}"
    unused = dev - set(used) - TOOLS
    assert not unused, f"dev extras never imported by a test: {sorted(unused)}"
    misplaced = (dev & main) - TOOLS
    assert not misplaced, f"declared both as a dependency and a dev extra: {sorted(misplaced)}"
