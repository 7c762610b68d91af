"""The protocols beside ``cached`` and ``paper``, and label fractions, as run stages the runner calls.

* ``knn`` — :mod:`~copernicus_bench.knn` on the cached pooled features (classification only);
* ``finetune`` — :mod:`~copernicus_bench.finetune`: the encoder trained end to end with the paper's heads;
  the supervised-from-scratch models (``supervised-vit-s16`` / ``-b16``, adapters with
  ``protocol = "finetune"``) always run under it;
* ``--train-fraction`` — :mod:`~copernicus_bench.fractions`: a stratified subset of the training split
  (the cache still holds the whole split once, so every fraction reuses it).

Each protocol is part of the result identity (``protocol``); the fraction, ``--layer-decay`` and
``--freeze-patch-embed`` are overrides (hashed into it). Every check here runs before any model is built or
any file written.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from torch.utils.data import Subset

from .errors import CbenchError
from .features import CachedSource, OnTheFlySource
from .finetune import FinetuneOptions, supervised_lr
from .fractions import SubsetCachedSource, TrainSubset, check_fraction, dataset_labels, select, split_checksum

PROTOCOLS_EXTRA = ("knn", "finetune")


def validate_spec(spec) -> None:
    """Option checks that need no card (one line each)."""
    f = spec.train_fraction
    if not isinstance(f, (int, float)) or isinstance(f, bool) or not math.isfinite(f):
        raise CbenchError(f"--train-fraction {f!r} is not a number; use values in (0, 1] like 0.01,0.1,1.0")
    check_fraction(float(f))
    FinetuneOptions(spec.layer_decay, spec.freeze_patch_embed)
    if spec.protocol != "finetune" and (spec.layer_decay != 1.0 or spec.freeze_patch_embed):
        raise CbenchError("--layer-decay and --freeze-patch-embed apply to --protocol finetune only; drop them "
                          f"or use --protocol finetune (got --protocol {spec.protocol})")


def is_supervised(adapter) -> bool:
    return getattr(adapter, "protocol", None) == "finetune"


def adjust_job(job):
    """Stage 1b: the protocol a job really runs (supervised models: ``finetune``), its checks, its overrides."""
    spec, card = job.spec, job.card
    if is_supervised(job.adapter):
        if spec.protocol not in ("cached", "finetune"):
            raise CbenchError(f"--protocol {spec.protocol}: model '{spec.model}' is trained from scratch end to end; "
                              "it runs only under --protocol finetune (its default)")
        if spec.protocol != "finetune":
            spec = dataclasses.replace(spec, protocol="finetune")
    if spec.protocol == "knn":
        from .knn import check_applicable

        check_applicable(card)
    job.spec = spec
    if spec.train_fraction != 1.0:
        job.overrides["train_fraction"] = float(spec.train_fraction)
    if spec.layer_decay != 1.0:
        job.overrides["layer_decay"] = float(spec.layer_decay)
    if spec.freeze_patch_embed:
        job.overrides["freeze_patch_embed"] = True
    return job


def feature_sources(job, encoder, splits, progress: bool):
    """Stage 6 for every protocol: the runner's sources (none for ``finetune``), restricted to the
    ``--train-fraction`` subset. Returns ``(sources, cache info, encode seconds)``."""
    from .sources import feature_sources as base_sources

    if job.spec.protocol == "finetune":  # the loop encodes with gradients; these serve the cost figures
        sources: dict[str, Any] = {s: OnTheFlySource(encoder, job.pipeline, job.card, ds, job.device, augment="none")
                                   for s, ds in splits.datasets.items()}
        info: dict[str, Any] = {"mode": "end-to-end (encoder in the graph; nothing cached)"}
        seconds = 0.0
    else:
        sources, info, seconds = base_sources(job, encoder, splits, progress)
    subset = train_subset(job, splits, sources.get("train"))
    job.train_subset = subset
    if subset is not None and subset.fraction < 1.0:
        idx = list(subset.indices)
        src = sources.get("train")
        if isinstance(src, CachedSource):
            sources["train"] = SubsetCachedSource(src, idx)
        elif isinstance(src, OnTheFlySource):
            src.dataset = Subset(src.dataset, idx)
        splits.datasets["train"] = Subset(splits.datasets["train"], idx)
    return sources, info, seconds


def train_subset(job, splits, train_source) -> TrainSubset | None:
    """The job's training subset (``None`` at fraction 1); labels from the cache when it has them."""
    fraction = float(job.spec.train_fraction)
    if fraction == 1.0:
        return None
    card = job.card
    ds = splits.datasets["train"]
    labels = None
    if not card.is_dense:
        if isinstance(train_source, CachedSource):
            labels = train_source.arrays["target"][:]
        else:
            labels = dataset_labels(card, ds)
    checksum = split_checksum(splits.per_split["train"])
    return select(card, labels, len(ds), fraction, job.spec.seed, checksum)


def run_probe(job, encoder, sources, splits, progress: bool):
    """Stage 7 for every protocol: ``(ProbeResult, seconds encoding on the fly, config additions)``."""
    from .progress_bar import epoch_callback, progress_bar
    from .runner import run_probe as frozen_probe

    spec, card = job.spec, job.card
    if spec.protocol == "knn":
        from . import knn

        result = knn.run_knn(card, sources["train"], sources["val"], sources["test"], batch_size=job.batch_size)
        return result, 0.0, {"protocol_config": knn.config()}
    if spec.protocol == "finetune":
        import torch

        from . import finetune
        from .probing import build_head

        options = FinetuneOptions(spec.layer_decay, spec.freeze_patch_embed)
        lr = supervised_lr(card)
        torch.manual_seed(spec.seed)
        head = build_head(card, encoder.embed_dim, job.adapter.head)
        bar = progress_bar(job.epochs, f"{spec.model}/{card.slug} finetune", progress, unit="epoch")
        result, trained = finetune.finetune(card, encoder, head, job.pipeline, splits.datasets, model=spec.model,
                                            epochs=job.epochs, batch_size=job.batch_size, lr=lr, seed=spec.seed,
                                            device=job.device, options=options, num_workers=spec.num_workers,
                                            on_epoch=epoch_callback(bar, card.metric))
        bar.close()
        from .encoder import state_dict_sha256

        extra = {"protocol_config": {**finetune.config(card, lr, options, is_supervised(job.adapter)),
                                     "trained_encoder_sha256": state_dict_sha256(trained)},
                 "lr": lr}
        return result, 0.0, extra
    result, fly_s = frozen_probe(job, encoder, sources, progress)
    return result, fly_s, {}


def annotate(record, job, extra: dict[str, Any]) -> None:
    """Stage 8 additions: protocol settings and the training subset in ``config``; the supervised rows are
    their own model (not a '(random init)' column)."""
    record.config.update(extra)
    subset: TrainSubset | None = getattr(job, "train_subset", None)
    record.config["train_fraction"] = float(job.spec.train_fraction)
    if subset is not None:
        record.config["train_subset"] = subset.record()
        record.config["samples"] = {**record.config.get("samples", {}), "train": len(subset.indices)}
    if is_supervised(job.adapter):
        record.model_display = job.spec.model


def precheck(protocol: str, model: str, adapter, card, explicit: bool) -> None:
    """CLI check before any job: a named task the protocol cannot run fails the command in one line."""
    if is_supervised(adapter) and protocol not in ("cached", "finetune"):
        raise CbenchError(f"--protocol {protocol}: model '{model}' is trained from scratch end to end; it runs "
                          "only under --protocol finetune (its default)")
    if protocol == "knn" and card.is_dense and explicit:
        from .knn import check_applicable

        check_applicable(card)
