"""Task metrics of Copernicus-Bench (arXiv:2503.11849, docs/protocol.md "Metrics").

Every metric reports two numbers (docs/conventions.md "Metrics"):

* ``global`` — accumulated over the whole split: the headline. OA = correct / total; micro mAP over all
  scores of the split; mIoU from the split's confusion matrix; RMSE = sqrt(sum of squared errors / count).
* ``per_batch`` — what the reference logged: each batch's value computed as the reference does (timm top-1,
  torchmetrics ``multilabel_average_precision(sigmoid(logits), average="micro")``, torchmetrics
  ``multiclass_jaccard_index`` (macro), ``sqrt(nanmean((pred - t)²))``), then averaged with the batch size
  (number of images) as weight — Lightning's ``self.log(on_epoch=True)``. It depends on how the split is
  batched; ``--compare-paper`` compares this one.

OA, mAP and mIoU are in percent; RMSE is in the target's original units (callers de-normalise predictions
with :func:`copernicus_bench.probes.train_utils.unzscore` before ``update``).

Why hand-written rather than torchmetrics objects: one ``update`` yields both values (a torchmetrics metric
gives the split-level value; the per-batch one needs a second functional call per batch), with the
reference's edge cases above (ignore-only or all-NaN batches); torchmetrics and scikit-learn stay test-only
dependencies, used as the reference in ``tests/test_metrics.py``. Measured on 1 CPU thread, one Cloud-S2-sized
batch (16 × 8 classes × 256²): our ``MeanIoU.update`` (both values) 0.35 s, torchmetrics
``MulticlassJaccardIndex.update`` (global only) 0.53 s, same mIoU to 1e-7. Micro mAP is slower per update than
torchmetrics' (0.44 ms vs 0.15 ms for 64 × 19 labels: it scores the batch at once, torchmetrics only stores
it), negligible next to the probe step.

Edge cases (documented behaviour, tested in ``tests/test_metrics.py``):

* Empty split (no ``update``): both values are NaN.
* mIoU, class absent from both target and prediction: excluded from the macro mean, exactly as torchmetrics
  (weight 0); an in-range ``ignore_index`` class is excluded too. The global value applies the same rule to
  the split's confusion matrix, so it equals ``multiclass_jaccard_index`` on the concatenated split.
* mIoU, a batch whose pixels are all ``ignore_index``: torchmetrics returns NaN for it (0/0 weights) and
  Lightning's weighted mean would then turn the whole epoch into NaN, so no published number contains such
  a batch; we skip it (weight 0) instead of poisoning ``per_batch``. Global is NaN only when every pixel of
  the split is ignored.
* mAP, a batch (or split) without positives: torchmetrics sets recall to 1 and returns AP 0; we do the same
  and count the batch (the reference logged that 0).
* RMSE, invalid target pixels are NaN. A batch whose targets are all NaN would log NaN in the reference
  (and make the epoch NaN); it contributes nothing to ``per_batch`` here. ``global`` is NaN only if every
  target of the split is NaN. A NaN *prediction* at a valid pixel is not hidden: it makes the values NaN.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .registry import Registry

if TYPE_CHECKING:
    from .cards import TaskCard

__all__ = [
    "METRICS",
    "MaskedRMSE",
    "MeanIoU",
    "Metric",
    "MicroAveragePrecision",
    "OverallAccuracy",
    "average_precision",
    "create_metric",
    "miou_from_confmat",
]

METRICS: Registry[Any] = Registry("metric", group="copernicus_bench.metrics")


class Metric:
    """Base class: accumulate over a split, report ``{"global": float, "per_batch": float}``.

    A plug-in metric (entry-point group ``copernicus_bench.metrics``) is a class or factory called with the
    task card that returns an object with this interface.
    """

    name: str = "metric"
    higher_is_better: bool = True

    def __init__(self, card: TaskCard | None = None) -> None:
        self.card = card
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        self._pb_sum = 0.0  # sum of batch_value * batch_size
        self._pb_weight = 0  # sum of batch sizes of counted batches

    def _add_batch_value(self, value: float, batch_size: int) -> None:
        """Lightning's on_epoch mean: weight each per-batch value by its batch size."""
        self._pb_sum += float(value) * batch_size
        self._pb_weight += batch_size

    def _per_batch(self) -> float:
        return self._pb_sum / self._pb_weight if self._pb_weight else math.nan

    def update(self, pred: Tensor, target: Tensor) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def compute(self) -> dict[str, float]:  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# ----------------------------------------------------------------------------------- OA
@METRICS.register("oa")
class OverallAccuracy(Metric):
    """Top-1 overall accuracy in percent (timm ``accuracy(topk=(1,))`` per batch in the reference).

    ``pred``: logits (B, K); ``target``: class indices (B,). Per-batch OA weighted by B equals the global
    OA exactly (up to float rounding).
    """

    name = "oa"
    higher_is_better = True

    def reset(self) -> None:
        super().reset()
        self._correct = 0
        self._total = 0

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        if pred.ndim != 2 or target.ndim != 1 or pred.shape[0] != target.shape[0]:
            raise ValueError(f"oa: expected logits (B,K) and targets (B,), got {tuple(pred.shape)} and "
                             f"{tuple(target.shape)}")
        batch = target.shape[0]
        if batch == 0:
            return
        top1 = pred.topk(1, dim=1, largest=True, sorted=True).indices[:, 0]  # timm's tie-breaking
        correct = int((top1 == target.to(top1.device)).sum())
        self._correct += correct
        self._total += batch
        self._add_batch_value(correct * 100.0 / batch, batch)

    def compute(self) -> dict[str, float]:
        glob = 100.0 * self._correct / self._total if self._total else math.nan
        return {"global": glob, "per_batch": self._per_batch()}


# ----------------------------------------------------------------------------------- mAP
def average_precision(scores: Tensor, target: Tensor) -> float:
    """Binary average precision (step-wise, no interpolation), as torchmetrics and scikit-learn compute it.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over distinct score thresholds, high to low. With no positive
    target, torchmetrics' convention applies (recall := 1 everywhere, AP = 0).
    """
    scores = scores.reshape(-1).double()
    target = target.reshape(-1).double()
    n_pos = float(target.sum())
    if scores.numel() == 0:
        return math.nan
    if n_pos == 0:
        return 0.0
    order = torch.argsort(scores, descending=True, stable=True)
    s = scores[order]
    t = target[order]
    tps = torch.cumsum(t, 0)
    # last index of each block of equal scores = where the next score differs, plus the final element
    last = torch.ones_like(s, dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]
    idx = torch.nonzero(last).squeeze(1)
    tp = tps[idx]
    precision = tp / (idx.double() + 1.0)
    recall_step = torch.diff(tp, prepend=tp.new_zeros(1)) / n_pos
    return float((recall_step * precision).sum())


@METRICS.register("map-micro")
class MicroAveragePrecision(Metric):
    """Micro-averaged AP in percent over all (sample, label) pairs — the paper's multilabel "mAP".

    ``pred``: logits (B, K) (sigmoid is applied here, in float32, as the reference does — saturated
    sigmoids create ties that change AP slightly, so the ranking uses the same probabilities);
    ``target``: (B, K) of 0/1.
    """

    name = "map-micro"
    higher_is_better = True

    def reset(self) -> None:
        super().reset()
        self._scores: list[Tensor] = []
        self._targets: list[Tensor] = []

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        if pred.ndim != 2 or pred.shape != target.shape:
            raise ValueError(f"map-micro: expected logits and targets of the same shape (B,K), got "
                             f"{tuple(pred.shape)} and {tuple(target.shape)}")
        batch = pred.shape[0]
        if batch == 0:
            return
        scores = torch.sigmoid(pred.detach().float()).cpu()
        tgt = (target.detach().cpu() > 0.5).to(torch.uint8)
        self._scores.append(scores)
        self._targets.append(tgt)
        self._add_batch_value(100.0 * average_precision(scores, tgt), batch)

    def compute(self) -> dict[str, float]:
        if not self._scores:
            return {"global": math.nan, "per_batch": math.nan}
        glob = 100.0 * average_precision(torch.cat(self._scores), torch.cat(self._targets))
        return {"global": glob, "per_batch": self._per_batch()}


# ----------------------------------------------------------------------------------- mIoU
def miou_from_confmat(confmat: Tensor, ignore_index: int | None = None) -> float:
    """Macro IoU (fraction) from a (K, K) confusion matrix (rows = target, columns = prediction).

    Same reduction as torchmetrics' ``_jaccard_index_reduce(average="macro")``: per-class IoU with 0 for
    0/0; classes with no target and no prediction pixel get weight 0, and so does an in-range
    ``ignore_index`` class; NaN when no class has weight (every pixel ignored / nothing seen).
    """
    cm = confmat.double()
    k = cm.shape[0]
    inter = torch.diag(cm)
    rows = cm.sum(1)
    cols = cm.sum(0)
    union = rows + cols - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))
    weights = torch.ones_like(iou)
    if ignore_index is not None and 0 <= ignore_index < k:
        weights[ignore_index] = 0.0
    weights[(rows + cols) == 0] = 0.0
    total = float(weights.sum())
    if total == 0:
        return math.nan
    return float((weights * iou).sum() / total)


@METRICS.register("miou")
class MeanIoU(Metric):
    """Mean IoU in percent, macro over classes as torchmetrics ``multiclass_jaccard_index``.

    ``pred``: logits (B, K, H, W) (argmax over K) or class indices (B, H, W); ``target``: (B, H, W) int
    with ``ignore_index`` (or None). Pixels whose target is ``ignore_index`` are dropped before counting.
    """

    name = "miou"
    higher_is_better = True

    def __init__(self, card: TaskCard | None = None, *, num_classes: int | None = None,
                 ignore_index: int | None = None) -> None:
        if card is not None:
            num_classes = card.num_classes if num_classes is None else num_classes
            ignore_index = card.ignore_index if ignore_index is None else ignore_index
        if num_classes is None or num_classes < 1:
            raise ValueError("miou: num_classes is required (from the card or as an argument)")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        super().__init__(card)

    def reset(self) -> None:
        super().reset()
        self.confmat = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def batch_confmat(self, pred: Tensor, target: Tensor) -> Tensor:
        """Confusion matrix of one batch (rows = target, columns = prediction), on CPU, int64."""
        k = self.num_classes
        if pred.ndim == target.ndim + 1:
            if pred.shape[1] != k:
                raise ValueError(f"miou: logits have {pred.shape[1]} channels, expected {k}")
            pred = pred.argmax(dim=1)
        if pred.shape != target.shape:
            raise ValueError(f"miou: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        p = pred.reshape(-1).long()
        t = target.reshape(-1).long().to(p.device)
        if self.ignore_index is not None:
            keep = t != self.ignore_index
            p, t = p[keep], t[keep]
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= k):
            raise ValueError(f"miou: target values outside [0, {k}) that are not ignore_index "
                             f"{self.ignore_index}")
        return torch.bincount(t * k + p, minlength=k * k).reshape(k, k).cpu()

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        batch = target.shape[0]
        if batch == 0:
            return
        cm = self.batch_confmat(pred.detach(), target.detach())
        self.confmat += cm
        value = miou_from_confmat(cm, self.ignore_index)
        if not math.isnan(value):  # ignore-only batch: skipped (see module docstring)
            self._add_batch_value(100.0 * value, batch)

    def compute(self) -> dict[str, float]:
        return {"global": 100.0 * miou_from_confmat(self.confmat, self.ignore_index),
                "per_batch": self._per_batch()}


# ----------------------------------------------------------------------------------- RMSE
@METRICS.register("rmse")
class MaskedRMSE(Metric):
    """RMSE over valid (non-NaN target) pixels, in the target's original units.

    ``pred``: (B, H, W) or (B, 1, H, W); ``target``: (B, H, W) or (B, 1, H, W), NaN = invalid. The
    reference computed it on z-scored values and multiplied by the target std, which equals this in
    original units (the mean cancels).
    """

    name = "rmse"
    higher_is_better = False

    def reset(self) -> None:
        super().reset()
        self._sse = 0.0
        self._count = 0

    @staticmethod
    def _flat(x: Tensor) -> Tensor:
        if x.ndim == 4:
            if x.shape[1] != 1:
                raise ValueError(f"rmse: expected one output channel, got {tuple(x.shape)}")
            x = x[:, 0]
        return x.reshape(x.shape[0], -1)

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        p = self._flat(pred.detach()).double()
        t = self._flat(target.detach()).double().to(p.device)
        if p.shape != t.shape:
            raise ValueError(f"rmse: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        batch = p.shape[0]
        if batch == 0:
            return
        valid = ~torch.isnan(t)
        n = int(valid.sum())
        if n == 0:  # all-NaN batch: nothing to score (see module docstring)
            return
        sse = float(((p - t)[valid] ** 2).sum())
        self._sse += sse
        self._count += n
        self._add_batch_value(math.sqrt(sse / n), batch)

    def compute(self) -> dict[str, float]:
        glob = math.sqrt(self._sse / self._count) if self._count else math.nan
        return {"global": glob, "per_batch": self._per_batch()}


# ----------------------------------------------------------------------------------- factory
def create_metric(card: TaskCard) -> Metric:
    """Build the metric a task card names (built-in or from the ``copernicus_bench.metrics`` group)."""
    factory = METRICS.get(card.metric)
    return factory(card)
