"""Flood-S1 (Kuro Siwo): flood change detection from a pre- and a post-event Sentinel-1 pair (linear)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchgeo.datasets import CopernicusBenchFloodS1

from ..errors import DataNotFoundError
from .base import BenchDataset, days_since_epoch, register

#: the reference's clamp of linear backscatter (and its NaN fill value).
CLAMP = 0.15
#: file prefixes of the two dates the benchmark uses (``dual_pre`` False): pre-event 1, post-event.
DATES = ("SL1", "MS1")


@register("flood_s1")
class FloodS1(BenchDataset):
    """``grid_dict_{split}.json`` maps grid ids to ``data/<path>/`` folders of single-band GeoTIFFs
    ``{SL1,MS1}_I{VV,VH}_..._<YYYYMMDD>.tif`` and the label ``MK0_MLU_*.tif`` (0 no water, 1 permanent,
    2 flood, 3 out of AOI = ignored). Image (2, 2, H, W) = (pre, post) × (VV, VH), clamped to [0, 0.15] with
    NaN → 0.15; meta (2, 4) with each date's day; lon/lat of the post VV centre pixel (reference)."""

    tg_class = CopernicusBenchFloodS1
    tg_kwargs = {"mode": 1}

    def _index(self) -> list[Any]:
        return [str(self.tg.metadata[key]["path"]) for key in self.tg.files]

    def _one(self, folder: Any, pattern: str) -> Any:
        found = sorted(folder.glob(pattern))
        if not found:
            raise DataNotFoundError(f"{folder}: no file matches '{pattern}'; {self.fix}")
        return found[0]

    def _load(self, item: Any) -> dict[str, Any]:
        folder = self.task_dir / "data" / item
        if not folder.is_dir():
            raise DataNotFoundError(f"{folder}: folder listed in {self.split_files()[0]} is missing; {self.fix}")
        images, days = [], []
        lon = lat = float("nan")
        for ptype in DATES:
            bands = []
            for band in self.card.band_names:
                path = self._one(folder, f"{ptype}_I{band}_*.tif")
                array, x, y = self.read(path, 1)
                bands.append(array[0].astype(np.float32))
                if band == self.card.band_names[0]:
                    days.append(days_since_epoch(path.stem.split("_")[-1][:8], "%Y%m%d"))
                    if ptype == "MS1":
                        lon, lat = x, y
            images.append(np.stack(bands))
        image = torch.from_numpy(np.stack(images)).clamp(0.0, CLAMP).nan_to_num(CLAMP)
        mask, _, _ = self.read(self._one(folder, "MK0_MLU*.tif"), 1)
        meta = torch.stack([self.meta(lon, lat, d) for d in days])
        return {"image": image, "target": torch.from_numpy(mask[0].astype(np.int64)), "meta": meta}
