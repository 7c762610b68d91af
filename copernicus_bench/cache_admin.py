"""``cbench cache ls|clear|verify``: list, remove and fully re-hash the entries of a feature cache.

A cache root holds feature entries (``<root>/<key[:2]>/<key>/``, :class:`~copernicus_bench.cache.FeatureCache`)
and decoded-input entries under ``<root>/inputs/`` (:mod:`~copernicus_bench.input_cache`), each with its
``entry.json``. Removing takes the entry's lock, so an entry being built by a running job is never removed
half-way (the job's lock is waited for).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .cache import COMPLETE, _digest
from .filelock import exclusive_lock


@dataclass
class Entry:
    """One cache entry as listed: where it is, what it holds, how big it is."""

    path: Path
    key: str
    kind: str  # "features" | "inputs"
    model: str
    task: str
    split: str
    bytes: int
    created: str
    complete: bool
    info: dict[str, Any]

    @property
    def lock(self) -> Path:
        return self.path.parent / f"{self.key}.lock"


def _created(info: dict[str, Any], folder: Path) -> str:
    if info.get("created"):
        return str(info["created"])
    try:  # entries written before ``created`` was recorded: the folder's time
        return datetime.fromtimestamp(folder.stat().st_mtime, UTC).isoformat(timespec="seconds")
    except OSError:
        return ""


def _store_entries(store: Path, kind: str) -> Iterator[Entry]:
    if not store.is_dir():
        return
    for shard in sorted(store.iterdir()):
        if len(shard.name) != 2 or not shard.is_dir():
            continue
        for folder in sorted(shard.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir():
                continue  # temporaries of entries being built, lock files
            try:
                info = json.loads((folder / "entry.json").read_text())
            except (OSError, ValueError):
                info = {}
            parts = info.get("parts") or {}
            size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            yield Entry(path=folder, key=folder.name, kind=kind, model=str(parts.get("model", "")),
                        task=str(parts.get("task", "")), split=str(parts.get("split", "")), bytes=size,
                        created=_created(info, folder), complete=(folder / COMPLETE).is_file(), info=info)


def entries(root: str | os.PathLike) -> list[Entry]:
    """Every entry under a cache root: feature entries, then decoded-input entries (``inputs/``)."""
    root = Path(root)
    return [*_store_entries(root, "features"), *_store_entries(root / "inputs", "inputs")]


def select(found: list[Entry], model: str | None = None, task: str | None = None) -> list[Entry]:
    """Entries of ``model`` and/or ``task`` (input entries have no model: ``--model`` never selects them)."""
    return [e for e in found if (model is None or e.model == model) and (task is None or e.task == task)]


def remove(entry: Entry) -> None:
    """Remove one entry under its lock (a job building it finishes first)."""
    with exclusive_lock(entry.lock):
        shutil.rmtree(entry.path, ignore_errors=True)
    try:
        entry.lock.unlink()
    except OSError:
        pass


def verify(entry: Entry) -> str | None:
    """Full check of one entry (every array re-hashed): None when sound, else what is wrong."""
    if not entry.complete:
        return "incomplete (no completion marker)"
    info = entry.info
    if not info:
        return "entry.json is missing or not JSON"
    if info.get("key") != entry.key:
        return f"built for key {str(info.get('key'))[:12]}…, not for its folder's name"
    try:
        for name, meta in info["arrays"].items():
            path = entry.path / f"{name}.npy"
            size = path.stat().st_size
            if size != meta["bytes"]:
                return f"{path.name} has {size} bytes, expected {meta['bytes']}"
            if _digest(path) != meta["blake2b"]:
                return f"{path.name} does not match its digest"
            arr = np.load(path, mmap_mode="r")
            if list(arr.shape) != meta["shape"] or str(arr.dtype) != meta["dtype"]:
                return f"{path.name} has shape {list(arr.shape)} {arr.dtype}, expected {meta['shape']} {meta['dtype']}"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable ({exc})"
    return None


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
