"""A small name → builder registry that also reads Python entry points (timm / lm-eval style)."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from .errors import CbenchError

BUILTIN_DIST = "copernicus-bench"

T = TypeVar("T")


def closest(name: str, choices: list[str]) -> str:
    """A ``did you mean`` suffix for an unknown name, or an empty string."""
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.4)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _is_builtin(ep: object) -> bool:
    """An entry point this package itself declares (built-ins win over same-named plug-ins)."""
    dist = getattr(ep, "dist", None)
    if dist is not None and getattr(dist, "name", None):
        return dist.name.replace("_", "-").lower() == BUILTIN_DIST
    return str(getattr(ep, "value", "")).startswith("copernicus_bench.")


def _origin(ep: object) -> str:
    dist = getattr(ep, "dist", None)
    where = f"package '{dist.name}'" if dist is not None and getattr(dist, "name", None) else "an unknown package"
    return f"{where} ({getattr(ep, 'value', '?')})"


class Registry(Generic[T]):
    """Maps names to objects; entry points of ``group`` are loaded lazily on first lookup.

    Built-in registrations win over entry points of the same name (as lm-eval's plug-ins).
    """

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self._items: dict[str, T] = {}
        self._entry_points: dict[str, object] | None = None

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; usable as a decorator."""

        def add(item: T) -> T:
            self._items[name] = item
            return item

        return add(obj) if obj is not None else add

    def _discover(self) -> dict[str, object]:
        if self._entry_points is None:
            self._entry_points = {}
            if self.group:
                for ep in sorted(entry_points(group=self.group), key=lambda e: not _is_builtin(e)):
                    kept = self._entry_points.get(ep.name) or (self._items.get(ep.name) and "in-process")
                    if kept is None:
                        self._entry_points[ep.name] = ep
                    elif _is_builtin(kept) or kept == "in-process":
                        warnings.warn(f"{self.kind} plug-in '{ep.name}' from {_origin(ep)} has the name of a "
                                      f"built-in {self.kind}; the built-in is used, rename the plug-in's entry "
                                      "point to use it", stacklevel=2)
                    else:
                        warnings.warn(f"two {self.kind} plug-ins are named '{ep.name}' ({_origin(kept)}, "
                                      f"{_origin(ep)}); the first is used, rename one", stacklevel=2)
        return self._entry_points

    def names(self) -> list[str]:
        return sorted(set(self._items) | set(self._discover()))

    def __contains__(self, name: str) -> bool:
        return name in self._items or name in self._discover()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        if name in self._items:
            return self._items[name]
        ep = self._discover().get(name)
        if ep is None:
            raise CbenchError(f"unknown {self.kind} '{name}'{closest(name, self.names())}; "
                              f"known: {', '.join(self.names())}")
        try:
            obj = ep.load()  # type: ignore[attr-defined]
        except Exception as exc:  # a broken plug-in must not take the whole CLI down
            raise CbenchError(f"{self.kind} '{name}' from entry point '{ep.value}' failed to import: "  # type: ignore[attr-defined]
                              f"{type(exc).__name__}: {exc}") from exc
        self._items[name] = obj
        return obj
