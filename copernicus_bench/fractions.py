"""Label fractions: deterministic, stratified subsets of a task's training split (``--train-fraction``).

The subset is a pure function of (task type, training labels, fraction, seed, split-file checksum), so two
models — and two runs — with the same ``--train-fraction`` and seed train on exactly the same samples, and the
result stores what defines it (:class:`TrainSubset`). One seeded permutation per split is drawn and every
fraction takes a prefix of it per stratum, so smaller fractions are nested in larger ones
(0.01 ⊂ 0.1 ⊂ 1.0), as GEO-Bench's partitions are.

* **multiclass** — per class: ``floor(f · n_c)`` samples, the remaining ``round(f · n) − Σ floor`` given to
  the classes with the largest remainders (Hamilton's method; ties by class index), so the total is
  ``round(f · n)`` and every class keeps its share. A class left with no sample is an error naming it and
  the fraction that surely keeps every class (``1 / min n_c``).
* **multilabel** — iterative stratification (Sechidis, Tsoumakas & Vlahavas, *On the Stratification of
  Multi-Label Data*, ECML-PKDD 2011) between the subset (share ``f``) and the rest (share ``1 − f``): the
  label with the fewest unassigned samples goes first; each of its samples goes to the side whose remaining
  demand for that label is largest (ties: larger total demand, then the subset). A label present in the
  training split but absent from the subset is an error naming it and the fraction at which the rarest
  label's desired count reaches one sample (``1 / min n_l``).
* **dense** (segmentation, change detection, regression) — by image: ``max(1, round(f · n))`` images
  drawn by the seeded permutation, without per-pixel class balancing (stratifying images by their pixel
  histograms is left undone; with a few hundred images per task in Copernicus-Bench, the image draw is
  the published practice of PANGAEA's ``random`` subsets).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .cards import TaskCard
from .errors import CbenchError

FRACTIONS_VERSION = "1"


@dataclass(frozen=True)
class TrainSubset:
    """A training subset and everything that defines it (stored in the result as ``train_subset``)."""

    fraction: float
    seed: int
    split_checksum: str
    method: str
    indices: tuple[int, ...]
    n_full: int

    @property
    def digest(self) -> str:
        """sha256 (16 hex) of the selected indices: equal digests ⇔ equal subsets."""
        return hashlib.sha256(",".join(map(str, self.indices)).encode()).hexdigest()[:16]

    def record(self) -> dict:
        return {"fraction": self.fraction, "seed": self.seed, "split_checksum": self.split_checksum,
                "method": self.method, "n": len(self.indices), "n_full": self.n_full, "digest": self.digest,
                "version": FRACTIONS_VERSION}


def parse_fractions(value: str) -> list[float]:
    """``"0.01,0.1,1.0"`` → ``[0.01, 0.1, 1.0]``; each must lie in (0, 1] (one clear line otherwise)."""
    out: list[float] = []
    for item in (v.strip() for v in value.split(",")):
        if not item:
            continue
        try:
            f = float(item)
        except ValueError:
            raise CbenchError(f"--train-fraction {item!r} is not a number; use values in (0, 1] like "
                              "0.01,0.1,1.0") from None
        check_fraction(f)
        if f in out:
            raise CbenchError(f"--train-fraction {value!r}: {f} is listed twice; list each fraction once")
        out.append(f)
    if not out:
        raise CbenchError("--train-fraction is empty; use values in (0, 1] like 0.01,0.1,1.0")
    return out


def check_fraction(f: float) -> None:
    if not (isinstance(f, (int, float)) and math.isfinite(f) and 0.0 < f <= 1.0):
        raise CbenchError(f"--train-fraction {f}: a fraction must be > 0 and <= 1 (e.g. 0.01, 0.1, 1.0)")


def split_checksum(file_sums: dict[str, str]) -> str:
    """One checksum of a split from its files' sha256 (name-sorted), so any changed file changes it."""
    blob = "\n".join(f"{k}:{v}" for k, v in sorted(file_sums.items()))
    return hashlib.sha256(blob.encode()).hexdigest()


def _rng(seed: int, checksum: str) -> np.random.Generator:
    digest = hashlib.sha256(f"cbench-fraction:{FRACTIONS_VERSION}:{seed}:{checksum}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def select(card: TaskCard, labels: np.ndarray | None, n: int, fraction: float, seed: int,
           checksum: str) -> TrainSubset:
    """The training subset for ``fraction`` (``labels``: (n,) class indices or (n, K) multi-hot; ignored
    for dense tasks). ``fraction == 1`` is the whole split."""
    check_fraction(fraction)
    rng = _rng(seed, checksum)
    perm = rng.permutation(n)
    if fraction == 1.0:
        return TrainSubset(1.0, seed, checksum, "all", tuple(range(n)), n)
    if card.is_dense:
        k = max(1, int(round(fraction * n)))
        return TrainSubset(fraction, seed, checksum, "by-image", tuple(sorted(int(i) for i in perm[:k])), n)
    assert labels is not None
    if card.task_type == "multilabel":
        idx = _iterative(card, np.asarray(labels) > 0.5, fraction, perm)
        method = "iterative-stratification"
    else:
        idx = _per_class(card, np.asarray(labels).astype(np.int64).reshape(-1), fraction, perm)
        method = "per-class"
    return TrainSubset(fraction, seed, checksum, method, tuple(sorted(int(i) for i in idx)), n)


def _class_name(card: TaskCard, c: int) -> str:
    return card.classes[c] if 0 <= c < len(card.classes) else str(c)


def _per_class(card: TaskCard, labels: np.ndarray, fraction: float, perm: np.ndarray) -> list[int]:
    classes, counts = np.unique(labels, return_counts=True)
    exact = fraction * counts
    take = np.floor(exact).astype(int)
    extra = int(round(fraction * len(labels))) - int(take.sum())
    if extra > 0:
        order = sorted(range(len(classes)), key=lambda i: (-(exact[i] - take[i]), int(classes[i])))
        for i in order[:extra]:
            take[i] += 1
    for c, k, cnt in zip(classes, take, counts):
        if k == 0:
            raise CbenchError(f"--train-fraction {fraction}: class '{_class_name(card, int(c))}' of {card.slug} "
                              f"has {cnt} training sample(s) and gets none; a fraction of at least "
                              f"{_ceil_fraction(1 / counts.min())} keeps every class")
    ordered = labels[perm]
    out: list[int] = []
    for c, k in zip(classes, take):
        out.extend(perm[ordered == c][:k].tolist())
    return out


def _iterative(card: TaskCard, y: np.ndarray, fraction: float, perm: np.ndarray) -> list[int]:
    """Two-fold iterative stratification (Sechidis et al. 2011); returns the subset side's indices."""
    n, k = y.shape
    shares = np.array([fraction, 1.0 - fraction])
    demand_total = shares * n
    demand_label = shares[:, None] * y.sum(0)[None, :].astype(float)
    side = np.full(n, -1)
    pos = np.empty(n, dtype=int)
    pos[perm] = np.arange(n)  # seeded order of samples inside each step
    unassigned = np.ones(n, bool)
    while True:
        remaining = y[unassigned].sum(0)
        active = np.nonzero(remaining)[0]
        if len(active) == 0:
            break
        label = int(active[np.argmin(remaining[active])])  # fewest unassigned samples; ties: lowest index
        members = np.nonzero(unassigned & y[:, label])[0]
        for i in members[np.argsort(pos[members])]:
            d = demand_label[:, label]
            best = np.flatnonzero(d == d.max())
            if len(best) > 1:
                t = demand_total[best]
                best = best[t == t.max()]
            s = int(best[0])
            side[i] = s
            unassigned[i] = False
            demand_label[s] -= y[i]
            demand_total[s] -= 1
    for i in np.nonzero(unassigned)[0][np.argsort(pos[np.nonzero(unassigned)[0]])]:  # samples without labels
        s = int(np.argmax(demand_total))
        side[i] = s
        demand_total[s] -= 1
    chosen = np.nonzero(side == 0)[0]
    have = y[chosen].sum(0)
    counts = y.sum(0)
    missing = [j for j in range(k) if counts[j] > 0 and have[j] == 0]
    if missing:
        j = missing[0]
        smallest = _ceil_fraction(1 / counts[counts > 0].min())
        raise CbenchError(f"--train-fraction {fraction}: label '{_class_name(card, j)}' of {card.slug} has "
                          f"{counts[j]} training sample(s) and gets none; a fraction of at least {smallest} "
                          "keeps every label")
    if len(chosen) == 0:
        raise CbenchError(f"--train-fraction {fraction}: no training sample of {card.slug} selected; "
                          f"a fraction of at least {_ceil_fraction(1 / n)} keeps one")
    return chosen.tolist()


def _ceil_fraction(f: float) -> float:
    """``f`` rounded up to 4 significant digits (so the suggested fraction really works)."""
    if f >= 1:
        return 1.0
    digits = 4 - int(math.floor(math.log10(f))) - 1
    scale = 10**digits
    return min(1.0, math.ceil(f * scale - 1e-9) / scale)


def class_counts(card: TaskCard, labels: np.ndarray, indices: Sequence[int]) -> list[int]:
    """Samples per class (multiclass) or per label (multilabel) among ``indices``."""
    sub = np.asarray(labels)[list(indices)]
    if card.task_type == "multilabel":
        return (sub > 0.5).sum(0).astype(int).tolist()
    return np.bincount(sub.astype(np.int64).reshape(-1), minlength=card.num_classes).tolist()


def dataset_labels(card: TaskCard, dataset) -> np.ndarray | None:
    """Training labels for stratification: ``None`` for dense tasks; else (n,) or (n, K), read from the
    dataset's ``targets`` when it has them, otherwise item by item (one pass over the split)."""
    if card.is_dense:
        return None
    targets = getattr(dataset, "targets", None)
    if targets is not None and len(targets) == len(dataset):
        return np.asarray(targets)
    return np.stack([np.asarray(dataset[i]["target"]) for i in range(len(dataset))])


class SubsetCachedSource:
    """A :class:`~copernicus_bench.features.CachedSource` restricted to ``indices`` of its samples: the
    cache holds the whole split once and every fraction reads its subset from it."""

    def __init__(self, base, indices: Sequence[int]) -> None:
        self.base = base
        self.indices = np.asarray(indices, dtype=np.int64)
        self.card, self.device, self.views = base.card, base.device, base.views

    def __len__(self) -> int:
        return len(self.indices)

    def train_batches(self, rng: np.random.Generator, batch_size: int, drop_last: bool):
        perm = rng.permutation(len(self.indices))
        views = rng.integers(0, self.views, size=len(self.indices))
        for start in range(0, len(perm), batch_size):
            sel = perm[start:start + batch_size]
            if drop_last and len(sel) < batch_size:
                break
            yield self.base._gather(views[sel], self.indices[sel])

    def eval_batches(self, batch_size: int):
        for start in range(0, len(self.indices), batch_size):
            idx = self.indices[start:start + batch_size]
            yield self.base._gather(np.zeros_like(idx), idx)


def fraction_curves(results: Sequence) -> dict[str, dict[str, dict[float, list[float]]]]:
    """task → series label → fraction → test metrics (``global``, one per seed), for every series that
    has at least one result with a training fraction below 1 (its fraction-1 results join the curve)."""
    import json

    curves: dict[str, dict[str, dict[float, list[float]]]] = {}
    for r in results:
        overrides = dict(r.get("overrides") or {})
        fraction = float(overrides.pop("train_fraction", 1.0))
        overrides.pop("data", None)
        rest = json.dumps(overrides, sort_keys=True, default=str) if overrides else ""
        weights = (r.get("weights") or {}).get("label", "")
        label = f"{r.get('model_display') or r.get('model')} [{r.get('protocol')}, {r.get('tier')}" + \
            (f", {weights}" if weights and weights != "released" else "") + (f", {rest}" if rest else "") + "]"
        value = (r.get("metric") or {}).get("global")
        if value is None or not math.isfinite(float(value)):
            continue
        curves.setdefault(str(r.get("task")), {}).setdefault(label, {}).setdefault(fraction, []).append(float(value))
    out: dict[str, dict[str, dict[float, list[float]]]] = {}
    for task, series in curves.items():
        kept = {k: v for k, v in series.items() if any(f < 1.0 for f in v)}
        if kept:
            out[task] = kept
    return out


def plot_fraction_curves(results_dir, out_dir) -> dict:
    """``fractions.png`` (score vs training fraction, one panel per task) and ``fractions.csv`` in
    ``out_dir`` when the results hold label-fraction runs; ``{}`` otherwise. Written atomically."""
    import csv
    import os
    from pathlib import Path

    from .results import load_results
    from .tasks import get_card

    curves = fraction_curves(load_results(results_dir))
    if not curves:
        return {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    tasks = sorted(curves)
    cols = min(3, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    table = []
    for ax, task in zip(axes.flat, tasks):
        try:
            card = get_card(task)
            ylabel = f"{card.metric} {'↑' if card.higher_is_better else '↓'}"
        except Exception:  # noqa: BLE001 - a task card that is not installed: plot without its metric name
            ylabel = "metric"
        for label, points in sorted(curves[task].items()):
            xs = sorted(points)
            means = [float(np.mean(points[x])) for x in xs]
            stds = [float(np.std(points[x], ddof=1)) if len(points[x]) > 1 else 0.0 for x in xs]
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=label)
            table += [{"task": task, "series": label, "train_fraction": x, "mean": m, "std": s, "n": len(points[x])}
                      for x, m, s in zip(xs, means, stds)]
        ax.set_xscale("log")
        ax.set_title(task)
        ax.set_xlabel("training fraction")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    fig.tight_layout()
    png, csv_path = out / "fractions.png", out / "fractions.csv"
    tmp = out / ".fractions.png.tmp"
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    os.replace(tmp, png)
    tmp = out / ".fractions.csv.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["task", "series", "train_fraction", "mean", "std", "n"])
        writer.writeheader()
        writer.writerows(table)
    os.replace(tmp, csv_path)
    return {"fractions_chart": png, "fractions_csv": csv_path}
