"""The weights folder: finding, downloading, hashing and safely loading released checkpoints.

File names follow docs/conventions.md: the first name of a :class:`WeightsSpec` is the one downloaded
(pinned revision); the others are accepted when a user already has them. A file counts as *released* only
when its name is the pinned one and its sha256 starts with the 8 hex digits in that name (torchvision's
convention); any other file is a user checkpoint, labelled by its sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .encoder import WeightsInfo
from .errors import CbenchError, WeightsNotFoundError
from .umask import match_umask

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8})\.[A-Za-z]+$")
_sha_cache: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class WeightsSpec:
    """One released checkpoint: accepted file names (first = downloaded) and where it is downloaded from."""

    model: str
    filenames: tuple[str, ...]
    url: str
    note: str = ""
    size: str = ""  #: human size for messages, e.g. "≈558 MB" (see each spec for how it was derived)

    @property
    def primary(self) -> str:
        return self.filenames[0]

    @property
    def sha256_prefix(self) -> str | None:
        """The 8 hex digits the pinned name carries (torchvision's convention), or None."""
        m = _HASH_IN_NAME.search(self.primary)
        return m.group(1) if m else None


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
    with open(p, "rb") as f:
        _sha_cache[key] = digest = hashlib.file_digest(f, "sha256").hexdigest()
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
        match_umask(tmp)
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


def _describe(spec: WeightsSpec) -> str:
    size = f"{spec.size}, " if spec.size else ""
    return f"{spec.primary} ({size}from {spec.url})"


def missing_files_message(model: str, specs: list[WeightsSpec], weights_dir: str | os.PathLike,
                          reason: str = "") -> str:
    """One sentence naming every missing file of ``model`` (source, size), the folder and both ways forward."""
    why = f" ({reason})" if reason else ""
    files = " and ".join(_describe(s) for s in specs)
    n = len(specs)
    return (f"{model}: {n} weights file{'s are' if n > 1 else ' is'} not in {weights_dir} and could not be "
            f"downloaded{why}: {files}; either fetch {'them' if n > 1 else 'it'} with 'cbench weights download "
            f"--model {model}' (or put {'them' if n > 1 else 'it'} in that folder by hand, or pass --weights-dir "
            f"DIR), or try the whole path without weights with --model-args random_init=true")


def ensure_files(model: str, needed: list[WeightsSpec], weights_dir: str | os.PathLike, download: bool = True,
                 others: list[WeightsSpec] | tuple[WeightsSpec, ...] = ()) -> list[Path]:
    """The local files of ``needed`` (downloaded once when absent), in order.

    When any needed file is absent and cannot be downloaded, raises :class:`WeightsNotFoundError` with one
    sentence naming every missing file of the model — ``needed`` and ``others`` (the model's other files,
    not fetched here) — with its source and size, the folder, and both ways forward.
    """
    weights_dir = Path(weights_dir)
    found = [find_weights(s, weights_dir) for s in needed]
    if all(f is not None for f in found):
        return [f for f in found if f is not None]
    offline = not download or os.environ.get("CBENCH_OFFLINE") or os.environ.get("HF_HUB_OFFLINE") == "1"
    reason = "downloads are off" if offline else ""
    out: list[Path] = []
    for spec, path in zip(needed, found):
        if path is None and not offline:
            try:
                path = download_spec(spec, weights_dir)
            except Exception as exc:  # noqa: BLE001 - any network failure becomes one sentence
                reason = reason or (exc.reason if isinstance(exc, _DownloadError) else type(exc).__name__)
        if path is None:
            missing = [s for s in [*needed, *others] if find_weights(s, weights_dir) is None]
            unique = list({s.primary: s for s in missing}.values())
            raise WeightsNotFoundError(missing_files_message(model, unique, weights_dir, reason))
        out.append(path)
    return out


def ensure_weights(spec: WeightsSpec, weights_dir: str | os.PathLike, download: bool = True,
                   model: str | None = None, others: tuple[WeightsSpec, ...] = ()) -> Path:
    """Return the local checkpoint, downloading the pinned file once when absent.

    Offline with the file absent, raises :class:`WeightsNotFoundError` with one sentence naming the file
    (and the model's ``others`` still missing), its source and the folder to put it in. Downloads are
    resumable and renamed into place only when complete and verified (:func:`download_spec`).
    """
    return ensure_files(model or spec.model, [spec], weights_dir, download=download, others=others)[0]


class _DownloadError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def part_path(target: Path) -> Path:
    """Where an interrupted download of ``target`` is kept (and resumed from)."""
    return target.with_name(f".{target.name}.part")


def download_spec(spec: WeightsSpec, weights_dir: str | os.PathLike, progress: bool = False) -> Path:
    """Download ``spec``'s pinned file into ``weights_dir``: resumable (``.part`` kept on failure), checksummed
    (the sha256 prefix its name carries), renamed into place only when complete and verified."""
    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    target = weights_dir / spec.primary
    _download(spec.url, target, progress=True) if progress else _download(spec.url, target)
    expected = spec.sha256_prefix
    if expected is not None:
        sha = file_sha256(target)
        if not sha.startswith(expected):
            target.unlink()
            raise _DownloadError(f"downloaded {target.name} has sha256 {sha[:8]}…, not {expected}…; removed it")
    return target


def _download(url: str, target: Path, timeout: float = 30.0, progress: bool = False) -> None:
    """HTTP GET ``url`` into ``target``; resumes a kept ``.part`` with a Range request."""
    import requests

    part = part_path(target)
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with requests.get(url, stream=True, timeout=timeout, headers=headers) as r:
        if r.status_code == 416:  # the .part is already complete
            os.replace(part, target)
            return
        r.raise_for_status()
        mode = "ab" if have and r.status_code == 206 else "wb"
        total = int(r.headers.get("content-length", 0)) + (have if mode == "ab" else 0)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total or None, initial=have if mode == "ab" else 0, unit="B", unit_scale=True,
                       desc=target.name, file=sys.stderr)
        with open(part, mode) as f:
            for chunk in r.iter_content(chunk_size=1 << 20):
                f.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            f.flush()
            os.fsync(f.fileno())
        if bar is not None:
            bar.close()
    if total and part.stat().st_size != total:
        raise _DownloadError(f"{target.name}: got {part.stat().st_size} of {total} bytes; run again to resume")
    os.replace(part, target)


def model_weight_files(adapter: object) -> tuple[WeightsSpec, ...]:
    """Every released file an adapter's model needs (its ``weight_files()``; none when it declares none)."""
    fn = getattr(adapter, "weight_files", None)
    return tuple(fn()) if callable(fn) else ()


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
