"""Copernicus-Bench tasks, discovered: every card in a task package's ``cards/`` plus the loader it names.

A task is a card ``cards/<slug>.yaml`` and a loader module beside it (a :class:`~.base.BenchDataset`
subclass registered with ``@register("<card field loader>")``, and, for ``cbench sample``, a writer
registered with :func:`copernicus_bench.tasks.sample.writer`). Nothing else is edited to add one. Task
packages are this package plus any package named by the entry-point group ``copernicus_bench.tasks``
(``my-tasks = "my_package.tasks"``). Listing cards reads YAML only; torch and torchgeo are imported when a
loader is needed.

Public API (others code against exactly this):

- :data:`TASK_SLUGS` — all task slugs, the 15 built-ins in the paper's order (card field ``order``) first.
- :func:`get_card` / :func:`list_cards` / :func:`resolve_tasks` — validated :class:`~copernicus_bench.cards.TaskCard`\\ s.
- :func:`load_dataset` → :class:`BenchDataset` (``card``, ``split``, ``root``, ``split_files()``), samples
  ``{"image", "target", "meta"}`` as documented in :mod:`copernicus_bench.tasks.base`.
- :func:`split_status` — which splits of a task are present under a data root.
- :func:`loader_class` — the loader class a card names; :func:`refresh` — forget what was discovered.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import pkgutil
from importlib.metadata import entry_points
from pathlib import Path

from ..cards import SPLITS, TaskCard, load_card
from ..errors import CbenchError
from ..registry import closest

CARDS_DIR = Path(__file__).parent / "cards"
#: entry-point group naming extra task packages (value: an importable package holding ``cards/``).
ENTRY_POINT_GROUP = "copernicus_bench.tasks"
#: modules of a task package that are not loaders.
_NOT_LOADERS = frozenset({"base", "sample"})

__all__ = ["TASK_SLUGS", "BenchDataset", "get_card", "list_cards", "resolve_tasks", "load_dataset",
           "split_status", "loader_class", "task_packages", "refresh"]


def __getattr__(name: str):  # lazy: importing the cards must not pull in torch / torchgeo
    if name == "BenchDataset":
        from .base import BenchDataset

        return BenchDataset
    if name == "TASK_SLUGS":
        return tuple(_cards())
    raise AttributeError(name)


@functools.cache
def task_packages() -> dict[str, Path]:
    """Task package name → its folder: this package first, then the entry points (found without importing)."""
    packages = {__name__: Path(__file__).parent}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        name = ep.value.split(":")[0].strip()
        spec = importlib.util.find_spec(name)  # a top-level package is located, not imported
        if spec is None or not spec.submodule_search_locations:
            raise CbenchError(f"entry point '{ep.name}' ({ENTRY_POINT_GROUP}): '{name}' is not an importable "
                              f"package; install it or fix the entry point")
        packages.setdefault(name, Path(next(iter(spec.submodule_search_locations))))
    return packages


@functools.cache
def _card_files() -> dict[str, tuple[Path, str]]:
    """Slug → (card file, task package); a slug defined twice is an error naming both files."""
    found: dict[str, tuple[Path, str]] = {}
    for package, folder in task_packages().items():
        for path in sorted((folder / "cards").glob("*.yaml")):
            if path.stem in found:
                raise CbenchError(f"task card {path}: task '{path.stem}' is already defined by "
                                  f"{found[path.stem][0]}; rename the card (slug) in one package")
            found[path.stem] = (path, package)
    return found


@functools.cache
def _cards() -> dict[str, TaskCard]:
    """All cards, ordered: the paper's table (``order``), then the others by level and slug."""
    cards = [load_card(path) for path, _ in _card_files().values()]
    cards.sort(key=lambda c: (c.order is None, c.order or 0, c.level, c.slug))
    return {c.slug: c for c in cards}


def refresh() -> None:
    """Forget discovered packages, cards and loaders (after installing a task package at run time)."""
    for fn in (task_packages, _card_files, _cards, _import_loaders, get_card):
        fn.cache_clear()


@functools.cache
def get_card(slug: str) -> TaskCard:
    """The validated card of a task; an unknown slug is a one-line error suggesting the closest."""
    cards = _cards()
    if slug not in cards:
        raise CbenchError(f"--task '{slug}': unknown task{closest(slug, list(cards))}; "
                          f"run 'cbench tasks' for the list")
    return cards[slug]


def list_cards() -> list[TaskCard]:
    """All cards in table order (the 15 built-ins in the paper's order first)."""
    return list(_cards().values())


def resolve_tasks(spec: str) -> list[TaskCard]:
    """``"all"`` or a comma-separated list of slugs → cards (table order for ``all``, given order otherwise)."""
    names = [s.strip() for s in str(spec).split(",") if s.strip()]
    if not names:
        raise CbenchError("--task: empty; give 'all' or comma-separated slugs (see 'cbench tasks')")
    if names == ["all"]:
        return list_cards()
    seen: list[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return [get_card(n) for n in seen]


@functools.cache
def _import_loaders() -> None:
    """Import every module of every task package, so that their ``@register`` decorators run."""
    for package, folder in task_packages().items():
        for info in pkgutil.iter_modules([str(folder)]):
            if info.name not in _NOT_LOADERS and not info.name.startswith("_"):
                importlib.import_module(f"{package}.{info.name}")


def loader_class(card: TaskCard):
    """The :class:`~.base.BenchDataset` subclass registered under the card's ``loader`` key."""
    from .base import LOADERS

    if card.loader not in LOADERS:
        _import_loaders()
    if card.loader not in LOADERS:
        raise CbenchError(f"task card {card.slug}: field 'loader' is '{card.loader}', known: "
                          f"{', '.join(sorted(LOADERS))}; fix the card or register a loader under that key")
    return LOADERS[card.loader]


_loader_class = loader_class  # the name copernicus_bench.download uses


def load_dataset(slug_or_card: str | TaskCard, split: str, data_root: str | os.PathLike,
                 limit: int | None = None):
    """One split of a task from ``<data_root>/<archive_dir>`` (a released zip at the root is extracted
    first). ``limit`` keeps the first N samples (smoke tier)."""
    card = slug_or_card if isinstance(slug_or_card, TaskCard) else get_card(slug_or_card)
    return loader_class(card)(card, split, data_root, limit=limit)


def split_status(card: TaskCard, data_root: str | os.PathLike) -> dict[str, bool]:
    """Which splits are present: the split files exist, or the released zip lies at the root (it is
    extracted on first use). Never extracts or reads images; reads the card's ``release`` (no torch) when
    it has one, else asks the loader class."""
    root = Path(data_root)
    if card.release is not None:
        zip_name = card.release.zip

        def paths(split: str) -> list[Path]:
            return [root / f.format(split=split) for f in card.release.split_files]  # type: ignore[union-attr]
    else:
        cls = loader_class(card)
        zip_name = cls.zip_name()

        def paths(split: str) -> list[Path]:
            return cls.split_paths(card, root, split)
    zipped = not (root / card.archive_dir).exists() and (root / zip_name).is_file()
    return {split: zipped or all(f.is_file() for f in paths(split)) for split in SPLITS}
