"""The frozen-encoder probing runner: one (model, task, seed) job → one result file.

``run_one`` resolves the task card and the model's adapter, checks applicability, loads the three splits,
computes (or reuses from the cache) the frozen features, trains the paper's probe, and writes a result JSON
atomically under its identity (model, weights hash, task, tier, protocol, seed, overrides). A result that
already exists is skipped unless ``overwrite``. Job failures never raise: they come back as an outcome
with a one-line message, so a sweep goes on.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.data import Dataset

from . import paths
from .cache import FeatureCache, cache_key
from .cards import TaskCard
from .encoder import EncoderAdapter, InputPipeline, TaskEncoder
from .errors import CbenchError, DataNotFoundError, WeightsNotFoundError
from .features import NUM_VIEWS, CachedSource, OnTheFlySource, encode_batch, fill_cache
from .models_registry import create_model
from .provenance import device_name, git_commit, package_versions, peak_memory_mb, resolve_device
from .results import ResultKey, ensure_writable, override_hash, read_result, result_path, write_result

log = logging.getLogger(__name__)

SMOKE_LIMIT = 16
SMOKE_EPOCHS = 2
FEATURES_VERSION = "1"
TIERS = ("full", "smoke")
PROTOCOLS = ("cached", "paper")


@dataclass(frozen=True)
class RunSpec:
    """One job of a sweep. ``model_args`` are ``(key, value-string)`` pairs passed to the model factory."""

    model: str
    task: str
    seed: int = 0
    tier: str = "full"
    protocol: str = "cached"
    data_root: str | None = None
    sample: bool = False
    weights_dir: str | None = None
    cache_dir: str | None = None
    out_dir: str = "results"
    device: str | None = None
    batch_size: int | None = None
    epochs: int | None = None
    limit: int | None = None
    num_workers: int = 0
    cache_budget_gb: float = 8.0
    cache_dtype: str = "float16"
    model_args: tuple[tuple[str, str], ...] = ()
    overwrite: bool = False


@dataclass
class RunOutcome:
    spec: RunSpec
    status: str  # "done" | "skipped" | "not-applicable" | "failed"
    path: str | None
    message: str
    metric: float | None
    error_kind: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def expand_grid(models: list[str], tasks: list[str], seeds: list[int], **common: Any) -> list[RunSpec]:
    """The (model × task × seed) grid as jobs, models outermost (so one model's weights load once)."""
    return [RunSpec(model=m, task=t, seed=s, **common) for m in models for t in tasks for s in seeds]


def parse_model_args(pairs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """``("depth", "2")`` → ``{"depth": 2}`` (values parsed as YAML scalars)."""
    out = {}
    for key, value in pairs:
        try:
            out[key] = yaml.safe_load(value) if isinstance(value, str) else value
        except yaml.YAMLError:
            out[key] = value
    return out


def make_adapter(spec: RunSpec) -> EncoderAdapter:
    return create_model(spec.model, weights_dir=str(paths.weights_dir(spec.weights_dir)), seed=spec.seed,
                        **parse_model_args(spec.model_args))


def resolve_data_root(spec: RunSpec) -> Path:
    if spec.sample:
        from .tasks.sample import ensure_builtin_sample

        return Path(ensure_builtin_sample())
    root = paths.data_root(spec.data_root)
    if not root.is_dir():
        raise DataNotFoundError(f"data root {root} does not exist; run 'cbench download --task all --data-root "
                                f"{root}', pass --data-root DIR, or use --sample")
    return root


class _SmokeTargets(Dataset):
    """Smoke tier: dense targets resized (nearest) to the capped input resolution."""

    def __init__(self, base: Dataset, size: int) -> None:
        self.base, self.size = base, size

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.base[i])
        t = item["target"]
        if t.shape[-2:] != (self.size, self.size):
            resized = torch.nn.functional.interpolate(t[None, None].float(), size=(self.size, self.size),
                                                      mode="nearest")[0, 0]
            item["target"] = resized.to(t.dtype)
        return item


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False, file=sys.stderr,
                disable=not enabled or not sys.stderr.isatty() and os.environ.get("CBENCH_PROGRESS") != "1")


def run_one(spec: RunSpec, progress: bool = True) -> RunOutcome:
    """Run one job; failures come back as ``status="failed"`` with a one-line message."""
    try:
        return _run(spec, progress)
    except WeightsNotFoundError as exc:
        return RunOutcome(spec, "failed", None, str(exc), None, error_kind="weights")
    except CbenchError as exc:
        return RunOutcome(spec, "failed", None, str(exc), None, error_kind="input")
    except Exception as exc:  # noqa: BLE001 - a bug in one job must not stop a sweep
        if os.environ.get("CBENCH_DEBUG"):
            traceback.print_exc()
        msg = str(exc).splitlines()[0] if str(exc) else ""
        return RunOutcome(spec, "failed", None, f"{type(exc).__name__}: {msg} (set CBENCH_DEBUG=1 for the traceback)",
                          None, error_kind="internal")


def _overrides(spec: RunSpec, model_args: dict[str, Any]) -> dict[str, Any]:
    """What changes a result beyond (model, weights, task, tier, protocol, seed): hashed into its identity."""
    out: dict[str, Any] = {}
    if spec.epochs is not None:
        out["epochs"] = spec.epochs
    if spec.batch_size is not None:
        out["batch_size"] = spec.batch_size
    if spec.limit is not None:
        out["limit"] = spec.limit
    if model_args:
        out["model_args"] = model_args
    if spec.cache_dtype != "float16":
        out["cache_dtype"] = spec.cache_dtype
    if spec.sample:
        out["data"] = "built-in sample"
    return out


def _run(spec: RunSpec, progress: bool) -> RunOutcome:
    from .tasks import get_card, list_cards, load_dataset

    t_start = time.perf_counter()
    if spec.tier not in TIERS:
        raise CbenchError(f"--tier {spec.tier!r} is unknown; use one of {', '.join(TIERS)}")
    if spec.cache_dtype not in ("float16", "float32"):
        raise CbenchError(f"--cache-dtype {spec.cache_dtype!r} is unknown; use float16 or float32")
    if spec.protocol not in PROTOCOLS:
        raise CbenchError(f"--protocol {spec.protocol!r} is unknown; use one of {', '.join(PROTOCOLS)}")
    card = get_card(spec.task)
    model_args = parse_model_args(spec.model_args)
    adapter = make_adapter(spec)
    reason = adapter.applicability(card)
    if reason:
        return RunOutcome(spec, "not-applicable", None, reason, None)
    out_dir = ensure_writable(spec.out_dir)
    data_root = resolve_data_root(spec)
    pipeline = adapter.input_pipeline(card, spec.tier)  # type: ignore[arg-type]
    device = resolve_device(spec.device)
    smoke = spec.tier == "smoke"

    torch.manual_seed(spec.seed)  # as the reference's seed_everything before model creation
    encoder = adapter.build(card, pipeline, spec.seed)
    encoder = encoder.to(device).eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    weights = encoder.weights

    overrides = _overrides(spec, model_args)
    key = ResultKey(model=spec.model, weights_sha256=weights.sha256, task=card.slug, tier=spec.tier,
                    protocol=spec.protocol, seed=spec.seed, override_hash=override_hash(overrides))
    target_path = result_path(out_dir, key)
    if target_path.exists() and not spec.overwrite and read_result(target_path) is not None:
        return RunOutcome(spec, "skipped", str(target_path), "result exists (use --overwrite to redo)", None)

    epochs = spec.epochs or (SMOKE_EPOCHS if smoke else card.probe.epochs)
    batch_size = spec.batch_size or card.probe.batch_size
    limit = spec.limit or (SMOKE_LIMIT if smoke else None)
    if epochs < 1 or batch_size < 1 or (limit is not None and limit < 1):
        raise CbenchError("--epochs, --batch-size and --limit must be positive integers")

    datasets: dict[str, Dataset] = {}
    split_checksums: dict[str, str] = {}
    per_split_sums: dict[str, dict[str, str]] = {}
    for split in ("train", "val", "test"):
        ds = load_dataset(card, split, data_root, limit=limit)
        per_split_sums[split] = {}
        for f in map(Path, ds.split_files()):
            name = str(f.relative_to(data_root)) if f.is_relative_to(data_root) else str(f)
            per_split_sums[split][name] = split_checksums[name] = _file_sha256(f)
        if len(ds) == 0:
            raise DataNotFoundError(f"split '{split}' of task {card.slug} under {data_root} is empty; "
                                    "check the split file or the data root")
        datasets[split] = _SmokeTargets(ds, pipeline.resolution) if smoke and card.is_dense else ds

    sources, cache_info, encode_seconds = _feature_sources(spec, card, adapter, encoder, pipeline, weights.sha256,
                                                           datasets, per_split_sums, device, limit, progress)

    from .probing import build_head, train_probe

    torch.manual_seed(spec.seed)
    head = build_head(card, encoder.embed_dim, adapter.head)
    bar = _progress(epochs, f"{spec.model}/{card.slug} probe", progress)
    result = train_probe(card, head, sources["train"], sources["val"], sources["test"], epochs=epochs,
                         batch_size=batch_size, lr=card.probe.lr, seed=spec.seed, device=device,
                         on_epoch=lambda e, r: bar.update(1))
    bar.close()
    # on-the-fly sources encode inside the training loop: count that time as encoding, not head training
    fly_seconds = sum(src.encode_seconds for src in sources.values() if isinstance(src, OnTheFlySource))
    encode_seconds += fly_seconds
    head_seconds = max(result.train_seconds - fly_seconds, 0.0)
    total = time.perf_counter() - t_start

    applicable = [c.slug for c in list_cards() if adapter.applicability(c) is None]
    display = spec.model + (" (random init)" if weights.source == "random-init" and spec.model != "random" else "")
    record = {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "model": spec.model,
        "model_display": display,
        "weights": {**asdict(weights), "label": weights.label},
        "task": card.slug,
        "task_version": card.version,
        "task_digest": card.digest(),
        "tier": spec.tier,
        "protocol": spec.protocol,
        "seed": spec.seed,
        "overrides": overrides,
        "override_hash": key.override_hash,
        "sample_data": spec.sample,
        "metric": {"name": card.metric, "higher_is_better": card.higher_is_better,
                   "global": result.test["global"], "per_batch": result.test["per_batch"],
                   "unit": "%" if card.metric != "rmse" else "target units"},
        "val_metric": result.val,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "applicable_tasks": applicable,
        "input_adaptation": list(pipeline.adaptations),
        "pipeline": {**asdict(pipeline), "digest": pipeline.digest()},
        "config": {
            "epochs": epochs, "batch_size": batch_size, "lr": card.probe.lr, "optimizer": card.probe.optimizer,
            "weight_decay": card.probe.weight_decay, "schedule": card.probe.schedule, "head": card.probe.head,
            "pooled_head": adapter.head, "limit": limit, "samples": {k: len(v) for k, v in datasets.items()},
            "model_options": adapter.options(), "model_args": model_args, "data_root": str(data_root),
            "num_workers": spec.num_workers, "cache_budget_gb": spec.cache_budget_gb,
            "cache_dtype": spec.cache_dtype,
            "selection": "best validation epoch by the global metric",
        },
        "split_checksums": split_checksums,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "device": device_name(device),
        "timings": {"encode_s": round(encode_seconds, 3), "train_s": round(head_seconds, 3),
                    "total_s": round(total, 3)},
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "cache": cache_info,
    }
    path = write_result(out_dir, record)
    return RunOutcome(spec, "done", str(path), "ok", result.test["global"],
                      extra={"per_batch": result.test["per_batch"], "best_epoch": result.best_epoch})


def _feature_sources(spec: RunSpec, card: TaskCard, adapter: EncoderAdapter, encoder: TaskEncoder,
                     pipeline: InputPipeline, weights_sha: str, datasets: dict[str, Dataset],
                     split_sums: dict[str, dict[str, str]], device: torch.device, limit: int | None,
                     progress: bool):
    """Cached flip-view features when they fit the budget (always for classification), else on the fly."""
    encode_bs = min(spec.batch_size or card.probe.batch_size, 32)
    if spec.protocol == "paper":
        src = {s: OnTheFlySource(encoder, pipeline, card, ds, device, augment="paper" if s == "train" else "none",
                                 num_workers=spec.num_workers) for s, ds in datasets.items()}
        return src, {"mode": "paper-protocol (re-encoded every epoch)"}, 0.0

    itemsize = 4 if spec.cache_dtype == "float32" else 2
    estimate = _estimate_bytes(card, encoder, pipeline, datasets, device) // 2 * itemsize
    budget = int(spec.cache_budget_gb * 2**30)
    if card.is_dense and estimate > budget:
        src = {s: OnTheFlySource(encoder, pipeline, card, ds, device, augment="flips" if s == "train" else "none",
                                 num_workers=spec.num_workers) for s, ds in datasets.items()}
        return src, {"mode": "on-the-fly flip views (over --cache-budget)", "estimated_bytes": estimate}, 0.0

    cache = FeatureCache(paths.cache_dir(spec.cache_dir))
    sources, info, seconds = {}, {"mode": "cached flip views", "estimated_bytes": estimate, "hits": {}}, 0.0
    for split, ds in datasets.items():
        views = NUM_VIEWS if split == "train" else 1
        parts = {
            "features": FEATURES_VERSION, "model": spec.model, "weights": weights_sha,
            "model_options": adapter.options(), "task": card.slug, "card": card.digest(), "split": split,
            "pipeline": pipeline.digest(), "views": views, "limit": limit, "n": len(ds),
            "smoke_targets": isinstance(ds, _SmokeTargets), "dtype": spec.cache_dtype,
            "data": str(getattr(getattr(ds, "base", ds), "root", "")), "split_files": split_sums[split],
        }
        key = cache_key(parts)
        t0 = time.perf_counter()
        bar = _progress(len(ds) * views, f"{spec.model}/{card.slug} encode {split}", progress)

        def build(writer, ds=ds, views=views, bar=bar):
            fill_cache(writer, encoder, pipeline, card, ds, views, device, encode_bs, spec.num_workers,
                       progress=lambda n: bar.update(n * views), dtype=spec.cache_dtype)

        arrays, hit = cache.get_or_build(key, parts, build)
        bar.close()
        seconds += time.perf_counter() - t0
        info["hits"][split] = hit
        sources[split] = CachedSource(arrays, card, device)
    return sources, info, seconds


def _estimate_bytes(card: TaskCard, encoder: TaskEncoder, pipeline: InputPipeline,
                    datasets: dict[str, Dataset], device: torch.device) -> int:
    """fp16 bytes the cached features of all splits would take (dense: measured on one sample)."""
    n_views = {"train": NUM_VIEWS, "val": 1, "test": 1}
    if not card.is_dense:
        per = 2 * encoder.embed_dim
    else:
        item = datasets["train"][0]
        out = encode_batch(encoder, pipeline, card, item["image"][None], item["meta"][None], True, device)
        per = 2 * sum(m[0].numel() for m in out.maps)
    return sum(per * len(ds) * n_views[s] for s, ds in datasets.items())
