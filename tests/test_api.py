"""copernicus_bench.create_encoder: every built-in model (tiny, random weights) and the example plug-in as a
plain frozen module on user bands; band specs, metadata and the errors a user can fix."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import copernicus_bench
from copernicus_bench.api import create_encoder, days_since_epoch, embedding_card
from copernicus_bench.errors import CbenchError

PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "plugin"
S2_ALL = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


@pytest.mark.parametrize("name,bands,size", [
    ("copernicus-fm", ["B02", "B03", "B04", "B08"], 64),
    ("dofa", ["B02", "B03", "B04", "B08"], 64),
    ("random", ["VV", "VH"], 64),
    ("softcon", S2_ALL, 64),
    ("croma", S2_ALL, 64),
    ("copernicus-fm", "s5p_no2", 56),
])
def test_every_builtin_model_tiny_gives_pooled_and_maps(name, bands, size):
    enc = copernicus_bench.create_encoder(name, "random", bands=bands, size=size, config="tiny")
    assert isinstance(enc, torch.nn.Module) and not enc.training
    assert all(not p.requires_grad for p in enc.parameters())
    c = len(enc.bands)
    out = enc(torch.rand(2, c, size, size) * 1000, lon=11.5, lat=48.1, time="2021-07-01", area=0.0256)
    assert out.pooled.shape == (2, enc.embed_dim) == (2, 64)
    assert len(out.maps) == 4 and all(m.shape[:2] == (2, 64) for m in out.maps)
    assert torch.isfinite(out.pooled).all()
    enc.train()  # stays frozen
    assert not enc.training
    # same seed → same weights → same numbers
    again = create_encoder(name, "random", bands=bands, size=size, config="tiny")
    x = torch.rand(1, c, size, size) * 1000
    assert torch.equal(enc(x).pooled, again(x).pooled)


def test_copernicus_fm_uses_the_metadata_and_band_spec():
    enc = create_encoder("copernicus-fm", "random", bands="B04,B03,B02", size=64, config="tiny")
    assert enc.card.wavelengths_nm == (665.0, 560.0, 490.0)  # from the built-in S2 card, in the given order
    x = torch.rand(1, 3, 64, 64) * 2000
    a = enc(x, lon=10.0, lat=50.0, time="2020-01-01", area=0.0256).pooled
    b = enc(x, lon=-70.0, lat=-20.0, time="2020-01-01", area=0.0256).pooled
    c = enc(x).pooled  # metadata absent: the learned tokens
    assert not torch.allclose(a, b) and not torch.allclose(a, c)
    # normalisation: the S2 card's statistics for exactly these bands
    assert enc.pipeline.mean[0] == (946.5, 1041.8, 1117.2)


def test_own_spectral_bands_need_statistics():
    bands = [{"name": "red", "wavelength_nm": 650.0, "bandwidth_nm": 40.0},
             {"name": "nir", "wavelength_nm": 850.0, "bandwidth_nm": 60.0}]
    with pytest.raises(CbenchError, match="mean="):
        create_encoder("dofa", "random", bands=bands, config="tiny")
    enc = create_encoder("dofa", "random", bands=bands, mean=[100, 200], std=[10, 20], size=32, config="tiny")
    assert enc(torch.rand(1, 2, 32, 32)).pooled.shape == (1, 64)


def test_bad_band_specs_are_one_line_errors():
    with pytest.raises(CbenchError, match="unknown band name"):
        embedding_card(["B02", "B99"])
    with pytest.raises(CbenchError, match="listed twice"):
        embedding_card(["B02", "B2"])
    with pytest.raises(CbenchError, match="does not accept"):  # SoftCon has no Sentinel-3 encoder
        create_encoder("softcon", "random", bands=["Oa01", "Oa02"], config="tiny")
    with pytest.raises(CbenchError, match="lacks bands"):  # CROMA refuses instead of zero-padding 8 bands
        create_encoder("croma", "random", bands=["B02", "B03", "B04", "B08"], config="tiny")
    enc = create_encoder("dofa", "random", bands=["B02", "B03"], size=32, config="tiny")
    with pytest.raises(CbenchError, match="3 channels"):
        enc(torch.rand(1, 3, 32, 32))
    with pytest.raises(CbenchError, match="no such file"):
        create_encoder("dofa", "missing.pth", bands=["B02"], config="tiny")


def test_days_since_epoch_matches_the_reference_day_count():
    assert days_since_epoch("1970-01-02") == 1.0
    assert days_since_epoch("2021:07:01 10:30:00") == days_since_epoch("2021-07-01T23:59:00") == 18809.0
    assert math.isnan(days_since_epoch(None))
    with pytest.raises(CbenchError, match="ISO"):
        days_since_epoch("yesterday")


@pytest.fixture(scope="module")
def plugin_name():
    from copernicus_bench.models_registry import MODELS

    if "my-encoder" not in MODELS:
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q",
                               "-e", str(PLUGIN)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        import importlib
        import site

        for folder in site.getsitepackages():
            site.addsitedir(folder)
        importlib.invalidate_caches()
        MODELS._entry_points = None
    return "my-encoder"


def test_example_plugin_through_create_encoder(plugin_name):
    enc = create_encoder(plugin_name, bands=["B02", "B03", "B04", "B08"], size=64, width=16)
    out = enc(torch.rand(3, 4, 64, 64) * 1000)
    assert out.pooled.shape == (3, 16)
    assert [tuple(m.shape) for m in out.maps] == [(3, 16, 4, 4)] * 4
    assert enc.weights.source == "random-init"
    with pytest.raises(CbenchError, match="does not accept"):  # the plug-in refuses variables
        create_encoder(plugin_name, bands="s5p_o3")
