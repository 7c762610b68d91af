"""Per-sample outputs of a result's test split: small, exact, enough to recompute every metric.

What is kept per test image (issue 11; nothing the size of an image):

* ``oa`` (multiclass): the logits ``scores`` (N, K) float32, the top-1 class ``pred`` (N,) as the metric
  chose it (timm's ``topk`` tie-breaking) and the ``label`` (N,);
* ``map-micro`` (multilabel): the sigmoid ``scores`` (N, K) float32 the metric ranked and the 0/1 ``label``
  (N, K) uint8;
* ``miou`` (segmentation, change detection): the per-image ``confmat`` (N, K, K) int32, rows = target,
  columns = prediction, ``ignore_index`` pixels dropped;
* ``rmse`` (regression): per image ``n`` valid pixels, ``sum_err`` = Σ(pred − target) and ``sum_sq`` =
  Σ(pred − target)² in target units (float64).

Plus ``batch_sizes``, the test batches in order, so the reference's ``per_batch`` value is recomputable too.
The arrays go to ``<result>.samples.npz`` beside the result JSON, written atomically; the result records its
file name, sha256 and format under ``per_sample`` (:func:`write_per_sample`, :func:`load_per_sample`).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from .atomic import atomic_file

if TYPE_CHECKING:
    from .cards import TaskCard

FORMAT = "copernicus-bench/per-sample/v1"
SUFFIX = ".samples.npz"
SUPPORTED = ("oa", "map-micro", "miou", "rmse")


class PerSampleError(Exception):
    """A per-sample file that is missing, tampered with (checksum mismatch) or unreadable."""


class PerSampleRecorder:
    """Accumulate per-image outputs over a split; call with the metric's ``(pred, target)`` pairs."""

    def __init__(self, metric: str, num_classes: int | None = None, ignore_index: int | None = None) -> None:
        if metric not in SUPPORTED:
            raise ValueError(f"per-sample outputs: metric {metric!r} is not one of {SUPPORTED}")
        self.metric, self.num_classes, self.ignore_index = metric, num_classes, ignore_index
        self._parts: dict[str, list[np.ndarray]] = {}
        self.batch_sizes: list[int] = []

    @classmethod
    def for_card(cls, card: TaskCard) -> PerSampleRecorder | None:
        """A recorder for the card's metric, or None for a plug-in metric this module does not know."""
        if card.metric not in SUPPORTED:
            return None
        return cls(card.metric, card.num_classes or None, card.ignore_index)

    def _add(self, **arrays: np.ndarray) -> None:
        for k, v in arrays.items():
            self._parts.setdefault(k, []).append(v)

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        pred, target = pred.detach().cpu(), target.detach().cpu()
        b = int(target.shape[0])
        if b == 0:
            return
        self.batch_sizes.append(b)
        if self.metric == "oa":
            top1 = pred.topk(1, dim=1, largest=True, sorted=True).indices[:, 0]
            self._add(scores=pred.float().numpy(), pred=top1.numpy().astype(np.int64),
                      label=target.long().numpy())
        elif self.metric == "map-micro":
            self._add(scores=torch.sigmoid(pred.float()).numpy(), label=(target > 0.5).numpy().astype(np.uint8))
        elif self.metric == "miou":
            self._add(confmat=self._confmats(pred, target))
        else:
            p = pred[:, 0] if pred.ndim == 4 else pred
            t = target[:, 0] if target.ndim == 4 else target
            err = (p.double() - t.double()).reshape(b, -1)
            valid = ~torch.isnan(t.reshape(b, -1))
            err = torch.where(valid, err, torch.zeros_like(err))
            self._add(n=valid.sum(1).numpy().astype(np.int64), sum_err=err.sum(1).numpy(),
                      sum_sq=(err ** 2).sum(1).numpy())

    def _confmats(self, pred: Tensor, target: Tensor) -> np.ndarray:
        k = int(self.num_classes or 0)
        if pred.ndim == target.ndim + 1:
            pred = pred.argmax(dim=1)
        b = target.shape[0]
        p = pred.reshape(b, -1).long()
        t = target.reshape(b, -1).long()
        img = torch.arange(b).unsqueeze(1).expand_as(t)
        keep = t != self.ignore_index if self.ignore_index is not None else torch.ones_like(t, dtype=torch.bool)
        flat = img[keep] * k * k + t[keep] * k + p[keep]
        cm = torch.bincount(flat, minlength=b * k * k).reshape(b, k, k)
        return cm.numpy().astype(np.int32)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {k: np.concatenate(v) for k, v in self._parts.items()}
        out["batch_sizes"] = np.asarray(self.batch_sizes, dtype=np.int64)
        return out


# ----------------------------------------------------------------------------- metrics from arrays
def num_samples(arrays: dict[str, np.ndarray]) -> int:
    return int(arrays["batch_sizes"].sum())


def _ap_weighted(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Micro AP (fraction) of (N, K) scores/labels for each row of image weights (B, N); step-wise, tie
    blocks as :func:`copernicus_bench.metrics.average_precision`."""
    n, k = scores.shape
    s = scores.reshape(-1).astype(np.float64)
    t = labels.reshape(-1).astype(np.float64)
    order = np.argsort(-s, kind="stable")
    s, t = s[order], t[order]
    last = np.ones(s.shape[0], dtype=bool)
    last[:-1] = s[1:] != s[:-1]
    img = (order // k)
    out = np.empty(weights.shape[0])
    chunk = max(1, int(2e7 // max(1, s.shape[0])))
    for start in range(0, weights.shape[0], chunk):
        w = weights[start:start + chunk][:, img].astype(np.float64)  # (b, N*K) in sorted order
        tps = np.cumsum(w * t, axis=1)[:, last]
        cnt = np.cumsum(w, axis=1)[:, last]
        n_pos = tps[:, -1] if tps.shape[1] else np.zeros(w.shape[0])
        precision = np.divide(tps, cnt, out=np.zeros_like(tps), where=cnt > 0)
        steps = np.diff(tps, axis=1, prepend=0.0)
        ap = (steps * precision).sum(1)
        out[start:start + chunk] = np.where(n_pos > 0, ap / np.where(n_pos > 0, n_pos, 1.0), 0.0)
    return out


def miou_batch(cm: np.ndarray, ignore_index: int | None) -> np.ndarray:
    """Macro IoU (fraction) of (B, K, K) confusion matrices, torchmetrics' rule (as ``miou_from_confmat``)."""
    cm = cm.astype(np.float64)
    k = cm.shape[-1]
    inter = np.diagonal(cm, axis1=-2, axis2=-1)
    rows, cols = cm.sum(-1), cm.sum(-2)
    union = rows + cols - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    weight = ((rows + cols) > 0).astype(np.float64)
    if ignore_index is not None and 0 <= ignore_index < k:
        weight[..., ignore_index] = 0.0
    total = weight.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (weight * iou).sum(-1) / total, np.nan)


def weighted_metric(metric: str, arrays: dict[str, np.ndarray], weights: np.ndarray,
                    ignore_index: int | None = None) -> np.ndarray:
    """The metric (in its reported unit: percent or target units) for each row of image weights (B, N).

    Weight 1 for every image gives the stored ``global`` value; bootstrap weights are resample counts.
    """
    w = np.atleast_2d(weights).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "oa":
            correct = (arrays["pred"] == arrays["label"]).astype(np.float64)
            return 100.0 * (w @ correct) / w.sum(1)
        if metric == "map-micro":
            return 100.0 * _ap_weighted(arrays["scores"], arrays["label"], w)
        if metric == "miou":
            cm = arrays["confmat"]
            k = cm.shape[-1]
            summed = (w @ cm.reshape(cm.shape[0], -1).astype(np.float64)).reshape(-1, k, k)
            return 100.0 * miou_batch(summed, ignore_index)
        if metric == "rmse":
            n = w @ arrays["n"].astype(np.float64)
            return np.where(n > 0, np.sqrt(np.maximum(w @ arrays["sum_sq"], 0.0) / np.where(n > 0, n, 1.0)), np.nan)
    raise ValueError(f"per-sample outputs: metric {metric!r} is not one of {SUPPORTED}")


def recompute(metric: str, arrays: dict[str, np.ndarray], ignore_index: int | None = None) -> dict[str, float]:
    """``global`` and ``per_batch`` recomputed from stored per-sample outputs (as ``metrics.py`` does)."""
    n = num_samples(arrays)
    glob = float(weighted_metric(metric, arrays, np.ones((1, n)), ignore_index)[0])
    sizes = arrays["batch_sizes"]
    rows = np.zeros((len(sizes), n))
    start = 0
    for i, b in enumerate(sizes):
        rows[i, start:start + b] = 1.0
        start += b
    per = weighted_metric(metric, arrays, rows, ignore_index)
    if metric == "map-micro":  # a batch without positives counts as AP 0 (torchmetrics; metrics.py)
        per = np.nan_to_num(per, nan=0.0)
    keep = ~np.isnan(per)
    per_batch = float((per[keep] * sizes[keep]).sum() / sizes[keep].sum()) if keep.any() else math.nan
    return {"global": glob, "per_batch": per_batch}


# ----------------------------------------------------------------------------- files
def per_sample_path(result_path: str | os.PathLike) -> Path:
    p = Path(result_path)
    return p.with_name(p.name.removesuffix(".json") + SUFFIX)


def write_per_sample(result_path: str | os.PathLike, metric: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Write the arrays atomically beside ``result_path``; return the provenance record for the result."""
    path = per_sample_path(result_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    data = buf.getvalue()
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "format": FORMAT, "metric": metric,
            "n": num_samples(arrays), "arrays": sorted(arrays), "bytes": len(data)}


def load_per_sample(result: dict[str, Any]) -> dict[str, np.ndarray]:
    """The verified per-sample arrays of a loaded result (``results.read_result`` sets ``_path``).

    Raises :class:`PerSampleError` with the reason when the result has none, the file is missing, or its
    sha256 differs from the one recorded in the result (a tampered file is never used).
    """
    info = result.get("per_sample")
    if not isinstance(info, dict) or "file" not in info or "sha256" not in info:
        raise PerSampleError("the result has no per-sample outputs (written before they were recorded)")
    base = Path(result.get("_path", ".")).parent
    path = base / str(info["file"])
    try:
        data = path.read_bytes()
    except OSError:
        raise PerSampleError(f"per-sample file {path} is missing") from None
    if hashlib.sha256(data).hexdigest() != info["sha256"]:
        raise PerSampleError(f"per-sample file {path} does not match the sha256 recorded in its result "
                             "(modified or corrupt): excluded")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError) as exc:
        raise PerSampleError(f"per-sample file {path} is unreadable ({exc.__class__.__name__})") from None
