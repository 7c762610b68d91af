"""Run stages 1–3: *resolve* a job (card, adapter, options), name its *identity*, *skip* it when finished.

Cheapest first: nothing here builds a model or reads data. The identity of the weights is the adapter's
:meth:`~copernicus_bench.encoder.EncoderAdapter.identity_token` (a seed, or a checkpoint's cached sha256),
so re-running a finished sweep only reads result files. An adapter that cannot name its weights cheaply
returns ``None`` and the runner builds the encoder before checking (see ``runner.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml

from . import paths
from .cards import TaskCard
from .encoder import EncoderAdapter, InputPipeline, WeightsInfo
from .models_registry import create_model
from .provenance import resolve_device
from .results import ResultKey, ensure_writable, override_hash, read_result, result_path

if TYPE_CHECKING:
    from .runner import RunSpec

SMOKE_LIMIT = 16
SMOKE_EPOCHS = 2


@dataclass
class Job:
    """A resolved job: everything the later stages need, decided once."""

    spec: RunSpec
    card: TaskCard
    adapter: EncoderAdapter
    model_args: dict[str, Any]
    pipeline: InputPipeline
    device: torch.device
    out_dir: Path
    epochs: int
    batch_size: int
    limit: int | None
    overrides: dict[str, Any]

    @property
    def smoke(self) -> bool:
        return self.spec.tier == "smoke"


@dataclass
class NotApplicable:
    reason: str


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


def overrides_of(spec: RunSpec, model_args: dict[str, Any]) -> dict[str, Any]:
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
    if getattr(spec, "head_precision", "fp32") != "fp32":
        out["head_precision"] = spec.head_precision
    if spec.sample:
        out["data"] = "built-in sample"
    else:
        from .sampledata import data_is_sample

        if data_is_sample(spec):  # a --data-root written by `cbench sample` (its marker file)
            out["data"] = "cbench sample"
    return out


def resolve(spec: RunSpec) -> Job | NotApplicable:
    """Stage 1: the card, the adapter, its applicability and input pipeline, and the job's settings."""
    from .tasks import get_card

    if getattr(spec, "task_card", None):  # a user's own task (copernicus_bench.tasks.custom)
        from .tasks.custom import load_user_card

        card = load_user_card(spec.task_card)
    else:
        card = get_card(spec.task)
    model_args = parse_model_args(spec.model_args)
    adapter = make_adapter(spec)
    reason = adapter.applicability(card)
    if reason:
        return NotApplicable(reason)
    smoke = spec.tier == "smoke"
    return Job(spec=spec, card=card, adapter=adapter, model_args=model_args,
               pipeline=adapter.input_pipeline(card, spec.tier),  # type: ignore[arg-type]
               device=resolve_device(spec.device), out_dir=ensure_writable(spec.out_dir),
               epochs=spec.epochs or (SMOKE_EPOCHS if smoke else card.probe.epochs),
               batch_size=spec.batch_size or card.probe.batch_size,
               limit=spec.limit or (SMOKE_LIMIT if smoke else None),
               overrides=overrides_of(spec, model_args))


def identity_token(job: Job) -> str | None:
    """Stage 2: the adapter's cheap weights identity (None: unknown without building the encoder)."""
    token = job.adapter.identity_token(job.card, job.pipeline, job.spec.seed)
    if token is None:
        return None
    from .code_identity import adapter_code

    return f"{token}+code:{adapter_code(job.adapter)['hash']}"  # an edited adapter never matches an old result


def result_key(job: Job, weights: WeightsInfo) -> ResultKey:
    spec = job.spec
    return ResultKey(model=spec.model, weights_sha256=weights.sha256, task=job.card.slug, tier=spec.tier,
                     protocol=spec.protocol, seed=spec.seed, override_hash=override_hash(job.overrides))


def finished_by_token(job: Job, token: str) -> Path | None:
    """Stage 3 (before building): an existing valid result of this job whose weights token matches."""
    if job.spec.overwrite:
        return None
    probe = result_key(job, WeightsInfo("user", "0" * 8))
    head, _, tail = probe.filename().partition("__00000000__")
    for path in sorted(job.out_dir.glob(f"{glob_escape(head)}__*__{glob_escape(tail)}")):
        record = read_result(path)
        if record is not None and record.identity_token == token and record.model == job.spec.model:
            return path
    return None


def finished_by_key(job: Job, key: ResultKey) -> Path | None:
    """Stage 3 (after building, for adapters without a token): the result file under ``key``, if valid."""
    path = result_path(job.out_dir, key)
    if job.spec.overwrite or not path.exists() or (record := read_result(path)) is None:
        return None
    from .code_identity import adapter_code

    if (record.versions.get("adapter_code") or {}).get("hash") != adapter_code(job.adapter)["hash"]:
        return None  # made by other adapter code: recompute
    return path


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)
