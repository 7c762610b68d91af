"""Biomass-S3: above-ground biomass (ESA CCI, 2020) pixel regression from Sentinel-3 OLCI."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchgeo.datasets import CopernicusBenchBiomassS3

from .base import BenchDataset, day_from_name, register, resize_bicubic


@register("biomass_s3")
class BiomassS3(BenchDataset):
    """``static_fnames-{split}.csv`` (no header: id, file); ``s3_olci/<id>/<file>`` (21 bands) and
    ``biomass/<id>.tif`` (uint16 Mg/ha). Image: NaN → 0, OLCI scale factors, bicubic to ``loader_size``;
    target: bicubic to ``loader_size`` (reference: cv2 on the uint16 raster, so rounded and clipped to the
    uint16 range, then float32), non-finite → NaN."""

    tg_class = CopernicusBenchBiomassS3
    tg_kwargs = {"mode": "static"}

    def _index(self) -> list[Any]:
        return [(str(pid), str(file)) for pid, file in self.tg.files.itertuples(index=False)]

    def _load(self, item: Any) -> dict[str, Any]:
        pid, file = item
        size = self.card.loader_size
        assert size is not None
        image, lon, lat = self.read_image(self.task_dir / "s3_olci" / pid / file)
        image = resize_bicubic(self.scale_olci(image), size)
        raw, _, _ = self.read(self.task_dir / "biomass" / f"{pid}.tif", 1)
        target = resize_bicubic(raw[0].astype(np.float32), size)
        if np.issubdtype(raw.dtype, np.integer):  # cv2 resizes the uint16 raster in its dtype: round, saturate
            info = np.iinfo(raw.dtype)
            target = target.round().clamp(float(info.min), float(info.max))
        target = torch.where(torch.isfinite(target), target, torch.tensor(float("nan")))
        days = day_from_name(file, self.tg_class.filename_regex)
        return {"image": image, "target": target, "meta": self.meta(lon, lat, days)}
