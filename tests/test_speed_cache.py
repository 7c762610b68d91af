"""Issue 13, cheapest-first: the weights hash persists between processes, feature-cache reads are cheap
but still catch truncation and edge corruption, and the full re-hash stays available."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from copernicus_bench import cache as cache_mod
from copernicus_bench import weights as weights_mod
from copernicus_bench.cache import FeatureCache


@pytest.fixture
def sha_store(tmp_path, monkeypatch):
    store = tmp_path / "sha.json"
    monkeypatch.setenv("CBENCH_SHA_CACHE", str(store))
    monkeypatch.setattr(weights_mod, "_sha_cache", {})
    return store


def test_file_sha256_is_correct_and_persists_by_path_size_mtime(tmp_path, sha_store, monkeypatch):
    import hashlib

    f = tmp_path / "ckpt.pth"
    f.write_bytes(b"weights" * 1000)
    expected = hashlib.sha256(f.read_bytes()).hexdigest()
    assert weights_mod.file_sha256(f) == expected
    stored = json.loads(sha_store.read_text())
    assert list(stored.values()) == [expected]
    # a new process (empty memory cache) reads the store instead of hashing: prove it with a planted value
    [k] = stored
    sha_store.write_text(json.dumps({k: "a" * 64}))
    monkeypatch.setattr(weights_mod, "_sha_cache", {})
    assert weights_mod.file_sha256(f) == "a" * 64
    # a changed mtime (or size) is a different file: hashed again
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    monkeypatch.setattr(weights_mod, "_sha_cache", {})
    assert weights_mod.file_sha256(f) == expected
    f.write_bytes(b"other")
    assert weights_mod.file_sha256(f) == hashlib.sha256(b"other").hexdigest()


def test_an_unreadable_sha_store_is_ignored_and_rewritten(tmp_path, sha_store):
    import hashlib

    sha_store.write_text("{not json")
    f = tmp_path / "w.pt"
    f.write_bytes(b"abc")
    assert weights_mod.file_sha256(f) == hashlib.sha256(b"abc").hexdigest()
    assert list(json.loads(sha_store.read_text()).values()) == [hashlib.sha256(b"abc").hexdigest()]


def _entry(root, n_bytes: int, verify: str | None = None):
    cache = FeatureCache(root, verify=verify)
    rows = n_bytes // (4 * 256)
    data = np.arange(rows * 256, dtype=np.float32).reshape(rows, 256)

    def build(writer):
        writer.create("pooled", data.shape, "float32")[:] = data

    arrays, hit = cache.get_or_build("ab" * 32, {"t": 1}, build)
    assert not hit
    return cache, data, cache.entry_dir("ab" * 32) / "pooled.npy"


def test_cheap_read_does_not_rehash_whole_files(tmp_path, monkeypatch):
    cache, data, _ = _entry(tmp_path, 3 << 20)
    monkeypatch.setattr(cache_mod, "_digest", lambda p: (_ for _ in ()).throw(AssertionError("full re-hash")))
    arrays = cache.load("ab" * 32)
    np.testing.assert_array_equal(arrays["pooled"], data)


@pytest.mark.parametrize("where", ["tail", "head", "truncate"])
def test_cheap_read_catches_truncation_and_edge_corruption(tmp_path, where):
    cache, _, path = _entry(tmp_path, 3 << 20)
    raw = bytearray(path.read_bytes())
    if where == "truncate":
        raw = raw[:-4]
    else:
        raw[-10 if where == "tail" else 200] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert cache.load("ab" * 32) is None
    assert not cache.entry_dir("ab" * 32).exists()  # removed, to be rebuilt


def test_middle_corruption_needs_the_full_check(tmp_path, monkeypatch):
    cache, _, path = _entry(tmp_path, 3 << 20)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # outside the first and last MiB
    path.write_bytes(bytes(raw))
    assert cache.load("ab" * 32) is not None  # the documented limit of the cheap check
    monkeypatch.setenv("CBENCH_CACHE_VERIFY", "full")
    assert FeatureCache(tmp_path).load("ab" * 32) is None


def test_entries_without_edge_digest_fall_back_to_the_full_check(tmp_path):
    cache, _, path = _entry(tmp_path, 1 << 16)
    info_path = path.parent / "entry.json"
    info = json.loads(info_path.read_text())
    del info["arrays"]["pooled"]["edges_blake2b"]
    info_path.write_text(json.dumps(info))
    assert cache.load("ab" * 32) is not None
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert cache.load("ab" * 32) is None
