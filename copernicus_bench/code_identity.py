"""The code identity of a model adapter: which distribution (name, version) ships it and a hash of its source.

A result or a cached feature made by one version of an encoder's code must not stand in for another, so
the identity of a job's adapter — built-in or plug-in alike — is hashed into the result's identity token
(the skip key) and into every feature-cache key. The source hash covers every loaded module in the
adapter module's own folder (the adapter, and the model code beside it: editing a plug-in's ``forward``
changes it), so an editable install that is edited in place is caught even though its version is not.

Which files: the adapter's module and every module *of its own folder* that it imports, directly or through
each other, at top level or inside functions — read from the source (``ast``), not from ``sys.modules``,
so the hash does not depend on which other modules a process happened to load (a sweep that imported
SoftCon's module before the random ViT's second job must not give the random ViT a new identity), and an
edit to an unrelated sibling (``baselines/croma.py``) leaves the random ViT's results standing.
"""

from __future__ import annotations

import ast
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


def _named_like(top: str) -> tuple[str, str] | None:
    """The distribution named like the top-level package (``copernicus_bench`` → ``copernicus-bench``), if it
    ships that package: one metadata lookup instead of the full scan of every installed distribution."""
    try:
        dist = metadata.distribution(top)
    except (metadata.PackageNotFoundError, ValueError):
        return None
    shipped = (dist.read_text("top_level.txt") or "").split()
    if top not in shipped and not any(f.parts and f.parts[0] in (top, f"{top}.py") for f in dist.files or ()):
        return None
    return dist.metadata["Name"], dist.version


@lru_cache(maxsize=256)
def _distribution(module: str) -> tuple[str, str]:
    top = module.split(".")[0]
    if (found := _named_like(top)) is not None:
        return found
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


@lru_cache(maxsize=512)
def _sibling_imports(file: str, package: str, stamp: tuple[int, int]) -> frozenset[str]:
    """Files of ``file``'s folder that its source imports (``stamp``: size, mtime; re-parsed when edited)."""
    path = Path(file)
    folder = path.parent
    try:
        tree = ast.parse(path.read_bytes(), filename=file)
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    names: list[str] = []  # module names relative to the folder ("" = the folder's __init__)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                base = node.module or ""
            elif node.level == 0 and package and node.module and (node.module + ".").startswith(package + "."):
                base = node.module[len(package) + 1:]
            else:
                continue
            names.append(base)
            names.extend(f"{base}.{a.name}".lstrip(".") for a in node.names)  # ``from . import sub``
        elif isinstance(node, ast.Import) and package:
            names.extend(a.name[len(package) + 1:] for a in node.names if a.name.startswith(package + "."))
    out = set()
    for name in names:
        head = name.split(".")[0]
        candidate = folder / f"{head}.py" if head else folder / "__init__.py"
        if candidate.is_file():
            out.add(str(candidate.resolve()))
    return frozenset(out)


def _loaded_sources(folder: Path, file: Path, module: str) -> list[Path]:
    """``file`` and the files of ``folder`` it imports, transitively (see the module docstring)."""
    package = module.rpartition(".")[0] if file.name != "__init__.py" else module
    seen = {str(file)}
    todo = [str(file)]
    while todo:
        current = Path(todo.pop())
        st = current.stat()
        for dep in _sibling_imports(str(current), package, (st.st_size, st.st_mtime_ns)):
            if dep not in seen and Path(dep).parent == folder:
                seen.add(dep)
                todo.append(dep)
    return sorted(Path(f) for f in seen)


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
    files = _loaded_sources(folder, _resolved(file), module)
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
