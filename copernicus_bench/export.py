"""Export the leaderboard to one documented, machine-readable schema: ``leaderboard.eee.json``.

Modelled on Every Eval Ever's ``eval.schema.json`` (evaleval/every_eval_ever, v0.2): one record per column
with ``source_metadata`` (``source_type`` = ``evaluation_run`` for measured columns, ``documentation`` for
reported ones — the paper's number is never relabelled as ours), ``model_info``, ``eval_library`` and
``evaluation_results`` (one per task: ``metric_config``, ``score_details`` with ``score``, the seed std and
count, and ``uncertainty.confidence_interval`` from the test-set bootstrap). Field names follow that schema;
what it has no field for (tier, protocol, generated sample data, rank interval, cost) goes into
``additional_details`` / ``details`` as strings, as the schema asks. Schema id: ``EXPORT_SCHEMA``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import __version__

if TYPE_CHECKING:
    from .leaderboard import Leaderboard

EXPORT_SCHEMA = "copernicus-bench/eee-export/v1 (after every_eval_ever eval.schema.json 0.2.1)"
BENCHMARK = "Copernicus-Bench"
BENCH_URL = "https://huggingface.co/datasets/wangyi111/Copernicus-Bench"


def _s(v: Any) -> str:
    return "" if v is None else str(v)


def export_records(lb: Leaderboard, retrieved: str) -> dict[str, Any]:
    """The export document: ``{"schema": ..., "records": [one per column]}``."""
    records = []
    for col in lb.columns:
        measured = col.kind == "measured"
        results = []
        for row in lb.rows:
            cell = row.cells[col.id]
            if cell.status != "value" or cell.mean is None:
                continue
            card = row.card
            unit_max = None if card.metric == "rmse" else 100.0
            metric_config: dict[str, Any] = {
                "evaluation_description": f"{card.name}: {card.metric} on the test split "
                                          f"({'global, accumulated over the split' if measured else 'as published'})",
                "lower_is_better": not card.higher_is_better, "score_type": "continuous",
                "min_score": 0.0, "max_score": unit_max if unit_max is not None else 1e30,
                "additional_details": {"metric": card.metric, "level": str(card.level), "sensor": card.sensor,
                                       "task_type": card.task_type},
            }
            details = {"seeds": " ".join(map(str, cell.seeds)) if measured else "",
                       "rank_interval": "" if cell.rank_interval is None else f"{cell.rank_interval[0]}-{cell.rank_interval[1]}",
                       "ci_note": cell.ci_note}
            if measured and cell.cost:
                details.update({f"cost_{k}": _s(v) for k, v in cell.cost.items()})
            score: dict[str, Any] = {"score": cell.mean, "details": {k: v for k, v in details.items() if v}}
            uncertainty: dict[str, Any] = {}
            if cell.std is not None:
                uncertainty["standard_deviation"] = cell.std
            uncertainty["num_samples"] = cell.n
            if cell.ci is not None:
                uncertainty["confidence_interval"] = {"lower": cell.ci[0], "upper": cell.ci[1],
                                                      "confidence_level": 0.95,
                                                      "method": f"percentile bootstrap over test images, "
                                                                f"{lb.n_boot} resamples, seed {lb.boot_seed}"}
            score["uncertainty"] = uncertainty
            results.append({"evaluation_name": f"{BENCHMARK}/{card.slug}",
                            "source_data": {"dataset_name": f"{BENCHMARK} {card.name}", "source_type": "url",
                                            "url": [BENCH_URL]},
                            "metric_config": metric_config, "score_details": score})
        record = {
            "schema_version": "0.2.1",
            "evaluation_id": f"{BENCHMARK}/{col.id}/{retrieved}",
            "retrieved_timestamp": retrieved,
            "source_metadata": {
                "source_name": "cbench leaderboard" if measured else col.source,
                "source_type": "evaluation_run" if measured else "documentation",
                "source_organization_name": "copernicus-bench users" if measured else col.source.split(",")[0],
                "evaluator_relationship": "third_party",
                "additional_details": {"kind": col.kind, "tier": col.tier, "protocol": col.protocol,
                                       "sample_data": str(col.sample_data).lower(), "overrides": col.override_hash,
                                       "metric_value": lb.metric if measured else "as published"},
            },
            "model_info": {"name": col.display or col.model, "id": col.model,
                           "additional_details": {"weights": col.weights,
                                                  **{k: _s(v) for k, v in (lb.model_cards.get(col.model) or {}).items()
                                                     if k in ("code_license", "weights_license", "overlap",
                                                              "citation")}}},
            "eval_library": {"name": "copernicus-bench", "version": __version__},
            "evaluation_results": results,
        }
        records.append(record)
    return {"schema": EXPORT_SCHEMA, "records": records}
