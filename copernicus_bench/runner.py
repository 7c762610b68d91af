"""The frozen-encoder probing runner: one (model, task, seed) job → one result file.

A job runs in stages, cheapest first, each in its own module:

1. *resolve* — card, adapter, applicability, input pipeline, settings (``job.resolve``);
2. *identity* — the adapter's cheap weights token and the override hash (``job.identity_token``);
3. *skip* — a finished result with the same identity ends the job before any model is built
   (``job.finished_by_token``; adapters without a token are checked after stage 4, ``job.finished_by_key``);
4. *build encoder* — frozen, on the device (``build_encoder`` here);
5. *load splits* — the three splits and their split files' sha256 (``splits.load_splits``);
6. *feature sources* — cached flip-view features or on-the-fly encoding (``sources.feature_sources``);
7. *probe* — the paper's head trained on them (``run_probe`` here, ``probing.train_probe``);
8. *record* — a typed :class:`~copernicus_bench.results.ResultRecord` written atomically
   (``record.build_record``, ``results.write_result``).

:meth:`RunSpec.validate` checks every option once, for the CLI, the Python API and Ray alike. Job failures
never raise: they come back as an outcome with a one-line message, so a sweep goes on.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch

from . import protocols
from .encoder import TaskEncoder
from .errors import CbenchError, WeightsNotFoundError
from .job import (
    SMOKE_EPOCHS,
    SMOKE_LIMIT,
    Job,
    NotApplicable,
    finished_by_key,
    finished_by_token,
    identity_token,
    make_adapter,
    parse_model_args,
    resolve,
    result_key,
)
from .probing import ProbeResult
from .progress_bar import epoch_callback, progress_bar
from .record import Timings, build_record
from .result_extras import attach_extras, start_read_timer
from .results import write_result
from .sources import FEATURES_VERSION
from .splits import load_splits, resolve_data_root

__all__ = ["FEATURES_VERSION", "PROTOCOLS", "SMOKE_EPOCHS", "SMOKE_LIMIT", "TIERS", "RunOutcome", "RunSpec",
           "expand_grid", "make_adapter", "parse_model_args", "run_one"]

TIERS = ("full", "smoke")
PROTOCOLS = ("cached", "paper", "knn", "finetune")  # knn, finetune: protocols.py
CACHE_DTYPES = ("float16", "float32")
CACHE_MODES = ("use", "refresh", "off")


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
    num_workers: int | str = "auto"
    cache_budget_gb: float = 8.0
    #: dense tasks over ``cache_budget_gb``: decoded inputs kept while they fit this (``--input-cache-budget``)
    input_cache_gb: float = 64.0
    #: head training precision: fp32 (paper-compatible default) or bf16 autocast (an override of the identity)
    head_precision: str = "fp32"
    #: ``torch.compile`` the probe head (recorded in the config, not the identity: same maths)
    compile_head: bool = False
    cache_dtype: str = "float16"
    #: feature cache use (not part of the identity: same numbers): ``use`` (read, build when missing),
    #: ``refresh`` (``--refresh-cache``: rebuild every entry the job needs) or ``off`` (``--no-cache``: features
    #: in a private temporary folder removed after the job; the cache folder is neither read nor written)
    cache_mode: str = "use"
    model_args: tuple[tuple[str, str], ...] = ()
    overwrite: bool = False
    #: a user's task card file (``--task-card``; its folder is the data root) instead of a built-in task
    task_card: str | None = None
    #: where to store the trained (best-validation) head for ``cbench predict`` (``--save-head``)
    save_head: str | None = None
    #: ``--train-fraction``: a stratified subset of the training split (fractions.py; an override)
    train_fraction: float = 1.0
    #: ``--protocol finetune`` options (finetune.py; overrides)
    layer_decay: float = 1.0
    freeze_patch_embed: bool = False

    def validate(self) -> RunSpec:
        """Every option checked once (one line naming the option and the fix); returns ``self``."""
        for option, value, allowed in (("--tier", self.tier, TIERS), ("--protocol", self.protocol, PROTOCOLS),
                                       ("--cache-dtype", self.cache_dtype, CACHE_DTYPES),
                                       ("cache_mode", self.cache_mode, CACHE_MODES)):
            if value not in allowed:
                raise CbenchError(f"{option} {value!r} is unknown; use one of {', '.join(allowed)}")
        for option, value in (("--epochs", self.epochs), ("--batch-size", self.batch_size),
                              ("--limit", self.limit)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise CbenchError(f"{option} {value!r} must be a positive integer")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise CbenchError(f"--seeds: {self.seed!r} is not a non-negative integer")
        from .features import resolve_num_workers

        try:
            resolve_num_workers(self.num_workers)
        except ValueError:
            raise CbenchError(f"--num-workers {self.num_workers!r} must be an integer >= 0 or 'auto'") from None
        if self.head_precision not in ("fp32", "bf16"):
            raise CbenchError(f"--head-precision {self.head_precision!r} is unknown; use fp32 or bf16")
        if not self.cache_budget_gb >= 0:
            raise CbenchError(f"--cache-budget {self.cache_budget_gb} must be a non-negative number of GB")
        protocols.validate_spec(self)
        return self


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


def _skipped(spec: RunSpec, path) -> RunOutcome:
    return RunOutcome(spec, "skipped", str(path), "result exists (use --overwrite to redo)", None)


def _run(spec: RunSpec, progress: bool) -> RunOutcome:
    t_start = time.perf_counter()
    job = resolve(spec.validate())
    if isinstance(job, NotApplicable):
        return RunOutcome(spec, "not-applicable", None, job.reason, None)
    job = protocols.adjust_job(job)  # supervised models → finetune; knn/fraction checks and overrides
    token = identity_token(job)
    if token is not None and (done := finished_by_token(job, token)):
        return _skipped(spec, done)
    encoder = build_encoder(job)
    key = result_key(job, encoder.weights)
    if token is None and (done := finished_by_key(job, key)):
        return _skipped(spec, done)
    splits = load_splits(job, resolve_data_root(spec))
    reads = start_read_timer(job, splits)
    sources, cache_info, encode_s = protocols.feature_sources(job, encoder, splits, progress)
    result, fly_s, protocol_extra = protocols.run_probe(job, encoder, sources, splits, progress)
    timings = Timings(encode_s=encode_s + fly_s, train_s=max(result.train_seconds - fly_s, 0.0),
                      total_s=time.perf_counter() - t_start)
    record = build_record(job, key, token, encoder.weights, splits, result, cache_info, timings)
    protocols.annotate(record, job, protocol_extra)
    attach_extras(record, job, key, encoder, splits, sources, result, timings, reads, cache_info)
    path = write_result(job.out_dir, record)
    return RunOutcome(spec, "done", str(path), "ok", result.test["global"],
                      extra={"per_batch": result.test["per_batch"], "best_epoch": result.best_epoch})


def build_encoder(job: Job) -> TaskEncoder:
    """Stage 4: the adapter's encoder for the task, frozen, in eval mode, on the job's device."""
    torch.manual_seed(job.spec.seed)  # as the reference's seed_everything before model creation
    encoder = job.adapter.build(job.card, job.pipeline, job.spec.seed).to(job.device).eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    return encoder


def run_probe(job: Job, encoder: TaskEncoder, sources: dict[str, Any], progress: bool) -> tuple[ProbeResult, float]:
    """Stage 7: train the paper's head; returns the result and the seconds spent encoding on the fly
    (counted as encoding, not head training)."""
    from .features import OnTheFlySource
    from .probing import HeadOptions, build_head, train_probe

    torch.manual_seed(job.spec.seed)
    head = build_head(job.card, encoder.embed_dim, job.adapter.head)
    bar = progress_bar(job.epochs, f"{job.spec.model}/{job.card.slug} probe", progress, unit="epoch")
    result = train_probe(job.card, head, sources["train"], sources["val"], sources["test"], epochs=job.epochs,
                         batch_size=job.batch_size, lr=job.card.probe.lr, seed=job.spec.seed, device=job.device,
                         on_epoch=epoch_callback(bar, job.card.metric),
                         head_options=HeadOptions(precision=job.spec.head_precision, compile=job.spec.compile_head))
    bar.close()
    if job.spec.save_head:  # the best-validation head (train_probe leaves it loaded)
        from .api import save_head

        save_head(job.spec.save_head, head, card=job.card, model=job.spec.model, model_args=job.model_args,
                  weights=encoder.weights, seed=job.spec.seed, tier=job.spec.tier, head_kind=job.adapter.head,
                  embed_dim=encoder.embed_dim, metric=result.test)
    fly_s = sum(src.encode_seconds for src in sources.values() if isinstance(src, OnTheFlySource))
    return result, fly_s
