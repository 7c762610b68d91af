"""The 15 Copernicus-Bench tasks: cards, loaders and the sample generator.

Public API (others code against exactly this):

- :data:`TASK_SLUGS` — the 15 slugs in paper order.
- :func:`get_card` / :func:`list_cards` / :func:`resolve_tasks` — validated :class:`~copernicus_bench.cards.TaskCard`\\ s.
- :func:`load_dataset` → :class:`BenchDataset` (``card``, ``split``, ``root``, ``split_files()``), samples
  ``{"image", "target", "meta"}`` as documented in :mod:`copernicus_bench.tasks.base`.
- :func:`split_status` — which splits of a task are present under a data root.
"""

from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path

from ..cards import SPLITS, TaskCard, load_card
from ..errors import CbenchError
from ..registry import closest

CARDS_DIR = Path(__file__).parent / "cards"

#: The 15 tasks in the order of the paper's table (arXiv 2503.11849, Table 2).
TASK_SLUGS: tuple[str, ...] = (
    "cloud-s2", "cloud-s3", "eurosat-s1", "eurosat-s2", "bigearthnet-s1", "bigearthnet-s2", "lc100cls-s3",
    "dfc2020-s1", "dfc2020-s2", "lc100seg-s3", "flood-s1", "lcz-s2", "biomass-s3", "aq-no2-s5p", "aq-o3-s5p",
)

#: one module per released dataset (each registers its loader keys on import).
_LOADER_MODULES = ("cloud_s2", "cloud_s3", "eurosat", "bigearthnet", "lc100", "dfc2020", "flood_s1", "lcz_s2",
                   "biomass_s3", "airquality")

__all__ = ["TASK_SLUGS", "BenchDataset", "get_card", "list_cards", "resolve_tasks", "load_dataset",
           "split_status"]


def __getattr__(name: str):  # lazy: importing the cards must not pull in torch / torchgeo
    if name == "BenchDataset":
        from .base import BenchDataset

        return BenchDataset
    raise AttributeError(name)


@functools.cache
def get_card(slug: str) -> TaskCard:
    """The validated card of a task; an unknown slug is a one-line error suggesting the closest."""
    if slug not in TASK_SLUGS:
        raise CbenchError(f"--task '{slug}': unknown task{closest(slug, list(TASK_SLUGS))}; "
                          f"run 'cbench tasks' for the list")
    return load_card(CARDS_DIR / f"{slug}.yaml")


def list_cards() -> list[TaskCard]:
    """All 15 cards in paper order."""
    return [get_card(s) for s in TASK_SLUGS]


def resolve_tasks(spec: str) -> list[TaskCard]:
    """``"all"`` or a comma-separated list of slugs → cards (paper order for ``all``, given order otherwise)."""
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


def _loader_class(card: TaskCard):
    from .base import LOADERS

    if not LOADERS:
        for module in _LOADER_MODULES:
            importlib.import_module(f".{module}", __name__)
    if card.loader not in LOADERS:
        raise CbenchError(f"task card {card.slug}: field 'loader' is '{card.loader}', known: "
                          f"{', '.join(sorted(LOADERS))}; fix the card")
    return LOADERS[card.loader]


def load_dataset(slug_or_card: str | TaskCard, split: str, data_root: str | os.PathLike,
                 limit: int | None = None):
    """One split of a task from ``<data_root>/<archive_dir>`` (a released zip at the root is extracted
    first). ``limit`` keeps the first N samples (smoke tier)."""
    card = slug_or_card if isinstance(slug_or_card, TaskCard) else get_card(slug_or_card)
    return _loader_class(card)(card, split, data_root, limit=limit)


def split_status(card: TaskCard, data_root: str | os.PathLike) -> dict[str, bool]:
    """Which splits are present: the split file exists, or the released zip lies at the root (it is
    extracted on first use). Never extracts or reads images."""
    root = Path(data_root)
    cls = _loader_class(card)
    zipped = not (root / card.archive_dir).exists() and (root / cls.zip_name()).is_file()
    return {split: zipped or all(f.is_file() for f in cls.split_paths(card, root, split)) for split in SPLITS}
