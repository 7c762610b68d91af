"""A tqdm bar on stderr, shown on a terminal (or with ``CBENCH_PROGRESS=1``), silent otherwise.

Encoding bars count images (each flip view of each sample); training bars count epochs and show, after each
epoch, that epoch's mean training loss and the last validation metric (:func:`epoch_callback`).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from typing import Any


def progress_bar(total: int, desc: str, enabled: bool, unit: str = "img"):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr,
                disable=not enabled or not sys.stderr.isatty() and os.environ.get("CBENCH_PROGRESS") != "1")


def epoch_callback(bar: Any, metric: str) -> Callable[[int, dict[str, Any]], None]:
    """``on_epoch(epoch, record)`` for a training bar: one step, postfix ``loss=… val <metric>=…``."""

    def on_epoch(epoch: int, record: dict[str, Any]) -> None:
        postfix = {}
        loss, val = record.get("train_loss"), record.get("val_global")
        if loss is not None and math.isfinite(loss):
            postfix["loss"] = f"{loss:.4g}"
        if val is not None:
            postfix[f"val {metric}"] = f"{val:.4g}"
        bar.set_postfix(postfix, refresh=False)
        bar.update(1)
        bar.refresh()  # every epoch shown, however fast (update alone redraws at most every 0.1 s)

    return on_epoch
