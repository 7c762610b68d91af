"""``cbench sample``: write small Copernicus-Bench datasets in the released on-disk layout."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample",
        help="write a small sample of the 15 tasks in the released data-root layout",
        description="Write synthetic look-alikes of the released Copernicus-Bench files (names, dtypes, "
                    "CRS, split files) under --out, usable as --data-root. One task (EuroSAT-S1) is "
                    "written only as its released zip, so the extraction path is exercised.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="data root to write into")
    p.add_argument("--task", default="all", metavar="T",
                   help="comma-separated task slugs or 'all' (tasks sharing an archive are written together)")
    p.add_argument("--per-split", type=int, default=None, metavar="N",
                   help="samples per split for every task (default: per-task defaults, ≥ 4 per class)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (same seed → identical files)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from copernicus_bench.sampledata import write_sample
    from copernicus_bench.tasks.sample import archives_for, resolve_tasks, sample_size_bytes

    tasks = resolve_tasks(args.task)
    t0 = time.time()
    # capped at the released split sizes, disk checked, built under a temporary name, marked as sample data
    root = write_sample(args.out, tasks=tasks, per_split=args.per_split, seed=args.seed)
    size = sample_size_bytes(root) / 1e6
    print(f"cbench sample: wrote {', '.join(archives_for(tasks))} in {time.time() - t0:.1f} s "
          f"({size:.1f} MB under the root)", file=sys.stderr)
    print(root.resolve())
    return 0
