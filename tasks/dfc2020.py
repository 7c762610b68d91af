"""DFC2020-S1 / -S2 (IEEE GRSS DFC2020): 8-class land-cover segmentation."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchgeo.datasets import CopernicusBenchDFC2020S1, CopernicusBenchDFC2020S2

from .base import BenchDataset, register

#: reference label remap: DFC code → card class index (255 = ignored: background, savanna, snow/ice).
DFC_TO_INDEX = {0: 255, 1: 0, 2: 1, 3: 255, 4: 2, 5: 3, 6: 4, 7: 5, 8: 255, 9: 6, 10: 7}


class _DFC2020(BenchDataset):
    """``dfc/<name>`` labels (1..10) and ``s1|s2/<name with dfc→s1|s2>`` images; ``dfc-{split}-new.csv``.
    The files carry no georeference or date: only the area is known."""

    folder: str

    def _load(self, item: Any) -> dict[str, Any]:
        name = str(self.tg.files[item])
        image, _, _ = self.read_image(self.task_dir / self.folder / name.replace("dfc", self.folder))
        raw, _, _ = self.read(self.task_dir / "dfc" / name, 1)
        lut = np.full(256, self.card.ignore_index, dtype=np.int64)
        for code, index in DFC_TO_INDEX.items():
            lut[code] = index
        mask = lut[np.clip(raw[0].astype(np.int64), 0, 255)]
        return {"image": image, "target": torch.from_numpy(mask), "meta": self.meta()}


@register("dfc2020_s1")
class DFC2020S1(_DFC2020):
    tg_class = CopernicusBenchDFC2020S1
    folder = "s1"


@register("dfc2020_s2")
class DFC2020S2(_DFC2020):
    tg_class = CopernicusBenchDFC2020S2
    folder = "s2"
