"""``cbench demo``: every installed model on the built-in generated sample, then the leaderboard."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="run every installed model on a generated sample of all 15 tasks (numbers mean nothing)",
        description="Generates the built-in sample, runs every installed model (released weights when present "
                    "in the weights folder, else random init; nothing is downloaded) on every task it applies "
                    "to at tier smoke, and writes results and a leaderboard into the demo folder. The data are "
                    "generated: the numbers say nothing about the models.")
    p.add_argument("--out", default="demo", metavar="DIR", help="demo folder (default: ./demo)")
    p.add_argument("--models", type=lambda s: [m.strip() for m in s.split(",") if m.strip()], default=None,
                   metavar="A,B", help="only these models (default: every installed model, see 'cbench models')")
    p.add_argument("--launcher", choices=("local", "ray"), default="local",
                   help="run the jobs in this process (default) or as Ray tasks on a local Ray instance")
    p.add_argument("--progress", choices=("bar", "lines", "json", "quiet"), default=None,
                   help="overall progress: bar (terminal default), lines (default otherwise), json lines, quiet")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    report = run_demo(out=args.out, models=args.models, launcher=args.launcher, progress_mode=args.progress)
    return 1 if report.failed else 0
