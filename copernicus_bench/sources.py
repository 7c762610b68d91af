"""Run stage 6: the *feature sources* a probe trains on — cached flip-view features, or on-the-fly encoding.

Classification always caches (the four flip views of the train split, one view of val and test). A dense
task caches its maps when they fit ``--cache-budget``; otherwise the same flip views are encoded on the fly
every epoch. ``--protocol paper`` re-encodes the reference's augmentation every epoch.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

from torch.utils.data import Dataset

from . import paths
from .cache import FeatureCache, cache_key
from .code_identity import adapter_code
from .encoder import InputPipeline, TaskEncoder
from .features import NUM_VIEWS, CachedSource, OnTheFlySource, encode_batch, fill_cache
from .guards import NonFiniteError
from .job import Job
from .progress_bar import progress_bar
from .splits import SmokeTargets, Splits

FEATURES_VERSION = "1"


def feature_sources(job: Job, encoder: TaskEncoder, splits: Splits,
                    progress: bool) -> tuple[dict[str, Any], dict[str, Any], float]:
    """``(sources by split, cache info for the record, seconds spent encoding)``."""
    spec, card = job.spec, job.card
    if spec.protocol == "paper":
        return _on_the_fly(job, encoder, splits, "paper"), {"mode": "paper-protocol (re-encoded every epoch)"}, 0.0
    budget = int(spec.cache_budget_gb * 2**30)
    if card.is_dense and spec.cache_mode == "use":
        present = cached_bytes(job, encoder, splits)  # complete entries: sized from disk, no sizing pass
        if present is not None and present <= budget:
            return _cached(job, encoder, splits, present, progress)
    itemsize = 4 if spec.cache_dtype == "float32" else 2
    estimate = estimate_bytes(job, encoder, splits.datasets) // 2 * itemsize
    if card.is_dense and estimate > budget:
        fly_splits, fly_pipeline, inputs = _input_cached(job, splits)
        return (_on_the_fly(job, encoder, fly_splits, "flips", fly_pipeline),
                {"mode": "on-the-fly flip views (over --cache-budget)", "estimated_bytes": estimate,
                 "inputs": inputs}, 0.0)
    return _cached(job, encoder, splits, estimate, progress)


def cached_bytes(job: Job, encoder: TaskEncoder, splits: Splits) -> int | None:
    """Bytes on disk of the job's feature entries when every split's entry is complete (checked without
    reading arrays), else None."""
    cache = FeatureCache(paths.cache_dir(job.spec.cache_dir))
    total = 0
    for split, ds in splits.datasets.items():
        views = NUM_VIEWS if split == "train" else 1
        entry = cache.entry_dir(cache_key(cache_parts(job, encoder.weights.sha256, split, ds, views,
                                                      splits.per_split[split])))
        if not (entry / "COMPLETE").is_file():
            return None
        total += sum(f.stat().st_size for f in entry.glob("*.npy"))
    return total


def _input_cached(job: Job, splits: Splits):
    """Dense over the budget: the splits' decoded, pipeline-applied inputs from the input cache (when they
    fit ``--input-cache-budget``), so on-the-fly epochs read arrays instead of decoding files again."""
    from dataclasses import replace

    from .input_cache import cached_inputs, identity_pipeline, input_bytes

    spec = job.spec
    total = sum(input_bytes(job.card, job.pipeline, len(ds), spec.cache_dtype) for ds in splits.datasets.values())
    if spec.cache_mode == "off" or total > getattr(spec, "input_cache_gb", 64.0) * 2**30:  # --no-cache, or
        return splits, job.pipeline, "decoded from the files every epoch"  # over --input-cache-budget (0: off)
    datasets, hits = {}, {}
    for split, ds in splits.datasets.items():
        datasets[split], hits[split] = cached_inputs(
            paths.cache_dir(spec.cache_dir), job.card, job.pipeline, split, ds, splits.per_split[split], job.limit,
            spec.cache_dtype, batch_size=min(job.batch_size, 32), num_workers=spec.num_workers,
            refresh=spec.cache_mode == "refresh")
    return replace(splits, datasets=datasets), identity_pipeline(job.pipeline), f"input cache ({spec.cache_dtype}, hits {hits})"


def _on_the_fly(job: Job, encoder: TaskEncoder, splits: Splits, augment: str,
                pipeline: InputPipeline | None = None) -> dict[str, Any]:
    return {s: OnTheFlySource(encoder, pipeline or job.pipeline, job.card, ds, job.device,
                              augment=augment if s == "train" else "none", num_workers=job.spec.num_workers,
                              paper_size=paper_target_size(job))
            for s, ds in splits.datasets.items()}


def paper_target_size(job: Job) -> int | None:
    """Dense tasks: the encoder's input resolution, where the reference trains and scores (``metric.paper``)."""
    return job.pipeline.resolution if job.card.is_dense else None


def cache_parts(job: Job, weights_sha: str, split: str, ds: Dataset, views: int,
                split_sums: dict[str, str]) -> dict[str, Any]:
    """What a cached entry depends on (hashed into its key)."""
    spec, card = job.spec, job.card
    return {
        "features": FEATURES_VERSION, "model": spec.model, "weights": weights_sha,
        "model_options": job.adapter.options(), "task": card.slug, "card": card.digest(), "split": split,
        "pipeline": job.pipeline.digest(), "views": views, "limit": job.limit, "n": len(ds),
        "smoke_targets": isinstance(ds, SmokeTargets), "dtype": spec.cache_dtype,
        "data": str(getattr(getattr(ds, "base", ds), "root", "")), "split_files": split_sums,
        "code": adapter_code(job.adapter)["hash"],  # the adapter's distribution, version and source hash
    }


def _cached(job: Job, encoder: TaskEncoder, splits: Splits, estimate: int,
            progress: bool) -> tuple[dict[str, Any], dict[str, Any], float]:
    spec, card = job.spec, job.card
    encode_bs = min(job.batch_size, 32)
    scratch = tempfile.TemporaryDirectory(prefix="cbench-no-cache-") if spec.cache_mode == "off" else None
    cache = FeatureCache(scratch.name if scratch else paths.cache_dir(spec.cache_dir))
    sources, info, seconds = {}, {"mode": "cached flip views", "estimated_bytes": estimate, "hits": {}}, 0.0
    if spec.cache_mode != "use":
        info["cache"] = {"refresh": "rebuilt (--refresh-cache)", "off": "not used (--no-cache)"}[spec.cache_mode]
    for split, ds in splits.datasets.items():
        views = NUM_VIEWS if split == "train" else 1
        parts = cache_parts(job, encoder.weights.sha256, split, ds, views, splits.per_split[split])
        t0 = time.perf_counter()
        bar = progress_bar(len(ds) * views, f"{spec.model}/{card.slug} encode {split}", progress)

        def build(writer, ds=ds, views=views, bar=bar):
            fill_cache(writer, encoder, job.pipeline, card, ds, views, job.device, encode_bs, spec.num_workers,
                       progress=lambda n: bar.update(n * views), dtype=spec.cache_dtype)

        try:
            arrays, hit = cache.get_or_build(cache_key(parts), parts, build, refresh=spec.cache_mode == "refresh")
        except NonFiniteError as exc:  # NaN/inf features: name the split being encoded
            if scratch:
                scratch.cleanup()
            raise exc.at(split=split) from None
        bar.close()
        seconds += time.perf_counter() - t0
        info["hits"][split] = hit
        sources[split] = CachedSource(arrays, card, job.device, paper_size=paper_target_size(job))
    if scratch:  # --no-cache: the arrays stay memory-mapped after their files are unlinked (POSIX)
        scratch.cleanup()
    return sources, info, seconds


def estimate_bytes(job: Job, encoder: TaskEncoder, datasets: dict[str, Dataset]) -> int:
    """fp16 bytes the cached features of all splits would take (dense: measured on one sample)."""
    card = job.card
    n_views = {"train": NUM_VIEWS, "val": 1, "test": 1}
    if not card.is_dense:
        per = 2 * encoder.embed_dim
    else:
        item = datasets["train"][0]
        out = encode_batch(encoder, job.pipeline, card, item["image"][None], item["meta"][None], True, job.device)
        per = 2 * sum(m[0].numel() for m in out.maps)
    return sum(per * len(ds) * n_views[s] for s, ds in datasets.items())
