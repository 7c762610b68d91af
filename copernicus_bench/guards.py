"""Guards against silent nonsense: non-finite inputs, features, losses and metrics; labels outside a task's
classes; degenerate splits. Each refusal is one :class:`~copernicus_bench.errors.CbenchError` line naming the
task, the split, the first epoch and what produced the bad value (the input or the encoder).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .cards import TaskCard
from .errors import CbenchError

log = logging.getLogger(__name__)


class NonFiniteError(CbenchError):
    """A NaN/inf where the protocol needs finite numbers; the message grows the split/epoch once known."""

    def __init__(self, task: str, what: str, fix: str, split: str | None = None, epoch: int | None = None) -> None:
        self.task, self.what, self.fix, self.split, self.epoch = task, what, fix, split, epoch
        super().__init__(self._text())

    def _text(self) -> str:
        where = f"task {self.task}"
        if self.split:
            where += f", split {self.split}"
        if self.epoch is not None:
            where += f", first at epoch {self.epoch}"
        return f"{where}: {self.what}; {self.fix}; no result was written"

    def at(self, split: str | None = None, epoch: int | None = None) -> NonFiniteError:
        """The same error with the split / epoch filled in (where they were not known yet)."""
        return NonFiniteError(self.task, self.what, self.fix, self.split or split,
                              self.epoch if self.epoch is not None else epoch)


def sanitize_input(card: TaskCard, x: Tensor) -> Tensor:
    """Model-ready pixels: non-finite values left after the loader's own steps (where the reference zeroes NaN,
    the loader already did) are replaced by 0, the normalised mean, and counted in a warning line."""
    bad = ~torch.isfinite(x)
    if not bool(bad.any()):
        return x
    n = int(bad.sum())
    log.warning("task %s: %d of %d input values are NaN/inf after normalisation; replaced by 0 (the "
                "normalised mean)", card.slug, n, x.numel())
    return torch.where(bad, torch.zeros((), dtype=x.dtype, device=x.device), x)


def check_encoder_output(card: TaskCard, pooled: Tensor | None, maps: list[Tensor] | None) -> None:
    """The encoder's features must be finite (its inputs were made finite by :func:`sanitize_input`)."""
    for t in ([pooled] if pooled is not None else []) + list(maps or []):
        if not bool(torch.isfinite(t).all()):
            raise NonFiniteError(card.slug, "the encoder produced NaN/inf features from finite inputs",
                                 "check the checkpoint (a diverged or corrupt one) or the model's code")


def check_loss(card: TaskCard, loss: Tensor, epoch: int) -> None:
    if not bool(torch.isfinite(loss)):
        raise NonFiniteError(card.slug, f"the training loss became {float(loss)} (the encoder's features are "
                             "finite, so the probe diverged or the targets are not finite)",
                             "lower the learning rate or check the targets", split="train", epoch=epoch)


def check_metric(card: TaskCard, value: float, split: str, epoch: int | None) -> None:
    if value is None or not math.isfinite(float(value)):
        raise NonFiniteError(card.slug, f"the {card.metric} became {value} (inputs and features are finite: "
                             f"the {split} split has no valid target, e.g. every pixel ignored)",
                             f"check the {split} split's labels", split=split, epoch=epoch)


def has_valid_target(card: TaskCard, target: Tensor) -> bool:
    """Whether a batch has anything to learn from (not all pixels ignored / all regression targets NaN)."""
    if card.task_type == "regression":
        return bool(torch.isfinite(target).any())
    if card.is_dense and card.ignore_index is not None:
        return bool((target != card.ignore_index).any())
    return True


def check_train_size(card: TaskCard, n_train: int) -> None:
    """The probes' BatchNorm layers need at least two values per channel in a training batch."""
    if n_train < 2:
        raise CbenchError(f"task {card.slug}, split train: {n_train} sample(s); the paper's probe (BatchNorm in "
                          "its head) needs at least 2 training samples: list more in the train split file (and "
                          "pass --limit of at least 2 if you gave a smaller one); no result was written")


def check_labels(card: TaskCard, target: Any, where: str | Callable[[], str]) -> None:
    """Class labels must be classes of the task or its ignore index (a raw 255 that a remap turned into 254,
    as in torchgeo's Cloud-S3 fixture, must not reach the loss as an internal error)."""
    if card.task_type not in ("multiclass", "segmentation", "change_detection"):
        return
    t = torch.as_tensor(target)
    if t.is_floating_point() or t.numel() == 0:
        return
    valid = (t >= 0) & (t < card.num_classes)
    if card.ignore_index is not None:
        valid |= t == card.ignore_index
    if bool(valid.all()):
        return
    values = sorted({int(v) for v in torch.unique(t[~valid])[:5]})
    allowed = f"0..{card.num_classes - 1}" + (f" or {card.ignore_index} (ignored)" if card.ignore_index is not None
                                              else "")
    where = where() if callable(where) else where
    raise CbenchError(f"{where}: label value(s) {values} are not classes of task {card.slug} ({allowed}) after "
                      "the reference's label mapping; this file is not in the released format: fix or drop it")
