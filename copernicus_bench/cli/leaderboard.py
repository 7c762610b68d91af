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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..leaderboard import (
        DEFAULT_TOLERANCE,
        leaderboard_from_dir,
        markdown_table,
        summary_markdown,
        write_leaderboard,
    )

    tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    lb = leaderboard_from_dir(args.results, metric=args.metric, compare_paper=args.compare_paper,
                              tolerance=tolerance)
    paths = write_leaderboard(lb, args.out)
    for note in lb.notes:
        if note.startswith("**"):
            print(note.strip("*"), file=sys.stderr)
    print(markdown_table(lb))
    print()
    print(summary_markdown(lb))
    n = sum(1 for r in lb.rows for c in r.cells.values() if c.status == "value")
    print(f"cbench: {len(lb.columns)} column(s), {n} filled cell(s); wrote {paths['markdown']}, {paths['csv'].name}, "
          f"{paths['json'].name}, {paths['chart'].name}", file=sys.stderr)
    return 0
