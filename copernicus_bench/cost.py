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
* **encoder images/s** — images passed through the encoder divided by the encode time (reading included);
  absent when every feature came from the cache;
* **wall time** split into read (dataset ``__getitem__`` in this process; 0 with worker processes, whose
  time lands in encode), encode and train, with the peak memory and the device name.

Figures compare only within one device type.
"""

from __future__ import annotations

import copy
import time
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


class TimedDataset(Dataset):
    """Wraps a dataset and adds the time spent in ``__getitem__`` (this process only) to ``seconds``."""

    def __init__(self, base: Dataset) -> None:
        self.base = base
        self.seconds = 0.0

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Any:
        t0 = time.perf_counter()
        try:
            return self.base[i]
        finally:
            self.seconds += time.perf_counter() - t0

    def __getattr__(self, name: str) -> Any:  # split_files(), root, ... of the wrapped dataset
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)


def cost_record(*, encoder_params: int, head_params: int, encoder_flops: int | None, head_flops: int | None,
                images_encoded: int, read_s: float, encode_s: float, train_s: float, total_s: float,
                peak_memory_mb: float, device: str, batch_size: int, resolution: int) -> dict[str, Any]:
    """The result's ``cost`` block (see the module docstring for each figure's convention)."""
    ips = images_encoded / encode_s if images_encoded and encode_s > 0 else None
    return {
        "version": COST_VERSION,
        "encoder_params": int(encoder_params),
        "head_params": int(head_params),
        "encoder_gflops_per_image": None if encoder_flops is None else encoder_flops / 1e9,
        "head_gflops_per_step": None if head_flops is None else head_flops / 1e9,
        "train_batch_size": int(batch_size),
        "resolution": int(resolution),
        "images_encoded": int(images_encoded),
        "encoder_images_per_s": ips,
        "read_s": round(read_s, 3),
        "encode_s": round(max(encode_s - read_s, 0.0), 3),
        "train_s": round(train_s, 3),
        "total_s": round(total_s, 3),
        "peak_memory_mb": peak_memory_mb,
        "device": device,
        "flop_counter": f"torch.utils.flop_counter.FlopCounterMode (torch {torch.__version__})",
    }
