"""What the feature cache buys: the cost of a frozen-encoder probe with and without it, in one run.

Classification task (default eurosat-s1):
  (a) the encoder passes the cache needs (each flip view of each train image once, val and test once);
  (b) the full cached probe (a + the linear head's epochs on cached features);
  (c) the same probe re-encoding train and val every epoch, as the reference does (``--protocol paper``).
  Printed: b/a (aim ≤ 1.3) and c/b (aim ≥ 10 at 50 epochs).
Dense task (default dfc2020-s1): the time split between encoding and UPerNet head training, and the head's
achieved FLOP/s (forward + backward ≈ 3 × forward FLOPs per training sample, forward only for evaluation),
with the cache and with on-the-fly encoding (``--cache-budget 0``).

Runs on the built-in sample unless ``--data-root`` is given. Every run uses a fresh feature cache.

    python benchmarks/probe_cost.py                      # ViT-B random encoder, smoke resolution, 50 epochs
    python benchmarks/probe_cost.py --tier full --limit 16   # paper resolution (slow on CPU)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from copernicus_bench.runner import RunSpec, run_one


def _run(spec: RunSpec) -> dict:
    outcome = run_one(spec, progress=False)
    if outcome.status != "done":
        sys.exit(f"probe_cost: {spec.task} {spec.protocol} failed: {outcome.message}")
    return json.loads(Path(outcome.path).read_text())


def head_flops(result: dict, embed_dim: int) -> float:
    """FLOPs the UPerNet head executed in a run (train fwd+bwd, per-epoch val, final val+test)."""
    from copernicus_bench.probes.upernet import flops_per_sample
    from copernicus_bench.tasks import get_card

    card = get_card(result["task"])
    res = result["pipeline"]["resolution"]
    grid = res // card.kernel_size
    per = flops_per_sample(embed_dim, grid, grid, 1 if card.task_type == "regression" else card.num_classes)
    n = result["config"]["samples"]
    epochs = result["config"]["epochs"]
    batch = result["config"]["batch_size"]
    train_seen = (n["train"] // batch) * batch if n["train"] > batch else n["train"]
    return per * (3 * train_seen * epochs + n["val"] * (epochs + 1) + n["test"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="random")
    p.add_argument("--model-args", default="", help="e.g. config=tiny")
    p.add_argument("--task", default="eurosat-s1")
    p.add_argument("--dense-task", default="dfc2020-s1")
    p.add_argument("--tier", default="smoke", choices=("smoke", "full"))
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--limit", type=int, default=32)
    p.add_argument("--dense-epochs", type=int, default=5)
    p.add_argument("--data-root")
    p.add_argument("--device")
    args = p.parse_args(argv)
    model_args = tuple(tuple(kv.split("=", 1)) for kv in args.model_args.split(",") if kv)

    with tempfile.TemporaryDirectory() as tmp:
        def spec(task: str, name: str, **kw) -> RunSpec:
            return RunSpec(model=args.model, task=task, tier=args.tier, data_root=args.data_root,
                           sample=args.data_root is None, cache_dir=f"{tmp}/cache-{name}", out_dir=f"{tmp}/{name}",
                           device=args.device, limit=args.limit, model_args=model_args, **kw)

        cached = _run(spec(args.task, "cls-cached", epochs=args.epochs))
        paper = _run(spec(args.task, "cls-paper", epochs=args.epochs, protocol="paper"))
        a = cached["timings"]["encode_s"]
        b = a + cached["timings"]["train_s"]
        c = paper["timings"]["encode_s"] + paper["timings"]["train_s"]
        n = cached["config"]["samples"]
        print(f"classification: {args.task}, model {args.model}, tier {args.tier} "
              f"({cached['pipeline']['resolution']} px), {args.epochs} epochs, "
              f"{n['train']}/{n['val']}/{n['test']} samples, device {cached['device']}")
        print(f"  (a) encoder passes for the cache (4 views train, 1 val, 1 test): {a:8.2f} s")
        print(f"  (b) full cached probe (a + {args.epochs} head epochs):          {b:8.2f} s")
        print(f"  (c) re-encoding train+val every epoch (reference):      {c:8.2f} s")
        print(f"  b/a = {b / a:.2f}   (aim <= 1.3)")
        print(f"  c/b = {c / b:.1f}   (aim >= 10 at 50 epochs)")

        dense_cached = _run(spec(args.dense_task, "dense-cached", epochs=args.dense_epochs))
        dense_fly = _run(spec(args.dense_task, "dense-fly", epochs=args.dense_epochs, cache_budget_gb=0.0))
        from copernicus_bench.runner import make_adapter

        embed_dim = _embed_dim(make_adapter(spec(args.dense_task, "probe")), args.dense_task, args.tier)
        print(f"dense: {args.dense_task}, {args.dense_epochs} epochs, resolution "
              f"{dense_cached['pipeline']['resolution']} px")
        for label, r in (("cached", dense_cached), ("on the fly", dense_fly)):
            enc, head = r["timings"]["encode_s"], r["timings"]["train_s"]
            flops = head_flops(r, embed_dim)
            print(f"  {label:10s}: encode {enc:7.2f} s ({enc / (enc + head):4.0%}), head {head:7.2f} s "
                  f"({head / (enc + head):4.0%}), head {flops / head / 1e9:6.1f} GFLOP/s")
    return 0


def _embed_dim(adapter, task: str, tier: str) -> int:
    from copernicus_bench.tasks import get_card

    card = get_card(task)
    return adapter.build(card, adapter.input_pipeline(card, tier), 0).embed_dim


if __name__ == "__main__":
    sys.exit(main())
