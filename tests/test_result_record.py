"""The typed result record (issue 14): one definition for writer and reader, validation, v1 migration,
RunSpec.validate as the single option check, and a runner made of small stages."""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path

import pytest

from copernicus_bench.errors import CbenchError
from copernicus_bench.results import (
    SCHEMA,
    SCHEMA_V1,
    InvalidResult,
    ResultKey,
    ResultRecord,
    load_results,
    migrate_file,
    read_result,
    write_result,
)
from copernicus_bench.runner import RunSpec


def v1_result(**changes) -> dict:
    data = {"schema": SCHEMA_V1, "created": "2026-11-28T10:00:00+00:00", "model": "random",
            "model_display": "random", "weights": {"source": "random-init", "sha256": "ab" * 32, "file": None,
                                                   "set_sha256": None, "label": "random-init"},
            "task": "eurosat-s1", "task_version": 1, "task_digest": "d" * 16, "tier": "smoke", "protocol": "cached",
            "seed": 0, "overrides": {"data": "built-in sample"}, "override_hash": "1234abcd", "sample_data": True,
            "metric": {"name": "oa", "higher_is_better": True, "global": 62.5, "per_batch": 61.0, "unit": "%"},
            "val_metric": {"global": 50.0, "per_batch": 50.0}, "best_epoch": 1,
            "history": [{"epoch": 0, "train_loss": 2.0}], "applicable_tasks": ["eurosat-s1"],
            "input_adaptation": [], "pipeline": {"resolution": 64}, "config": {"epochs": 2},
            "split_checksums": {"a.txt": "0" * 64}, "versions": {"torch": "2.14.1"}, "git_commit": None,
            "device": "cpu", "timings": {"encode_s": 1.0, "train_s": 2.0, "total_s": 3.0}, "peak_memory_mb": 100,
            "cache": {"mode": "cached flip views"}}
    data.update(changes)
    return data


def test_v1_file_migrates_on_read_and_keeps_every_value(tmp_path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(v1_result()))
    rec = read_result(path)
    assert isinstance(rec, ResultRecord)
    assert rec.schema == SCHEMA and rec.schema_version == 2
    assert rec.metric.global_ == 62.5 and rec.metric.per_batch == 61.0 and rec.metric.paper is None
    assert rec.identity_token is None and rec.peak_memory_mb == 100.0
    # the JSON keys read the same typed values
    assert rec["metric"]["global"] == 62.5 and rec["weights"]["label"] == "random-init"
    assert rec.get("_path") == str(path) and rec.get("no-such-field", "x") == "x"
    assert rec.key == ResultKey("random", "ab" * 32, "eurosat-s1", "smoke", "cached", 0, "1234abcd")
    assert migrate_file(path) is True and migrate_file(path) is False
    assert json.loads(path.read_text())["schema"] == SCHEMA


def test_round_trip_keeps_unknown_fields_and_is_stable(tmp_path) -> None:
    rec = ResultRecord.from_dict(v1_result(schema=SCHEMA, future_field={"a": 1}))
    path = write_result(tmp_path, rec)
    assert path.name == rec.key.filename()
    again = read_result(path)
    assert again is not None and again.extra == {"future_field": {"a": 1}}
    assert again.to_dict() == rec.to_dict()


@pytest.mark.parametrize("change, field", [
    ({"seed": "0"}, "seed"),
    ({"sample_data": "yes"}, "sample_data"),
    ({"metric": {"name": "oa", "higher_is_better": True, "global": "62"}}, "metric.global"),
    ({"weights": {"source": "released"}}, "weights.sha256"),
    ({"applicable_tasks": [1, 2]}, "applicable_tasks"),
    ({"history": {}}, "history"),
    ({"schema": "someone-else/v9"}, "schema"),
])
def test_invalid_fields_are_named(change, field) -> None:
    with pytest.raises(InvalidResult, match=field.replace(".", r"\.")):
        ResultRecord.from_dict(v1_result(**change))


def test_unreadable_files_are_skipped_with_their_name(tmp_path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(v1_result()))
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "types.json").write_text(json.dumps(v1_result(seed="zero", model="other")))
    (tmp_path / "folder.json").mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = load_results(tmp_path)
    assert [Path(r.path).name for r in results] == ["good.json"]
    text = " ".join(str(w.message) for w in caught)
    assert "binary.json" in text and "types.json" in text and "'seed'" in text


@pytest.mark.parametrize("changes, option", [
    ({"tier": "huge"}, "--tier"), ({"protocol": "magic"}, "--protocol"), ({"cache_dtype": "int8"}, "--cache-dtype"),
    ({"epochs": 0}, "--epochs"), ({"batch_size": -1}, "--batch-size"), ({"limit": 0}, "--limit"),
    ({"num_workers": -2}, "--num-workers"), ({"cache_budget_gb": -1.0}, "--cache-budget"), ({"seed": -1}, "--seeds"),
])
def test_runspec_validate_names_the_option(changes, option) -> None:
    with pytest.raises(CbenchError, match=option):
        RunSpec(model="random", task="eurosat-s1", **changes).validate()
    assert RunSpec(model="random", task="eurosat-s1").validate().tier == "full"


def test_runner_functions_are_small() -> None:
    import copernicus_bench.runner as runner

    tree = ast.parse(Path(runner.__file__).read_text())
    sizes = {n.name: n.end_lineno - n.lineno + 1 for n in ast.walk(tree)
             if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    assert sizes and max(sizes.values()) <= 50, sizes
