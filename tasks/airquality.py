"""AQ-NO2-S5P / AQ-O3-S5P: EEA 2021 air-quality maps regressed from Sentinel-5P annual composites."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchgeo.datasets import CopernicusBenchAQNO2S5P, CopernicusBenchAQO3S5P

from ..errors import DataNotFoundError
from .base import BenchDataset, day_from_name, register, resize_bicubic, resize_nearest

#: the reference's no-data threshold on labels.
NODATA_ABS = 1e10


class _AirQuality(BenchDataset):
    """``airquality_s5p/<gas>/{split}.csv`` (one id per row); image ``s5p_annual/<id>/<start>_<stop>.tif``
    (1 band), label ``label_annual/<id>.tif`` (float32). Image: NaN → 0, bicubic to ``loader_size``;
    label: nearest to ``loader_size``, |v| > 1e10 → NaN (reference). Time = start date of the range."""

    tg_kwargs = {"mode": "annual"}

    @property
    def gas_dir(self) -> Path:
        return self.root / self.tg_class.directory

    def _load(self, item: Any) -> dict[str, Any]:
        pid = str(self.tg.files[item])
        size = self.card.loader_size
        assert size is not None
        folder = self.gas_dir / "s5p_annual" / pid
        files = sorted(folder.glob("*.tif")) if folder.is_dir() else []
        if not files:
            raise DataNotFoundError(f"{folder}: no annual S5P image for id '{pid}'; {self.fix}")
        image, lon, lat = self.read_image(files[0])
        image = resize_bicubic(np.nan_to_num(image, nan=0.0), size)
        raw, _, _ = self.read(self.gas_dir / "label_annual" / f"{pid}.tif", 1)
        label = resize_nearest(raw[0].astype(np.float32), size)
        label = torch.where(label.abs() > NODATA_ABS, torch.tensor(float("nan")), label)
        days = day_from_name(files[0].name, self.tg_class.filename_regex)
        return {"image": image, "target": label, "meta": self.meta(lon, lat, days)}


@register("aq_no2_s5p")
class AQNO2S5P(_AirQuality):
    tg_class = CopernicusBenchAQNO2S5P


@register("aq_o3_s5p")
class AQO3S5P(_AirQuality):
    tg_class = CopernicusBenchAQO3S5P
