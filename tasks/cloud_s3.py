"""Cloud-S3: cloud segmentation on Sentinel-3 OLCI radiances with IdePix labels (multi mode)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchgeo.datasets import CopernicusBenchCloudS3

from .base import BenchDataset, day_from_name, register


@register("cloud_s3")
class CloudS3(BenchDataset):
    """``cloud_s3/s3_olci/<file>`` (21 bands float32) + ``cloud_multi/<file>``; ``{split}.csv`` lists
    names with ``.tif``. Image: NaN → 0, OLCI scale factors. Label: 0 (invalid) → 255, others − 1."""

    tg_class = CopernicusBenchCloudS3
    tg_kwargs = {"mode": "multi"}

    def _load(self, item: Any) -> dict[str, Any]:
        name = str(self.tg.files[item])
        image, lon, lat = self.read_image(self.task_dir / "s3_olci" / name)
        raw, _, _ = self.read(self.task_dir / "cloud_multi" / name, 1)
        raw = raw[0].astype(np.int64)
        mask = np.where(raw == 0, self.card.ignore_index, raw - 1)
        days = day_from_name(name, self.tg_class.filename_regex)
        return {"image": self.scale_olci(image), "target": torch.from_numpy(mask),
                "meta": self.meta(lon, lat, days)}
