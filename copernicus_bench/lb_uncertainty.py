"""The leaderboard's uncertainty: per-cell bootstrap CIs, per-task rank intervals, an IQM aggregate.

Reads each result's verified per-sample outputs (:mod:`copernicus_bench.per_sample`) and resamples test
images as :mod:`copernicus_bench.stats` describes. Columns of one comparable group that share a task's test
set (same number of test images) are scored on the same resampled images (paired), so rank intervals
reflect how separable the models are on that test set.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from . import stats
from .per_sample import PerSampleError, load_per_sample, weighted_metric

if TYPE_CHECKING:
    from .leaderboard import Column, GroupSummary, Row

RECOMPUTE_TOLERANCE = 1e-6


def _arrays_for(result: dict[str, Any], metric: str, ignore: int | None) -> tuple[dict[str, np.ndarray] | None, str]:
    """A result's per-sample arrays, or None and the reason (the file is then not used)."""
    try:
        arrays = load_per_sample(result)
    except PerSampleError as exc:
        return None, str(exc)
    n = int(arrays["batch_sizes"].sum())
    try:
        value = float(weighted_metric(metric, arrays, np.ones((1, n)), ignore)[0])
    except (KeyError, ValueError) as exc:
        return None, f"per-sample outputs of {result.get('_path')} are incomplete ({exc})"
    stored = result["metric"].get("global")
    if stored is None or not math.isclose(value, float(stored), rel_tol=RECOMPUTE_TOLERANCE, abs_tol=RECOMPUTE_TOLERANCE):
        return None, (f"per-sample outputs of {result.get('_path')} give {value:.6g}, not the stored global "
                      f"{stored}: excluded")
    return arrays, ""


def attach_uncertainty(rows: list[Row], columns: list[Column], bucket: dict[tuple[str, str], list[dict]],
                       metric_key: str, n_boot: int, seed: int) -> list[str]:
    """Fill ``cell.ci``/``cell.boot``/``cell.rank_interval`` (or ``cell.ci_note``); return refused files."""
    excluded: list[str] = []
    for row in rows:
        card = row.card
        weights_by_n: dict[int, np.ndarray] = {}
        rng = stats.task_rng(seed, card.slug)
        for col in columns:
            cell = row.cells[col.id]
            if col.kind == "reported" or cell.status != "value":
                continue
            if n_boot <= 0:
                cell.ci_note = "no bootstrap (--bootstrap 0)"
                continue
            if metric_key != "global":
                cell.ci_note = "CIs are computed for the global metric only"
                continue
            rs = [r for r in sorted(bucket.get((card.slug, col.id), []), key=lambda r: int(r["seed"]))
                  if int(r["seed"]) in cell.seeds]
            arrays, reasons = [], []
            ignore = card.ignore_index if card.metric == "miou" else None
            for r in rs:
                a, why = _arrays_for(r, card.metric, ignore)
                if a is None:
                    reasons.append(why)
                    if "no per-sample outputs" not in why:
                        excluded.append(why)
                        warnings.warn(why, stacklevel=2)
                else:
                    arrays.append(a)
            if reasons:
                cell.ci_note = reasons[0] if len(reasons) == 1 else f"{reasons[0]} (and {len(reasons) - 1} more)"
                continue
            n = int(arrays[0]["batch_sizes"].sum())
            if any(int(a["batch_sizes"].sum()) != n for a in arrays):
                cell.ci_note = "seeds were scored on test sets of different sizes: no joint CI"
                continue
            if n not in weights_by_n:
                weights_by_n[n] = stats.resample_counts(n, n_boot, rng)
            boot = stats.bootstrap_seeds(card.metric, arrays, weights_by_n[n], ignore)
            cell.boot = boot
            cell.ci = stats.percentile_ci(np.nanmean(boot, axis=1))
        _rank_intervals(row, columns)
    return excluded


def _rank_intervals(row: Row, columns: list[Column]) -> None:
    for group in dict.fromkeys(c.group for c in columns):
        cols = [c for c in columns if c.group == group and row.cells[c.id].status == "value"]
        booted = [c for c in cols if row.cells[c.id].boot is not None]
        if len(booted) != len(cols) or len(cols) < 2:
            continue  # ranks over a subset would mislead; the cells say why they have no CI
        sizes = {row.cells[c.id].boot.shape[0] for c in cols}
        if len(sizes) != 1:
            continue
        means = np.stack([np.nanmean(row.cells[c.id].boot, axis=1) for c in cols], axis=1)
        for c, iv in zip(cols, stats.rank_intervals(means, row.card.higher_is_better)):
            row.cells[c.id].rank_interval = iv


def summarise_uncertainty(summary: GroupSummary, ranked: list[Column], rows: list[Row]) -> None:
    """IQM over (task, seed) of normalised scores with a stratified bootstrap CI and rank intervals."""
    from .leaderboard import NORM_FLOOR, _anchor_column

    if not summary.tasks or not ranked:
        summary.iqm_note = "no task has a result in every column"
        return
    if ranked[0].kind == "reported":
        summary.iqm_note = "reported columns: published means only, no per-sample outputs"
        return
    by_slug = {r.card.slug: r for r in rows}
    anchor = _anchor_column(ranked)
    per_task = {}
    for slug in summary.tasks:
        row = by_slug[slug]
        cells = [row.cells[c.id] for c in ranked]
        if any(c.boot is None for c in cells):
            missing = next(c for c in ranked if row.cells[c.id].boot is None)
            summary.iqm_note = (f"no CI: '{missing.label}' has no usable per-sample outputs on {slug} "
                                f"({row.cells[missing.id].ci_note or 'see the cell'})")
            break
        seeds = max(len(c.values) for c in cells)
        point = np.full((len(cells), seeds), np.nan)
        boot = np.full((cells[0].boot.shape[0], len(cells), seeds), np.nan)
        for i, c in enumerate(cells):
            point[i, :len(c.values)] = c.values
            boot[:, i, :c.boot.shape[1]] = c.boot
        per_task[slug] = (point, boot, row.card.higher_is_better,
                          None if anchor is None else ranked.index(anchor))
    else:
        agg = stats.aggregate_iqm(per_task, [c.id for c in ranked], NORM_FLOOR)
        summary.iqm, summary.iqm_ci, summary.rank_interval = agg.point, agg.ci, agg.rank_interval
        return
    # a CI-less aggregate still gets its point IQM from the observed values
    pts = {}
    for slug in summary.tasks:
        row = by_slug[slug]
        cells = [row.cells[c.id] for c in ranked]
        seeds = max(len(c.values) for c in cells)
        point = np.full((len(cells), seeds), np.nan)
        for i, c in enumerate(cells):
            point[i, :len(c.values)] = c.values
        pts[slug] = point
    scores = [stats.normalise(pts[s][None], by_slug[s].card.higher_is_better,
                              None if anchor is None else np.nanmean(pts[s][ranked.index(anchor)])[None],
                              NORM_FLOOR)[0] for s in summary.tasks]
    allv = stats.iqm(np.concatenate(scores, axis=-1))
    summary.iqm = {c.id: float(allv[i]) for i, c in enumerate(ranked)}
