"""BigEarthNet-S1 / -S2 (5% of BigEarthNet v2.0): 19-class multi-label classification."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchgeo.datasets import CopernicusBenchBigEarthNetS1, CopernicusBenchBigEarthNetS2

from .base import BenchDataset, day_from_name, register


class _BigEarthNet(BenchDataset):
    """``multilabel-{split}.csv`` (header; s1 path, s2 path, 19 0/1 columns); images under
    ``BigEarthNet-S{1,2}-5%/<path>``. Time = the product day in the patch name (reference)."""

    column: int
    folder: str

    def _load(self, item: Any) -> dict[str, Any]:
        row = self.tg.files.iloc[item].values
        rel = str(row[self.column])
        image, lon, lat = self.read_image(self.task_dir / self.folder / rel)
        labels = np.asarray(row[2:], dtype=np.float32)
        if labels.shape != (self.card.num_classes,):
            from ..errors import CbenchError

            raise CbenchError(f"{self.split_files()[0]}: has {labels.shape[0]} label columns, expected "
                              f"{self.card.num_classes}; {self.fix}")
        days = day_from_name(rel, self.tg_class.filename_regex)
        return {"image": image, "target": torch.from_numpy(labels), "meta": self.meta(lon, lat, days)}


@register("bigearthnet_s1")
class BigEarthNetS1(_BigEarthNet):
    tg_class = CopernicusBenchBigEarthNetS1
    column = 0
    folder = "BigEarthNet-S1-5%"


@register("bigearthnet_s2")
class BigEarthNetS2(_BigEarthNet):
    tg_class = CopernicusBenchBigEarthNetS2
    column = 1
    folder = "BigEarthNet-S2-5%"
