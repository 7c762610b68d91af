"""Uncertainty for the leaderboard: test-set bootstrap, rank intervals and a stratified-bootstrap IQM.

* **Per result / per cell** — a percentile bootstrap over *test images* (Efron & Tibshirani 1993): resample
  the N test images with replacement ``n_boot`` times (default 1000), recompute the metric from the stored
  per-sample outputs (:mod:`copernicus_bench.per_sample`), and take the 2.5 % and 97.5 % quantiles. A cell
  with several seeds averages the seeds inside each resample (the same resampled images for every seed), so
  its CI is that of the seed mean. The CI covers test-set sampling only: it is conditional on the trained
  probes, and the spread over seeds is reported beside it (mean ± std).
* **Ranks that admit ties** — every column of a comparable group is scored on the *same* resampled images
  (a paired bootstrap), ranked in each resample, and the 2.5–97.5 % quantiles of its rank give a 95 % rank
  interval. Two columns whose intervals overlap are not separable at that level; a strict 1..N is never
  shown where the data cannot tell the models apart.
* **Across tasks** — per task, a min-max normalised score per seed (0 = the random baseline, 1 = the best
  column), then the interquartile mean (IQM) over all (task, seed) scores, with a *stratified* bootstrap
  (each task resampled on its own), as recommended by Agarwal et al., "Deep Reinforcement Learning at the
  Edge of the Statistical Precipice", NeurIPS 2021 (rliable) and used by GEO-Bench (Lacoste et al., NeurIPS
  2023). Our strata resample test images (and seeds) inside each task.

Every random choice comes from ``numpy.random.default_rng`` seeded by ``(seed, task)``: the same seed gives
the same intervals.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .per_sample import weighted_metric

DEFAULT_N_BOOT = 1000
ALPHA = 0.05


def task_rng(seed: int, task: str) -> np.random.Generator:
    """The generator for one task's resamples (independent of column order or other tasks)."""
    digest = hashlib.sha256(f"{seed}/{task}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def resample_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) counts: how often each of n items is drawn in each resample (with replacement)."""
    idx = rng.integers(0, n, size=(n_boot, n))
    flat = (idx + np.arange(n_boot)[:, None] * n).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def percentile_ci(samples: np.ndarray, alpha: float = ALPHA) -> tuple[float, float]:
    """The (alpha/2, 1 − alpha/2) percentile interval of finite bootstrap samples."""
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.quantile(s, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))


def bootstrap_seeds(metric: str, seeds: Sequence[dict[str, np.ndarray]], weights: np.ndarray,
                    ignore_index: int | None = None) -> np.ndarray:
    """(n_boot, n_seeds) metric values, every seed scored on the same resampled test images."""
    return np.stack([weighted_metric(metric, a, weights, ignore_index) for a in seeds], axis=1)


def bootstrap_ci(metric: str, arrays: dict[str, np.ndarray], n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                 ignore_index: int | None = None, alpha: float = ALPHA) -> tuple[float, float]:
    """95 % percentile CI of one result's metric over test-image resamples."""
    n = int(arrays["batch_sizes"].sum())
    w = resample_counts(n, n_boot, np.random.default_rng(seed))
    return percentile_ci(weighted_metric(metric, arrays, w, ignore_index), alpha)


def ranks_desc(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Row-wise ranks (1 = best) of (B, C) values; ties share their mean rank; NaN ranks last."""
    v = np.where(np.isnan(values), -np.inf if higher_is_better else np.inf, values)
    key = -v if higher_is_better else v
    better = (key[:, None, :] < key[:, :, None]).sum(-1)
    equal = (key[:, None, :] == key[:, :, None]).sum(-1)  # includes the column itself
    return better + (equal + 1) / 2.0


def rank_intervals(boot_means: np.ndarray, higher_is_better: bool, alpha: float = ALPHA) -> list[tuple[int, int]]:
    """Per column, the 95 % interval of its rank over paired resamples (B, C) of column values."""
    r = ranks_desc(boot_means, higher_is_better)
    lo = np.floor(np.quantile(r, alpha / 2, axis=0, method="lower")).astype(int)
    hi = np.ceil(np.quantile(r, 1 - alpha / 2, axis=0, method="higher")).astype(int)
    return [(int(a), int(b)) for a, b in zip(lo, hi)]


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50 % (scipy's ``trim_mean(x, 0.25)``), NaNs dropped."""
    v = np.sort(np.asarray(values, dtype=np.float64), axis=axis)
    v = np.moveaxis(v, axis, -1)
    out = np.empty(v.shape[:-1])
    for idx in np.ndindex(out.shape):
        row = v[idx]
        row = row[np.isfinite(row)]
        n = row.size
        if n == 0:
            out[idx] = np.nan
            continue
        cut = int(0.25 * n)
        out[idx] = row[cut:n - cut].mean()
    return out


def normalise(values: np.ndarray, higher_is_better: bool, anchor: np.ndarray | None, floor: float) -> np.ndarray:
    """Min-max per row: 0 at ``anchor`` (or the row's worst), 1 at the row's best, clipped below at ``floor``.

    ``values`` is (B, C, S) (resample, column, seed) or (C, S); the best and worst use seed means."""
    v = np.asarray(values, dtype=np.float64)
    means = np.nanmean(v, axis=-1)
    best = np.nanmax(means, axis=-1) if higher_is_better else np.nanmin(means, axis=-1)
    if anchor is None:
        low = np.nanmin(means, axis=-1) if higher_is_better else np.nanmax(means, axis=-1)
    else:
        low = anchor
    span = best - low
    with np.errstate(invalid="ignore", divide="ignore"):
        span = np.where(np.abs(span) > 1e-12, span, np.nan)
        score = (v - low[..., None, None]) / span[..., None, None]
    return np.maximum(score, floor)


@dataclass
class Aggregate:
    """IQM of normalised scores over (task, seed) per column, with a stratified-bootstrap CI and ranks."""

    columns: list[str]
    point: dict[str, float]
    ci: dict[str, tuple[float, float]]
    rank_interval: dict[str, tuple[int, int]]
    tasks: list[str]


def aggregate_iqm(per_task: dict[str, tuple[np.ndarray, np.ndarray, bool, int | None]], columns: list[str],
                  floor: float, alpha: float = ALPHA) -> Aggregate:
    """``per_task[slug] = (point (C, S), boot (B, C, S), higher_is_better, anchor column index or None)``.

    NaN marks a missing seed. The point estimate uses the observed values; the bootstrap normalises inside
    each resample (the best column and the anchor move with it), so the CI carries the normalisation's
    own uncertainty.
    """
    tasks = sorted(per_task)
    points, boots = [], []
    for slug in tasks:
        point, boot, higher, anchor_idx = per_task[slug]
        pm = np.nanmean(point, axis=-1)
        p_anchor = None if anchor_idx is None else np.asarray(pm[anchor_idx])
        points.append(normalise(point[None], higher, None if p_anchor is None else p_anchor[None], floor)[0])
        b_anchor = None if anchor_idx is None else np.nanmean(boot[:, anchor_idx], axis=-1)
        boots.append(normalise(boot, higher, b_anchor, floor))
    point_all = np.concatenate(points, axis=-1)  # (C, tasks*S)
    boot_all = np.concatenate(boots, axis=-1)  # (B, C, tasks*S)
    point_iqm = iqm(point_all)
    boot_iqm = iqm(boot_all)  # (B, C)
    ranks = rank_intervals(boot_iqm, True, alpha)
    return Aggregate(columns=columns, point={c: float(point_iqm[i]) for i, c in enumerate(columns)},
                     ci={c: percentile_ci(boot_iqm[:, i], alpha) for i, c in enumerate(columns)},
                     rank_interval={c: ranks[i] for i, c in enumerate(columns)}, tasks=tasks)
