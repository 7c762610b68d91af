"""Content-addressed, memory-mapped feature cache.

Frozen features are computed once per (model + weights hash, task, split, preprocessing, augmentation
view) and reused for every epoch and seed. An entry is a folder ``<cache>/<key[:2]>/<key>/`` of ``.npy``
arrays (opened memory-mapped) and ``entry.json`` (shapes, dtypes, blake2b digests, the key's parts). It is
written into a temporary sibling folder and renamed into place (atomic); a lock file keeps two local
processes from building the same entry at once; a reader never trusts an entry without its completion
marker and re-checks it, so a corrupt entry is detected, removed and recomputed. The whole-file digests are
computed once, from disk, when an entry is written; a read checks sizes, ``.npy`` headers and a digest of
each file's first and last MiB (cheap: an 8 GB entry opens in milliseconds), and re-hashes everything only
with ``CBENCH_CACHE_VERIFY=full``.

For several machines, point ``--cache-dir`` at a shared file system; without one each machine builds its
own entries.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CbenchError
from .filelock import exclusive_lock
from .umask import match_umask

CACHE_FORMAT = "1"
COMPLETE = "COMPLETE"
log = logging.getLogger(__name__)


def cache_key(parts: dict[str, Any]) -> str:
    """Hash of every part that changes the features (model, weights, task, split, pipeline, views, ...)."""
    blob = json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def _digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


EDGE_BYTES = 1 << 20


def _edge_digest(path: Path, size: int) -> str:
    """blake2b of the first and last ``EDGE_BYTES`` of a file (header, first and last rows): the cheap check."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        h.update(f.read(EDGE_BYTES))
        if size > EDGE_BYTES:
            f.seek(max(EDGE_BYTES, size - EDGE_BYTES))
            h.update(f.read(EDGE_BYTES))
    return h.hexdigest()


def verify_mode() -> str:
    """``cheap`` (default) or ``full`` (``$CBENCH_CACHE_VERIFY=full``: re-hash every array on every read)."""
    mode = os.environ.get("CBENCH_CACHE_VERIFY", "cheap")
    return mode if mode in ("cheap", "full") else "cheap"


def _reserve(path: Path) -> None:
    """Allocate a (sparse) file's blocks now, so running out of space raises ``ENOSPC`` instead of killing the
    process with a bus error on a later write through the memory map."""
    size = path.stat().st_size
    if size == 0 or not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(exc.errno, os.strerror(exc.errno), str(path)) from None
        # file systems without fallocate support (EOPNOTSUPP, EINVAL): keep the sparse file
    finally:
        os.close(fd)


def cache_write_error(root: Path, exc: OSError) -> CbenchError:
    """One line for a failed cache write (disk full, read-only, permissions) that says what to do."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return CbenchError(f"feature cache {root}: no space left while writing an entry ({exc.filename or root}); "
                           "the partial entry was removed and earlier entries are intact: free space, point "
                           "--cache-dir at a larger disk, or lower --cache-budget so dense maps are encoded on "
                           "the fly")
    return CbenchError(f"feature cache {root}: cannot write there ({exc.strerror}: {exc.filename or root}); pass a "
                       "writable --cache-dir DIR or set CBENCH_CACHE_DIR")


class ArrayWriter:
    """Creates the arrays of a new entry (memory-mapped ``.npy`` files) inside a temporary folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.arrays: dict[str, np.memmap] = {}

    def create(self, name: str, shape: tuple[int, ...], dtype: np.dtype | str) -> np.memmap:
        path = self.folder / f"{name}.npy"
        arr = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        _reserve(path)  # a full disk is an OSError here, not a SIGBUS when the memory map is written
        self.arrays[name] = arr
        return arr


class FeatureCache:
    """The on-disk cache rooted at ``root`` (``--cache-dir``)."""

    def __init__(self, root: str | os.PathLike, verify: str | None = None) -> None:
        self.root = Path(root)
        #: ``cheap``: size + ``.npy`` header + digest of the file's edges on read (the whole-file digest is
        #: computed once, from disk, when the entry is written); ``full``: re-hash every array on every read
        self.verify = verify or verify_mode()

    def entry_dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        """The entry's arrays (memory-mapped, read-only), or None if absent, incomplete or corrupt."""
        folder = self.entry_dir(key)
        if not (folder / COMPLETE).is_file():
            return None
        try:
            info = json.loads((folder / "entry.json").read_text())
            if info.get("key") != key:  # e.g. another seed's entry copied or renamed into this place
                raise ValueError(f"it was built for key {str(info.get('key'))[:12]}…, not for this one")
            arrays = {}
            for name, meta in info["arrays"].items():
                path = folder / f"{name}.npy"
                size = path.stat().st_size
                if size != meta["bytes"]:
                    raise ValueError(f"{path.name} has {size} bytes, expected {meta['bytes']}")
                if self.verify == "full" or "edges_blake2b" not in meta:
                    if _digest(path) != meta["blake2b"]:
                        raise ValueError(f"{path.name} does not match its digest")
                elif _edge_digest(path, size) != meta["edges_blake2b"]:
                    raise ValueError(f"{path.name} does not match its stored edge digest")
                arr = np.load(path, mmap_mode="r")
                if list(arr.shape) != meta["shape"] or str(arr.dtype) != meta["dtype"]:
                    raise ValueError(f"{path.name} has shape {arr.shape}, expected {meta['shape']}")
                arrays[name] = arr
            return arrays
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            log.warning("feature cache entry %s is corrupt (%s); recomputing it", folder, exc)
            shutil.rmtree(folder, ignore_errors=True)
            return None

    def get_or_build(self, key: str, parts: dict[str, Any], build: Callable[[ArrayWriter], None],
                     refresh: bool = False) -> tuple[dict[str, np.ndarray], bool]:
        """Return ``(arrays, hit)``; on a miss ``build(writer)`` fills a new entry, which is then published.
        ``refresh`` (``--refresh-cache``): build and replace the entry even when a valid one exists."""
        found = None if refresh else self.load(key)
        if found is not None:
            return found, True
        try:
            (self.root / key[:2]).mkdir(parents=True, exist_ok=True)
            return self._build_locked(key, parts, build, refresh)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR,
                             errno.EEXIST):
                raise cache_write_error(self.root, exc) from exc
            raise

    def _build_locked(self, key: str, parts: dict[str, Any], build: Callable[[ArrayWriter], None],
                      refresh: bool = False) -> tuple[dict[str, np.ndarray], bool]:
        with exclusive_lock(self.root / key[:2] / f"{key}.lock"):
            found = None if refresh else self.load(key)  # another process may have built it while we waited
            if found is not None:
                return found, True
            final = self.entry_dir(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{key[:12]}.tmp-"))
            match_umask(tmp)  # mkdtemp makes 0700: a shared --cache-dir needs the user's umask
            try:
                writer = ArrayWriter(tmp)
                build(writer)
                meta = {}
                for name, arr in writer.arrays.items():
                    arr.flush()
                    path = tmp / f"{name}.npy"
                    size = path.stat().st_size
                    meta[name] = {"shape": list(arr.shape), "dtype": str(arr.dtype), "bytes": size,
                                  "blake2b": _digest(path), "edges_blake2b": _edge_digest(path, size)}
                writer.arrays.clear()
                created = datetime.now(UTC).isoformat(timespec="seconds")
                (tmp / "entry.json").write_text(json.dumps({"key": key, "parts": parts, "arrays": meta,
                                                            "created": created}, indent=1, default=str))
                (tmp / COMPLETE).write_text("ok\n")
                if final.exists():
                    shutil.rmtree(final)
                os.replace(tmp, final)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        loaded = self.load(key)
        if loaded is None:  # pragma: no cover - only if the file system loses our files
            raise RuntimeError(f"feature cache entry {final} vanished after writing")
        return loaded, False
