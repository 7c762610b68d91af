"""Paper figures from a leaderboard: per-task raw scores with error bars, one panel per paper level.

Each task gets its own small axes in the metric's own units (OA / mAP / mIoU in %, RMSE in target units)
with its direction in the axis label (↑ higher is better, ↓ lower is better), so nothing is normalised or
clipped away. A bar is a column's mean over seeds; its error bar is the 95 % bootstrap CI of that mean when
the leaderboard has one, else ± the std over seeds, else none (one seed, no CI) — the legend says which.
When the leaderboard compares with the paper, the paper's mean is a black tick on the column's bar. The
figure is written as PNG (300 dpi), PDF and SVG; with one model it still shows every task's value.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .leaderboard import Cell, Column, Leaderboard

FORMATS = ("png", "pdf", "svg")
DPI = 300
MAX_COLS = 5  # task axes per figure row
UNITS = {"oa": "%", "map-micro": "%", "miou": "%", "rmse": "target units"}


def error_bar(cell: Cell) -> tuple[float, float] | None:
    """(below, above) the mean: the CI when present, else the std over seeds, else None."""
    mean = cell.mean
    if mean is None:
        return None
    if cell.ci is not None and all(math.isfinite(v) for v in cell.ci):
        return (max(mean - cell.ci[0], 0.0), max(cell.ci[1] - mean, 0.0))
    if cell.std is not None and math.isfinite(cell.std):
        return (cell.std, cell.std)
    return None


def _levels(lb: Leaderboard) -> list[tuple[int, str, list]]:
    out: dict[int, tuple[str, list]] = {}
    for row in lb.rows:
        out.setdefault(row.card.level, (row.card.level_name, []))[1].append(row)
    return [(lvl, name, rows) for lvl, (name, rows) in sorted(out.items())]


def plot_task_scores(lb: Leaderboard, out_dir: str | os.PathLike, stem: str = "tasks",
                     formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``<stem>.png`` (300 dpi), ``.pdf`` and ``.svg`` into ``out_dir``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .leaderboard import metric_label

    columns: list[Column] = list(lb.columns)
    levels = _levels(lb)
    rows_per_level = [max(1, math.ceil(len(rows) / MAX_COLS)) for _, _, rows in levels] or [1]
    ncols = min(MAX_COLS, max((len(rows) for _, _, rows in levels), default=1))
    width = max(2.3 * ncols, 3.2 + 0.35 * len(columns))
    fig = plt.figure(figsize=(width, 2.5 * sum(rows_per_level) + 1.4), layout="constrained")
    cmap = plt.get_cmap("tab10")
    colours = {c.id: cmap(i % 10) for i, c in enumerate(columns)}
    kinds: set[str] = set()
    paper_shown = False
    subfigs = fig.subfigures(len(levels) or 1, 1, height_ratios=rows_per_level, squeeze=False)[:, 0]
    for sub, (level, name, rows), nrows in zip(subfigs, levels, rows_per_level):
        sub.suptitle(f"Level {level}: {name}", fontsize=10, fontweight="bold", x=0.0, ha="left")
        axes = sub.subplots(nrows, ncols, squeeze=False).ravel()
        for ax in axes[len(rows):]:
            ax.set_visible(False)
        for ax, row in zip(axes, rows):
            xs = list(range(len(columns)))
            for x, col in zip(xs, columns):
                cell = row.cells.get(col.id)
                if cell is None or cell.status != "value" or cell.mean is None or not math.isfinite(cell.mean):
                    mark = "n/a" if cell is not None and cell.status == "not-applicable" else "no run"
                    ax.text(x, 0, mark, ha="center", va="bottom", fontsize=6, color="grey", rotation=90)
                    continue
                err = error_bar(cell)
                kinds.add("ci" if cell.ci is not None and err is not None else "std" if err else "one")
                ax.bar(x, cell.mean, width=0.8, color=colours[col.id],
                       yerr=None if err is None else [[err[0]], [err[1]]], capsize=2.5,
                       error_kw={"elinewidth": 0.8, "ecolor": "black"})
                ax.annotate(f"{cell.mean:.3g}", (x, cell.mean + (err[1] if err else 0.0)), fontsize=6,
                            ha="center", va="bottom", xytext=(0, 1), textcoords="offset points")
                if lb.compare_paper and cell.paper_mean is not None:
                    ax.plot([x - 0.4, x + 0.4], [cell.paper_mean] * 2, color="black", linewidth=1.4)
                    paper_shown = True
            card = row.card
            ax.set_title(card.name, fontsize=8)
            ax.set_ylabel(f"{metric_label(card)} ({UNITS.get(card.metric, '')})", fontsize=7)
            ax.set_xticks(xs)
            ax.set_xticklabels([""] * len(xs))
            ax.tick_params(axis="y", labelsize=6)
            ax.set_xlim(-0.6, len(columns) - 0.4)
            ax.margins(y=0.15)
            if card.metric != "rmse":
                ax.set_ylim(bottom=0)
    handles = [Patch(color=colours[c.id], label=c.label) for c in columns]
    how = {"ci": "error bar: 95 % bootstrap CI of the mean", "std": "error bar: ± std over seeds",
           "one": "no error bar: one seed, no CI"}
    handles += [Line2D([], [], color="none", label=how[k]) for k in ("ci", "std", "one") if k in kinds]
    if paper_shown:
        handles.append(Line2D([], [], color="black", linewidth=1.4, label="paper (arXiv 2503.11849)"))
    title = f"Copernicus-Bench: per-task scores ({lb.metric} metric; ↑ higher / ↓ lower is better)"
    if lb.sample_data:
        title += "\nGENERATED SAMPLE DATA: these numbers mean nothing about the models"
    fig.suptitle(title, fontsize=11)
    fig.legend(handles=handles, loc="outside lower center", ncols=min(3, max(1, len(handles))), fontsize=7,
               frameon=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out / f"{stem}.{fmt}"
        tmp = path.with_name(f".{path.stem}.tmp.{fmt}")
        fig.savefig(tmp, dpi=DPI, format=fmt)
        tmp.replace(path)
        paths.append(path)
        fig.set_layout_engine("none")  # the layout is settled by the first save: keep it, do not recompute
    plt.close(fig)
    return paths
