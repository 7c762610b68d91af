"""A small name → builder registry that also reads Python entry points (timm / lm-eval style)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from .errors import CbenchError

T = TypeVar("T")


def closest(name: str, choices: list[str]) -> str:
    """A ``did you mean`` suffix for an unknown name, or an empty string."""
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.4)
    return f" (did you mean '{match[0]}'?)" if match else ""


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
                for ep in entry_points(group=self.group):
                    self._entry_points.setdefault(ep.name, ep)
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
