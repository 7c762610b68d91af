"""The weights folder: finding, downloading, hashing and safely loading released checkpoints.

File names follow shared/conventions.md: the first name of a :class:`WeightsSpec` is the one downloaded
(pinned revision); the others are accepted when a user already has them. A file counts as *released* only
when its name is the pinned one and its sha256 starts with the 8 hex digits in that name (torchvision's
convention); any other file is a user checkpoint, labelled by its sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .encoder import WeightsInfo
from .errors import CbenchError, WeightsNotFoundError

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8})\.[A-Za-z]+$")
_sha_cache: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class WeightsSpec:
    """One released checkpoint: accepted file names (first = downloaded) and where it is downloaded from."""

    model: str
    filenames: tuple[str, ...]
    url: str
    note: str = ""

    @property
    def primary(self) -> str:
        return self.filenames[0]


def sha_cache_path() -> Path:
    """Where file hashes persist between runs: ``$CBENCH_SHA_CACHE``, else ``file-sha256.json`` in the cache."""
    from . import paths

    return Path(os.environ.get("CBENCH_SHA_CACHE") or paths.cache_dir() / "file-sha256.json")


def _stat_key(p: Path) -> tuple[str, int, int]:
    st = p.stat()
    return (str(p.resolve()), st.st_size, st.st_mtime_ns)


def _read_sha_store(store: Path) -> dict[str, str]:
    try:
        data = json.loads(store.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def file_sha256(path: str | os.PathLike, persist: bool = True) -> str:
    """sha256 of a file, cached by (absolute path, size, mtime) in memory and, with ``persist``, on disk.

    A checkpoint of several hundred MB hashes once per machine instead of once per job: a re-run of a
    finished sweep reads the identity from ``sha_cache_path()``. Any change to the file's size or mtime
    re-hashes it; an unreadable store is ignored (and rewritten).
    """
    p = Path(path)
    key = _stat_key(p)
    if key in _sha_cache:
        return _sha_cache[key]
    store = sha_cache_path() if persist else None
    text_key = "|".join(map(str, key))
    if store is not None:
        known = _read_sha_store(store).get(text_key)
        if isinstance(known, str) and len(known) == 64:
            _sha_cache[key] = known
            return known
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    _sha_cache[key] = digest = h.hexdigest()
    if store is not None:
        _remember(store, text_key, digest)
    return digest


def _remember(store: Path, text_key: str, digest: str) -> None:
    """Add one hash to the on-disk store (atomic replace; a lost race only loses a cache entry)."""
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        data = _read_sha_store(store)
        data[text_key] = digest
        fd, tmp = tempfile.mkstemp(dir=store.parent, prefix=".file-sha256.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=0, sort_keys=True)
        os.replace(tmp, store)
    except OSError:
        pass  # a read-only cache folder only costs a re-hash next time


def weights_info(path: str | os.PathLike, spec: WeightsSpec | None = None) -> WeightsInfo:
    """Classify a checkpoint file as ``released`` or ``user`` (see module docstring)."""
    path = Path(path)
    sha = file_sha256(path)
    released = False
    if spec is not None and path.name == spec.primary:
        m = _HASH_IN_NAME.search(path.name)
        released = bool(m and sha.startswith(m.group(1)))
    return WeightsInfo(source="released" if released else "user", sha256=sha, file=str(path))


def find_weights(spec: WeightsSpec, weights_dir: str | os.PathLike) -> Path | None:
    """The first accepted file name present in ``weights_dir``, or None."""
    for name in spec.filenames:
        candidate = Path(weights_dir) / name
        if candidate.is_file():
            return candidate
    return None


def missing_message(spec: WeightsSpec, weights_dir: str | os.PathLike, reason: str = "") -> str:
    why = f" ({reason})" if reason else ""
    return (f"{spec.model} weights '{spec.primary}' are not in {weights_dir} and could not be downloaded{why}; "
            f"download {spec.url} and put it in {weights_dir} (or pass --weights-dir)")


def ensure_weights(spec: WeightsSpec, weights_dir: str | os.PathLike, download: bool = True) -> Path:
    """Return the local checkpoint, downloading the pinned file once when absent.

    Offline with the file absent, raises :class:`WeightsNotFoundError` with one sentence naming the file,
    its source and the folder to put it in. Downloads go to a temporary name and are renamed into place.
    """
    weights_dir = Path(weights_dir)
    found = find_weights(spec, weights_dir)
    if found is not None:
        return found
    if not download or os.environ.get("CBENCH_OFFLINE") or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise WeightsNotFoundError(missing_message(spec, weights_dir, "downloads are off"))
    target = weights_dir / spec.primary
    try:
        weights_dir.mkdir(parents=True, exist_ok=True)
        _download(spec.url, target)
    except WeightsNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - any network failure becomes one sentence
        raise WeightsNotFoundError(missing_message(spec, weights_dir, f"{type(exc).__name__}")) from None
    return target


def _download(url: str, target: Path, timeout: float = 30.0) -> None:
    import requests

    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, requests.get(url, stream=True, timeout=timeout) as r:
            r.raise_for_status()
            for chunk in r.iter_content(chunk_size=1 << 20):
                f.write(chunk)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: str | os.PathLike, safe_globals: tuple[type, ...] = ()) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (or safetensors); never unpickle arbitrary objects.

    ``safe_globals`` allows exactly the listed non-tensor types (e.g. an ``argparse.Namespace`` saved beside
    the weights in a released file).
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        with torch.serialization.safe_globals(list(safe_globals)):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CbenchError(f"checkpoint {path} cannot be loaded safely ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200]}); re-download it or save a plain state dict") from None
    if not isinstance(obj, dict):
        raise CbenchError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict; save model.state_dict()")
    return obj


def check_keys(path: str | os.PathLike, missing: list[str], unexpected: list[str]) -> None:
    """Fail loudly naming missing or unexpected keys (after the caller filtered the allowed ones)."""
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_short(unexpected)}")
        raise CbenchError(f"checkpoint {path} does not match the model: {'; '.join(parts)}; "
                          "use the released file or a state dict of the same architecture")


def _short(keys: list[str], n: int = 6) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return "[" + ", ".join(keys[:n]) + "]" + more
