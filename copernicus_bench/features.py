"""Frozen-encoder feature extraction and the batch sources the probe trains on.

Two ways to feed a probe, with the same distribution of inputs for flips:

* :class:`CachedSource` — features of the four flip views (none, H, V, HV) encoded once (and stored in the
  :mod:`~copernicus_bench.cache`); each epoch draws one view per training sample at random. For
  classification this is the paper's augmentation exactly (RandomHorizontalFlip + RandomVerticalFlip).
* :class:`OnTheFlySource` — encodes every batch again under ``no_grad`` (bf16 autocast on CUDA): the
  flip views when cached dense maps exceed ``--cache-budget``, or, for ``--protocol paper``, the
  reference's augmentation re-drawn every epoch (flips, plus the random rotation of dense tasks).

Multi-date tasks (Flood) are encoded one date at a time with that date's metadata; the probe sees
post − pre features (the reference's change-detection protocol).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .cards import TaskCard
from .encoder import EncoderOutput, InputPipeline, TaskEncoder
from .guards import check_encoder_output, sanitize_input
from .nearest import resize_nearest_cv2

NUM_VIEWS = 4  # none, horizontal flip, vertical flip, both
NUM_MAPS = 4


def flip_view(x: Tensor, view: int) -> Tensor:
    """Apply flip view ``view`` (0 none, 1 H, 2 V, 3 HV) to the last two dims."""
    dims = {0: (), 1: (-1,), 2: (-2,), 3: (-2, -1)}[view]
    return x.flip(dims) if dims else x


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def encode_batch(encoder: TaskEncoder, pipeline: InputPipeline, card: TaskCard, image: Tensor, meta: Tensor,
                 want_maps: bool, device: torch.device, view: int = 0,
                 rotation: Tensor | None = None) -> EncoderOutput:
    """Encode one physical batch: pipeline per date, optional flip view / rotation, post − pre for Flood."""
    image = image.to(device, non_blocking=True)
    meta = meta.to(device, dtype=torch.float32)
    dates = image.shape[1] if card.num_dates > 1 else 1
    outputs = []
    for t in range(dates):
        x = sanitize_input(card, pipeline.apply(image[:, t] if card.num_dates > 1 else image, date=t))
        x = flip_view(x, view)
        if rotation is not None:
            x = rotate_batch(x, rotation, mode="bilinear", fill=0.0)
        m = meta[:, t] if card.num_dates > 1 else meta
        with autocast_for(device):
            out = encoder(x, m, want_maps=want_maps)
        outputs.append(EncoderOutput(out.pooled.float(), [f.float() for f in out.maps] if out.maps else None))
        check_encoder_output(card, outputs[-1].pooled, outputs[-1].maps)  # NaN/inf features: one line
    if len(outputs) == 1:
        return outputs[0]
    pre, post = outputs[0], outputs[-1]
    maps = [b - a for a, b in zip(pre.maps, post.maps)] if pre.maps is not None else None
    return EncoderOutput(post.pooled - pre.pooled, maps)


def rotate_batch(x: Tensor, angles_deg: Tensor, mode: str, fill: float) -> Tensor:
    """Rotate each sample of (B, C, H, W) by its own angle about the centre; samples with a zero angle are
    returned unchanged (the reference rotates only the samples its p=0.5 draw selects).

    ``fill`` is what comes in from outside the image. A finite fill is the reference's (kornia's) zero
    padding shifted by ``fill``: ``rotate(x - fill) + fill`` with bilinear blending at the border as kornia.
    A NaN fill marks the pixels whose nearest source lies outside (the ``paper-ignore`` targets)."""
    b = x.shape[0]
    if b == 0:
        return x.float()
    moved = angles_deg.to(x.device) != 0
    if not bool(moved.all()):
        out = x.float().clone()
        if bool(moved.any()):
            out[moved] = rotate_batch(x[moved], angles_deg.to(x.device)[moved], mode, fill)
        return out
    theta = torch.deg2rad(angles_deg.to(x.device, torch.float32))
    cos, sin = torch.cos(theta), torch.sin(theta)
    mat = torch.zeros(b, 2, 3, device=x.device)
    mat[:, 0, 0], mat[:, 0, 1], mat[:, 1, 0], mat[:, 1, 1] = cos, -sin, sin, cos
    # square images: align_corners=False rotates about pixel (W-1)/2 exactly as kornia's align_corners=True
    grid = F.affine_grid(mat, list(x.shape), align_corners=False)
    if not np.isnan(fill):
        out = F.grid_sample(x.float() - fill, grid, mode=mode, padding_mode="zeros", align_corners=False)
        return out + fill
    ones = torch.ones_like(x[:, :1])
    inside = F.grid_sample(ones, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    out = F.grid_sample(x.float(), grid, mode=mode, padding_mode="zeros", align_corners=False)
    return torch.where(inside > 0.5, out, torch.full_like(out, fill))


#: tasks whose reference wrapper passes the target as a second ``input`` (bilinear), not as a ``mask``
BILINEAR_TARGET_TASKS = frozenset({"aq-no2-s5p", "aq-o3-s5p"})


def target_mode(card: TaskCard) -> str:
    """How the reference rotates this task's dense target: bilinear for AQ (kornia ``data_keys=["input",
    "input"]``, so NaN holes grow), nearest (``mask``) for the others."""
    return "bilinear" if card.slug in BILINEAR_TARGET_TASKS else "nearest"


def rotate_target(target: Tensor, angles_deg: Tensor, fill: float, mode: str = "nearest") -> Tensor:
    """Rotate dense targets (B, H, W); pixels rotated in from outside get ``fill`` (see :func:`rotate_batch`)."""
    out = rotate_batch(target.unsqueeze(1).float(), angles_deg, mode=mode, fill=fill).squeeze(1)
    return out.to(target.dtype) if target.dtype.is_floating_point else out.round().to(target.dtype)


def target_fill(card: TaskCard, augment: str = "paper") -> float:
    """Value for target pixels a rotation brings in from outside the image.

    ``paper`` (the reference): zero padding after the reference's target steps — class 0 for
    segmentation / change detection, zero of the z-scored target (= the target mean, in loader units) for
    regression. ``paper-ignore``: the ignore index / NaN, so loss and metric skip those pixels.
    """
    if augment == "paper":
        if card.task_type == "regression":
            return float(card.target_stats.mean) if card.target_stats is not None else 0.0
        return 0.0
    if card.task_type == "regression":
        return float("nan")
    return float(card.ignore_index if card.ignore_index is not None else -100)


@dataclass
class Batch:
    """What the probe trains on: pooled (B,D) or maps, and the target in loader units."""

    pooled: Tensor | None
    maps: list[Tensor] | None
    target: Tensor
    #: dense tasks: the target nearest-resized (cv2 rule) to the encoder's input resolution before any flip
    #: or rotation, as the reference's dataset wrappers do; the probe trains on it and ``metric.paper``
    #: scores on it. ``None`` for classification or when the source has no ``paper_size``.
    paper_target: Tensor | None = None


#: below this many samples ``--num-workers auto`` reads in the main process (starting workers costs more)
AUTO_WORKERS_MIN_SAMPLES = 256
AUTO_WORKERS_MAX = 8


def resolve_num_workers(value: int | str, n_samples: int | None = None) -> int:
    """``--num-workers``: an integer ≥ 0, or ``auto`` = one worker per free CPU core (≤ 8, one core left
    for the main process), 0 for datasets under ``AUTO_WORKERS_MIN_SAMPLES`` samples."""
    if isinstance(value, int) or str(value).isdigit():
        n = int(value)
        if n < 0:
            raise ValueError(f"--num-workers {value!r} must be >= 0 or 'auto'")
        return n
    if value != "auto":
        raise ValueError(f"--num-workers {value!r} is neither an integer nor 'auto'")
    if n_samples is not None and n_samples < AUTO_WORKERS_MIN_SAMPLES:
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cores = os.cpu_count() or 1
    return max(0, min(AUTO_WORKERS_MAX, cores - 1))


def collate_loader(dataset: Dataset, batch_size: int, num_workers: int | str,
                   shuffle: bool = False, generator: torch.Generator | None = None,
                   drop_last: bool = False, pin_memory: bool = False, persistent: bool = False) -> DataLoader:
    """A DataLoader over loader samples. ``persistent`` keeps the worker pool alive between epochs (for a
    loader iterated every epoch); ``pin_memory`` for asynchronous host-to-GPU copies."""
    workers = resolve_num_workers(num_workers, len(dataset))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                      generator=generator, drop_last=drop_last, pin_memory=pin_memory,
                      persistent_workers=persistent and workers > 0,
                      prefetch_factor=4 if workers > 0 else None)


def fill_cache(writer, encoder: TaskEncoder, pipeline: InputPipeline, card: TaskCard, dataset: Dataset,
               views: int, device: torch.device, batch_size: int, num_workers: int,
               progress=None, dtype: str = "float16") -> None:
    """Encode every sample of ``dataset`` in each of ``views`` flip views into new cache arrays
    (``dtype`` float16 by default: half the disk and page cache; float32 to keep the encoder's precision)."""
    n = len(dataset)
    arrays: dict[str, np.memmap] = {}
    offset = 0
    for batch in collate_loader(dataset, batch_size, num_workers, pin_memory=device.type == "cuda"):
        image, target, meta = batch["image"], batch["target"], batch["meta"]
        b = image.shape[0]
        for v in range(views):
            out = encode_batch(encoder, pipeline, card, image, meta, card.is_dense, device, view=v)
            if card.is_dense:
                for level, fmap in enumerate(out.maps):
                    name = f"map{level}"
                    if name not in arrays:
                        arrays[name] = writer.create(name, (views, n, *fmap.shape[1:]), dtype)
                    arrays[name][v, offset:offset + b] = fmap.float().cpu().numpy().astype(dtype)
            else:
                if "pooled" not in arrays:
                    arrays["pooled"] = writer.create("pooled", (views, n, out.pooled.shape[1]), dtype)
                arrays["pooled"][v, offset:offset + b] = out.pooled.float().cpu().numpy().astype(dtype)
        if "target" not in arrays:
            arrays["target"] = writer.create("target", (n, *target.shape[1:]), target.numpy().dtype)
        arrays["target"][offset:offset + b] = target.numpy()
        offset += b
        if progress is not None:
            progress(b)


class CachedSource:
    """Batches from cached flip-view features (train: one random view per sample per epoch)."""

    def __init__(self, arrays: dict[str, np.ndarray], card: TaskCard, device: torch.device,
                 paper_size: int | None = None) -> None:
        self.arrays = arrays
        self.card = card
        self.device = device
        self.paper_size = paper_size if card.is_dense else None
        self.n = arrays["target"].shape[0]
        key = "map0" if card.is_dense else "pooled"
        self.views = arrays[key].shape[0]

    def __len__(self) -> int:
        return self.n

    def _gather(self, views: np.ndarray, idx: np.ndarray) -> Batch:
        order = np.argsort(idx, kind="stable")  # sorted reads are friendlier to memory maps
        inv = np.argsort(order, kind="stable")
        sv, si = views[order], idx[order]
        target = torch.from_numpy(np.ascontiguousarray(self.arrays["target"][si]))[inv]
        if self.card.is_dense:
            maps = [torch.from_numpy(np.ascontiguousarray(self.arrays[f"map{k}"][sv, si]))[inv]
                    .float().to(self.device) for k in range(NUM_MAPS)]
            paper = None
            if self.paper_size is not None:  # resize, then flip: the reference's order
                small = resize_nearest_cv2(target, self.paper_size)
                paper = torch.stack([flip_view(t, int(v)) for t, v in zip(small, views)]).to(self.device)
            target = torch.stack([flip_view(t, int(v)) for t, v in zip(target, views)])
            return Batch(None, maps, target.to(self.device), paper)
        pooled = torch.from_numpy(np.ascontiguousarray(self.arrays["pooled"][sv, si]))[inv].float()
        return Batch(pooled.to(self.device), None, target.to(self.device))

    def train_batches(self, rng: np.random.Generator, batch_size: int, drop_last: bool) -> Iterator[Batch]:
        perm = rng.permutation(self.n)
        views = rng.integers(0, self.views, size=self.n)
        for start in range(0, self.n, batch_size):
            idx = perm[start:start + batch_size]
            if drop_last and len(idx) < batch_size:
                break
            yield self._gather(views[idx], idx)

    def eval_batches(self, batch_size: int) -> Iterator[Batch]:
        for start in range(0, self.n, batch_size):
            idx = np.arange(start, min(start + batch_size, self.n))
            yield self._gather(np.zeros_like(idx), idx)


class OnTheFlySource:
    """Batches encoded on demand: flip views (``augment='flips'``) or the reference's full augmentation
    (``augment='paper'``: flips, plus RandomRotation(90°, p=0.5) for dense tasks), re-drawn every epoch."""

    def __init__(self, encoder: TaskEncoder, pipeline: InputPipeline, card: TaskCard, dataset: Dataset,
                 device: torch.device, augment: str, num_workers: int | str = 0, encode_batch_size: int = 16,
                 paper_size: int | None = None) -> None:
        self.encoder, self.pipeline, self.card, self.dataset = encoder, pipeline, card, dataset
        self.device, self.augment, self.num_workers = device, augment, num_workers
        self.paper_size = paper_size if card.is_dense else None
        self.encode_batch_size = encode_batch_size
        self.encode_seconds = 0.0
        # one loader per (batch size, mode), iterated every epoch: its worker pool persists between epochs;
        # the shuffling generator is re-seeded from the probe's rng at the start of each epoch
        self._loaders: dict[tuple, DataLoader] = {}
        self._gen = torch.Generator()

    def _loader(self, batch_size: int, train: bool, drop_last: bool) -> DataLoader:
        key = (batch_size, train, drop_last)
        if key not in self._loaders:
            self._loaders[key] = collate_loader(
                self.dataset, batch_size, self.num_workers, shuffle=train, generator=self._gen if train else None,
                drop_last=drop_last, pin_memory=self.device.type == "cuda", persistent=True)
        return self._loaders[key]

    def __len__(self) -> int:
        return len(self.dataset)

    def _encode(self, image: Tensor, target: Tensor, meta: Tensor, views: Tensor,
                angles: Tensor | None) -> Batch:
        import time

        t0 = time.perf_counter()
        pooled_parts, map_parts, targets, papers = [], [], [], []
        for v in range(NUM_VIEWS):  # group samples by view to keep batched encoding
            sel = (views == v).nonzero().flatten()
            if len(sel) == 0:
                continue
            rot = angles[sel] if angles is not None else None
            out = encode_batch(self.encoder, self.pipeline, self.card, image[sel], meta[sel],
                               self.card.is_dense, self.device, view=v, rotation=rot)
            t = target[sel]
            if self.card.is_dense:
                p = resize_nearest_cv2(t, self.paper_size) if self.paper_size is not None else None
                t = flip_view(t, v)
                p = flip_view(p, v) if p is not None else None
                if rot is not None:
                    fill, mode = target_fill(self.card, self.augment), target_mode(self.card)
                    t = rotate_target(t, rot, fill, mode)
                    p = rotate_target(p, rot, fill, mode) if p is not None else None
                if p is not None:
                    papers.append(p)
                map_parts.append((sel, out.maps))
            else:
                pooled_parts.append((sel, out.pooled))
            targets.append((sel, t))
        order = torch.cat([s for s, _ in targets])
        inv = torch.argsort(order)
        target_out = torch.cat([t for _, t in targets])[inv].to(self.device)
        self.encode_seconds += time.perf_counter() - t0
        if self.card.is_dense:
            maps = [torch.cat([m[k] for _, m in map_parts])[inv.to(self.device)] for k in range(NUM_MAPS)]
            paper = torch.cat(papers)[inv].to(self.device) if papers else None
            return Batch(None, maps, target_out, paper)
        pooled = torch.cat([p for _, p in pooled_parts])[inv.to(self.device)]
        return Batch(pooled, None, target_out)

    def train_batches(self, rng: np.random.Generator, batch_size: int, drop_last: bool) -> Iterator[Batch]:
        self._gen.manual_seed(int(rng.integers(0, 2**31 - 1)))
        for batch in self._loader(batch_size, True, drop_last):
            b = batch["image"].shape[0]
            views = torch.from_numpy(rng.integers(0, NUM_VIEWS, size=b))
            angles = None
            if self.augment in ("paper", "paper-ignore") and self.card.is_dense:
                apply = torch.from_numpy(rng.random(b) < 0.5)
                angles = torch.from_numpy(rng.uniform(-90.0, 90.0, size=b)).float() * apply
            yield self._encode(batch["image"], batch["target"], batch["meta"], views, angles)

    def eval_batches(self, batch_size: int) -> Iterator[Batch]:
        for batch in self._loader(batch_size, False, False):
            b = batch["image"].shape[0]
            yield self._encode(batch["image"], batch["target"], batch["meta"], torch.zeros(b, dtype=torch.long), None)

