"""Train the paper's probe on frozen features and pick the best-validation epoch (shared notes §4).

Classification: linear head (``ln-bn-linear`` or ``linear``), SGD + OneCycle, CE or multilabel soft-margin.
Dense tasks: UPerNet + auxiliary FCN head (0.4), AdamW + OneCycle; CE with the ignore index for
segmentation / change detection; NaN-masked L1 on z-scored targets for regression. The epoch with the best
validation metric (global) is kept and scored on the test split, both ``global`` and ``per_batch``.

The same run also gives ``paper``, the value as the reference computes it: dense targets nearest-resized
(cv2 rule) to the encoder's input resolution (the probe trains on those, as the reference), the epoch with
the best *per-batch* validation value at that resolution (first best kept, as Lightning's
``ModelCheckpoint``), and that epoch's per-batch test value there. A second best state is kept for it.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from .cards import TaskCard
from .features import Batch
from .metrics import create_metric
from .per_sample import PerSampleRecorder
from .probes.linear import LinearProbe
from .probes.train_utils import make_optimizer, probe_loss, unzscore, zscore_target
from .probes.upernet import UPerNetProbe


@dataclass
class ProbeResult:
    best_epoch: int
    val: dict[str, float]
    test: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    #: the reference's epoch (best per-batch validation value at the input resolution; ``test["paper"]``)
    paper_epoch: int = -1
    #: per-test-image outputs (copernicus_bench.per_sample) of the selected epoch; None for plug-in metrics
    per_sample: dict[str, np.ndarray] | None = None


def build_head(card: TaskCard, embed_dim: int, head_kind: str) -> nn.Module:
    outputs = 1 if card.task_type == "regression" else card.num_classes
    if card.is_dense:
        return UPerNetProbe(embed_dim, outputs)
    return LinearProbe(embed_dim, outputs, head=head_kind)


def _train_target(batch: Batch) -> Tensor:
    """What the probe trains on: the reference's resized target when the source provides it."""
    return batch.paper_target if batch.paper_target is not None else batch.target


def _dense_logits(head: nn.Module, maps: list[Tensor], sizes: list[tuple[int, ...]]) -> list[Tensor]:
    """Main-head logits at each size from one decode (UPerNet resizes bilinearly, as its ``forward``)."""
    if isinstance(head, UPerNetProbe):
        dec = head.decode_head(head.neck(maps))
        return [F.interpolate(dec, size=s, mode="bilinear", align_corners=False) for s in sizes]
    return [head(maps, s)[0] for s in sizes]


def _forward(card: TaskCard, head: nn.Module, batch: Batch) -> tuple[Tensor, Tensor | None]:
    if card.is_dense:
        out_size = tuple(_train_target(batch).shape[-2:])
        main, aux = head(batch.maps, out_size)
        return main, aux
    return head(batch.pooled), None


def _loss_target(card: TaskCard, target: Tensor) -> Tensor:
    if card.task_type == "regression":
        return zscore_target(card, target)
    return target


def _metric_pred(card: TaskCard, main: Tensor) -> Tensor:
    if card.task_type == "regression":
        return unzscore(card, main.squeeze(1))
    return main


@torch.no_grad()
def evaluate(card: TaskCard, head: nn.Module, batches: Iterator[Batch],
             recorder: PerSampleRecorder | None = None) -> dict[str, float]:
    """The split's metric; ``recorder`` (optional) also keeps per-image outputs (copernicus_bench.per_sample).

    Returns ``global`` and ``per_batch`` on the loader's (native) targets and ``paper``: the per-batch value
    on ``Batch.paper_target`` (the reference's resolution), or ``per_batch`` when there is none.
    """
    head.eval()
    metric = create_metric(card)
    paper_metric = create_metric(card)
    has_paper = False
    for batch in batches:
        if card.is_dense and batch.paper_target is not None:
            has_paper = True
            main, small = _dense_logits(head, batch.maps,
                                        [tuple(batch.target.shape[-2:]), tuple(batch.paper_target.shape[-2:])])
            paper_metric.update(_metric_pred(card, small).float().cpu(), batch.paper_target.cpu())
        else:
            main, _ = _forward(card, head, batch)
        pred, target = _metric_pred(card, main).float().cpu(), batch.target.cpu()
        metric.update(pred, target)
        if recorder is not None:
            recorder.update(pred, target)
    out = metric.compute()
    out["paper"] = paper_metric.compute()["per_batch"] if has_paper else out["per_batch"]
    return out


def better(card: TaskCard, new: float, old: float | None) -> bool:
    if old is None or np.isnan(old):
        return not np.isnan(new)
    if np.isnan(new):
        return False
    return new > old if card.higher_is_better else new < old


def train_probe(card: TaskCard, head: nn.Module, train_source, val_source, test_source, *, epochs: int,
                batch_size: int, lr: float, seed: int, device: torch.device,
                on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> ProbeResult:
    """Train ``head`` for ``epochs``; return the best-validation epoch's test metrics."""
    t0 = time.perf_counter()
    head.to(device)
    rng = np.random.default_rng(seed)
    n_train = len(train_source)
    drop_last = n_train > batch_size  # the reference drops the last train batch; keep one batch on tiny data
    steps = n_train // batch_size if drop_last else 1
    params = [p for p in head.parameters() if p.requires_grad]
    optimizer, scheduler = make_optimizer(card.probe, params, steps_per_epoch=steps, epochs=epochs, lr=lr)
    best_state, best_val, best_epoch, history = None, None, -1, []
    paper_state, paper_val, paper_epoch = None, None, -1
    for epoch in range(epochs):
        head.train()
        total, count = 0.0, 0
        for batch in train_source.train_batches(rng, batch_size, drop_last):
            main, aux = _forward(card, head, batch)
            loss = probe_loss(card, main, aux, _loss_target(card, _train_target(batch)))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler.last_epoch + 1 < scheduler.total_steps:
                scheduler.step()
            total += float(loss.detach()) * main.shape[0]
            count += main.shape[0]
        val = evaluate(card, head, val_source.eval_batches(batch_size))
        record = {"epoch": epoch, "train_loss": total / max(count, 1), "val_global": val["global"],
                  "val_per_batch": val["per_batch"], "val_paper": val["paper"]}
        history.append(record)
        if on_epoch is not None:
            on_epoch(epoch, record)
        if best_state is None or better(card, val["global"], best_val):
            best_val, best_epoch = val["global"], epoch
            best_state = copy.deepcopy(head.state_dict())
        if paper_state is None or better(card, val["paper"], paper_val):  # strict: the first best is kept
            paper_val, paper_epoch = val["paper"], epoch
            paper_state = best_state if best_epoch == epoch else copy.deepcopy(head.state_dict())
    head.load_state_dict(best_state)
    val = evaluate(card, head, val_source.eval_batches(batch_size))
    recorder = PerSampleRecorder.for_card(card)
    test = evaluate(card, head, test_source.eval_batches(batch_size), recorder)
    return ProbeResult(best_epoch=best_epoch, val=val, test=test, history=history,
                       train_seconds=time.perf_counter() - t0,
                       per_sample=recorder.arrays() if recorder is not None else None)
