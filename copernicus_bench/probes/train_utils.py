"""Probe losses, optimiser and schedule, and target z-scoring (docs/protocol.md, "Run" and "Heads").

* Losses: multiclass CE; multilabel ``MultiLabelSoftMarginLoss``; segmentation / change detection
  ``CE(main) + aux_weight * CE(aux)`` with the card's ``ignore_index``; regression
  ``nanmean(L1(main) + aux_weight * L1(aux))`` over valid (non-NaN) target pixels on z-scored targets.
  A batch without a single valid pixel gives a zero loss that still has a ``grad_fn`` (zero gradients),
  where PyTorch would return NaN; NaN target pixels get exactly zero gradient.
* Optimiser: the reference's ``SGD(lr, weight_decay)`` (no momentum argument) for linear probes and
  ``AdamW(lr, weight_decay)`` for UPerNet, with ``OneCycleLR(max_lr=lr, total_steps, anneal_strategy="cos",
  pct_start=warmup_steps / total_steps)`` and PyTorch's defaults otherwise, stepped every iteration. With
  the paper's 0 warm-up epochs ``pct_start`` is ``0.0`` — a valid float for ``OneCycleLR`` — so the warm-up
  phase is empty: the first step already uses ``lr ≈ max_lr`` (``min_lr + (max_lr - min_lr)(1 + cos(π/T))/2``)
  and the last one ``max_lr / 25 / 1e4``. ``cycle_momentum`` (default True) sets SGD's momentum to
  0.85 → 0.95 (AdamW's beta1 likewise), so the "plain" SGD is momentum SGD, as in the reference.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import SGD, AdamW, Optimizer
from torch.optim.lr_scheduler import LRScheduler, OneCycleLR

if TYPE_CHECKING:
    from ..cards import ProbeSpec, TaskCard

__all__ = ["make_optimizer", "probe_loss", "unzscore", "zscore_target"]


def _zero_loss(*outputs: Tensor | None) -> Tensor:
    """A zero that depends on the outputs (has a grad_fn, gives zero gradients)."""
    total: Tensor | None = None
    for o in outputs:
        if o is not None:
            z = (o * 0).sum()
            total = z if total is None else total + z
    assert total is not None
    return total


def _squeeze_channel(x: Tensor) -> Tensor:
    return x[:, 0] if x.ndim == 4 and x.shape[1] == 1 else x


def probe_loss(card: TaskCard, main: Tensor, aux: Tensor | None, target: Tensor) -> Tensor:
    """Training loss of the probe for the card's task type.

    ``main``/``aux``: logits (B, K) for classification (``aux`` unused, may be None); dense outputs
    (B, K, H, W) — K = 1 for regression — already resized to the target's size. ``target``: class indices
    (B,), multi-hot (B, K), label maps (B, H, W), or z-scored regression targets (B, H, W) / (B, 1, H, W)
    with NaN for invalid pixels.
    """
    kind = card.task_type
    if kind == "multiclass":
        return F.cross_entropy(main, target.long())
    if kind == "multilabel":
        return F.multilabel_soft_margin_loss(main, target.to(main.dtype))
    aux_weight = card.probe.aux_weight
    if kind in ("segmentation", "change_detection"):
        ignore = card.ignore_index if card.ignore_index is not None else -100
        target = target.long()
        if not bool((target != ignore).any()):
            return _zero_loss(main, aux)
        loss = F.cross_entropy(main, target, ignore_index=ignore)
        if aux is not None:
            loss = loss + aux_weight * F.cross_entropy(aux, target, ignore_index=ignore)
        return loss
    if kind == "regression":
        t = _squeeze_channel(target)
        m = _squeeze_channel(main)
        if m.shape != t.shape:
            raise ValueError(f"regression loss: prediction {tuple(main.shape)} vs target {tuple(target.shape)}")
        valid = ~torch.isnan(t)
        if not bool(valid.any()):
            return _zero_loss(main, aux)
        tv = t[valid]
        # = nanmean(|m - t| + w |a - t|): the reference's elementwise L1 then nanmean; indexing instead of
        # nanmean keeps the gradient at NaN pixels exactly zero (sign(NaN) * 0 would be NaN).
        per_pixel = (m[valid] - tv).abs()
        if aux is not None:
            per_pixel = per_pixel + aux_weight * (_squeeze_channel(aux)[valid] - tv).abs()
        return per_pixel.mean()
    raise ValueError(f"probe_loss: unknown task type '{kind}'")


def make_optimizer(spec: ProbeSpec, params: Iterable[nn.Parameter] | Iterable[dict], steps_per_epoch: int,
                   epochs: int, lr: float | None = None,
                   warmup_epochs: int = 0) -> tuple[Optimizer, LRScheduler]:
    """The reference's optimiser and per-iteration OneCycle schedule for a card's ``probe`` spec.

    ``lr`` overrides ``spec.lr`` (e.g. a sweep). Call ``scheduler.step()`` after every ``optimizer.step()``.
    """
    lr = spec.lr if lr is None else float(lr)
    total_steps = int(steps_per_epoch) * int(epochs)
    if total_steps < 1:
        raise ValueError(f"make_optimizer: total steps must be >= 1 (steps_per_epoch={steps_per_epoch}, "
                         f"epochs={epochs})")
    params = list(params)
    if spec.optimizer == "sgd":
        optimizer: Optimizer = SGD(params, lr=lr, weight_decay=spec.weight_decay)
    elif spec.optimizer == "adamw":
        optimizer = AdamW(params, lr=lr, weight_decay=spec.weight_decay)
    else:
        raise ValueError(f"make_optimizer: unknown optimizer '{spec.optimizer}'")
    if spec.schedule != "onecycle":
        raise ValueError(f"make_optimizer: unknown schedule '{spec.schedule}'")
    warmup_steps = int(steps_per_epoch) * int(warmup_epochs)
    scheduler = OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps, anneal_strategy="cos",
                           pct_start=float(warmup_steps) / float(total_steps))
    return optimizer, scheduler


def zscore_target(card: TaskCard, t: Tensor) -> Tensor:
    """Regression target in original units -> z-scored with the card's ``target_stats`` (NaN stays NaN)."""
    stats = card.target_stats
    if stats is None:
        raise ValueError(f"task '{card.slug}' has no target_stats")
    return (t - stats.mean) / stats.std


def unzscore(card: TaskCard, t: Tensor) -> Tensor:
    """Inverse of :func:`zscore_target`: z-scored prediction -> original units (for the RMSE metric)."""
    stats = card.target_stats
    if stats is None:
        raise ValueError(f"task '{card.slug}' has no target_stats")
    return t * stats.std + stats.mean
