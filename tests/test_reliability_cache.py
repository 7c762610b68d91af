"""Reliability of the feature cache: entries bound to their key, disk full, read-only, SIGTERM (issue 10, 3)."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from copernicus_bench import cache as cache_mod
from copernicus_bench.cache import FeatureCache, cache_key
from copernicus_bench.errors import CbenchError

REPO = Path(__file__).resolve().parents[1]


def _builder(value: float, calls: list[int]):
    def build(writer) -> None:
        calls.append(1)
        arr = writer.create("pooled", (4, 3), "float32")
        arr[:] = value

    return build


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tmp-" in p.name]


def test_entry_copied_under_another_key_is_not_a_hit(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    parts0, parts1 = {"model": "random", "seed": 0}, {"model": "random", "seed": 1}
    k0, k1 = cache_key(parts0), cache_key(parts1)
    calls: list[int] = []
    cache.get_or_build(k0, parts0, _builder(0.0, calls))
    # the seed-0 entry copied into the seed-1 entry's place: its files are intact, only its key is wrong
    dst = cache.entry_dir(k1)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(cache.entry_dir(k0), dst)
    assert cache.load(k1) is None  # refused: the entry records k0
    arrays, hit = cache.get_or_build(k1, parts1, _builder(50.0, calls))
    assert not hit and len(calls) == 2 and float(arrays["pooled"][0, 0]) == 50.0
    assert float(cache.load(k0)["pooled"][0, 0]) == 0.0  # the other entry untouched


def test_a_normal_entry_still_hits(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    parts = {"model": "m", "split_files": {"a/b.csv": "ff"}, "views": 4, "limit": None, "opts": ("x", 1)}
    key = cache_key(parts)
    calls: list[int] = []
    cache.get_or_build(key, parts, _builder(1.0, calls))
    arrays, hit = cache.get_or_build(key, parts, _builder(2.0, calls))
    assert hit and len(calls) == 1 and float(arrays["pooled"][1, 1]) == 1.0


def test_disk_full_is_one_line_and_leaves_no_temporaries(tmp_path: Path, monkeypatch) -> None:
    cache = FeatureCache(tmp_path)
    old_parts = {"entry": "old"}
    cache.get_or_build(cache_key(old_parts), old_parts, _builder(3.0, []))

    def full(fd, offset, length):  # what the kernel answers on a full file system
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache_mod.os, "posix_fallocate", full, raising=False)
    parts = {"entry": "new"}
    with pytest.raises(CbenchError) as err:
        cache.get_or_build(cache_key(parts), parts, _builder(4.0, []))
    msg = str(err.value)
    assert "no space left" in msg and "--cache-dir" in msg and "\n" not in msg
    assert _leftovers(tmp_path) == []
    assert not cache.entry_dir(cache_key(parts)).exists()
    assert float(cache.load(cache_key(old_parts))["pooled"][0, 0]) == 3.0  # earlier entry intact


def test_write_failing_inside_the_build_is_one_line(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)

    def build(writer) -> None:
        writer.create("pooled", (2, 2), "float32")
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), str(tmp_path / "x.npy"))

    with pytest.raises(CbenchError, match="no space left"):
        cache.get_or_build("ab" * 32, {}, build)
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_cache_folder_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    try:
        with pytest.raises(CbenchError, match=r"cannot write there.*--cache-dir"):
            FeatureCache(root).get_or_build("cd" * 32, {}, _builder(1.0, []))
    finally:
        root.chmod(0o700)


def test_cache_dir_that_is_a_file_or_unwritable_is_one_line(tmp_path: Path, monkeypatch) -> None:
    a_file = tmp_path / "features"
    a_file.write_text("not a folder")
    with pytest.raises(CbenchError, match=r"cannot write there.*--cache-dir"):
        FeatureCache(a_file).get_or_build("cd" * 32, {}, _builder(1.0, []))

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / "ok"))

    monkeypatch.setattr(cache_mod.tempfile, "mkdtemp", denied)
    with pytest.raises(CbenchError, match=r"cannot write there \(Permission denied"):
        FeatureCache(tmp_path / "ok").get_or_build("cd" * 32, {}, _builder(1.0, []))


def test_sigterm_during_a_build_removes_the_temporary(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import signal, sys, time
        from copernicus_bench.cache import FeatureCache
        from copernicus_bench.cli import _on_signal
        signal.signal(signal.SIGTERM, _on_signal)  # what `cbench` installs for every command
        def build(writer):
            writer.create("pooled", (64, 64), "float32")
            print("building", flush=True)
            time.sleep(60)
        try:
            FeatureCache(sys.argv[1]).get_or_build("ef" * 32, {}, build)
        except KeyboardInterrupt:
            sys.exit(143)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            cwd=REPO)
    assert proc.stdout.readline().strip() == "building"
    assert _leftovers(tmp_path)  # the temporary exists while building
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    assert _leftovers(tmp_path) == []
    assert not FeatureCache(tmp_path).entry_dir("ef" * 32).exists()


def test_reserve_allocates_blocks(tmp_path: Path) -> None:
    # sparse memory-mapped files are what turned a full disk into a bus error; after create() the blocks exist
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    fd = os.open(probe, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, 4096)
    except (AttributeError, OSError):
        pytest.skip("this file system cannot preallocate")
    finally:
        os.close(fd)
    writer = cache_mod.ArrayWriter(tmp_path)
    arr = writer.create("pooled", (256, 1024), "float32")
    assert os.stat(tmp_path / "pooled.npy").st_blocks * 512 >= arr.nbytes
    assert isinstance(arr, np.memmap)
