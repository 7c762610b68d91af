"""End to end through the runner: each baseline (tiny, random init) runs one task of the built-in sample in
the smoke tier and writes a result whose weights are labelled random-init and whose adaptations are recorded."""

from __future__ import annotations

import json

import pytest

from copernicus_bench.runner import RunSpec, run_one


@pytest.mark.parametrize("model,task", [
    ("random", "eurosat-s1"),
    ("dofa", "aq-no2-s5p"),  # variable input (wavelength 0), 56 px with a 16-px patch
    ("softcon", "bigearthnet-s2"),  # zero B10 slot, BEN stats
    ("croma", "lcz-s2"),  # B01/B09 duplicated
])
def test_baseline_smoke_run(builtin_sample, tmp_path, model: str, task: str) -> None:
    args = (("config", "tiny"),) if model == "random" else (("config", "tiny"), ("random_init", "true"))
    spec = RunSpec(model=model, task=task, tier="smoke", sample=True, out_dir=str(tmp_path),
                   cache_dir=str(tmp_path / "cache"), model_args=args)
    outcome = run_one(spec, progress=False)
    assert outcome.status == "done", outcome.message
    result = json.loads(open(outcome.path).read())
    assert result["weights"]["source"] == "random-init"
    if model in ("softcon", "croma"):
        assert result.get("input_adaptation"), "padding/duplication must be recorded"


def test_not_applicable_through_the_runner(tmp_path) -> None:
    spec = RunSpec(model="croma", task="cloud-s3", tier="smoke", sample=True, out_dir=str(tmp_path),
                   model_args=(("config", "tiny"), ("random_init", "true")))
    outcome = run_one(spec, progress=False)
    assert outcome.status == "not-applicable" and "Sentinel-1 and Sentinel-2" in outcome.message
