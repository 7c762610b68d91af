"""Per-job CPU seconds of ``cbench demo`` (and optionally a cProfile of the slowest model's jobs).

On a shared machine wall time says little; the CPU seconds each job's process spends (``time.process_time``,
all threads) do. Runs the demo's own jobs (``demo.demo_specs``: tier smoke, 4 samples per split, 1 epoch, the
built-in sample) one after another in this process with a fresh results folder and feature cache, and prints
one line per job, the total per model, and the total of all jobs with the wall time.

    python benchmarks/demo_jobs.py                               # every installed model
    python benchmarks/demo_jobs.py --models copernicus-fm --profile prof.out   # + cProfile of those jobs
    python benchmarks/demo_jobs.py --json timings.json           # per-job seconds for the plan's calibration
"""

from __future__ import annotations

import argparse
import cProfile
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="comma-separated models (default: every installed model)")
    ap.add_argument("--tasks", help="comma-separated task slugs (default: every applicable task)")
    ap.add_argument("--profile", metavar="FILE", help="write a cProfile of all jobs to FILE (pstats format)")
    ap.add_argument("--json", metavar="FILE", help="write the per-job seconds to FILE")
    args = ap.parse_args(argv)

    from copernicus_bench.demo import demo_specs
    from copernicus_bench.models_registry import list_models
    from copernicus_bench.runner import run_one
    from copernicus_bench.tasks.sample import ensure_builtin_sample

    ensure_builtin_sample()
    models = args.models.split(",") if args.models else list_models()
    with tempfile.TemporaryDirectory(prefix="cbench-demo-jobs-") as tmp:
        _, specs = demo_specs(models, Path(tmp) / "results", cache_dir=str(Path(tmp) / "cache"))
        if args.tasks:
            specs = [s for s in specs if s.task in args.tasks.split(",")]
        prof = cProfile.Profile() if args.profile else None
        rows, per_model = [], defaultdict(float)
        wall0 = time.perf_counter()
        for spec in specs:
            c0, w0 = time.process_time(), time.perf_counter()
            if prof:
                prof.enable()
            outcome = run_one(spec, progress=False)
            if prof:
                prof.disable()
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            per_model[spec.model] += cpu
            rows.append({"model": spec.model, "task": spec.task, "status": outcome.status, "cpu_s": round(cpu, 2),
                         "wall_s": round(wall, 2)})
            print(f"{spec.model:20s} {spec.task:16s} {outcome.status:8s} cpu {cpu:7.2f} s  wall {wall:7.2f} s"
                  + (f"  {outcome.message[:80]}" if outcome.status == "failed" else ""), flush=True)
        wall_total = time.perf_counter() - wall0
    if prof:
        prof.dump_stats(args.profile)
    for m, s in per_model.items():
        print(f"total {m:20s} cpu {s:8.1f} s")
    total = sum(per_model.values())
    print(f"all {len(rows)} jobs: cpu {total:.1f} s, wall {wall_total:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"jobs": rows, "cpu_s": total, "wall_s": wall_total}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
