"""The git commit a result records is this project's own, never that of a repository the package sits in."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from copernicus_bench import provenance

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")


def _repo(root: Path, project_name: str) -> str:
    """A git repository with a pyproject naming ``project_name`` and a ``copernicus_bench`` package folder."""
    (root / "copernicus_bench").mkdir(parents=True)
    (root / "copernicus_bench" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text(f'[project]\nname = "{project_name}"\nversion = "0"\n')
    env = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", *env, "-C", str(root), "add", "."], check=True)
    subprocess.run(["git", *env, "-C", str(root), "commit", "-q", "-m", "x"], check=True)
    return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_checkout_of_this_project_records_its_commit(tmp_path):
    sha = _repo(tmp_path / "cb", "copernicus-bench")
    assert provenance.project_commit(tmp_path / "cb" / "copernicus_bench") == sha
    (tmp_path / "cb" / "pyproject.toml").write_text('[project]\nname = "copernicus_bench"\nversion = "1"\n')
    assert provenance.project_commit(tmp_path / "cb" / "copernicus_bench") == sha + "-dirty"


def test_the_package_inside_a_users_own_repository_records_no_commit(tmp_path):
    _repo(tmp_path / "user", "my-analysis")  # e.g. a venv or vendored copy inside the user's project
    assert provenance.project_commit(tmp_path / "user" / "copernicus_bench") is None


def test_a_folder_that_is_not_the_projects_package_records_no_commit(tmp_path):
    _repo(tmp_path / "cb", "copernicus-bench")
    other = tmp_path / "cb" / "site" / "copernicus_bench"  # same name, but not the checkout's package folder
    other.mkdir(parents=True)
    assert provenance.project_commit(other) is None


def test_outside_any_repository_no_commit(tmp_path):
    pkg = tmp_path / "site-packages" / "copernicus_bench"
    pkg.mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "copernicus-bench"\n')
    assert provenance.project_commit(pkg) is None


def test_this_checkout_records_a_commit_and_versions_name_the_installed_package():
    commit = provenance.git_commit()
    if (Path(provenance.__file__).resolve().parents[1] / ".git").exists():
        assert commit is not None and re.fullmatch(r"[0-9a-f]{40}(-dirty)?", commit)
    assert provenance.package_versions()["copernicus-bench"] != "not installed"
