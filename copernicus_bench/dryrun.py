"""``cbench run --dry-run``: the jobs, which are done already, and a rough time and disk estimate per job.

Nothing is built, trained or written: each job is resolved (card, adapter, applicability, input pipeline)
and its finished result looked up by the adapter's cheap identity token. Disk is the feature cache a job
would add: pooled features (classification) or four maps (dense), fp16, assuming a ViT-B width of 768 and
one token per ``kernel_size`` pixels — rough by design, as is the time (``progress.estimate_seconds``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO

from .errors import CbenchError

WIDTH = 768  # assumed embedding width for the disk estimate


def check_writable(out: str | os.PathLike) -> None:
    """``out`` exists and is writable, or could be created: checked without creating anything."""
    path = Path(out).absolute()
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise CbenchError(f"results folder {out} is not writable (nor creatable under {probe}); pass a writable --out DIR")


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def feature_bytes(card, tier: str, limit: int | None, resolution: int) -> int:
    """fp16 bytes of one job's cached features (train: 4 flip views; val, test: 1)."""
    sizes = dict(card.split_sizes) if getattr(card, "split_sizes", None) else {}
    n = {s: min(limit, sizes.get(s, limit)) if limit else sizes.get(s, 0) for s in ("train", "val", "test")}
    images = (4 * n["train"] + n["val"] + n["test"]) * card.num_dates
    per = WIDTH * (4 * (resolution // max(card.kernel_size, 1)) ** 2 if card.is_dense else 1)
    return 2 * per * images


def dry_run(specs: list, stream: IO[str] | None = None) -> int:
    """Print the plan (to ``stream``, default the current ``sys.stderr``); returns 0."""
    stream = stream if stream is not None else sys.stderr
    import dataclasses
    import tempfile

    from tabulate import tabulate

    from .job import NotApplicable, finished_by_token, identity_token, resolve
    from .progress import estimate_seconds, fmt_seconds

    rows, total_s, total_b = [], 0.0, 0
    scratch = tempfile.TemporaryDirectory(prefix="cbench-dry-run-")  # resolving must not create --out
    for spec in specs:
        exists = Path(spec.out_dir).is_dir()
        job = resolve(spec.validate() if exists else dataclasses.replace(spec, out_dir=scratch.name).validate())
        if isinstance(job, NotApplicable):
            rows.append([spec.model, spec.task, spec.seed, "not applicable", "", "", job.reason[:60]])
            continue
        token = identity_token(job)
        done = finished_by_token(job, token) if token is not None and exists else None
        card = job.card
        secs = estimate_seconds("dense" if card.is_dense else "classification", spec.tier, job.limit,
                                job.epochs, num_dates=card.num_dates)
        disk = feature_bytes(card, spec.tier, job.limit, job.pipeline.resolution)
        if done:
            rows.append([spec.model, spec.task, spec.seed, "done (skipped)", "0:00", "0 B", str(done)])
            continue
        total_s += secs
        total_b += disk
        rows.append([spec.model, spec.task, spec.seed, "to run" if token is not None else "to run (or done:"
                     " known only after building)", fmt_seconds(secs), _human(disk), ""])
    scratch.cleanup()
    print(tabulate(rows, headers=["model", "task", "seed", "status", "time (rough)", "feature cache", "note"],
                   tablefmt="simple"), file=stream)
    print(f"cbench run --dry-run: {len(specs)} job(s), {sum(r[3].startswith('to run') for r in rows)} to run, "
          f"about {fmt_seconds(total_s)} on 2 CPU cores and {_human(total_b)} of feature cache; nothing was run",
          file=stream)
    return 0
