"""``python -m pytest -q`` shows progress from the start (tests/progress_plugin.py, console_output_style)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_quiet_run_prints_before_collection_counts_and_runs_slow_tests_last(tmp_path):
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["progress_plugin"]\n')
    (tmp_path / "pytest.ini").write_text("[pytest]\nconsole_output_style = count\n"
                                         "markers =\n    slow: long\n")
    (tmp_path / "test_a.py").write_text(
        "import pytest\n\n"
        "def log(name): open('order.txt', 'a').write(name + '\\n')\n\n"
        "@pytest.mark.slow\ndef test_slow(): log('slow')\n\n"
        "def test_fast_1(): log('fast 1')\n\n"
        "def test_fast_2(): log('fast 2')\n")
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120).stdout
    lines = out.splitlines()
    assert lines[0].startswith("collecting tests"), out  # the very first line, before any import of test code
    assert any("3 tests collected" in ln and "1 marked slow, run last" in ln for ln in lines), out
    assert (tmp_path / "order.txt").read_text().split("\n")[:3] == ["fast 1", "fast 2", "slow"]
    assert "[3/3]" in out


def test_the_project_config_uses_count_style_and_loads_the_plugin():
    pyproject = tomllib.loads((TESTS.parent / "pyproject.toml").read_text())
    assert pyproject["tool"]["pytest"]["ini_options"]["console_output_style"] == "count"
    assert '"progress_plugin"' in (TESTS / "conftest.py").read_text()
