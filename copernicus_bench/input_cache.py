"""Decoded, pipeline-applied inputs on disk, for dense tasks whose feature maps exceed ``--cache-budget``.

When the flip-view maps of a dense task do not fit the feature cache, the encoder runs on the fly every
epoch. Without this module every epoch would also read and decode every GeoTIFF again and re-apply the
model's input pipeline (normalise, gather bands, resize). Here each split is decoded once: the model's input
(``InputPipeline.apply`` per date) goes into a memory-mapped array — float16 by default (``--cache-dtype``),
the image only; targets keep their dtype and metadata stay float32 — in an entry of the same content-addressed
store as the features (:class:`~copernicus_bench.cache.FeatureCache`, under ``<cache>/inputs``: atomic,
locked, verified). The key hashes everything that changes the arrays: task card, split, split-file checksums,
data root, limit, the pipeline's digest and the dtype.

:class:`InputCacheDataset` serves these arrays as loader samples, and :func:`identity_pipeline` is the
pipeline that leaves them as they are, so the on-the-fly encoder path (flip views, the paper's rotation)
is unchanged: ``encode_batch(identity_pipeline(p), x_cached) == encode_batch(p, x_decoded)`` up to the
float16 rounding of the inputs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .cache import FeatureCache, cache_key
from .cards import TaskCard
from .encoder import InputPipeline

INPUT_CACHE_VERSION = "1"


def identity_pipeline(pipeline: InputPipeline) -> InputPipeline:
    """The pipeline that passes already pipeline-applied inputs through unchanged (same channels and size)."""
    return InputPipeline(slots=tuple(range(pipeline.num_channels)), norm="none", mean=None, std=None,
                         resolution=pipeline.resolution, adaptations=pipeline.adaptations)


def input_bytes(card: TaskCard, pipeline: InputPipeline, n: int, dtype: str = "float16") -> int:
    """Bytes the cached images of ``n`` samples take (targets and metadata are small beside them)."""
    itemsize = np.dtype(dtype).itemsize
    return n * card.num_dates * pipeline.num_channels * pipeline.resolution**2 * itemsize


def input_cache_parts(card: TaskCard, pipeline: InputPipeline, split: str, dataset: Dataset,
                      split_sums: dict[str, str], limit: int | None, dtype: str) -> dict[str, Any]:
    """What the key of one split's inputs hashes (content: the data files, not the model)."""
    base = getattr(dataset, "base", dataset)
    return {"inputs": INPUT_CACHE_VERSION, "task": card.slug, "card": card.digest(), "split": split,
            "pipeline": pipeline.digest(), "limit": limit, "n": len(dataset), "dtype": dtype,
            "wrapped": type(dataset).__name__, "data": str(getattr(base, "root", "")), "split_files": split_sums}


def _fill(writer, card: TaskCard, pipeline: InputPipeline, dataset: Dataset, dtype: str, batch_size: int,
          num_workers: int) -> None:
    from .features import collate_loader

    n = len(dataset)
    arrays: dict[str, np.memmap] = {}
    offset = 0
    for batch in collate_loader(dataset, batch_size, num_workers):
        image, target, meta = batch["image"], batch["target"], batch["meta"]
        if card.num_dates > 1:
            x = torch.stack([pipeline.apply(image[:, t], date=t) for t in range(image.shape[1])], dim=1)
        else:
            x = pipeline.apply(image)
        b = x.shape[0]
        if not arrays:
            arrays["image"] = writer.create("image", (n, *x.shape[1:]), dtype)
            arrays["target"] = writer.create("target", (n, *target.shape[1:]), target.numpy().dtype)
            arrays["meta"] = writer.create("meta", (n, *meta.shape[1:]), np.float32)
        arrays["image"][offset:offset + b] = x.numpy().astype(dtype)
        arrays["target"][offset:offset + b] = target.numpy()
        arrays["meta"][offset:offset + b] = meta.numpy().astype(np.float32)
        offset += b
    if offset != n:
        raise RuntimeError(f"input cache: the loader yielded {offset} samples, expected {n}")


class InputCacheDataset(Dataset):
    """Samples ``{"image", "target", "meta"}`` read from a cached split (image already pipeline-applied).

    Holds only the entry's folder; each process (DataLoader workers included) opens the memory maps itself,
    so nothing large is pickled into workers.
    """

    def __init__(self, folder: str | os.PathLike, n: int) -> None:
        self.folder = Path(folder)
        self.n = n
        self._arrays: dict[str, np.ndarray] | None = None

    def _open(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = {k: np.load(self.folder / f"{k}.npy", mmap_mode="r") for k in ("image", "target", "meta")}
        return self._arrays

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder, "n": self.n, "_arrays": None}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        a = self._open()
        return {"image": torch.from_numpy(np.array(a["image"][i], dtype=np.float32)),
                "target": torch.from_numpy(np.array(a["target"][i])),
                "meta": torch.from_numpy(np.array(a["meta"][i]))}


def cached_inputs(cache_root: str | os.PathLike, card: TaskCard, pipeline: InputPipeline, split: str,
                  dataset: Dataset, split_sums: dict[str, str], limit: int | None, dtype: str = "float16",
                  batch_size: int = 16, num_workers: int = 0,
                  refresh: bool = False) -> tuple[InputCacheDataset, bool]:
    """The split's pipeline-applied inputs from ``<cache_root>/inputs`` (decoded once on a miss): (dataset, hit)."""
    if dtype not in ("float16", "float32"):
        raise ValueError(f"input cache dtype must be float16 or float32, not {dtype!r}")
    store = FeatureCache(Path(cache_root) / "inputs")
    parts = input_cache_parts(card, pipeline, split, dataset, split_sums, limit, dtype)
    key = cache_key(parts)
    _, hit = store.get_or_build(key, parts, lambda w: _fill(w, card, pipeline, dataset, dtype, batch_size,
                                                           num_workers), refresh=refresh)
    return InputCacheDataset(store.entry_dir(key), len(dataset)), hit
