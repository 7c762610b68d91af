"""``cbench cache ls|clear|verify``: the feature cache's entries (size, task, model, created), removal, full check.

``ls`` lists every entry (feature entries and decoded-input entries); ``clear`` removes all of them or those
of ``--model`` / ``--task``; ``verify`` re-hashes every array of every entry (what a run checks only at the
edges of each file) and names each bad entry, exiting 1 when there is one (``--remove`` deletes them).
"""

from __future__ import annotations

import argparse
import sys

from ..errors import CbenchError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="list, clear or verify the feature cache",
                       description="Manage the feature cache (--cache-dir, default ~/.cache/copernicus-bench/"
                                   "features, $CBENCH_CACHE_DIR).")
    csub = p.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    for name, help_ in (("ls", "list entries: size, task, model, split, created"),
                        ("clear", "remove all entries, or those of --model / --task"),
                        ("verify", "re-hash every entry in full; name the bad ones (exit 1 if any)")):
        c = csub.add_parser(name, help=help_, description=help_)
        c.add_argument("--cache-dir", help="feature cache (default ~/.cache/copernicus-bench/features, "
                                           "$CBENCH_CACHE_DIR)")
        c.add_argument("--model", help="only entries of this model")
        c.add_argument("--task", help="only entries of this task")
        if name == "verify":
            c.add_argument("--remove", action="store_true", help="remove the bad entries (rebuilt on next use)")
        c.set_defaults(func=globals()[f"_{name}"])


def _selected(args: argparse.Namespace):
    from .. import cache_admin, paths

    root = paths.cache_dir(args.cache_dir)
    if not root.exists():
        return root, []
    if not root.is_dir():
        raise CbenchError(f"--cache-dir {root} is not a folder; pass the feature cache folder")
    return root, cache_admin.select(cache_admin.entries(root), args.model, args.task)


def _ls(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..cache_admin import human

    root, found = _selected(args)
    rows = [[e.key[:12], e.kind, e.model or "-", e.task, e.split, human(e.bytes), e.created,
             "" if e.complete else "incomplete"] for e in found]
    if rows:
        print(tabulate(rows, headers=["key", "kind", "model", "task", "split", "size", "created", ""],
                       tablefmt="simple"))
    print(f"cbench cache: {len(found)} entr{'y' if len(found) == 1 else 'ies'}, "
          f"{human(sum(e.bytes for e in found))} in {root}", file=sys.stderr)
    return 0


def _clear(args: argparse.Namespace) -> int:
    from ..cache_admin import human, remove

    root, found = _selected(args)
    try:
        for e in found:
            remove(e)
    except OSError as exc:
        raise CbenchError(f"--cache-dir {root}: cannot remove entries ({exc.strerror}: {exc.filename}); "
                          "check the folder's permissions") from None
    what = " of " + " and ".join(f"{k} {v}" for k, v in (("model", args.model), ("task", args.task)) if v) \
        if args.model or args.task else ""
    print(f"cbench cache: removed {len(found)} entr{'y' if len(found) == 1 else 'ies'}{what} "
          f"({human(sum(e.bytes for e in found))}) from {root}", file=sys.stderr)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ..cache_admin import remove, verify

    root, found = _selected(args)
    bad = 0
    for e in found:
        problem = verify(e)
        if problem is None:
            continue
        bad += 1
        print(f"cbench cache: BAD {e.path} ({e.kind}, {e.model or '-'} {e.task} {e.split}): {problem}"
              + ("; removed" if args.remove else ""), file=sys.stderr)
        if args.remove:
            remove(e)
    print(f"cbench cache: verified {len(found)} entr{'y' if len(found) == 1 else 'ies'} in {root}: "
          f"{len(found) - bad} sound, {bad} bad" + ("" if not bad or args.remove else
                                                   " (rebuilt when next used; --remove deletes them now)"),
          file=sys.stderr)
    return 1 if bad else 0
