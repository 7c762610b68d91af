"""The code identity of a model adapter: which distribution (name, version) ships it and a hash of its source.

A result or a cached feature made by one version of an encoder's code must not stand in for another, so
the identity of a job's adapter — built-in or plug-in alike — is hashed into the result's identity token
(the skip key) and into every feature-cache key. The source hash covers every loaded module in the
adapter module's own folder (the adapter, and the model code beside it: editing a plug-in's ``forward``
changes it), so an editable install that is edited in place is caught even though its version is not.
"""

from __future__ import annotations

import hashlib
import sys
from functools import cache, lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any


@lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    """``importlib.metadata.packages_distributions()`` scans every installed distribution (~1-2 s in a full
    venv): once per process."""
    return metadata.packages_distributions()


@lru_cache(maxsize=256)
def _distribution(module: str) -> tuple[str, str]:
    top = module.split(".")[0]
    names = _packages_distributions().get(top, [])
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "unknown", "unknown"


@lru_cache(maxsize=64)
def _folder_sources(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    h = hashlib.sha256()
    for path, _, _ in stamp:
        h.update(Path(path).name.encode() + b"\0")
        h.update(Path(path).read_bytes())
    return h.hexdigest()


@cache
def _resolved(file: str) -> Path:
    return Path(file).resolve()


def _loaded_sources(folder: Path) -> list[Path]:
    out = set()
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if f and f.endswith(".py") and _resolved(f).parent == folder:
            out.add(_resolved(f))
    return sorted(out)


def adapter_code_identity(adapter: object) -> dict[str, Any]:
    """``{"distribution", "version", "module", "source_sha256"}`` of ``adapter``'s class."""
    cls = type(adapter)
    module = cls.__module__
    mod = sys.modules.get(module)
    file = getattr(mod, "__file__", None)
    dist, version = _distribution(module)
    if not file:
        return {"distribution": dist, "version": version, "module": module, "source_sha256": None}
    folder = Path(file).resolve().parent
    files = _loaded_sources(folder) or [Path(file).resolve()]
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return {"distribution": dist, "version": version, "module": module,
            "source_sha256": _folder_sources(str(folder), stamp)}


def code_hash(identity: dict[str, Any]) -> str:
    """A short hash of :func:`adapter_code_identity` for tokens and cache keys."""
    blob = "|".join(str(identity.get(k)) for k in ("distribution", "version", "module", "source_sha256"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def adapter_code(adapter: object) -> dict[str, Any]:
    """The identity with its short ``hash`` (what a result records under ``versions.adapter_code``)."""
    ident = adapter_code_identity(adapter)
    return {**ident, "hash": code_hash(ident)}
