"""LC100Cls-S3 (23-class multi-label) and LC100Seg-S3 (23-class segmentation) on Sentinel-3 OLCI,
labels from CGLS-LC100 (100 m). Both read the same release ``lc100_s3/`` in static mode."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchgeo.datasets import CopernicusBenchLC100ClsS3, CopernicusBenchLC100SegS3

from ..errors import CbenchError
from .base import BenchDataset, day_from_name, register, resize_bicubic, resize_nearest


class _LC100(BenchDataset):
    """``static_fnames-{split}.csv`` (no header: location id, image file) picks the one image per location
    used by the benchmark: ``s3_olci/<id>/<file>`` (21 bands). Image: NaN → 0, OLCI scale factors,
    bicubic to the card's ``loader_size`` (reference). Time = day in the file name."""

    tg_kwargs = {"mode": "static"}

    def _index(self) -> list[Any]:
        return [(str(pid), str(file)) for pid, file in self.tg.static_files.itertuples(index=False)]

    def _image(self, pid: str, file: str) -> tuple[torch.Tensor, torch.Tensor]:
        image, lon, lat = self.read_image(self.task_dir / "s3_olci" / pid / file)
        assert self.card.loader_size is not None
        image = resize_bicubic(self.scale_olci(image), self.card.loader_size)
        return image, self.meta(lon, lat, day_from_name(file, self.tg_class.filename_regex))


@register("lc100cls_s3")
class LC100ClsS3(_LC100):
    """Labels: the 23 0/1 columns of ``multilabel-{split}.csv`` (header), looked up by location id."""

    tg_class = CopernicusBenchLC100ClsS3

    def _index(self) -> list[Any]:
        labels = {str(r[0]): np.asarray(r[1:], dtype=np.float32) for r in self.tg.files.itertuples(index=False)}
        items = []
        for pid, file in super()._index():
            if pid not in labels:
                raise CbenchError(f"{self.split_files()[0]}: has no labels for location '{pid}' listed in "
                                  f"{self.split_files()[1]}; {self.fix}")
            if labels[pid].shape != (self.card.num_classes,):
                raise CbenchError(f"{self.split_files()[0]}: has {labels[pid].shape[0]} label columns, "
                                  f"expected {self.card.num_classes}; {self.fix}")
            items.append((pid, file, labels[pid]))
        return items

    def _load(self, item: Any) -> dict[str, Any]:
        pid, file, labels = item
        image, meta = self._image(pid, file)
        return {"image": image, "target": torch.from_numpy(labels.copy()), "meta": meta}


@register("lc100seg_s3")
class LC100SegS3(_LC100):
    """Label ``lc100/<id>.tif`` (CGLS codes, ~288 px) nearest-resized to ``loader_size`` and mapped through
    torchgeo's code → index table; a code outside the table becomes 0 ('Unknown')."""

    tg_class = CopernicusBenchLC100SegS3

    def _load(self, item: Any) -> dict[str, Any]:
        pid, file = item
        image, meta = self._image(pid, file)
        raw, _, _ = self.read(self.task_dir / "lc100" / f"{pid}.tif", 1)
        assert self.card.loader_size is not None
        codes = resize_nearest(raw[0].astype(np.int64), self.card.loader_size).numpy()
        lut = np.zeros(256, dtype=np.int64)
        for code, index in self.tg_class.class_map.items():
            lut[code] = index
        mask = lut[np.clip(codes, 0, 255)]
        return {"image": image, "target": torch.from_numpy(mask), "meta": meta}
