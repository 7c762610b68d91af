"""``cbench models``: installed encoders, the tasks each applies to, and whether its weights are present."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list installed models (built-in and plug-ins) and their tasks")
    p.add_argument("--weights-dir", help="checkpoints folder (default ~/.cache/copernicus-bench/weights)")
    p.add_argument("--card", metavar="NAME", help="print the model card of NAME (licences, pretraining data and "
                                                  "sensors, citation, release, benchmark overlap)")
    p.set_defaults(func=run)


def model_rows(weights_dir: str | None) -> list[list[str]]:
    from .. import paths
    from ..errors import CbenchError
    from ..models_registry import create_model, list_models
    from ..tasks import list_cards

    cards = list_cards()
    rows = []
    for name in list_models():
        try:  # a broken plug-in is one row, never the end of the listing
            adapter = create_model(name, weights_dir=str(paths.weights_dir(weights_dir)), seed=0)
            applies = [c.slug for c in cards if adapter.applicability(c) is None]
            missing = [c.slug for c in cards if c.slug not in applies]
            tasks = f"{len(applies)}/{len(cards)}" + (f" (not: {', '.join(missing)})" if missing else "")
            row = [name, str(adapter.description), tasks, str(adapter.weights_status())]
        except CbenchError as exc:
            row = [name, f"unavailable: {exc}", "", ""]
        except Exception as exc:  # noqa: BLE001 - description / weights_status of a plug-in
            row = [name, f"unavailable: {type(exc).__name__}: {str(exc).strip()[:160]}", "", ""]
        rows.append(row)
    return rows


def print_card(name: str, weights_dir: str | None) -> int:
    from .. import paths
    from ..models_registry import create_model

    card = create_model(name, weights_dir=str(paths.weights_dir(weights_dir)), seed=0).model_card()
    width = max(len(k) for k, _ in card.lines())
    for key, text in card.lines():
        print(f"{key:<{width}}  {text}")
    return 0


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    if getattr(args, "card", None):
        return print_card(args.card, args.weights_dir)
    rows = model_rows(args.weights_dir)
    print(tabulate(rows, headers=["model", "description", "tasks", "weights"], tablefmt="github",
                   maxcolwidths=[None, 40, 60, 50]))
    return 0
