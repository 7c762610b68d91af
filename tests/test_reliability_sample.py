"""Reliability of ``cbench sample``: bounded, disk-checked, atomic, marked as sample data (issue 10, 6 and 7)."""

from __future__ import annotations

import logging
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from copernicus_bench import sampledata
from copernicus_bench.errors import CbenchError
from copernicus_bench.job import overrides_of
from copernicus_bench.runner import RunSpec
from copernicus_bench.tasks import get_card


def test_per_split_is_capped_at_the_released_split_sizes(caplog) -> None:
    smallest = min(get_card("cloud-s3").split_sizes.values())
    with caplog.at_level(logging.WARNING, logger="copernicus_bench.sampledata"):
        assert sampledata.cap_per_split(["cloud-s3", "eurosat-s2"], 10**9) == min(
            smallest, min(get_card("eurosat-s2").split_sizes.values()))
    assert "capped to" in caplog.text
    assert sampledata.cap_per_split(["cloud-s3"], 3) == 3


def test_too_little_disk_is_refused_before_writing(tmp_path: Path, monkeypatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 100, 100))
    with pytest.raises(CbenchError, match=r"--out .*the sample needs up to .* GiB free"):
        sampledata.write_sample(tmp_path / "s", tasks="eurosat-s2", per_split=2)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_generation_leaves_nothing_under_the_final_name(tmp_path: Path, monkeypatch) -> None:
    from copernicus_bench.tasks import sample as sample_mod

    def half(root, tasks=None, per_split=None, seed=0):
        (Path(root) / "eurosat_s2").mkdir()
        (Path(root) / "eurosat_s2" / "half.tif").write_bytes(b"12")
        raise KeyboardInterrupt  # Ctrl-C / SIGTERM half-way

    monkeypatch.setattr(sample_mod, "generate_sample", half)
    with pytest.raises(KeyboardInterrupt):
        sampledata.write_sample(tmp_path / "s", tasks="eurosat-s2", per_split=2)
    assert list(tmp_path.iterdir()) == []  # neither the final root nor the temporary sibling


def test_sample_root_is_marked_and_recorded_as_sample_data(tmp_path: Path) -> None:
    root = sampledata.write_sample(tmp_path / "s", tasks="eurosat-s2", per_split=2)
    assert (root / "eurosat_s2").is_dir() and sampledata.is_sample_root(root)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temporary renamed away
    spec = RunSpec(model="random", task="eurosat-s2", data_root=str(root))
    assert sampledata.data_is_sample(spec)
    assert overrides_of(spec, {}) == {"data": "cbench sample"}  # its own identity, never a real-data result
    real = tmp_path / "real"
    shutil.copytree(root, real)
    (real / ".cbench-sample-complete").unlink()
    spec_real = RunSpec(model="random", task="eurosat-s2", data_root=str(real))
    assert not sampledata.data_is_sample(spec_real) and overrides_of(spec_real, {}) == {}


def test_writing_into_an_existing_root_replaces_archives_whole(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "other_task").mkdir(parents=True)
    (root / "eurosat_s2").mkdir()
    (root / "eurosat_s2" / "stale.txt").write_text("old")
    sampledata.write_sample(root, tasks="eurosat-s2", per_split=2)
    assert (root / "other_task").is_dir()  # untouched
    assert not (root / "eurosat_s2" / "stale.txt").exists()
    assert not [p for p in root.iterdir() if ".old-" in p.name or ".sample-" in p.name]


def test_out_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(CbenchError, match="is a file, not a folder"):
        sampledata.write_sample(f, tasks="eurosat-s2", per_split=2)
