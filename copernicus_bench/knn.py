"""Weighted kNN probe on frozen pooled features (``--protocol knn``): no training, seconds per task.

The classifier of Wu et al., *Unsupervised Feature Learning via Non-Parametric Instance Discrimination*
(CVPR 2018), as DINO evaluates with it (Caron et al., *Emerging Properties in Self-Supervised Vision
Transformers*, ICCV 2021, ``eval_knn.py``): L2-normalised features, cosine similarity to every training
sample, the ``k = 20`` nearest vote with weight ``exp(sim / T)``, ``T = 0.07``; the class with the largest
vote wins. Training features are the un-flipped view (view 0) of the cache; no augmentation, no epochs.

Multilabel tasks (BigEarthNet, LC100Cls): each label's score is the same temperature-weighted vote of the
neighbours carrying it, divided by the total weight (so in [0, 1]); micro-AP ranks those scores. This is
DINO's vote applied per label — our extension, not a published protocol — and it is recorded in the result.
Dense tasks are not applicable (one clear error).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from .cards import TaskCard
from .errors import CbenchError
from .features import Batch
from .metrics import create_metric

DEFAULT_K = 20
DEFAULT_TEMPERATURE = 0.07


def check_applicable(card: TaskCard) -> None:
    if card.is_dense:
        raise CbenchError(f"--protocol knn: task {card.slug} is {card.task_type.replace('_', ' ')}; kNN applies "
                          "to classification tasks only; use --protocol cached or paper for dense tasks")


def _collect(batches: Iterable[Batch]) -> tuple[Tensor, Tensor]:
    feats, targets = [], []
    for b in batches:
        assert b.pooled is not None
        feats.append(b.pooled.float().cpu())
        targets.append(b.target.cpu())
    return torch.cat(feats), torch.cat(targets)


def knn_scores(train_feats: Tensor, train_targets: Tensor, query: Tensor, *, num_classes: int,
               multilabel: bool, k: int = DEFAULT_K, temperature: float = DEFAULT_TEMPERATURE) -> Tensor:
    """Class scores (B, K) of ``query`` (B, D) from the weighted vote of its ``k`` nearest training samples."""
    if k < 1 or temperature <= 0:
        raise CbenchError(f"kNN: k must be >= 1 and the temperature > 0 (got k={k}, T={temperature})")
    train = F.normalize(train_feats.float(), dim=1)
    q = F.normalize(query.float(), dim=1)
    sim = q @ train.T
    kk = min(k, train.shape[0])
    top_sim, top_idx = sim.topk(kk, dim=1)
    weights = (top_sim / temperature).exp()  # (B, kk)
    if multilabel:
        labels = train_targets.float()[top_idx]  # (B, kk, K)
        return (weights[..., None] * labels).sum(1) / weights.sum(1, keepdim=True)
    one_hot = F.one_hot(train_targets.long()[top_idx], num_classes).float()  # (B, kk, K)
    return (weights[..., None] * one_hot).sum(1)


def run_knn(card: TaskCard, train_source, val_source, test_source, *, batch_size: int, k: int = DEFAULT_K,
            temperature: float = DEFAULT_TEMPERATURE):
    """Score val and test with the kNN classifier; returns a :class:`~copernicus_bench.probing.ProbeResult`."""
    from .probing import ProbeResult

    check_applicable(card)
    t0 = time.perf_counter()
    train_x, train_y = _collect(train_source.eval_batches(batch_size))
    multilabel = card.task_type == "multilabel"

    def score(source) -> dict[str, float]:
        metric = create_metric(card)
        for b in source.eval_batches(batch_size):
            assert b.pooled is not None
            s = knn_scores(train_x, train_y, b.pooled.cpu(), num_classes=card.num_classes, multilabel=multilabel,
                           k=k, temperature=temperature)
            metric.update(s, b.target.cpu())
        return metric.compute()

    val, test = score(val_source), score(test_source)
    return ProbeResult(best_epoch=-1, val=val, test=test, history=[], train_seconds=time.perf_counter() - t0)


def config(k: int = DEFAULT_K, temperature: float = DEFAULT_TEMPERATURE) -> dict:
    """What the result's ``config`` records for a kNN run."""
    return {"probe": "weighted-knn", "k": k, "temperature": temperature, "similarity": "cosine",
            "train_view": "unflipped (view 0)",
            "multilabel": "temperature-weighted share of neighbours per label (DINO vote per label)",
            "reference": "Wu et al. 2018; Caron et al. 2021 (DINO eval_knn)"}
