"""Train the paper's probe on frozen features and pick the best-validation epoch (docs/protocol.md).

Classification: linear head (``ln-bn-linear`` or ``linear``), SGD + OneCycle, CE or multilabel soft-margin.
Dense tasks: UPerNet + auxiliary FCN head (0.4), AdamW + OneCycle; CE with the ignore index for
segmentation / change detection; NaN-masked L1 on z-scored targets for regression. The epoch with the best
validation metric (global) is kept and scored on the test split, both ``global`` and ``per_batch``.

The same run also gives ``paper``, the value as the reference computes it: dense targets nearest-resized
(cv2 rule) to the encoder's input resolution (the probe trains on those, as the reference), the epoch with
the best *per-batch* validation value at that resolution (first best kept, as Lightning's
``ModelCheckpoint``), and that epoch's per-batch test value there. A second best state is kept for it.

Why a plain loop rather than Lightning's ``Trainer`` (which ``cbench pretrain`` uses): the heads train on
feature sources (cached flip views or on-the-fly encoding), not on a dataloader through the encoder; one run
keeps two best states in memory under two selection rules (a ``ModelCheckpoint`` monitors one value and
writes files); per-sample outputs are recorded for the leaderboard's intervals; a non-finite loss or metric
stops the job with one line (:mod:`copernicus_bench.guards`). Lightning's rules that matter are reproduced
and pinned: first best kept, NaN worst (``tests/test_parity_selection.py``), OneCycle stepped per iteration.
No speed claim is made against Lightning.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cards import TaskCard
from .features import Batch
from .guards import NonFiniteError, check_loss, check_metric, check_train_size, has_valid_target
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
    """Main-head logits at each size (one decode for a bare UPerNet, which resizes bilinearly as its
    ``forward``; a wrapped head is called once per distinct size)."""
    if isinstance(head, UPerNetProbe):
        dec = head.decode_head(head.neck(maps))
        return [F.interpolate(dec, size=s, mode="bilinear", align_corners=False) for s in sizes]
    done: dict[tuple[int, ...], Tensor] = {}
    for s in sizes:
        if s not in done:
            done[s] = head(maps, s)[0]
    return [done[s] for s in sizes]


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


@dataclass(frozen=True)
class HeadOptions:
    """How the probe head runs (issue 13: the heads are most of the benchmark's FLOPs).

    ``precision``: ``fp32`` (default, the paper-compatible one) or ``bf16`` (autocast around the head's
    forward, training and evaluation; an override of the result identity). ``channels_last``: NHWC memory
    layout for the dense head's convolutions and inputs (``None`` = on CUDA only; layout does not change
    the maths). ``compile``: run the head through ``torch.compile``.
    """

    precision: str = "fp32"
    channels_last: bool | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"head precision {self.precision!r} is unknown; use fp32 or bf16")


class HeadRunner(nn.Module):
    """Calls ``head`` under the options: autocast, channels-last inputs, optional compiled forward.

    ``head`` stays the module whose ``state_dict`` is kept (a compiled wrapper prefixes its keys).
    Outputs come back as float32, so losses and metrics see the same dtype either way.
    """

    def __init__(self, head: nn.Module, options: HeadOptions, device: torch.device) -> None:
        super().__init__()
        self.head, self.options, self.device_type = head, options, device.type
        self.channels_last = options.channels_last if options.channels_last is not None else device.type == "cuda"
        if self.channels_last:
            head.to(memory_format=torch.channels_last)
        self._fn = torch.compile(head) if options.compile else head

    def _layout(self, x):
        if isinstance(x, Tensor):
            return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.ndim == 4 else x
        if isinstance(x, list | tuple):
            return type(x)(self._layout(v) for v in x)
        return x

    def forward(self, *args):
        args = tuple(self._layout(a) for a in args)
        if self.options.precision == "bf16":
            with torch.autocast(self.device_type, dtype=torch.bfloat16):
                out = self._fn(*args)
        else:
            out = self._fn(*args)
        if isinstance(out, tuple):
            return tuple(o.float() if isinstance(o, Tensor) else o for o in out)
        return out.float()


def _train_step(card: TaskCard, run, batch: Batch, optimizer, scheduler, epoch: int, total: float,
                count: int) -> tuple[float, int]:
    """One optimizer step; a batch with nothing to learn from (every pixel ignored, every target NaN) is
    skipped, and a non-finite loss on a learnable batch stops the job with one line."""
    target = _train_target(batch)
    if not has_valid_target(card, target):
        return total, count
    main, aux = _forward(card, run, batch)
    loss = probe_loss(card, main, aux, _loss_target(card, target))
    check_loss(card, loss.detach(), epoch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if scheduler.last_epoch + 1 < scheduler.total_steps:
        scheduler.step()
    return total + float(loss.detach()) * main.shape[0], count + main.shape[0]


def train_probe(card: TaskCard, head: nn.Module, train_source, val_source, test_source, *, epochs: int,
                batch_size: int, lr: float, seed: int, device: torch.device,
                on_epoch: Callable[[int, dict[str, float]], None] | None = None,
                head_options: HeadOptions | None = None) -> ProbeResult:
    """Train ``head`` for ``epochs``; return the best-validation epoch's test metrics."""
    t0 = time.perf_counter()
    head.to(device)
    run = HeadRunner(head, head_options or HeadOptions(), device)
    rng = np.random.default_rng(seed)
    n_train = len(train_source)
    check_train_size(card, n_train)  # BatchNorm needs two samples: one line, not an internal error
    drop_last = n_train > batch_size  # the reference drops the last train batch; keep one batch on tiny data
    steps = n_train // batch_size if drop_last else 1
    params = [p for p in head.parameters() if p.requires_grad]
    optimizer, scheduler = make_optimizer(card.probe, params, steps_per_epoch=steps, epochs=epochs, lr=lr)
    best_state, best_val, best_epoch, history = None, None, -1, []
    paper_state, paper_val, paper_epoch = None, None, -1
    for epoch in range(epochs):
        head.train()
        total, count = 0.0, 0
        stage = "train"
        try:
            for batch in train_source.train_batches(rng, batch_size, drop_last):
                total, count = _train_step(card, run, batch, optimizer, scheduler, epoch, total, count)
            stage = "val"
            val = evaluate(card, run, val_source.eval_batches(batch_size))
        except NonFiniteError as exc:  # features encoded on the fly: name the split and epoch
            raise exc.at(split=stage, epoch=epoch) from None
        check_metric(card, val["global"], "val", epoch)
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
    if best_epoch != epochs - 1:  # else the last epoch's validation already scored this very state
        val = evaluate(card, run, val_source.eval_batches(batch_size))
    recorder = PerSampleRecorder.for_card(card)
    try:
        test = evaluate(card, run, test_source.eval_batches(batch_size), recorder)
    except NonFiniteError as exc:
        raise exc.at(split="test") from None
    check_metric(card, test["global"], "test", None)
    val["paper"] = paper_val
    if paper_epoch != best_epoch:  # the reference's epoch differs from ours: score its state too
        head.load_state_dict(paper_state)
        test["paper"] = evaluate(card, run, test_source.eval_batches(batch_size))["paper"]
        head.load_state_dict(best_state)
    return ProbeResult(best_epoch=best_epoch, val=val, test=test, history=history,
                       train_seconds=time.perf_counter() - t0, paper_epoch=paper_epoch,
                       per_sample=recorder.arrays() if recorder is not None else None)
