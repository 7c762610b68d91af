"""Write a set of files so that a failure leaves the previous set in place (leaderboard outputs).

``with staged_files(out) as stage:`` — the caller writes every file into ``stage`` (a temporary folder
inside ``out``); when the block ends without an error each file is renamed into ``out`` (renames need no
space, so a full disk fails while staging, before anything is replaced); on any error the staging folder is
removed and ``out`` keeps its old files, e.g. no new ``README.md`` beside a missing ``scores.png``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_files(out: str | os.PathLike) -> Iterator[Path]:
    final = Path(out)
    final.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=final, prefix=".staging-"))
    try:
        yield stage
        for path in sorted(stage.rglob("*"), key=lambda p: len(p.parts)):
            if path.is_dir():
                (final / path.relative_to(stage)).mkdir(parents=True, exist_ok=True)
        for path in stage.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                os.replace(path, final / path.relative_to(stage))
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def restage(paths: dict[str, Path], stage: Path, final: Path) -> dict[str, Path]:
    """The paths a writer returned inside ``stage``, as they are after the renames into ``final``."""
    return {k: final / Path(p).relative_to(stage) if Path(p).is_relative_to(stage) else Path(p)
            for k, p in paths.items()}
