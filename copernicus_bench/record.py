"""Run stage 8: *record* a finished job as a :class:`~copernicus_bench.results.ResultRecord`.

Everything a number needs to be traced to how it was made: the metric (``global``, ``per_batch``,
``paper``), the best epoch and history, the resolved config, card version and digest, weights source and
sha256, the input pipeline and every band adaptation, split-file checksums, versions, git commit, device,
timings and peak memory.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass
from typing import Any

from .code_identity import adapter_code
from .encoder import WeightsInfo
from .job import Job
from .probing import ProbeResult
from .provenance import device_name, git_commit, package_versions, peak_memory_mb
from .results import MetricValues, ResultKey, ResultRecord, WeightsRecord
from .sampledata import data_is_sample
from .splits import Splits


@dataclass
class Timings:
    encode_s: float
    train_s: float
    total_s: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in dataclasses.asdict(self).items()}


def metric_values(job: Job, result: ProbeResult) -> MetricValues:
    card = job.card
    return MetricValues(name=card.metric, higher_is_better=card.higher_is_better,
                        global_=result.test["global"], per_batch=result.test["per_batch"],
                        paper=result.test.get("paper"), unit="%" if card.metric != "rmse" else "target units",
                        extra={"paper_epoch": result.paper_epoch,
                               "paper_target_size": job.pipeline.resolution if card.is_dense else None})


def job_config(job: Job, splits: Splits) -> dict[str, Any]:
    spec, probe = job.spec, job.card.probe
    return {
        "epochs": job.epochs, "batch_size": job.batch_size, "lr": probe.lr, "optimizer": probe.optimizer,
        "weight_decay": probe.weight_decay, "schedule": probe.schedule, "head": probe.head,
        "pooled_head": job.adapter.head, "limit": job.limit, "samples": splits.sizes(),
        "model_options": job.adapter.options(), "model_args": job.model_args, "data_root": str(splits.root),
        "num_workers": spec.num_workers, "cache_budget_gb": spec.cache_budget_gb, "cache_dtype": spec.cache_dtype,
        "selection": "best validation epoch by the global metric",
        "paper_selection": "first epoch with the best per-batch validation metric (dense targets at the "
                           "encoder's input resolution), as the reference's Lightning ModelCheckpoint",
    }


def build_record(job: Job, key: ResultKey, token: str | None, weights: WeightsInfo, splits: Splits,
                 result: ProbeResult, cache_info: dict[str, Any], timings: Timings) -> ResultRecord:
    from .tasks import list_cards

    spec, card, adapter = job.spec, job.card, job.adapter
    random_column = weights.source == "random-init" and spec.model != "random"
    return ResultRecord(
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        model=spec.model, model_display=spec.model + (" (random init)" if random_column else ""),
        weights=WeightsRecord(**dataclasses.asdict(weights), label=weights.label), identity_token=token,
        task=card.slug, task_version=card.version, task_digest=card.digest(), tier=spec.tier,
        protocol=spec.protocol, seed=spec.seed, overrides=job.overrides, override_hash=key.override_hash,
        sample_data=data_is_sample(spec), metric=metric_values(job, result), val_metric=result.val,
        best_epoch=result.best_epoch, history=result.history,
        applicable_tasks=[c.slug for c in list_cards() if adapter.applicability(c) is None]
        + ([card.slug] if getattr(spec, "task_card", None) else []),
        input_adaptation=list(job.pipeline.adaptations),
        pipeline={**dataclasses.asdict(job.pipeline), "digest": job.pipeline.digest()},
        config=job_config(job, splits), split_checksums=splits.checksums, versions={**package_versions(), "adapter_code": adapter_code(job.adapter)},
        git_commit=git_commit(), device=device_name(job.device), timings=timings.as_dict(),
        peak_memory_mb=round(peak_memory_mb(job.device), 1), cache=cache_info,
        extra={"task_card": card.to_dict()} if getattr(spec, "task_card", None) else {},  # own task: the leaderboard needs it
    )
