"""A tqdm bar on stderr, shown on a terminal (or with ``CBENCH_PROGRESS=1``), silent otherwise."""

from __future__ import annotations

import os
import sys


def progress_bar(total: int, desc: str, enabled: bool, unit: str = "img"):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr,
                disable=not enabled or not sys.stderr.isatty() and os.environ.get("CBENCH_PROGRESS") != "1")
