"""``cbench pretrain-sample``: write tiny Copernicus-Pretrain WebDataset shards (release format, small sizes)."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain-sample",
        help="write tiny Copernicus-Pretrain shards (example-000000.tar, ...) for 'cbench pretrain'",
        description="Write WebDataset tar shards with the members, dtypes and json ids of the released "
                    "Copernicus-Pretrain shards (torchgeo's CopernicusPretrain reads them). Spatial sizes are "
                    "smaller than the release unless --full-size (the reader does not depend on them).",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the shards into")
    p.add_argument("--shards", type=int, default=2, metavar="N", help="number of shards (default 2)")
    p.add_argument("--grids-per-shard", type=int, default=4, metavar="M", help="grid cells per shard (default 4)")
    p.add_argument("--patches", type=int, default=2, metavar="P", help="local S1/S2 patches per grid (default 2)")
    p.add_argument("--dates", type=int, default=2, metavar="T", help="dates per modality (default 2)")
    p.add_argument("--full-size", action="store_true",
                   help="released spatial sizes (S1/S2 264, S3 96, DEM 960; ~7 MB per grid and date)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (same seed → identical shards)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from copernicus_bench.errors import CbenchError
    from copernicus_bench.models.copernicusfm.pretrain_sample import shard_size_mb, write_sample_shards

    for opt in ("shards", "grids_per_shard", "patches", "dates"):
        if getattr(args, opt) < 1:
            raise CbenchError(f"--{opt.replace('_', '-')} {getattr(args, opt)}: must be ≥ 1")
    paths = write_sample_shards(args.out, args.shards, args.grids_per_shard, args.seed, args.patches, args.dates,
                                args.full_size)
    print(f"cbench pretrain-sample: wrote {len(paths)} shards ({shard_size_mb(paths):.1f} MB each) to {args.out}",
          file=sys.stderr)
    for p in paths:
        print(p)
    return 0
