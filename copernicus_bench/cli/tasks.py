"""``cbench tasks``: the 15 tasks, their facts from the cards, and which splits a data root holds."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tasks", help="list the 15 Copernicus-Bench tasks and which splits are present",
        description="Prints one row per task (paper order): slug, level, sensor, type, metric (↑ higher / ↓ lower is "
                    "better), number of classes, bands, and the splits found under the data root "
                    "(a released zip at the root counts: it is extracted on first use).")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="data root to inspect (default: $CBENCH_DATA_ROOT or ./data)")
    p.set_defaults(func=run)


def _bands(names: tuple[str, ...]) -> str:
    return f"{len(names)}: {', '.join(names)}" if len(names) <= 4 else f"{len(names)}: {names[0]}…{names[-1]}"


def table_rows(root) -> list[list[str]]:
    from ..tasks import list_cards, split_status

    rows = []
    for card in list_cards():
        status = split_status(card, root)
        present = ",".join(s for s, ok in status.items() if ok) or "-"
        rows.append([card.slug, str(card.level), card.sensor.upper(), card.task_type,
                     f"{card.metric} {'↑' if card.higher_is_better else '↓'}",
                     str(card.num_classes) if card.num_classes else "-", _bands(card.band_names), present])
    return rows


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..paths import data_root

    root = data_root(args.data_root)
    headers = ["task", "level", "sensor", "type", "metric", "classes", "bands", f"splits in {root}"]
    print(tabulate(table_rows(root), headers=headers, tablefmt="simple"))
    return 0
