"""Run stage 5: find the data root and *load the three splits* of a job, with their split files' sha256."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from . import paths
from .errors import DataNotFoundError
from .job import Job

SPLITS = ("train", "val", "test")


def resolve_data_root(spec) -> Path:
    """The built-in sample (generated once) or the data root, which must exist."""
    if getattr(spec, "task_card", None):  # a user's own task: the card's folder
        from .tasks.custom import card_folder

        return card_folder(spec.task_card)
    if spec.sample:
        from .tasks.sample import ensure_builtin_sample

        return Path(ensure_builtin_sample())
    root = paths.data_root(spec.data_root)
    if not root.is_dir():
        raise DataNotFoundError(f"data root {root} does not exist; run 'cbench download --task all --data-root "
                                f"{root}', pass --data-root DIR, or use --sample")
    return root


class SmokeTargets(Dataset):
    """Smoke tier: dense targets resized (nearest) to the capped input resolution."""

    def __init__(self, base: Dataset, size: int) -> None:
        self.base, self.size = base, size

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.base[i])
        t = item["target"]
        if t.shape[-2:] != (self.size, self.size):
            resized = torch.nn.functional.interpolate(t[None, None].float(), size=(self.size, self.size),
                                                      mode="nearest")[0, 0]
            item["target"] = resized.to(t.dtype)
        return item


@dataclass
class Splits:
    """The job's datasets by split, and the sha256 of every split file (all splits, and per split)."""

    root: Path
    datasets: dict[str, Dataset] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    per_split: dict[str, dict[str, str]] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.datasets.items()}


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_splits(job: Job, data_root: Path) -> Splits:
    """Every split through the task's loader (``--limit`` applied); an empty split is one clear error."""
    from .tasks import load_dataset

    card = job.card
    out = Splits(root=data_root)
    for split in SPLITS:
        ds = load_dataset(card, split, data_root, limit=job.limit)
        out.per_split[split] = {}
        for f in map(Path, ds.split_files()):
            name = str(f.relative_to(data_root)) if f.is_relative_to(data_root) else str(f)
            out.per_split[split][name] = out.checksums[name] = file_sha256(f)
        if len(ds) == 0:
            raise DataNotFoundError(f"split '{split}' of task {card.slug} under {data_root} is empty; "
                                    "check the split file or the data root")
        out.datasets[split] = SmokeTargets(ds, job.pipeline.resolution) if job.smoke and card.is_dense else ds
    return out
