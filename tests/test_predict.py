"""--save-head + cbench predict: a user segmentation task from the sample's files, trained through
`cbench run --task-card`, then a prediction raster on the input's own grid (CRS, transform) for new GeoTIFFs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from test_own_task import TINY_RUN, make_seg_task

from copernicus_bench.cli import main


@pytest.fixture(scope="module")
def trained(builtin_sample, tmp_path_factory):
    base = tmp_path_factory.mktemp("predict")
    card = make_seg_task(Path(builtin_sample), base / "task")
    head = base / "head.pt"
    assert main(["run", "--task-card", str(card), *TINY_RUN, "--out", str(base / "results"),
                 "--save-head", str(head)]) == 0
    return card, head


def test_head_file_loads_weights_only_and_rebuilds_the_probe(trained):
    from copernicus_bench.api import load_head

    card, head = trained
    raw = torch.load(head, weights_only=True)
    assert raw["format"] == "cbench-head/1" and raw["model"] == "copernicus-fm"
    rec = load_head(head)
    assert rec["card"].slug == "my-clouds" and rec["tier"] == "smoke"
    assert all(torch.equal(v, raw["state_dict"][k]) for k, v in rec["head"].state_dict().items())


def test_predict_writes_a_class_raster_with_the_input_crs(trained, tmp_path):
    card, head = trained
    image = card.parent / "images" / "test_0.tif"
    out = tmp_path / "pred"
    assert main(["predict", str(image), "--head", str(head), "--task-card", str(card), "--out", str(out),
                 "--window", "96", "--stride", "64"]) == 0
    with rasterio.open(image) as src, rasterio.open(out / "test_0.tif") as pred:
        assert pred.crs == src.crs and pred.transform == src.transform
        assert (pred.height, pred.width, pred.count) == (src.height, src.width, 1)
        classes = pred.read(1)
    assert classes.dtype == np.uint8 and set(np.unique(classes)) <= {0, 1, 2, 3}  # every pixel covered


def test_predict_matches_the_head_on_one_full_window(trained, tmp_path):
    """With one window covering the image, the raster is argmax of head(encoder(image)) computed directly."""
    from copernicus_bench.api import encoder_for_card, load_head

    card, head = trained
    rec = load_head(head)
    enc = encoder_for_card("copernicus-fm", rec["card"], "random", seed=0, tier="smoke", config="tiny")
    image = card.parent / "images" / "val_1.tif"
    assert main(["predict", str(image), "--head", str(head), "--out", str(tmp_path), "--window", "128"]) == 0
    from copernicus_bench.windows import Window, open_raster, window_meta

    info = open_raster(image)
    meta = torch.from_numpy(window_meta(info, [Window(0, 0, 0, 0, 128)], 16, float("nan")))
    with rasterio.open(image) as src:
        x = torch.from_numpy(src.read().astype("float32"))[None]
    logits, _ = rec["head"](enc(x, meta=meta).maps, (128, 128))
    with rasterio.open(tmp_path / "val_1.tif") as pred:
        got = pred.read(1)
    assert (got == logits[0].argmax(0).numpy()).mean() > 0.999


def test_predict_bad_inputs(trained, tmp_path, capsys):
    card, head = trained
    two_band = tmp_path / "two.tif"
    with rasterio.open(card.parent / "images" / "test_0.tif") as src:
        profile = src.profile
        profile.update(count=2)
        data = src.read()[:2]
    with rasterio.open(two_band, "w", **profile) as dst:
        dst.write(data)
    assert main(["predict", str(two_band), "--head", str(head), "--out", str(tmp_path / "o")]) != 0
    assert "has 2 bands, the task card lists 13" in capsys.readouterr().err
    assert main(["predict", str(two_band), "--head", str(tmp_path / "none.pt"), "--out", str(tmp_path / "o")]) != 0
    assert "--save-head" in capsys.readouterr().err
    assert not list((tmp_path / "o").glob("*.tif"))
