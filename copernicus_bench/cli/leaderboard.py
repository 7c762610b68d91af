"""``cbench leaderboard``: tables (markdown, CSV, JSON) and a chart from a results folder."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "leaderboard", help="build the leaderboard (README.md, CSV, JSON, chart) from result files",
        description="Tasks as rows (grouped by the paper's three levels), one column per (model, weights source); "
                    "mean ± std over seeds with (n=seeds); '-' = not applicable, '…' = missing. Prints the "
                    "markdown table to stdout.")
    p.add_argument("--results", default="results", metavar="DIR", help="folder of result JSON files (default: results)")
    p.add_argument("--out", default="leaderboard", metavar="DIR", help="output folder (default: leaderboard)")
    p.add_argument("--metric", choices=("global", "per_batch"), default="global",
                   help="which stored value to tabulate (default: global, accumulated over the whole split)")
    p.add_argument("--compare-paper", action="store_true",
                   help="show the paper's number beside each cell and flag differences (compares per_batch)")
    p.add_argument("--tolerance", type=float, default=None, metavar="X",
                   help="extra allowed |ours - paper| beyond the paper's std, in metric units (default: 1.0)")
    p.add_argument("--html", action="store_true", help="also write index.html, one self-contained page")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="test-set bootstrap resamples for CIs and rank intervals (default 1000; 0 = none)")
    p.add_argument("--bootstrap-seed", type=int, default=0, metavar="S", help="seed of the resamples (default 0)")
    p.add_argument("--no-reported", action="store_true",
                   help="leave out the reported (published) columns: the paper's and reported.yaml's")
    p.add_argument("--reported", action="append", default=[], metavar="FILE",
                   help="a further reported-numbers YAML file (format: copernicus_bench/reported.yaml); repeatable")
    p.add_argument("--overlap", default=None, metavar="V[,V]",
                   help="keep only models whose card's pretraining-overlap flag is one of none,possible,yes,unknown")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import CbenchError
    from ..leaderboard import (
        DEFAULT_TOLERANCE,
        leaderboard_from_dir,
        markdown_table,
        summary_markdown,
        write_leaderboard,
    )

    tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    if args.bootstrap < 0:
        raise CbenchError(f"--bootstrap {args.bootstrap}: must be >= 0 (0 = no CIs)")
    overlap = [o.strip() for o in args.overlap.split(",") if o.strip()] if args.overlap else None
    lb = leaderboard_from_dir(args.results, metric=args.metric, compare_paper=args.compare_paper,
                              tolerance=tolerance, reported=not args.no_reported, reported_files=args.reported,
                              overlap=overlap, n_boot=args.bootstrap, boot_seed=args.bootstrap_seed)
    paths = write_leaderboard(lb, args.out, html=args.html)
    from ..fractions import plot_fraction_curves  # score vs training fraction, when fractions exist

    paths.update(plot_fraction_curves(args.results, args.out))
    for note in lb.notes:
        if note.startswith("**"):
            print(note.strip("*"), file=sys.stderr)
    print(markdown_table(lb))
    print()
    print(summary_markdown(lb))
    n = sum(1 for r in lb.rows for c in r.cells.values() if c.status == "value")
    names = ", ".join(p.name for k, p in paths.items() if k != "markdown")
    print(f"cbench: {len(lb.columns)} column(s), {n} filled cell(s); wrote {paths['markdown']}, {names}",
          file=sys.stderr)
    for why in lb.excluded:
        print(f"cbench: refused {why}", file=sys.stderr)
    return 0
