"""Bounded, atomic ``cbench sample`` and the marker that keeps generated data from passing for real data.

``write_sample`` caps ``--per-split`` at the released split sizes (the cards' ``split_sizes``), checks the
free disk space against an upper bound of what it will write, builds the whole sample under a temporary
sibling name and renames it into place, and writes a marker file (``.cbench-sample-complete``, the built-in
sample's own marker) into the root. The runner calls :func:`data_is_sample`: results computed on a root
with the marker are recorded as sample data even when it was passed with ``--data-root``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import CbenchError
from .umask import match_umask

log = logging.getLogger(__name__)


def _marker_name() -> str:
    from .tasks.sample import MARKER

    return MARKER


def is_sample_root(root: str | os.PathLike | None) -> bool:
    """Whether ``root`` was written by ``cbench sample`` (or is the built-in sample)."""
    return root is not None and (Path(root) / _marker_name()).is_file()


def data_is_sample(spec: Any) -> bool:
    """A job runs on sample data: ``--sample``, or a ``--data-root`` that carries the sample marker."""
    if getattr(spec, "sample", False):
        return True
    from . import paths

    try:
        return is_sample_root(paths.data_root(getattr(spec, "data_root", None)))
    except OSError:
        return False


def cap_per_split(slugs: list[str], per_split: int | None) -> int | None:
    """``per_split`` capped at the smallest released split of the tasks asked for (a warning says so)."""
    if per_split is None:
        return None
    from .tasks import get_card

    sizes = {slug: min(get_card(slug).split_sizes.values()) for slug in slugs if get_card(slug).split_sizes}
    if not sizes:
        return per_split
    slug, cap = min(sizes.items(), key=lambda kv: kv[1])
    if per_split > cap:
        log.warning("--per-split %d is more than the released %s has in its smallest split (%d); capped to %d",
                    per_split, slug, cap, cap)
        return cap
    return per_split


def estimate_bytes(slugs: list[str], per_split: int | None) -> int:
    """An upper bound of the bytes a sample will take (native size, float32, every split)."""
    from .tasks import get_card
    from .tasks.sample import DEFAULT_PER_SPLIT, archives_for

    defaults = DEFAULT_PER_SPLIT
    total = 0
    for slug in slugs:
        card = get_card(slug)
        n = per_split or max(defaults.get(a, 8) for a in archives_for([slug]))
        side = card.native_size or card.resolution or 256
        per = side * side * (len(card.bands) + 1) * 4 * max(card.num_dates, 1)
        total += per * n * 3
    return total


def write_sample(out: str | os.PathLike, tasks: str | list[str] | None = None, per_split: int | None = None,
                 seed: int = 0) -> Path:
    """``cbench sample``: generate under a temporary sibling, then rename into ``out`` with the marker."""
    from .tasks.sample import SAMPLE_VERSION, archives_for, generate_sample, resolve_tasks

    slugs = resolve_tasks(tasks)
    per_split = cap_per_split(slugs, per_split)
    final = Path(out)
    if final.exists() and not final.is_dir():
        raise CbenchError(f"--out {final}: is a file, not a folder; pass a folder path for the sample")
    parent = final.parent if str(final.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(parent).free
    except OSError as exc:
        raise CbenchError(f"--out {final}: cannot create it ({exc.strerror}); pass a writable folder") from None
    need = estimate_bytes(slugs, per_split)
    if need > free:
        raise CbenchError(f"--out {final}: the sample needs up to {need / 2**30:.2f} GiB but {parent} has "
                          f"{free / 2**30:.2f} GiB free; free space, lower --per-split or pick fewer --task")
    t0 = time.time()
    try:
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{final.name}.sample-"))
        match_umask(tmp)
    except OSError as exc:
        raise CbenchError(f"--out {final}: {parent} is not writable ({exc.strerror}); pass a writable folder") \
            from None
    try:
        generate_sample(tmp, tasks=slugs, per_split=per_split, seed=seed)
        marker = {"made_by": "cbench sample", "version": SAMPLE_VERSION, "seed": seed, "per_split": per_split,
                  "archives": archives_for(slugs), "seconds": round(time.time() - t0, 1)}
        (tmp / _marker_name()).write_text(json.dumps(marker))
        if not final.exists() or (final.is_dir() and not any(final.iterdir())):
            if final.exists():
                final.rmdir()
            os.replace(tmp, final)
        else:  # an existing data root: each archive (folder or zip) replaced by one rename, the marker last
            for item in sorted(tmp.iterdir(), key=lambda p: p.name == _marker_name()):
                dest = final / item.name
                if dest.is_dir() and not dest.is_symlink():
                    aside = Path(tempfile.mkdtemp(dir=final, prefix=f".{item.name}.old-"))
                    os.replace(dest, aside / item.name)
                    os.replace(item, dest)
                    shutil.rmtree(aside, ignore_errors=True)
                else:
                    os.replace(item, dest)
    except OSError as exc:
        from .cli import _os_error_line

        raise CbenchError(_os_error_line(exc) or f"--out {final}: writing the sample failed ({exc})") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
