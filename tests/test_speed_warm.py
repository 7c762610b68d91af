"""Issue 13, warm second seed: cost figures (FLOP counts, images/s) are measured once per process per shape,
so a sweep's later seeds spend their time in head training, not in repeated measurement passes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from copernicus_bench import cost
from copernicus_bench.runner import expand_grid, run_one


def test_later_seeds_reuse_the_cost_measurement(builtin_sample, tmp_path, monkeypatch):
    monkeypatch.setattr(cost, "_MEASURED", {})
    calls = []
    real = cost.head_flops_per_step

    def counted(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(cost, "head_flops_per_step", counted)
    specs = expand_grid(["random"], ["eurosat-s1"], [0, 1], tier="smoke", sample=True, limit=4, epochs=1,
                        model_args=(("config", "tiny"),), out_dir=str(tmp_path / "out"),
                        cache_dir=str(tmp_path / "cache"))
    outs = [run_one(s, progress=False) for s in specs]
    assert [o.status for o in outs] == ["done", "done"], [o.message for o in outs]
    first, second = (json.loads(Path(o.path).read_text())["cost"] for o in outs)
    assert len(calls) == 1  # measured for seed 0 only
    for k in ("encoder_gflops_per_image", "head_gflops_per_step", "encoder_images_per_s"):
        assert second[k] == first[k] and first[k] > 0
    assert first["encoder_params"] == second["encoder_params"] > 0
    monkeypatch.setattr(cost, "_MEASURED", {})  # another process (empty memo) measures again
    run_one(replace(specs[1], overwrite=True), progress=False)
    assert len(calls) == 2
