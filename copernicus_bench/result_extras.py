"""What a finished job adds to its result for the leaderboard (issue 11): per-sample outputs written
beside the result JSON (checksum in the result), the cost figures and the adapter's model card."""

from __future__ import annotations

import logging
from typing import Any

from .cost import ReadTimer, measure_cost
from .per_sample import write_per_sample
from .results import result_path

log = logging.getLogger(__name__)


def start_read_timer(job: Any, splits: Any) -> ReadTimer:
    """Time the job's dataset reads from here on (in this process only)."""
    from .features import resolve_num_workers

    workers = [resolve_num_workers(job.spec.num_workers, len(ds)) for ds in splits.datasets.values()]
    return ReadTimer(splits.datasets.values(), in_process=max(workers, default=0) == 0)


def attach_extras(record: Any, job: Any, key: Any, encoder: Any, splits: Any, sources: dict[str, Any],
                  result: Any, timings: Any, reads: ReadTimer, cache_info: dict[str, Any]) -> None:
    """Fill ``record.per_sample``, ``record.cost`` and ``record.model_card`` (writes the per-sample file)."""
    reads.remove()
    if result.per_sample is not None:
        info = write_per_sample(result_path(job.out_dir, key), job.card.metric, result.per_sample)
        info["ignore_index"] = job.card.ignore_index
        record.per_sample = info
    on_the_fly = not str(cache_info.get("mode", "")).startswith("cached")
    try:
        record.cost = measure_cost(job, encoder, splits, sources, timings, reads.seconds,
                                   reads_during_training=on_the_fly)
    except Exception as exc:  # noqa: BLE001 - a finished result must not be lost to a cost probe
        log.warning("%s/%s: cost figures not measured (%s: %s)", job.spec.model, job.card.slug,
                    type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        record.cost = {"error": f"not measured: {type(exc).__name__}", "encode_s": round(timings.encode_s, 3),
                       "train_s": round(timings.train_s, 3), "total_s": round(timings.total_s, 3)}
    record.model_card = job.adapter.model_card().to_dict()
