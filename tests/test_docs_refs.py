"""Docstrings, comments and the README cite notes inside the repository (``docs/``), never outside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", "build", "dist", "node_modules", "__pycache__"}
OUTSIDE = re.compile(r"(?<![\w.-])shared/")  # the team's notes folder beside the clone
DOC_REF = re.compile(r"\bdocs/([\w.-]+\.md)\b")


def _texts() -> list[Path]:
    files = [ROOT / "README.md"]
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS or part.startswith((".venv", ".tox")) or part.endswith(".egg-info")
               for part in rel.parts):
            continue
        files.append(path)
    return files


def test_scan_sees_the_package_and_the_readme() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _texts()}
    assert {"README.md", "copernicus_bench/runner.py", "baselines/dofa.py", "tests/test_docs_refs.py"} <= names
    assert not any(n.startswith(".venv") for n in names)


def test_no_python_file_or_readme_refers_to_shared_notes() -> None:
    hits = []
    for path in _texts():
        if path == Path(__file__).resolve():
            continue
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{no}: {line.strip()[:100]}")
    assert not hits, "references outside the repository (cite docs/*.md instead):\n" + "\n".join(hits)


def test_every_cited_docs_file_exists() -> None:
    cited = {}
    for path in _texts():
        for name in DOC_REF.findall(path.read_text(encoding="utf-8")):
            cited.setdefault(name, path.relative_to(ROOT).as_posix())
    assert {"conventions.md", "tasks.md", "protocol.md", "models.md"} <= set(cited)
    missing = {name: where for name, where in cited.items() if not (ROOT / "docs" / name).is_file()}
    assert not missing, f"cited but absent in docs/: {missing}"


@pytest.mark.parametrize("line", ["see shared/conventions.md", "(shared/parity.md)", "`../shared/x.md`"])
def test_the_pattern_catches_outside_references(line: str) -> None:
    assert OUTSIDE.search(line)


@pytest.mark.parametrize("line", ["shared_dir/x", "a cluster's shared file system", "my.shared/x"])
def test_the_pattern_spares_other_words(line: str) -> None:
    assert not OUTSIDE.search(line)
