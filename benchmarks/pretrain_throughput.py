"""Samples/s of one Copernicus-FM pretraining step (forward + backward + AdamW step, all 8 modalities).

Synthetic batches with the pipeline's shapes (no data loading), tiny and base configs, CPU and CUDA when
present (bf16 autocast on CUDA, fp32 on CPU, as ``cbench pretrain``). The base CPU run is kept short (batch 1,
a couple of steps) because one step takes tens of seconds on a laptop CPU. Distillation teachers are off
(their cost is one extra unmasked encoder pass per teacher plus a ViT-B/14 forward).

    python benchmarks/pretrain_throughput.py [--steps N] [--size-scale F] [--configs tiny,base]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time

import torch

from copernicus_bench.models.copernicusfm.mae import DECODER_CONFIGS, CopernicusFMMAE
from copernicus_bench.models.copernicusfm.model import build_model
from copernicus_bench.models.copernicusfm.pretrain import param_groups
from copernicus_bench.models.copernicusfm.pretrain_data import scaled_modalities, step_views
from copernicus_bench.models.copernicusfm.varembed import ALIASES, random_embedding


def synthetic_batch(batch: int, mods, device) -> dict[str, torch.Tensor]:
    out = {}
    for m in mods:
        channels = {"s1": 2, "s2": 13, "s3": 21}.get(m.name, 1)
        out[m.name] = torch.randn(batch, channels, m.size, m.size, device=device)
        out[f"meta_{m.name}"] = torch.tensor([[10.0, 45.0, 19000.0, 0.03]] * batch, device=device)
    return out


def measure(config: str, device: str, batch: int, steps: int, warmup: int, size_scale: float) -> float:
    torch.manual_seed(0)
    mods = scaled_modalities(size_scale)
    model = CopernicusFMMAE(build_model(config), **DECODER_CONFIGS[config]).to(device)
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4, betas=(0.9, 0.95))
    var = {k: random_embedding(k, 0).to(device) for k in ALIASES}
    data = synthetic_batch(batch, mods, device)
    gen = torch.Generator().manual_seed(0)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext())

    def step() -> None:
        with autocast:
            loss = model(step_views(data, mods, gen), data, var)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="tiny,base")
    ap.add_argument("--steps", type=int, default=3, help="timed steps (CPU base uses min(steps, 2))")
    ap.add_argument("--size-scale", type=float, default=1.0, help="1 = the paper's input sizes")
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        for config in args.configs.split(","):
            cpu_base = device == "cpu" and config == "base"
            batch = 1 if cpu_base else (4 if device == "cpu" else 32)
            steps = min(args.steps, 2) if cpu_base else args.steps
            sps = measure(config, device, batch, steps, warmup=1, size_scale=args.size_scale)
            rows.append((config, device, batch, steps, sps))
    print(f"Copernicus-FM pretraining step (8 modalities, MAE, no teachers), size scale {args.size_scale}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print("| config | device | batch | timed steps | samples/s | s/step |\n|---|---|---|---|---|---|")
    for config, device, batch, steps, sps in rows:
        print(f"| {config} | {device} | {batch} | {steps} | {sps:.2f} | {batch / sps if sps else math.nan:.2f} |")


if __name__ == "__main__":
    main()
