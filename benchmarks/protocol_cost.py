"""Cost of each protocol on the built-in sample: seconds per job and ratios to the cached linear probe.

    python benchmarks/protocol_cost.py [--task eurosat-s1] [--config base|tiny] [--epochs N] [--limit N]

Runs, in a fresh results and cache folder: ``cached`` (cold, then warm), ``knn`` and ``--train-fraction 0.5``
(both on the warm cache), ``paper`` and ``finetune`` with the ``random`` ViT, then ``supervised-vit-s16`` and
``-b16``. Prints each job's total / encode / train seconds and its total as a ratio to the warm cached probe.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="eurosat-s1")
    ap.add_argument("--config", default="base", choices=("base", "tiny"))
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CBENCH_CACHE_DIR"] = os.path.join(tmp, "features")
        from copernicus_bench.runner import RunSpec, run_one

        model_args = (("config", args.config),) if args.config != "base" else ()
        base = dict(task=args.task, tier="smoke", sample=True, out_dir=os.path.join(tmp, "results"),
                    epochs=args.epochs, limit=args.limit, model_args=model_args)
        jobs = [("cached (cold)", dict(model="random")), ("cached (warm)", dict(model="random", overwrite=True)),
                ("knn", dict(model="random", protocol="knn")),
                ("fraction 0.5", dict(model="random", train_fraction=0.5)),
                ("paper", dict(model="random", protocol="paper")),
                ("finetune", dict(model="random", protocol="finetune")),
                ("supervised-vit-s16", dict(model="supervised-vit-s16")),
                ("supervised-vit-b16", dict(model="supervised-vit-b16"))]
        rows = []
        for name, extra in jobs:
            t0 = time.perf_counter()
            out = run_one(RunSpec(**{**base, **extra}), progress=False)
            wall = time.perf_counter() - t0
            if out.status != "done":
                print(f"{name}: {out.status}: {out.message}", file=sys.stderr)
                return 1
            import json

            timings = json.load(open(out.path))["timings"]
            rows.append((name, wall, timings["encode_s"], timings["train_s"], out.metric))
        ref = rows[1][1]
        print(f"{args.task}, smoke tier, built-in sample, random/supervised ViT config={args.config}")
        print(f"{'job':<20} {'total s':>8} {'encode s':>9} {'train s':>8} {'metric':>8} {'× cached warm':>14}")
        for name, wall, enc, train, metric in rows:
            print(f"{name:<20} {wall:8.2f} {enc:9.2f} {train:8.2f} {metric:8.2f} {wall / ref:14.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
