"""Cloud-S2: cloud / shadow segmentation on Sentinel-2 L1C (CloudSEN12+ subset)."""

from __future__ import annotations

from typing import Any

import torch
from torchgeo.datasets import CopernicusBenchCloudS2

from .base import BenchDataset, day_from_name, register


@register("cloud_s2")
class CloudS2(BenchDataset):
    """``cloud_s2/s2_toa/<name>.tif`` (13 bands, uint16) + ``cloud/<name>.tif`` (0..3); ``{split}.csv``
    lists names without extension. Time = acquisition day after ``__`` in the name (reference)."""

    tg_class = CopernicusBenchCloudS2

    def _load(self, item: Any) -> dict[str, Any]:
        name = str(self.tg.files[item]) + ".tif"
        image, lon, lat = self.read_image(self.task_dir / "s2_toa" / name)
        mask, _, _ = self.read(self.task_dir / "cloud" / name, 1)
        days = day_from_name(name, self.tg_class.filename_regex)
        return {"image": image, "target": torch.from_numpy(mask[0].astype("int64")),
                "meta": self.meta(lon, lat, days)}
