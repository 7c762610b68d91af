"""LCZ-S2 (So2Sat LCZ42): 17-class local-climate-zone classification of 32 × 32 Sentinel-2 patches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchgeo.datasets import CopernicusBenchLCZS2

from ..errors import CbenchError
from .base import BenchDataset, register


@register("lcz_s2")
class LCZS2(BenchDataset):
    """``<data root>/lcz_s2/lcz_{split}.h5`` (released without a zip): ``sen2`` (N, 32, 32, 10) reflectance,
    ``label`` (N, 17) one-hot → argmax. No georeference or date: only the area is known."""

    tg_class = CopernicusBenchLCZS2

    @classmethod
    def zip_name(cls) -> str:
        return "lcz_{train,val,test}.h5"

    @property
    def tg_root(self) -> Path:
        return self.task_dir

    @property
    def fix(self) -> str:
        return (f"re-run 'cbench download --task {self.card.slug} --data-root {self.root}' or place the "
                f"released lcz_{{train,val,test}}.h5 in {self.task_dir}")

    def prepare(self) -> None:
        if not self.task_dir.is_dir():
            raise CbenchError(f"{self.task_dir}: task data not found; run 'cbench download --task "
                              f"{self.card.slug} --data-root {self.root}' or place lcz_{{train,val,test}}.h5 there")

    @classmethod
    def split_paths(cls, card: Any, root: Path, split: str) -> list[Path]:
        if card.release is not None:
            return super().split_paths(card, root, split)
        return [Path(root) / card.archive_dir / cls.tg_class.filename.format(split)]

    def _torchgeo(self) -> Any:
        import h5py

        path = self.split_files()[0]
        try:
            with h5py.File(path, "r") as f:
                shape, labels = f["sen2"].shape, f["label"].shape
        except (OSError, KeyError) as exc:
            raise CbenchError(f"{path}: cannot be read as the released LCZ h5 ({exc}); {self.fix}") from exc
        if len(shape) != 4 or shape[-1] != self.card.num_bands:
            raise CbenchError(f"{path}: 'sen2' has shape {tuple(shape)}, expected (N, 32, 32, "
                              f"{self.card.num_bands}); {self.fix}")
        if labels != (shape[0], self.card.num_classes):
            raise CbenchError(f"{path}: 'label' has shape {tuple(labels)}, expected ({shape[0]}, "
                              f"{self.card.num_classes}); {self.fix}")
        return super()._torchgeo()

    def _load(self, item: Any) -> dict[str, Any]:
        import h5py

        with h5py.File(self.split_files()[0], "r") as f:
            image = np.asarray(f["sen2"][item], dtype=np.float32)
            label = int(np.argmax(f["label"][item]))
        image = image.transpose(2, 0, 1)[self.band_order()]
        return {"image": torch.from_numpy(np.ascontiguousarray(image)),
                "target": torch.tensor(label, dtype=torch.int64), "meta": self.meta()}
