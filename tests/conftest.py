"""Shared fixtures: every test session gets its own caches, weights folder and built-in sample location,
so tests never touch the user's ~/.cache and never download anything."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["progress_plugin"]  # tests/progress_plugin.py: progress from the start


@pytest.fixture(scope="session", autouse=True)
def isolated_cbench_folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("cbench-home")
    env = {
        "CBENCH_SAMPLE_DIR": os.environ.get("CBENCH_TEST_SAMPLE_DIR") or str(base / "sample"),
        "CBENCH_CACHE_DIR": str(base / "features"),
        "CBENCH_WEIGHTS_DIR": str(base / "weights"),
        "CBENCH_DATA_ROOT": str(base / "no-data-here"),
        "MPLBACKEND": "Agg",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield base
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def builtin_sample(isolated_cbench_folders):
    """The built-in sample of all 15 tasks, generated once per test session."""
    from copernicus_bench.tasks.sample import ensure_builtin_sample

    return ensure_builtin_sample()


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory, builtin_sample):
    """One results folder per test session for CLI smoke runs (shared, not one per test)."""
    return tmp_path_factory.mktemp("results")
