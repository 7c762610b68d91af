"""Issue 13, cheapest-first: re-running a finished sweep builds no model (identity → skip → only then build).

The time per skipped job is printed (``-s``) and goes in the README, never into an assertion.
"""

from __future__ import annotations

import time

import pytest

from copernicus_bench.baselines.random_vit import RandomViTAdapter
from copernicus_bench.runner import expand_grid, run_one
from copernicus_bench.tasks import TASK_SLUGS


def _sweep(tmp_path, tasks, seeds):
    return expand_grid(["random"], list(tasks), list(seeds), tier="smoke", sample=True, limit=4, epochs=1,
                       model_args=(("config", "tiny"),), out_dir=str(tmp_path / "out"),
                       cache_dir=str(tmp_path / "cache"))


def _rerun_builds_nothing(specs, monkeypatch) -> float:
    first = [run_one(s, progress=False) for s in specs]
    assert [o.status for o in first] == ["done"] * len(specs), [o.message for o in first if o.status != "done"]
    built = []

    def no_build(self, card, pipeline, seed):
        built.append(card.slug)
        raise AssertionError("a model was built for a finished job")

    monkeypatch.setattr(RandomViTAdapter, "build", no_build)
    t0 = time.perf_counter()
    second = [run_one(s, progress=False) for s in specs]
    per_job = (time.perf_counter() - t0) / len(specs)
    assert built == []
    assert [o.status for o in second] == ["skipped"] * len(specs)
    assert [o.path for o in second] == [o.path for o in first]
    print(f"\nre-run of {len(specs)} finished jobs: {per_job * 1000:.0f} ms per job")
    return per_job


def test_rerunning_finished_jobs_builds_no_model(builtin_sample, tmp_path, monkeypatch):
    _rerun_builds_nothing(_sweep(tmp_path, ["eurosat-s1"], [0, 1, 2]), monkeypatch)


@pytest.mark.slow
def test_rerunning_a_finished_sweep_of_15_jobs_builds_no_model(builtin_sample, tmp_path, monkeypatch):
    _rerun_builds_nothing(_sweep(tmp_path, TASK_SLUGS, [0]), monkeypatch)


def test_dense_over_budget_reads_the_input_cache_and_matches_decoding(builtin_sample, tmp_path):
    import json
    from pathlib import Path

    def run(name, input_gb):
        spec = _sweep(tmp_path / name, ["dfc2020-s1"], [0])[0]
        from dataclasses import replace

        spec = replace(spec, cache_budget_gb=0.0, input_cache_gb=input_gb, cache_dtype="float32",
                       cache_dir=str(tmp_path / "cache"))
        out = run_one(spec, progress=False)
        assert out.status == "done", out.message
        return json.loads(Path(out.path).read_text())

    decoded = run("a", 0.0)
    cached = run("b", 1.0)
    again = run("c", 1.0)
    assert decoded["cache"]["inputs"].startswith("decoded")
    assert cached["cache"]["inputs"].startswith("input cache") and "False" in cached["cache"]["inputs"]
    assert "True" in again["cache"]["inputs"] and "False" not in again["cache"]["inputs"]
    assert sorted((tmp_path / "cache" / "inputs").rglob("image.npy"))
    assert cached["metric"]["global"] == pytest.approx(decoded["metric"]["global"], abs=1e-6)
    assert again["metric"]["global"] == cached["metric"]["global"]
