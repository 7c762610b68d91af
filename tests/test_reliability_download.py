"""Reliability of zip extraction: zip bombs, too little space, disk full mid-way (issue 10, item 1)."""

from __future__ import annotations

import errno
import os
import shutil
import zipfile
from collections import namedtuple
from pathlib import Path

import pytest

from copernicus_bench.errors import CbenchError
from copernicus_bench.tasks.base import extract_zip


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _leftovers(root: Path) -> list[str]:
    return [p.name for p in root.iterdir() if ".extract-" in p.name]


def test_plain_archive_extracts(tmp_path: Path) -> None:
    z = _zip(tmp_path / "eurosat_s1.zip", {"eurosat_s1/a.txt": os.urandom(4096), "eurosat_s1/b.txt": b"x" * 10})
    extract_zip(z, tmp_path, "eurosat_s1")
    assert (tmp_path / "eurosat_s1" / "b.txt").read_bytes() == b"x" * 10


def test_zip_bomb_is_refused_before_writing(tmp_path: Path) -> None:
    z = _zip(tmp_path / "cloud_s2.zip", {"cloud_s2/zeros.tif": bytes(64 << 20)})  # ~1000× compression
    assert z.stat().st_size < (1 << 20)
    with pytest.raises(CbenchError) as err:
        extract_zip(z, tmp_path, "cloud_s2")
    msg = str(err.value)
    assert "cloud_s2.zip" in msg and "zip bomb" in msg and "\n" not in msg
    assert not (tmp_path / "cloud_s2").exists() and _leftovers(tmp_path) == []


def test_archive_larger_than_free_space_is_refused(tmp_path: Path, monkeypatch) -> None:
    z = _zip(tmp_path / "flood_s1.zip", {"flood_s1/a.bin": os.urandom(1 << 16)})
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 20, (1 << 20) - 1000, 1000))
    with pytest.raises(CbenchError, match=r"flood_s1\.zip: needs .* GiB free"):
        extract_zip(z, tmp_path, "flood_s1")
    assert not (tmp_path / "flood_s1").exists()


def test_disk_full_while_extracting_is_not_called_corrupt(tmp_path: Path, monkeypatch) -> None:
    z = _zip(tmp_path / "lc100_s3.zip", {"lc100_s3/a.bin": os.urandom(1 << 12)})

    def full(self, path=None, members=None, pwd=None):
        Path(path, "lc100_s3").mkdir(parents=True)
        (Path(path) / "lc100_s3" / "half.bin").write_bytes(b"12")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(Path(path) / "lc100_s3" / "a.bin"))

    monkeypatch.setattr(zipfile.ZipFile, "extractall", full)
    with pytest.raises(CbenchError) as err:
        extract_zip(z, tmp_path, "lc100_s3")
    msg = str(err.value)
    assert "filled up" in msg and "corrupt" not in msg
    assert not (tmp_path / "lc100_s3").exists() and _leftovers(tmp_path) == []


def test_truncated_archive_is_still_called_corrupt(tmp_path: Path) -> None:
    z = _zip(tmp_path / "dfc2020.zip", {"dfc2020_s1s2/a.bin": os.urandom(1 << 14)})
    z.write_bytes(z.read_bytes()[:200])
    with pytest.raises(CbenchError, match="truncated or corrupt"):
        extract_zip(z, tmp_path, "dfc2020_s1s2")
