"""Leaderboard tables and chart, generated from result files (never typed; lm-eval's habit).

Layout (``cbench leaderboard``; docs/conventions.md "Tiers and protocols"):

* **Rows** are the tasks of the task cards, in card order, grouped by the paper's three levels; the task
  name, metric and its direction (↑/↓) come from the card.
* **Columns** are (model, weights source): ``released``, a user checkpoint ``user:<sha8>`` or
  ``random-init`` (shown "(random init)"). Seeds are aggregated inside a column (so ``random``, whose
  weights hash changes per seed, is one column). A column is also split by what must never be averaged
  together, each marked in its header: tier (``†`` smoke), protocol (``‡`` paper), the built-in generated
  sample data (``§``) and any other override (``[limit=4]``, or ``[o<hash>]`` when long: the result's
  ``overrides`` less what the column already shows, i.e. the sample data and ``random_init``). Results of different tiers are therefore never
  mixed silently: they are different columns.
* **Cells**: mean ± sample std (ddof=1) over seeds, then ``(n=k)`` seeds (a single seed shows no ±);
  ``-`` where the task is not in the column's ``applicable_tasks``; ``…`` where an applicable run is
  missing. The best cell of a row is bold, compared only with columns of the same *group* (tier, protocol,
  sample data) — a smoke number never beats a full one.
* ``--compare-paper``: the paper's number (card ``paper[model]``) beside each cell of a released/user
  column (and of the ``random`` baseline), compared on ``metric.paper`` (the reference's epoch and resolution, per-batch mean);
  a difference beyond paper std + tolerance is flagged ``⚠`` — for full-tier runs on real data only.
* **Summary** (per group): mean rank (1 = best; ties share the mean rank) and a normalised score — per task
  min-max between the ``random`` baseline column (the worst column when there is none) and the best
  column, averaged (GEO-Bench style, docs/conventions.md) — over only the tasks every ranked column
  has, with that count shown (missing tasks are never silently dropped or counted; MTEB's complaint).

Values are shown as stored, except a metric whose ``unit`` is ``fraction``, which is shown in percent as the
paper does.
"""

from __future__ import annotations

import csv
import hashlib
import math
import statistics
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CbenchError

if TYPE_CHECKING:
    from .cards import TaskCard
    from .reported import ReportedColumn

LEADERBOARD_SCHEMA = "copernicus-bench/leaderboard/v1"
RANDOM_BASELINE = "random"  # the model whose column anchors the normalised score at 0
NORM_FLOOR = -1.0  # normalised scores below this are clipped (a task where random is nearly best would dominate)
DEFAULT_TOLERANCE = 1.0
METRIC_LABELS = {"oa": "OA", "map-micro": "mAP", "miou": "mIoU", "rmse": "RMSE"}
MARK_SMOKE, MARK_PAPER_PROTOCOL, MARK_SAMPLE, MARK_REPORTED = "†", "‡", "§", "(reported)"
REPORTED = "reported"  # the group of published columns
DEFAULT_N_BOOT = 1000
NOT_APPLICABLE, MISSING = "-", "…"
WEIGHTS_ORDER = {"released": 0, "user": 1, "random-init": 2}


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Column:
    """One leaderboard column: (model, weights source) within one tier/protocol/data/override group."""

    model: str
    weights: str  # released | user:<sha8> | random-init
    tier: str = "full"
    protocol: str = "cached"
    sample_data: bool = False
    override_hash: str = ""  # the override tag: "" | "limit=4" | "o<hash>"
    display: str = ""
    kind: str = "measured"  # measured | reported (a published number, never ranked with measured ones)
    source: str = ""  # reported columns: the paper and table

    @property
    def id(self) -> str:
        if self.kind == "reported":
            return f"reported/{self.model}/{hashlib.sha256(self.source.encode()).hexdigest()[:6]}"
        parts = [self.model, self.weights, self.tier, self.protocol]
        if self.sample_data:
            parts.append("sample")
        if self.override_hash:
            parts.append(self.override_hash)
        return "/".join(parts)

    @property
    def group(self) -> tuple[str, str, bool]:
        """Columns comparable with each other (best-in-row, ranks, normalised score)."""
        if self.kind == "reported":
            return (REPORTED, "", False)
        return (self.tier, self.protocol, self.sample_data)

    @property
    def label(self) -> str:
        """Header text: display name plus its marks."""
        if self.kind == "reported":
            return f"{self.display or self.model} {MARK_REPORTED}"
        marks = ""
        if self.tier != "full":
            marks += MARK_SMOKE if self.tier == "smoke" else f"[{self.tier}]"
        if self.protocol == "paper":
            marks += MARK_PAPER_PROTOCOL
        elif self.protocol != "cached":
            marks += f"[{self.protocol}]"
        if self.sample_data:
            marks += MARK_SAMPLE
        if self.override_hash:
            marks += f" [{self.override_hash}]"
        return f"{self.display or self.model}{marks}"


@dataclass
class Cell:
    """One (task, column) cell."""

    status: str  # "value" | "not-applicable" | "missing"
    values: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    per_batch: list[float] = field(default_factory=list)
    #: ``metric.paper`` of each result (the reference's epoch and resolution); compared with the paper
    paper_values: list[float] = field(default_factory=list)
    #: results without ``metric.paper`` (written before it existed): no paper comparison for the cell
    paper_unavailable: int = 0
    best: bool = False
    paper_mean: float | None = None
    paper_std: float | None = None
    paper_diff: float | None = None
    paper_flag: bool = False
    ci: tuple[float, float] | None = None  # 95 % test-set bootstrap CI of the seed mean
    ci_note: str = ""  # why there is no CI
    rank_interval: tuple[int, int] | None = None  # 95 % bootstrap rank interval within the group
    boot: Any = field(default=None, repr=False)  # (n_boot, seeds) resampled metric values (not serialised)
    provenance: list[dict[str, Any]] = field(default_factory=list)  # one entry per result
    cost: dict[str, Any] = field(default_factory=dict)  # per-result cost figures, averaged over seeds
    reported_std: float | None = None  # a reported column's published std (None: the source gives none)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        if self.reported_std is not None:
            return self.reported_std
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    @property
    def per_batch_mean(self) -> float | None:
        return statistics.fmean(self.per_batch) if self.per_batch else None


@dataclass
class Row:
    card: TaskCard
    cells: dict[str, Cell]  # column id -> cell


@dataclass
class GroupSummary:
    group: tuple[str, str, bool]
    columns: list[str]  # column ids ranked
    tasks: list[str]  # tasks every ranked column has
    mean_rank: dict[str, float]
    norm_score: dict[str, float]
    anchor: str  # how the normalised score's 0 was chosen
    iqm: dict[str, float] = field(default_factory=dict)  # IQM of normalised scores over (task, seed)
    iqm_ci: dict[str, tuple[float, float]] = field(default_factory=dict)  # stratified bootstrap 95 % CI
    rank_interval: dict[str, tuple[int, int]] = field(default_factory=dict)  # of the IQM, 95 %
    iqm_note: str = ""  # why there is no IQM / CI
    breakdowns: list[Breakdown] = field(default_factory=list)


@dataclass
class Breakdown:
    """Mean rank and normalised score over one facet's tasks (sensor, task type or paper level)."""

    facet: str  # sensor | task type | level
    key: str
    tasks: list[str]  # tasks of the facet every ranked column has
    missing: list[str]  # tasks of the facet left out because some ranked column lacks them
    mean_rank: dict[str, float]
    norm_score: dict[str, float]


@dataclass
class Leaderboard:
    columns: list[Column]
    rows: list[Row]
    metric: str
    compare_paper: bool
    tolerance: float
    summaries: list[GroupSummary]
    notes: list[str]
    created: str
    n_boot: int = 0
    boot_seed: int = 0
    excluded: list[str] = field(default_factory=list)  # per-sample files refused (tampered, missing, ...)
    model_cards: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def sample_data(self) -> bool:
        return any(c.sample_data for c in self.columns)


# ----------------------------------------------------------------------------- building
def weights_label(result: dict[str, Any]) -> str:
    """The column's weights source: ``released``, ``user:<sha8>`` or ``random-init``."""
    w = result.get("weights") or {}
    source = w.get("source", "user")
    if source == "user":
        return w.get("label") or f"user:{str(w.get('sha256', ''))[:8]}"
    return source


def display_name(model: str, weights: str) -> str:
    """Derived header name when a result has no ``model_display``."""
    if weights == "released":
        return model
    if weights == "random-init":
        return model if model == RANDOM_BASELINE else f"{model} (random init)"
    return f"{model} ({weights})"


def column_overrides(result: dict[str, Any], weights: str) -> str:
    """A short tag for the overrides not already shown by the column (the sample data is §, ``random_init``
    is the weights source): ``limit=4`` when short and readable, else ``o<hash>``; empty for none."""
    from .results import override_hash

    overrides = result.get("overrides")
    if not isinstance(overrides, dict):
        h = str(result.get("override_hash") or "")
        return f"o{h}" if h else ""
    rest = {k: v for k, v in overrides.items() if k != "data"}
    model_args = rest.pop("model_args", None)
    if isinstance(model_args, dict):
        if weights == "random-init":
            model_args = {k: v for k, v in model_args.items() if k != "random_init"}
        rest.update({f"{k}": v for k, v in model_args.items()})
    if not rest:
        return ""
    text = ",".join(f"{k}={v}" for k, v in sorted(rest.items()))
    if len(text) <= 30 and all(isinstance(v, (int, float, str, bool)) for v in rest.values()):
        return text
    return f"o{override_hash(rest)}"


def column_of(result: dict[str, Any]) -> Column:
    w = weights_label(result)
    return Column(model=str(result["model"]), weights=w, tier=str(result.get("tier", "full")),
                  protocol=str(result.get("protocol", "cached")), sample_data=bool(result.get("sample_data")),
                  override_hash=column_overrides(result, w),
                  display=str(result.get("model_display") or display_name(str(result["model"]), w)))


def _metric_value(result: dict[str, Any], which: str) -> float | None:
    metric = result.get("metric") or {}
    value = metric.get(which)
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(value):
        return None
    if metric.get("unit") == "fraction":
        value *= 100.0
    return value


def _column_sort_key(col: Column, model_order: dict[str, int]) -> tuple:
    group_rank = (col.tier != "full", col.protocol != "cached", col.sample_data)
    return (group_rank, col.tier, col.protocol, model_order.get(col.model, len(model_order)), col.model,
            WEIGHTS_ORDER.get(col.weights.split(":")[0], 3), col.weights, col.override_hash)


def build_leaderboard(results: Sequence[dict[str, Any]], cards: Sequence[TaskCard], metric: str = "global",
                      compare_paper: bool = False, tolerance: float = DEFAULT_TOLERANCE,
                      reported: Sequence[ReportedColumn] = (), n_boot: int = DEFAULT_N_BOOT,
                      boot_seed: int = 0) -> Leaderboard:
    """Aggregate loaded results (``results.load_results``) into a leaderboard over ``cards``.

    ``reported`` adds published columns (:mod:`copernicus_bench.reported`); ``n_boot`` test-set bootstrap
    resamples (0 = none) seeded by ``boot_seed`` give the CIs and rank intervals (:mod:`copernicus_bench.stats`).
    """
    if metric not in ("global", "per_batch"):
        raise CbenchError(f"--metric {metric!r}: must be 'global' or 'per_batch'")
    if tolerance < 0:
        raise CbenchError(f"--tolerance {tolerance}: must be >= 0")
    cards = sorted(cards, key=lambda c: c.level)  # stable: card order inside a level
    by_slug = {c.slug: c for c in cards}

    columns: dict[str, Column] = {}
    applicable: dict[str, set[str]] = {}
    bucket: dict[tuple[str, str], list[dict[str, Any]]] = {}
    unknown: set[str] = set()
    for r in results:
        if r["task"] not in by_slug:
            unknown.add(r["task"])
            continue
        col = column_of(r)
        col = columns.setdefault(col.id, col)
        applicable.setdefault(col.id, set()).update(r.get("applicable_tasks") or [])
        bucket.setdefault((r["task"], col.id), []).append(r)
    for slug in sorted(unknown):
        warnings.warn(f"results for task '{slug}' skipped: no task card of that name", stacklevel=2)

    model_order: dict[str, int] = {}
    for card in cards:
        for m in card.paper:
            model_order.setdefault(m, len(model_order))
    model_order.setdefault(RANDOM_BASELINE, -1)
    ordered = sorted(columns.values(), key=lambda c: _column_sort_key(c, model_order))
    rep_cols = [Column(model=rc.model, weights="reported", display=rc.display, kind="reported", source=rc.source)
                for rc in reported]
    rep_scores = {col.id: rc for col, rc in zip(rep_cols, reported)}
    ordered += list({c.id: c for c in rep_cols}.values())

    rows: list[Row] = []
    for card in cards:
        cells: dict[str, Cell] = {}
        for col in ordered:
            if col.kind == "reported":
                cells[col.id] = _reported_cell(rep_scores[col.id], card)
                continue
            rs = sorted(bucket.get((card.slug, col.id), []), key=lambda r: int(r["seed"]))
            if not rs:
                status = "missing" if card.slug in applicable[col.id] else "not-applicable"
                cells[col.id] = Cell(status=status)
                continue
            cell = Cell(status="value")
            for r in rs:
                v = _metric_value(r, metric)
                if v is None:
                    warnings.warn(f"{r.get('_path', r['task'])}: metric '{metric}' is missing or NaN; "
                                  "left out of the mean", stacklevel=2)
                    continue
                cell.values.append(v)
                cell.seeds.append(int(r["seed"]))
                cell.provenance.append(_provenance(r))
                pb = _metric_value(r, "per_batch")
                if pb is not None:
                    cell.per_batch.append(pb)
                pv = _metric_value(r, "paper")
                if pv is not None:
                    cell.paper_values.append(pv)
                elif compare_paper:
                    cell.paper_unavailable += 1
                    warnings.warn(f"{r.get('_path', r['task'])}: has no metric.paper (written before it "
                                  "existed); no paper comparison for it — regenerate it with the same "
                                  "'cbench run' command plus --overwrite", stacklevel=2)
            if not cell.values:
                cell.status = "missing"
            cell.cost = _mean_cost([r for r in rs if _metric_value(r, metric) is not None])
            cells[col.id] = cell
            if compare_paper:
                _compare_with_paper(cell, col, card, tolerance)
        _mark_best(cells, ordered, card.higher_is_better)
        rows.append(Row(card=card, cells=cells))

    from .lb_uncertainty import attach_uncertainty, summarise_uncertainty

    excluded = attach_uncertainty(rows, ordered, bucket, metric, n_boot, boot_seed)
    summaries = [_summarise(group, [c for c in ordered if c.group == group], rows)
                 for group in dict.fromkeys(c.group for c in ordered)]
    for summary in summaries:
        summarise_uncertainty(summary, [c for c in ordered if c.id in summary.columns], rows)
        summary.breakdowns = breakdowns([c for c in ordered if c.id in summary.columns], rows)
    notes = _notes(ordered, metric, compare_paper, tolerance)
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Leaderboard(columns=ordered, rows=rows, metric=metric, compare_paper=compare_paper,
                       tolerance=tolerance, summaries=summaries, notes=notes, created=created, n_boot=n_boot,
                       boot_seed=boot_seed, excluded=excluded)


def _reported_cell(rc: ReportedColumn, card: TaskCard) -> Cell:
    score = rc.scores.get(card.slug)
    if score is None:
        return Cell(status="not-applicable")
    mean, std = score
    cell = Cell(status="value", values=[mean], ci_note="reported: no per-sample outputs",
                provenance=[{"reported": rc.source, "metric": rc.metric}])
    cell.reported_std = std
    return cell


PROVENANCE_KEYS = ("created", "git_commit", "device", "task_version", "task_digest", "best_epoch")


def _provenance(r: dict[str, Any]) -> dict[str, Any]:
    """What a cell's hover / the JSON shows for one result: where the number came from."""
    w = r.get("weights") or {}
    out = {"file": Path(str(r.get("_path", ""))).name, "seed": r.get("seed"),
           "weights_sha256": str(w.get("sha256", ""))[:16], "weights_file": w.get("file")}
    out.update({k: r.get(k) for k in PROVENANCE_KEYS if r.get(k) is not None})
    ps = r.get("per_sample")
    if isinstance(ps, dict):
        out["per_sample_sha256"] = str(ps.get("sha256", ""))[:16]
    versions = r.get("versions") or {}
    if isinstance(versions, dict) and versions.get("copernicus-bench"):
        out["cbench_version"] = versions["copernicus-bench"]
    return out


COST_MEAN_KEYS = ("encoder_params", "head_params", "encoder_gflops_per_image", "head_gflops_per_step",
                  "encoder_images_per_s", "read_s", "encode_s", "train_s", "total_s", "peak_memory_mb")


def _mean_cost(rs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-result ``cost`` blocks averaged over seeds (device names joined); empty when none has one."""
    blocks = [r["cost"] for r in rs if isinstance(r.get("cost"), dict)]
    if not blocks:
        return {}
    out: dict[str, Any] = {}
    for k in COST_MEAN_KEYS:
        vals = [float(b[k]) for b in blocks if isinstance(b.get(k), (int, float))]
        out[k] = statistics.fmean(vals) if vals else None
    out["device"] = ", ".join(sorted({str(b.get("device", "?")) for b in blocks}))
    out["n"] = len(blocks)
    return out


def _paper_comparable(col: Column) -> bool:
    """The paper's number describes released weights (or the random baseline), not other random inits."""
    return col.weights != "random-init" or col.model == RANDOM_BASELINE


def _compare_with_paper(cell: Cell, col: Column, card: TaskCard, tolerance: float) -> None:
    paper = card.paper.get(col.model)
    if paper is None or not _paper_comparable(col):
        return
    cell.paper_mean, cell.paper_std = paper.mean, paper.std
    if cell.paper_unavailable or not cell.paper_values:
        return
    ours = statistics.fmean(cell.paper_values)
    cell.paper_diff = ours - paper.mean
    flaggable = col.tier == "full" and not col.sample_data
    cell.paper_flag = flaggable and abs(cell.paper_diff) > paper.std + tolerance


def _mark_best(cells: dict[str, Cell], columns: list[Column], higher: bool) -> None:
    for group in dict.fromkeys(c.group for c in columns):
        vals = [(cells[c.id].mean, c.id) for c in columns if c.group == group and cells[c.id].mean is not None]
        if not vals:
            continue
        best = max(v for v, _ in vals) if higher else min(v for v, _ in vals)
        for v, cid in vals:
            cells[cid].best = math.isclose(v, best, rel_tol=1e-12, abs_tol=1e-12)


def _ranks(values: dict[str, float], higher: bool) -> dict[str, float]:
    """1 = best; tied values share the mean of their ranks."""
    order = sorted(values, key=lambda k: -values[k] if higher else values[k])
    ranks: dict[str, float] = {}
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and math.isclose(values[order[j + 1]], values[order[i]], abs_tol=1e-12):
            j += 1
        for k in order[i:j + 1]:
            ranks[k] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def normalised_scores(values: dict[str, float], higher: bool, anchor: float | None) -> dict[str, float]:
    """Per-task min-max: 0 at ``anchor`` (the random baseline; the worst value when None), 1 at the best.

    A task whose range is empty (the anchor is the best) gives no score (NaN). Scores below ``NORM_FLOOR``
    (−1: twice as far below the baseline as the best is above it) are clipped, so that a task where the
    baseline is nearly the best cannot dominate the average.
    """
    if not values:
        return {}
    best = max(values.values()) if higher else min(values.values())
    low = anchor if anchor is not None else (min(values.values()) if higher else max(values.values()))
    span = (best - low) if higher else (low - best)
    if span <= 0:
        return {k: math.nan for k in values}
    return {k: max(NORM_FLOOR, ((v - low) if higher else (low - v)) / span) for k, v in values.items()}


def _anchor_column(columns: list[Column]) -> Column | None:
    cands = [c for c in columns if c.model == RANDOM_BASELINE]
    cands.sort(key=lambda c: bool(c.override_hash))  # the plain baseline first, else e.g. a tiny config
    return cands[0] if cands else None


def task_scores(row: Row, columns: list[Column]) -> dict[str, float]:
    """Normalised scores of one task for the ``columns`` (one group) that have a value there."""
    vals = {c.id: row.cells[c.id].mean for c in columns if row.cells[c.id].mean is not None}
    anchor_col = _anchor_column(columns)
    anchor = vals.get(anchor_col.id) if anchor_col is not None else None
    return normalised_scores(vals, row.card.higher_is_better, anchor)  # type: ignore[arg-type]


def _summarise(group: tuple[str, str, bool], columns: list[Column], rows: list[Row]) -> GroupSummary:
    ranked = [c for c in columns if any(r.cells[c.id].mean is not None for r in rows)]
    common = [r for r in rows if ranked and all(r.cells[c.id].mean is not None for c in ranked)]
    anchor_col = _anchor_column(ranked)
    anchor = (f"'{anchor_col.label}' column" if anchor_col is not None
              else "the worst column per task (no 'random' baseline column)")
    ranks: dict[str, list[float]] = {c.id: [] for c in ranked}
    scores: dict[str, list[float]] = {c.id: [] for c in ranked}
    for r in common:
        vals = {c.id: r.cells[c.id].mean for c in ranked}
        for cid, rk in _ranks(vals, r.card.higher_is_better).items():  # type: ignore[arg-type]
            ranks[cid].append(rk)
        for cid, s in task_scores(r, ranked).items():
            if not math.isnan(s):
                scores[cid].append(s)
    return GroupSummary(
        group=group, columns=[c.id for c in ranked], tasks=[r.card.slug for r in common],
        mean_rank={k: statistics.fmean(v) for k, v in ranks.items() if v},
        norm_score={k: statistics.fmean(v) for k, v in scores.items() if v}, anchor=anchor)


FACETS = (("sensor", lambda c: c.sensor.upper()), ("task type", lambda c: c.task_type),
          ("level", lambda c: f"L{c.level}"))


def breakdowns(ranked: list[Column], rows: list[Row]) -> list[Breakdown]:
    """Mean rank and normalised score per sensor, task type and paper level, over the facet's tasks that
    every column of ``ranked`` has; the facet's other tasks are listed as missing, never dropped silently."""
    out: list[Breakdown] = []
    if not ranked:
        return out
    for facet, key_of in FACETS:
        for key in dict.fromkeys(key_of(r.card) for r in rows):
            facet_rows = [r for r in rows if key_of(r.card) == key]
            # compared: the ranked columns that apply to some task of the facet (SoftCon is not an S3 model)
            cols = [c for c in ranked if any(r.cells[c.id].status != "not-applicable" for r in facet_rows)]
            applicable = [r for r in facet_rows if any(r.cells[c.id].status != "not-applicable" for c in cols)]
            if not applicable:
                continue
            common = [r for r in facet_rows if all(r.cells[c.id].mean is not None for c in cols)]
            s = _summarise(ranked[0].group, cols, common)
            missing = [r.card.slug for r in applicable if r.card.slug not in s.tasks]
            out.append(Breakdown(facet=facet, key=key, tasks=s.tasks, missing=missing, mean_rank=s.mean_rank,
                                 norm_score=s.norm_score))
    return out


def _notes(columns: list[Column], metric: str, compare_paper: bool, tolerance: float) -> list[str]:
    notes = [f"Metric: `{metric}` value of each result; mean ± sample std (ddof=1) over seeds, (n=k) = number "
             "of seeds (one seed: no ±). Bold = best of the row among comparable columns (same tier, protocol "
             "and data).",
             f"`{NOT_APPLICABLE}` = the model does not apply to the task; `{MISSING}` = applicable, no result yet."]
    if any(c.sample_data for c in columns):
        notes.insert(0, f"**{MARK_SAMPLE} Results on the built-in GENERATED SAMPLE data: the numbers mean nothing "
                        "about the models; they only show that the whole path runs.**")
    if any(c.tier == "smoke" for c in columns):
        notes.append(f"{MARK_SMOKE} smoke tier (a handful of samples, 2 epochs, ~64 px): not comparable with "
                     "full-tier columns, never averaged with them.")
    if any(c.protocol == "paper" for c in columns):
        notes.append(f"{MARK_PAPER_PROTOCOL} paper protocol (augmented input re-encoded every epoch); other "
                     "columns use the cached flip views.")
    if any(c.override_hash for c in columns):
        notes.append("[k=v] / [o<hash>] = run with other overrides (see the result files' `overrides`).")
    if any(c.kind == "measured" for c in columns):
        notes.append("[lo, hi] = 95 % CI of the cell's seed mean from a bootstrap over test images (1000 "
                     "resamples of the stored per-sample outputs; it covers test-set sampling, not the seeds, "
                     "whose spread is the ±). rA–B = the column's 95 % rank interval on that task among the "
                     "comparable columns (paired resamples): columns whose intervals overlap are not separable. "
                     "A cell without [ ] has no usable per-sample outputs (the JSON says why).")
    if any(c.kind == "reported" for c in columns):
        notes.append(f"{MARK_REPORTED} = a published number (see 'Reported columns'), not measured here.")
    if compare_paper:
        notes.append(f"Paper numbers (arXiv 2503.11849, mean ± std of 3 runs) beside released/user columns and "
                     f"the random baseline, compared on `metric.paper` (the reference's epoch, resolution and per-batch "
                     f"mean); ⚠ = |ours − paper| > "
                     f"paper std + {tolerance:g} (flagged for full-tier runs on real data only).")
    return notes


# ----------------------------------------------------------------------------- rendering
def fmt(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "nan"
    return f"{v:.1f}" if abs(v) >= 100 else f"{v:.2f}"


def cell_text(cell: Cell, markdown: bool = True, compare: bool = False) -> str:
    if cell.status == "not-applicable":
        return NOT_APPLICABLE
    if cell.status == "missing" or cell.mean is None:
        return MISSING
    text = fmt(cell.mean) if cell.std is None else f"{fmt(cell.mean)} ± {fmt(cell.std)}"
    if markdown and cell.best:
        text = f"**{text}**"
    if cell.provenance and "reported" in cell.provenance[0]:  # a published number: no seed count of ours
        text += " (no std)" if cell.std is None else ""
    else:
        text += f" (n={cell.n})"
    if cell.ci is not None:
        text += f" [{fmt(cell.ci[0])}, {fmt(cell.ci[1])}]"
    if cell.rank_interval is not None:
        lo, hi = cell.rank_interval
        text += f" r{lo}" if lo == hi else f" r{lo}–{hi}"
    if compare and cell.paper_mean is not None:
        text += f" · paper {fmt(cell.paper_mean)} ± {fmt(cell.paper_std)}"
        if cell.paper_unavailable:
            text += " (no comparison: old result without metric.paper, rerun with --overwrite)"
        elif cell.paper_diff is not None and cell.paper_flag:
            text += f" ⚠ {cell.paper_diff:+.2f}"
    return text


def metric_label(card: TaskCard) -> str:
    return f"{METRIC_LABELS.get(card.metric, card.metric)} {'↑' if card.higher_is_better else '↓'}"


def markdown_table(lb: Leaderboard) -> str:
    """The main table: level group rows, then one row per task."""
    header = ["Task", "Metric"] + [c.label for c in lb.columns]
    lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |",
             "|" + "---|" * 2 + ":---:|" * len(lb.columns)]
    level = None
    for row in lb.rows:
        if row.card.level != level:
            level = row.card.level
            lines.append(f"| **Level {level}: {row.card.level_name}** |" + " |" * (len(header) - 1))
        cells = [cell_text(row.cells[c.id], compare=lb.compare_paper) for c in lb.columns]
        lines.append("| " + " | ".join([row.card.name, metric_label(row.card), *cells]) + " |")
    return "\n".join(lines)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def group_title(group: tuple[str, str, bool]) -> str:
    tier, protocol, sample = group
    if tier == REPORTED:
        return "reported (published) columns"
    return f"tier {tier}, protocol {protocol}" + (", generated sample data" if sample else "")


def summary_markdown(lb: Leaderboard) -> str:
    by_id = {c.id: c for c in lb.columns}
    out: list[str] = []
    for s in lb.summaries:
        out.append(f"**Summary ({group_title(s.group)})** — over the {len(s.tasks)} task(s) every ranked column "
                   f"has{': ' + ', '.join(s.tasks) if s.tasks else ''}. Normalised score: per task 0 = {s.anchor}, "
                   f"1 = best column, clipped at {NORM_FLOOR:g}, averaged.")
        out.append("")
        if not s.tasks:
            out.append("_No task has a result in every column of this group: no ranks computed._")
            out.append("")
            continue
        out.append("| Column | Mean rank ↓ | Normalised score ↑ | IQM [95 % CI] ↑ | IQM rank interval | Tasks |")
        out.append("|---|:---:|:---:|:---:|:---:|:---:|")
        for cid in sorted(s.columns, key=lambda k: s.mean_rank.get(k, math.inf)):
            rank = s.mean_rank.get(cid)
            score = s.norm_score.get(cid)
            iqm = s.iqm.get(cid)
            iqm_text = MISSING if iqm is None or math.isnan(iqm) else fmt(iqm)
            if cid in s.iqm_ci and iqm_text != MISSING:
                iqm_text += f" [{fmt(s.iqm_ci[cid][0])}, {fmt(s.iqm_ci[cid][1])}]"
            iv = s.rank_interval.get(cid)
            iv_text = MISSING if iv is None else (f"{iv[0]}" if iv[0] == iv[1] else f"{iv[0]}–{iv[1]}")
            out.append(f"| {_md_escape(by_id[cid].label)} | {fmt(rank) if rank is not None else MISSING} | "
                       f"{fmt(score) if score is not None else MISSING} | {iqm_text} | {iv_text} | {len(s.tasks)} |")
        out.append("")
        if s.iqm_note:
            out.append(f"_IQM: {s.iqm_note}._")
            out.append("")
        out += breakdown_markdown(s, by_id)
    return "\n".join(out).rstrip()


def breakdown_markdown(s: GroupSummary, by_id: dict[str, Column]) -> list[str]:
    """Mean rank / normalised score per sensor, task type and level; missing tasks named."""
    if not s.breakdowns or len(s.columns) < 1:
        return []
    keys = [f"{b.key} ({len(b.tasks)})" for b in s.breakdowns]
    out = ["Per sensor, task type and level — mean rank / normalised score over the facet's tasks that every "
           "ranked column has (task count in brackets):", "",
           "| Column | " + " | ".join(keys) + " |", "|---|" + ":---:|" * len(keys)]
    for cid in s.columns:
        cells = []
        for b in s.breakdowns:
            r, sc = b.mean_rank.get(cid), b.norm_score.get(cid)
            cells.append(MISSING if r is None else f"{fmt(r)} / {fmt(sc) if sc is not None else MISSING}")
        out.append(f"| {_md_escape(by_id[cid].label)} | " + " | ".join(cells) + " |")
    miss = [f"{b.key}: {', '.join(b.missing)}" for b in s.breakdowns if b.missing]
    out.append("")
    if miss:
        out.append("Left out of a facet because a ranked column lacks them: " + "; ".join(miss) + ".")
        out.append("")
    return out


COST_HEADER = ("Column", "Encoder params (M)", "Encoder GFLOPs / image", "Head GFLOPs / step", "Encoder img/s",
               "Read s", "Encode s", "Train s", "Peak MB", "Device", "Results")


def cost_summary(lb: Leaderboard) -> list[dict[str, Any]]:
    """Per measured column: cost figures averaged over its tasks (each task averaged over seeds)."""
    out = []
    for col in lb.columns:
        if col.kind != "measured":
            continue
        costs = [r.cells[col.id].cost for r in lb.rows if r.cells[col.id].cost]
        if not costs:
            out.append({"column": col.label, "id": col.id, "results_with_cost": 0})
            continue
        row: dict[str, Any] = {"column": col.label, "id": col.id}
        for k in COST_MEAN_KEYS:
            vals = [c[k] for c in costs if c.get(k) is not None]
            agg = sum if k in ("read_s", "encode_s", "train_s", "total_s") else (max if k == "peak_memory_mb"
                                                                               else statistics.fmean)
            row[k] = agg(vals) if vals else None
        row["device"] = ", ".join(sorted({c["device"] for c in costs}))
        row["results_with_cost"] = sum(c.get("n", 1) for c in costs)
        out.append(row)
    return out


def cost_markdown(lb: Leaderboard) -> str:
    rows = cost_summary(lb)
    if not rows:
        return ""
    def f(v: Any, scale: float = 1.0) -> str:
        return MISSING if v is None else fmt(v / scale)
    lines = ["## Cost", "",
             "Measured per result, averaged over seeds, then over the column's tasks (read/encode/train seconds "
             "summed over tasks, peak memory the maximum). Parameters: every parameter of the built frozen "
             "encoder. GFLOPs from torch's FlopCounterMode (2 per multiply-add; matmuls, convolutions, attention). "
             "**Cost figures compare only within one device type.**", "",
             "| " + " | ".join(COST_HEADER) + " |", "|---|" + ":---:|" * (len(COST_HEADER) - 1)]
    for r in rows:
        if not r.get("results_with_cost"):
            lines.append(f"| {_md_escape(r['column'])} |" + f" {MISSING} |" * (len(COST_HEADER) - 2)
                         + " 0 (results without cost figures) |")
            continue
        lines.append(f"| {_md_escape(r['column'])} | {f(r['encoder_params'], 1e6)} | "
                     f"{f(r['encoder_gflops_per_image'])} | {f(r['head_gflops_per_step'])} | "
                     f"{f(r['encoder_images_per_s'])} | {f(r['read_s'])} | {f(r['encode_s'])} | {f(r['train_s'])} | "
                     f"{f(r['peak_memory_mb'])} | {r['device']} | {r['results_with_cost']} |")
    return "\n".join(lines)


def reported_markdown(lb: Leaderboard) -> str:
    cols = [c for c in lb.columns if c.kind == "reported"]
    if not cols:
        return ""
    sources = dict.fromkeys(c.source for c in cols)
    lines = ["## Reported columns", "",
             f"Columns marked {MARK_REPORTED} are published numbers, typed from their sources, not measured here: "
             "never ranked, bolded or averaged with measured columns. Sources:", ""]
    for src in sources:
        names = ", ".join(c.display for c in cols if c.source == src)
        lines.append(f"- {names}: {src}")
    return "\n".join(lines)


def render_markdown(lb: Leaderboard) -> str:
    parts = ["# Copernicus-Bench leaderboard", "",
             f"Generated by `cbench leaderboard` on {lb.created} from result files; do not edit by hand.", ""]
    parts += [f"- {n}" for n in lb.notes]
    parts += ["", markdown_table(lb), "", summary_markdown(lb), "", "![normalised scores](scores.png)", ""]
    for extra in (cost_markdown(lb), reported_markdown(lb)):
        if extra:
            parts += [extra, ""]
    if lb.excluded:
        parts += ["## Per-sample files refused", ""] + [f"- {e}" for e in lb.excluded] + [""]
    return "\n".join(parts)


def csv_rows(lb: Leaderboard) -> list[dict[str, Any]]:
    """Tidy rows: one per (task, column)."""
    out = []
    for row in lb.rows:
        for col in lb.columns:
            cell = row.cells[col.id]
            out.append({
                "level": row.card.level, "level_name": row.card.level_name, "task": row.card.slug,
                "task_name": row.card.name, "metric": row.card.metric, "higher_is_better": row.card.higher_is_better,
                "value": lb.metric, "column": col.label, "model": col.model, "weights": col.weights,
                "tier": col.tier, "protocol": col.protocol, "sample_data": col.sample_data,
                "override_hash": col.override_hash, "status": cell.status, "mean": cell.mean, "std": cell.std,
                "n": cell.n, "seeds": " ".join(map(str, cell.seeds)), "best": cell.best,
                "per_batch_mean": cell.per_batch_mean, "paper_mean": cell.paper_mean,
                "paper_std": cell.paper_std, "paper_flag": cell.paper_flag, "kind": col.kind,
                "source": col.source, "ci_low": cell.ci[0] if cell.ci else None,
                "ci_high": cell.ci[1] if cell.ci else None, "ci_note": cell.ci_note,
                "rank_low": cell.rank_interval[0] if cell.rank_interval else None,
                "rank_high": cell.rank_interval[1] if cell.rank_interval else None,
                **{f"cost_{k}": cell.cost.get(k) for k in COST_MEAN_KEYS},
                "cost_device": cell.cost.get("device"),
            })
    return out


def to_json(lb: Leaderboard) -> dict[str, Any]:
    return {
        "schema": LEADERBOARD_SCHEMA, "created": lb.created, "metric": lb.metric,
        "compare_paper": lb.compare_paper, "tolerance": lb.tolerance, "sample_data": lb.sample_data,
        "notes": lb.notes,
        "columns": [{"id": c.id, "label": c.label, **asdict(c)} for c in lb.columns],
        "tasks": [{"slug": r.card.slug, "name": r.card.name, "level": r.card.level,
                   "level_name": r.card.level_name, "metric": r.card.metric,
                   "higher_is_better": r.card.higher_is_better,
                   "cells": {cid: {"status": c.status, "mean": c.mean, "std": c.std, "n": c.n, "seeds": c.seeds,
                                   "values": c.values, "best": c.best, "per_batch_mean": c.per_batch_mean,
                                   "paper_mean": c.paper_mean, "paper_std": c.paper_std,
                                   "paper_flag": c.paper_flag, "ci": list(c.ci) if c.ci else None,
                                   "ci_note": c.ci_note,
                                   "rank_interval": list(c.rank_interval) if c.rank_interval else None,
                                   "provenance": c.provenance, "cost": c.cost}
                             for cid, c in r.cells.items()},
                   "sensor": r.card.sensor, "task_type": r.card.task_type}
                  for r in lb.rows],
        "summary": [{"group": {"tier": s.group[0], "protocol": s.group[1], "sample_data": s.group[2]},
                     "tasks": s.tasks, "anchor": s.anchor, "mean_rank": s.mean_rank,
                     "normalised_score": s.norm_score, "iqm": s.iqm,
                     "iqm_ci": {k: list(v) for k, v in s.iqm_ci.items()},
                     "rank_interval": {k: list(v) for k, v in s.rank_interval.items()}, "iqm_note": s.iqm_note,
                     "breakdowns": [asdict(b) for b in s.breakdowns]} for s in lb.summaries],
        "bootstrap": {"resamples": lb.n_boot, "seed": lb.boot_seed, "unit": "test images",
                      "interval": "percentile, 95 %"},
        "cost": cost_summary(lb),
        "excluded_per_sample_files": lb.excluded,
        "model_cards": lb.model_cards,
    }


def plot_scores(lb: Leaderboard, path: str | Path) -> Path:
    """Grouped bars: per-task normalised score of each column (one panel per comparable group)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(c.group for c in lb.columns)) or [("full", "cached", False)]
    fig, axes = plt.subplots(len(groups), 1, figsize=(max(8.0, 0.9 * len(lb.rows) + 3), 5.0 * len(groups)),
                             squeeze=False)
    for ax, group in zip(axes[:, 0], groups):
        cols = [c for c in lb.columns if c.group == group]
        rows = [r for r in lb.rows if any(r.cells[c.id].mean is not None for c in cols)]
        width = 0.8 / max(1, len(cols))
        cmap = plt.get_cmap("tab10")
        for i, col in enumerate(cols):
            xs, ys = [], []
            for x, r in enumerate(rows):
                s = task_scores(r, cols).get(col.id)
                if s is not None and not math.isnan(s):
                    xs.append(x - 0.4 + width * (i + 0.5))
                    ys.append(s)
            ax.bar(xs, ys, width=width, label=col.label, color=cmap(i % 10))
        for x, r in enumerate(rows):
            scores = task_scores(r, cols)
            if scores and all(math.isnan(v) for v in scores.values()):
                ax.text(x, 0.05, "baseline\nis best", ha="center", va="bottom", fontsize=7, color="grey")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.axhline(1, color="grey", linewidth=0.6, linestyle="--")
        ax.set_xlim(-0.6, max(len(rows), 1) - 0.4)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([r.card.name for r in rows], rotation=35, ha="right", fontsize=8)
        ax.set_ylabel(f"normalised score\n(0 = random baseline, 1 = best,\nclipped at {NORM_FLOOR:g})")
        title = f"Copernicus-Bench, {group_title(group)} ({lb.metric} metric)"
        if group[2]:
            title += "\nGENERATED SAMPLE DATA: these numbers mean nothing about the models"
        ax.set_title(title, fontsize=10)
        if not rows:
            ax.text(0.5, 0.5, "no results", ha="center", va="center", transform=ax.transAxes)
        elif cols:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


#: further writers ``fn(lb, out_dir) -> {name: path}`` called by :func:`write_leaderboard` after the
#: tables (e.g. the paper figures of issue 16: append the function here, one line).
EXTRA_WRITERS: list[Callable[[Leaderboard, Path], dict[str, Path]]] = []


def write_leaderboard(lb: Leaderboard, out_dir: str | Path, html: bool = False) -> dict[str, Path]:
    """``README.md``, ``leaderboard.csv``, ``leaderboard.json``, ``leaderboard.eee.json``, ``costs.csv`` and
    ``scores.png`` in ``out_dir``; with ``html`` also the self-contained ``index.html``. Written as a set:
    when any file fails (e.g. a full disk), the previous set stays (:mod:`copernicus_bench.atomicset`)."""
    from .atomicset import restage, staged_files
    from .results import ensure_writable

    final = ensure_writable(out_dir)
    with staged_files(final) as stage:
        paths = _write_leaderboard_files(lb, stage, html)
    return restage(paths, stage, final)


def _write_leaderboard_files(lb: Leaderboard, out_dir: str | Path, html: bool = False) -> dict[str, Path]:
    from .export import export_records
    from .results import atomic_write_json, ensure_writable

    out = ensure_writable(out_dir)
    paths = {"markdown": out / "README.md", "csv": out / "leaderboard.csv", "json": out / "leaderboard.json",
             "chart": out / "scores.png", "export": out / "leaderboard.eee.json", "costs": out / "costs.csv"}
    _atomic_text(paths["markdown"], render_markdown(lb))
    rows = csv_rows(lb)
    tmp = paths["csv"].with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        fieldnames = list(rows[0]) if rows else ["task", "column"]
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(paths["csv"])
    atomic_write_json(paths["json"], to_json(lb))
    atomic_write_json(paths["export"], export_records(lb, lb.created))
    _write_csv(paths["costs"], cost_rows(lb))
    plot_scores(lb, paths["chart"])
    from .figures import plot_task_scores  # per-task raw scores, one panel per level: tasks.png/.pdf/.svg

    paths.update({f"figure_{f.suffix[1:]}": f for f in plot_task_scores(lb, out)})
    if html:
        from .html import write_html

        paths["html"] = write_html(lb, out / "index.html", paths["chart"])
    for writer in EXTRA_WRITERS:
        paths.update(writer(lb, out))
    return paths


def cost_rows(lb: Leaderboard) -> list[dict[str, Any]]:
    """One row per measured (task, column) cell with cost figures (seed means)."""
    return [{"task": r.card.slug, "column": c.label, "model": c.model, **r.cells[c.id].cost}
            for r in lb.rows for c in lb.columns if c.kind == "measured" and r.cells[c.id].cost]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        fieldnames = list(dict.fromkeys(k for r in rows for k in r)) or ["task", "column"]
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def leaderboard_from_dir(results_dir: str | Path, cards: Iterable[TaskCard] | None = None,
                         reported: bool = False, reported_files: Sequence[str | Path] = (),
                         overlap: Sequence[str] | None = None, **kwargs: Any) -> Leaderboard:
    """Load every result under ``results_dir`` and build the leaderboard over ``cards`` (default: all).

    ``reported`` adds the paper's columns and the built-in reported file, plus ``reported_files``;
    ``overlap`` keeps only models whose card's pretraining-overlap flag is in it.
    """
    from .results import load_results

    own_tasks = cards is None
    if cards is None:
        from .tasks import list_cards

        cards = list_cards()
    cards = list(cards)
    results = load_results(results_dir)
    if own_tasks:  # users' own tasks (cbench run --task-card) carry their card in the result
        from .tasks.custom import cards_from_results

        cards += cards_from_results(results, cards)
    model_cards = {m: model_card_of(m, [r for r in results if r["model"] == m])
                   for m in dict.fromkeys(str(r["model"]) for r in results)}
    if overlap is not None:
        from .model_card import OVERLAP_VALUES

        bad = [o for o in overlap if o not in OVERLAP_VALUES]
        if bad:
            raise CbenchError(f"--overlap {','.join(bad)}: unknown; use some of {', '.join(OVERLAP_VALUES)}")
        results = [r for r in results if model_cards[str(r["model"])].get("overlap", "unknown") in overlap]
    rep_cols = []
    if reported or reported_files:
        from .reported import reported_columns

        rep_cols = reported_columns(cards, reported_files) if reported else []
        if not reported:
            from .reported import load_reported

            for f in reported_files:
                rep_cols += load_reported(f, [c.slug for c in cards])
    lb = build_leaderboard(results, cards, reported=rep_cols, **kwargs)
    lb.model_cards = {m: c for m, c in model_cards.items() if m in {col.model for col in lb.columns}}
    return lb


def model_card_of(model: str, results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The model card a result recorded, else the installed adapter's, else an 'undeclared' card."""
    for r in results:
        if isinstance(r.get("model_card"), dict):
            return r["model_card"]
    from .model_card import undeclared

    try:
        from .models_registry import create_model

        return create_model(model, seed=0).model_card().to_dict()
    except Exception:  # noqa: BLE001 - a missing or broken plug-in must not stop the table
        return undeclared(model).to_dict()
