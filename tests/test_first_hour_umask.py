"""Atomic writes (mkstemp 0600 / mkdtemp 0700 temporaries) end up with the user's umask, like any other file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from copernicus_bench import umask as umask_mod
from copernicus_bench.cache import FeatureCache, cache_key
from copernicus_bench.results import atomic_write_json


@pytest.fixture(params=[0o022, 0o002, 0o077])
def user_umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_the_process_umask(user_umask):
    assert umask_mod.current_umask() == user_umask


def test_result_json_gets_the_users_umask(tmp_path, user_umask):
    path = atomic_write_json(tmp_path / "r.json", {"a": 1})
    assert _mode(path) == 0o666 & ~user_umask
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_cache_entry_folder_and_files_get_the_users_umask(tmp_path, user_umask):
    cache = FeatureCache(tmp_path / "cache")
    parts = {"t": 1}
    key = cache_key(parts)

    def build(writer):
        writer.create("x", (3, 2), np.float32)[:] = 1.0

    cache.get_or_build(key, parts, build)
    entry = cache.entry_dir(key)
    assert _mode(entry) == 0o777 & ~user_umask
    for f in entry.iterdir():
        assert _mode(f) == 0o666 & ~user_umask, f.name


def test_per_sample_file_gets_the_users_umask(tmp_path, user_umask):
    from copernicus_bench.per_sample import per_sample_path, write_per_sample

    write_per_sample(tmp_path / "r.json", "oa", {"correct": np.array([1, 0], dtype=np.int8),
                                                 "batch_sizes": np.array([2], dtype=np.int64)})
    assert _mode(per_sample_path(tmp_path / "r.json")) == 0o666 & ~user_umask


def test_leaderboard_files_get_the_users_umask(tmp_path, user_umask):
    from copernicus_bench.atomicset import staged_files

    with staged_files(tmp_path / "lb") as stage:
        (stage / "README.md").write_text("x")
    assert _mode(tmp_path / "lb" / "README.md") == 0o666 & ~user_umask


def test_match_umask_on_a_folder_and_a_missing_path(tmp_path, user_umask):
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    umask_mod.match_umask(d)
    assert _mode(d) == 0o777 & ~user_umask
    umask_mod.match_umask(tmp_path / "missing")  # best effort: no error


def test_geotiff_outputs_get_the_users_umask(tmp_path, user_umask):
    from rasterio.transform import from_origin

    from copernicus_bench.windows import write_geotiff

    path = tmp_path / "e.tif"
    write_geotiff(path, np.zeros((2, 3, 3), dtype=np.float32), "EPSG:4326", from_origin(0, 3, 1, 1))
    assert _mode(path) == 0o666 & ~user_umask
