"""Progress across the jobs of a sweep: an overall bar with an ETA, or JSON lines for logs and CI.

Modes (``--progress``): ``bar`` (default on a terminal: one line redrawn in place), ``lines`` (default
otherwise: one plain line per event), ``json`` (one JSON object per line, machine-readable) and ``quiet``
(nothing). The first line is printed when the sweep starts, so a person sees something at once.

The ETA comes from per-job estimates (:func:`estimate_seconds`) corrected by what the finished jobs took:
remaining estimate × (actual seconds / estimated seconds of the finished jobs).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

MODES = ("bar", "lines", "json", "quiet")

#: Seconds one demo job (smoke, 4 samples per split, 1 epoch) took per kind: the mean ``timings.total_s`` of
#: the 76 finished jobs of one ``cbench demo`` run on the development machine (2 CPU cores, heavily shared:
#: 34 classification jobs 5.6 s, 42 dense 14.1 s). Only for the plan and the ETA, which corrects itself.
SMOKE_SECONDS = {"classification": 5.6, "dense": 14.1}
#: CPU seconds of one ``cbench demo`` job (tier smoke, ``demo.DEMO_LIMIT`` samples per split, 1 epoch,
#: random-weight models at ``config=tiny``): the mean ``time.process_time`` per job of all demo jobs, measured
#: by ``benchmarks/demo_jobs.py`` with one thread (106 jobs of 8 models: 46 classification 0.15 s, 60 dense
#: 4.85 s; 298 s in all). The demo's plan sums these.
DEMO_CPU_SECONDS = {"classification": 0.15, "dense": 4.85}
#: Full-tier jobs: an order-of-magnitude guess per training sample and epoch (not measured: no full run on
#: this project's machines); the ETA replaces it with what finished jobs took.
FULL_SECONDS_PER_SAMPLE = {"classification": 0.05, "dense": 0.5}


def default_mode() -> str:
    return "bar" if sys.stderr.isatty() else "lines"


def fmt_seconds(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def estimate_seconds(kind: str, tier: str, limit: int | None, epochs: int | None, n_train: int | None = None,
                     num_dates: int = 1) -> float:
    """A rough wall-clock estimate of one job on 2 CPU cores (``kind``: classification or dense)."""
    kind = "dense" if kind == "dense" else "classification"
    if tier == "smoke":
        base = SMOKE_SECONDS[kind]
        scale = ((limit or 16) / 4) ** 0.5 if limit else 2.0  # measured at 4 samples; fixed costs dominate
        return base * num_dates * scale * (2.0 if epochs is None else max(epochs, 1)) ** 0.5
    n = limit or n_train or 1000
    return FULL_SECONDS_PER_SAMPLE[kind] * n * (epochs or 50) * num_dates


@dataclass
class SweepProgress:
    """Reports a sweep's jobs: call :meth:`start`, then :meth:`finished` once per job."""

    estimates: Sequence[float]
    mode: str = field(default_factory=default_mode)
    stream: IO[str] = field(default_factory=lambda: sys.stderr)
    label: str = "cbench"
    _t0: float = 0.0
    _done: int = 0
    _done_est: float = 0.0
    _statuses: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"progress mode {self.mode!r}; use one of {', '.join(MODES)}")

    @property
    def total(self) -> int:
        return len(self.estimates)

    def eta(self, elapsed: float) -> float:
        remaining = sum(self.estimates[self._done:])
        if self._done and self._done_est > 0:
            remaining *= elapsed / self._done_est
        return remaining

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._emit({"event": "start", "jobs": self.total, "estimate_s": round(sum(self.estimates), 1)},
                   f"{self.label}: {self.total} job(s), estimated {fmt_seconds(sum(self.estimates))}")

    def finished(self, outcome: Any) -> None:
        """One job ended (``outcome``: a RunOutcome)."""
        self._done_est += self.estimates[self._done] if self._done < self.total else 0.0
        self._done += 1
        self._statuses[outcome.status] = self._statuses.get(outcome.status, 0) + 1
        elapsed = time.perf_counter() - self._t0
        eta = self.eta(elapsed) if self._done < self.total else 0.0
        s = outcome.spec
        pct = 100 * self._done / max(self.total, 1)
        width = 24
        filled = int(width * self._done / max(self.total, 1))
        bar = "#" * filled + "-" * (width - filled)
        text = (f"{self.label}: [{bar}] {self._done}/{self.total} ({pct:.0f} %) elapsed {fmt_seconds(elapsed)} "
                f"ETA {fmt_seconds(eta)} | last: {s.model} {s.task} {outcome.status}"
                + (f" {outcome.metric:.3f}" if outcome.metric is not None else "")
                + (f": {outcome.message}" if outcome.status == "failed" else ""))
        self._emit({"event": "job", "index": self._done, "jobs": self.total, "model": s.model, "task": s.task,
                    "seed": s.seed, "status": outcome.status, "metric": outcome.metric,
                    "elapsed_s": round(elapsed, 1), "eta_s": round(eta, 1)}, text, redraw=True)

    def close(self) -> None:
        elapsed = time.perf_counter() - self._t0
        counts = ", ".join(f"{v} {k}" for k, v in sorted(self._statuses.items()))
        if self.mode == "bar":
            self.stream.write("\n")
        self._emit({"event": "end", "jobs": self.total, "elapsed_s": round(elapsed, 1), "statuses": self._statuses},
                   f"{self.label}: {self.total} job(s) in {fmt_seconds(elapsed)} ({counts or 'none'})")

    def _emit(self, record: dict[str, Any], text: str, redraw: bool = False) -> None:
        if self.mode == "quiet":
            return
        if self.mode == "json":
            self.stream.write(json.dumps(record) + "\n")
        elif self.mode == "bar" and redraw:
            cols = os.get_terminal_size(self.stream.fileno()).columns if self.stream.isatty() else 200
            self.stream.write("\r" + text[: max(cols - 1, 20)].ljust(min(cols - 1, 200)))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
