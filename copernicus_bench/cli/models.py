"""``cbench models``: installed encoders, the tasks each applies to, and whether its weights are present."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list installed models (built-in and plug-ins) and their tasks")
    p.add_argument("--weights-dir", help="checkpoints folder (default ~/.cache/copernicus-bench/weights)")
    p.set_defaults(func=run)


def model_rows(weights_dir: str | None) -> list[list[str]]:
    from .. import paths
    from ..errors import CbenchError
    from ..models_registry import create_model, list_models
    from ..tasks import list_cards

    cards = list_cards()
    rows = []
    for name in list_models():
        try:
            adapter = create_model(name, weights_dir=str(paths.weights_dir(weights_dir)), seed=0)
        except CbenchError as exc:
            rows.append([name, f"unavailable: {exc}", "", ""])
            continue
        applies = [c.slug for c in cards if adapter.applicability(c) is None]
        missing = [c.slug for c in cards if c.slug not in applies]
        tasks = f"{len(applies)}/{len(cards)}" + (f" (not: {', '.join(missing)})" if missing else "")
        rows.append([name, adapter.description, tasks, adapter.weights_status()])
    return rows


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    rows = model_rows(args.weights_dir)
    print(tabulate(rows, headers=["model", "description", "tasks", "weights"], tablefmt="github",
                   maxcolwidths=[None, 40, 60, 50]))
    return 0
