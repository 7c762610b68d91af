"""``cbench check-task CARD``: every problem of your own task (card and files) in one pass."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("check-task", help="validate your own task card and its files (all problems at once)",
                       description="Checks the card (schema, defaults) and the folder layout of "
                                   "copernicus_bench.tasks.custom: split files, images (bands, CRS, one size), "
                                   "masks (size, class values) or labels.csv; prints one line per problem.")
    p.add_argument("card", help="your task card (YAML) in the task folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..tasks.custom import check_task

    card, problems = check_task(args.card)
    for line in problems:
        print(f"cbench check-task: {line}", file=sys.stderr)
    if problems:
        print(f"cbench check-task: {len(problems)} problem(s) in {args.card}", file=sys.stderr)
        return 1
    assert card is not None
    sizes = ", ".join(f"{k} {v}" for k, v in card.split_sizes.items())
    print(f"{card.slug}: {card.task_type}, {card.num_bands} bands ({','.join(card.band_names)}), "
          f"{card.num_classes} classes, metric {card.metric}, probe {card.probe.head}; samples: {sizes}; OK")
    return 0
