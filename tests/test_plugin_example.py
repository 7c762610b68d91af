"""The example plug-in (examples/plugin): installs offline, is discovered through its entry point, refuses
S5P, runs end to end on the sample and lands in the leaderboard."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "plugin"


def _cbench(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "copernicus_bench.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"cbench {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def installed_plugin():
    """`pip install -e examples/plugin` into this venv, offline (no deps, no build isolation)."""
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q",
                           "-e", str(PLUGIN)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # a package installed while this interpreter runs is importable only once its .pth files are read again
    import importlib
    import site

    for folder in site.getsitepackages():
        site.addsitedir(folder)
    importlib.invalidate_caches()
    from copernicus_bench.models_registry import MODELS

    MODELS._entry_points = None  # re-read entry points: the package was installed after the first lookup
    return "my-encoder"


def test_plugin_is_listed_by_cbench_models(installed_plugin):
    out = _cbench("models").stdout
    assert "my-encoder" in out and "example plug-in" in out


def test_plugin_is_created_through_the_registry_and_refuses_s5p(installed_plugin):
    from copernicus_bench.encoder import EncoderAdapter
    from copernicus_bench.models_registry import create_model, list_models
    from copernicus_bench.tasks import list_cards

    assert installed_plugin in list_models()
    adapter = create_model(installed_plugin, weights_dir="unused", seed=0)
    assert isinstance(adapter, EncoderAdapter)
    refused = {c.slug for c in list_cards() if adapter.applicability(c) is not None}
    assert refused == {c.slug for c in list_cards() if c.input_mode == "variable"} == {"aq-no2-s5p", "aq-o3-s5p"}


def test_plugin_encoder_returns_pooled_and_four_maps(installed_plugin):
    import torch

    from copernicus_bench.models_registry import create_model
    from copernicus_bench.tasks import get_card

    adapter = create_model(installed_plugin, weights_dir="unused", seed=0, width=16)
    card = get_card("cloud-s2")
    pipeline = adapter.input_pipeline(card, "smoke")
    enc = adapter.build(card, pipeline, seed=3)
    r = pipeline.resolution
    out = enc(torch.zeros(2, pipeline.num_channels, r, r), torch.zeros(2, 4), want_maps=True)
    assert out.pooled.shape == (2, 16)
    assert [tuple(m.shape) for m in out.maps] == [(2, 16, r // 16, r // 16)] * 4
    assert enc.weights.source == "random-init"
    assert adapter.build(card, pipeline, seed=3).weights.sha256 == enc.weights.sha256  # drawn from the seed
    assert adapter.build(card, pipeline, seed=4).weights.sha256 != enc.weights.sha256


def test_plugin_s5p_task_is_refused_by_cbench_run(installed_plugin, tmp_path):
    proc = _cbench("run", "--model", installed_plugin, "--task", "aq-no2-s5p", "--sample", "--tier", "smoke",
                   "--out", str(tmp_path), check=False)
    assert proc.returncode != 0 and "does not apply" in proc.stderr


def test_plugin_runs_on_the_sample_and_lands_in_the_leaderboard(installed_plugin, builtin_sample, smoke_results,
                                                                tmp_path):
    _cbench("run", "--model", installed_plugin, "--task", "eurosat-s1", "--sample", "--tier", "smoke",
            "--out", str(smoke_results))
    lb = _cbench("leaderboard", "--results", str(smoke_results), "--out", str(tmp_path / "lb")).stdout
    table = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lb.splitlines()
             if line.startswith("| ") and not line.startswith("| Column")]
    col = table[0].index("my-encoder (random init)†§")
    rows = {r[0]: r for r in table[1:]}
    assert "(n=1)" in rows["EuroSAT-S1"][col]
    assert rows["AQ-NO2-S5P"][col] == "-"  # not applicable, from the result's applicable_tasks
    assert rows["LCZ-S2"][col] == "…"  # applicable, not run
