"""``cbench download``: fetch the released Copernicus-Bench files into a data root."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "download", help="download the released task data (HF wangyi111/Copernicus-Bench, pinned revision)",
        description="Fetch each task's released file(s) from the Hugging Face dataset wangyi111/Copernicus-Bench at "
                    "the revision torchgeo 0.8.1 pins: resumable (.part + HTTP Range), md5-verified, renamed into "
                    "place only when complete, then extracted to <data root>/<folder>. Tasks sharing an archive "
                    "download it once. Offline: place the named file in the data root by hand.")
    p.add_argument("--task", required=True, metavar="T", help="'all' or comma-separated task slugs (see 'cbench tasks')")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="where the data goes (default: $CBENCH_DATA_ROOT or ./data)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..download import download_task, released_files
    from ..paths import data_root
    from ..tasks import resolve_tasks

    root = data_root(args.data_root)
    cards = resolve_tasks(args.task)
    seen: set[str] = set()
    for card in cards:
        files = [f for f in released_files(card) if f.url not in seen]
        seen.update(f.url for f in files)
        if files:
            download_task(card, root, files=files)
        print(f"cbench: {card.slug}: ready in {root / card.archive_dir}", file=sys.stderr)
    return 0
