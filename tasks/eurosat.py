"""EuroSAT-S1 (EuroSAT-SAR, VV/VH dB) and EuroSAT-S2 (EuroSAT-MS, 13 bands): 10-class scene classification."""

from __future__ import annotations

from typing import Any

import torch
from torchgeo.datasets import CopernicusBenchEuroSATS1, CopernicusBenchEuroSATS2

from .base import BenchDataset, register


class _EuroSAT(BenchDataset):
    """``all_imgs/<Class>/<Class>_<n>.tif``; ``eurosat-{split}.txt`` lists ``<Class>_<n>.jpg``. The label
    is the class's index in the card (alphabetical, as the reference; torchgeo's tuple is not). No time."""

    def _load(self, item: Any) -> dict[str, Any]:
        name = str(self.tg.files[item]).replace(".jpg", ".tif")
        classname = name.split("_")[0]
        if classname not in self.card.classes:
            raise self._bad_class(classname)
        image, lon, lat = self.read_image(self.task_dir / "all_imgs" / classname / name)
        return {"image": image, "target": torch.tensor(self.card.classes.index(classname), dtype=torch.int64),
                "meta": self.meta(lon, lat)}

    def _bad_class(self, classname: str) -> Exception:
        from ..errors import CbenchError

        return CbenchError(f"{self.split_files()[0]}: unknown EuroSAT class '{classname}'; {self.fix}")


@register("eurosat_s1")
class EuroSATS1(_EuroSAT):
    tg_class = CopernicusBenchEuroSATS1


@register("eurosat_s2")
class EuroSATS2(_EuroSAT):
    """Files store B8A last; :meth:`read_image` reorders to the card's model order (B8A after B08)."""

    tg_class = CopernicusBenchEuroSATS2
