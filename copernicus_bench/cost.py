"""Cost figures of one result: parameters, FLOPs, throughput, wall-time split, peak memory, device.

Conventions (stated in the leaderboard's cost table):

* **parameters** — every parameter of the built, frozen task encoder (``numel`` summed once, buffers
  excluded), and of the probe head separately;
* **encoder GFLOPs per image** — ``torch.utils.flop_counter.FlopCounterMode`` over one forward pass of
  one test image at the task's input resolution (all dates for multi-date tasks, maps included for dense
  tasks); FlopCounterMode counts 2 FLOPs per multiply-add of matmuls and convolutions (and attention), so
  element-wise work is not in it;
* **head GFLOPs per training step** — forward + loss + backward of a copy of the probe head on one batch of
  the training batch size (the optimizer step is not counted);
* **encoder images/s** — up to 16 test images (already read) encoded as one batch after the FLOP-counting
  pass has warmed up, divided by that wall time;
* **wall time** split into read (dataset ``__getitem__`` in this process, the loaders' own resizing included;
  None with ``--num-workers`` > 0, whose reads land in encode), encode (feature building less reading, or
  on-the-fly encoding) and train (head epochs), with the peak memory and the device name.

Figures compare only within one device type. The FLOP counts and images/s are measured once per process
for each (model code and options, task, pipeline, head, batch size, device): the later seeds of a sweep
reuse them (they depend on shapes, not on the seed's weights) instead of re-running those passes.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import Dataset
from torch.utils.flop_counter import FlopCounterMode

if TYPE_CHECKING:
    from .cards import TaskCard
    from .encoder import InputPipeline, TaskEncoder

COST_VERSION = "1"


def count_parameters(module: nn.Module) -> int:
    """All parameters, frozen or not, each counted once."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


def flops_of(fn) -> int:
    """FLOPs of calling ``fn()`` as FlopCounterMode counts them."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


@torch.no_grad()
def encoder_flops_per_image(encoder: TaskEncoder, pipeline: InputPipeline, card: TaskCard, item: dict,
                            device: torch.device) -> int:
    """FLOPs of encoding one sample (``item`` from the dataset) the way the runner encodes it."""
    from .features import encode_batch

    image, meta = item["image"][None], item["meta"][None]
    return flops_of(lambda: encode_batch(encoder, pipeline, card, image, meta, card.is_dense, device))


def head_flops_per_step(card: TaskCard, head: nn.Module, batch: Any) -> int:
    """FLOPs of one training step's forward + loss + backward of a *copy* of ``head`` on ``batch``."""
    from .probes.train_utils import probe_loss
    from .probing import _forward, _loss_target

    head = copy.deepcopy(head).train()

    def step() -> None:
        main, aux = _forward(card, head, batch)
        loss = probe_loss(card, main, aux, _loss_target(card, batch.target))
        loss.backward()

    return flops_of(step)


def head_flops_per_batch(card: TaskCard, head: nn.Module, batch: Any, batch_size: int) -> int:
    """Head FLOPs of one training step at ``batch_size``, counted on two samples of ``batch`` and scaled:
    every op FlopCounterMode counts (convolutions, matmuls) is linear in the batch, so this is exact, and
    a dense head's 16-image step is not run in full just to be counted (BatchNorm needs two samples)."""
    import dataclasses

    n = min(2, batch.target.shape[0])
    small = dataclasses.replace(batch, **{f.name: _first(getattr(batch, f.name), n)
                                          for f in dataclasses.fields(batch)})
    return head_flops_per_step(card, head, small) * batch_size // n


def _first(value: Any, n: int) -> Any:
    if isinstance(value, torch.Tensor):
        return value[:n]
    if isinstance(value, list):
        return [_first(v, n) for v in value]
    return value


class ReadTimer:
    """Adds up the time the job's datasets spend in ``__getitem__`` (reading and the loader's own steps).

    Each dataset instance gets a subclass of its own class whose ``__getitem__`` is timed, so ``isinstance``
    checks, attributes and cache keys are unchanged; :meth:`remove` restores the classes. Only in-process
    reads are seen: with ``--num-workers`` > 0 the reads happen in workers and ``seconds`` is None.
    """

    def __init__(self, datasets: Iterable[Dataset], in_process: bool) -> None:
        self._total = 0.0
        self.in_process = in_process
        self._patched: list[tuple[Dataset, type]] = []
        if not in_process:
            return
        timer = self
        for ds in datasets:
            cls = type(ds)

            def timed(self_, i, _orig=cls.__getitem__):
                t0 = time.perf_counter()
                try:
                    return _orig(self_, i)
                finally:
                    timer._total += time.perf_counter() - t0

            ds.__class__ = type(cls.__name__, (cls,), {"__getitem__": timed, "__module__": cls.__module__})
            self._patched.append((ds, cls))

    @property
    def seconds(self) -> float | None:
        return self._total if self.in_process else None

    def remove(self) -> None:
        for ds, cls in self._patched:
            ds.__class__ = cls
        self._patched.clear()


#: (FLOPs per image, head FLOPs per step, images/s) by :func:`_memo_key`: measured once per process, so the
#: later seeds of a sweep (same shapes, other weights) do not repeat the FLOP-counting and timing passes
_MEASURED: dict[tuple, tuple[int, int, float]] = {}


def _memo_key(job: Any, encoder: TaskEncoder, splits: Any) -> tuple:
    from .code_identity import adapter_code

    return (job.spec.model, adapter_code(job.adapter)["hash"], repr(job.adapter.options()), job.card.digest(),
            job.pipeline.digest(), job.adapter.head, encoder.embed_dim, job.batch_size, str(job.device),
            len(splits.datasets["test"]), type(encoder).__qualname__)


def measure_cost(job: Any, encoder: TaskEncoder, splits: Any, sources: dict[str, Any], timings: Any,
                 read_s: float | None, reads_during_training: bool = False) -> dict[str, Any]:
    """The result's ``cost`` block, measured after training (nothing here changes the result)."""
    from .features import encode_batch
    from .probing import build_head
    from .provenance import device_name, peak_memory_mb

    card, device = job.card, job.device
    with torch.random.fork_rng(devices=[]):
        head = build_head(card, encoder.embed_dim, job.adapter.head).to(device)
    memo_key = _memo_key(job, encoder, splits)
    if memo_key not in _MEASURED:  # FLOPs and throughput depend on shapes, not on the seed's weights
        test = splits.datasets["test"]
        items = [test[i] for i in range(min(len(test), 16))]
        enc_flops = encoder_flops_per_image(encoder, job.pipeline, card, items[0], device)
        images = torch.stack([it["image"] for it in items])
        metas = torch.stack([it["meta"] for it in items])
        with torch.no_grad():
            t0 = time.perf_counter()
            encode_batch(encoder, job.pipeline, card, images, metas, card.is_dense, device)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            enc_s = time.perf_counter() - t0
        batch = next(iter(sources["test"].eval_batches(job.batch_size)))
        _MEASURED[memo_key] = (enc_flops, head_flops_per_batch(card, head, batch, job.batch_size),
                               len(items) / enc_s)
    enc_flops, head_flops, images_per_s = _MEASURED[memo_key]
    return cost_record(encoder_params=count_parameters(encoder), head_params=count_parameters(head),
                       encoder_flops=enc_flops, head_flops=head_flops, images_per_s=images_per_s,
                       read_s=read_s, encode_s=timings.encode_s, train_s=timings.train_s, total_s=timings.total_s,
                       reads_during_training=reads_during_training,
                       peak_memory_mb=round(peak_memory_mb(device), 1), device=device_name(device),
                       batch_size=job.batch_size, resolution=job.pipeline.resolution)


def cost_record(*, encoder_params: int, head_params: int, encoder_flops: int | None, head_flops: int | None,
                images_per_s: float | None, read_s: float | None, encode_s: float, train_s: float, total_s: float,
                peak_memory_mb: float, device: str, batch_size: int, resolution: int,
                reads_during_training: bool = False) -> dict[str, Any]:
    """The result's ``cost`` block (see the module docstring for each figure's convention). Reads happen
    while building cached features (taken out of encode) or, on the fly, during the epochs (out of train)."""
    r = read_s or 0.0
    if reads_during_training:
        train_s = max(train_s - r, 0.0)
    else:
        encode_s = max(encode_s - r, 0.0)
    return {
        "version": COST_VERSION,
        "encoder_params": int(encoder_params),
        "head_params": int(head_params),
        "encoder_gflops_per_image": None if encoder_flops is None else encoder_flops / 1e9,
        "head_gflops_per_step": None if head_flops is None else head_flops / 1e9,
        "train_batch_size": int(batch_size),
        "resolution": int(resolution),
        "encoder_images_per_s": images_per_s,
        "read_s": None if read_s is None else round(read_s, 3),
        "encode_s": round(encode_s, 3),
        "train_s": round(train_s, 3),
        "total_s": round(total_s, 3),
        "peak_memory_mb": peak_memory_mb,
        "device": device,
        "flop_counter": f"torch.utils.flop_counter.FlopCounterMode (torch {torch.__version__})",
    }
