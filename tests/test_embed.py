"""cbench embed: window embeddings as a georeferenced raster whose pixel centres are the window centres
(checked against rasterio's transform), per-window metadata, resume, table output and one-line errors."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import rasterio
import torch
from pyproj import Transformer
from rasterio.transform import Affine

from copernicus_bench.cli import main

EUROSAT_FILE_ORDER = "B01,B02,B03,B04,B05,B06,B07,B08,B09,B10,B11,B12,B8A"
UTM = Affine(10.0, 0, 600000.0, 0, -10.0, 5300000.0)
TINY = ["--model", "copernicus-fm", "--weights", "random", "--model-args", "config=tiny"]


def _write(path, arr, crs="EPSG:32632", transform=UTM,
           descriptions=None, tags=None):
    with rasterio.open(path, "w", driver="GTiff", count=arr.shape[0], height=arr.shape[1], width=arr.shape[2],
                       dtype=str(arr.dtype), crs=crs, transform=transform) as dst:
        dst.write(arr)
        if descriptions:
            for i, d in enumerate(descriptions, 1):
                dst.set_band_description(i, d)
        if tags:
            dst.update_tags(**tags)
    return path


@pytest.fixture(scope="module")
def big_raster(tmp_path_factory):
    rng = np.random.default_rng(0)
    arr = rng.integers(200, 4000, size=(4, 1000, 1000)).astype("uint16")
    return _write(tmp_path_factory.mktemp("big") / "scene.tif", arr, descriptions=["B02", "B03", "B04", "B08"],
                  tags={"ACQUISITION_DATE": "2021-07-01"})


@pytest.mark.parametrize("window,stride", [(224, 224), (200, 150)])
def test_1000px_raster_window_centres_match_the_input(big_raster, tmp_path, window, stride, capsys):
    assert main(["embed", str(big_raster), *TINY, "--out", str(tmp_path), "--window", str(window),
                 "--stride", str(stride)]) == 0
    n = (1000 - window) // stride + 1
    with rasterio.open(big_raster) as src, rasterio.open(tmp_path / "scene.tif") as emb:
        assert (emb.count, emb.height, emb.width) == (64, n, n)
        assert emb.crs == src.crs
        for i in range(n):
            for j in range(n):
                # rasterio: centre of embedding pixel (i, j) vs the centre of window (i, j) in the input
                ex, ey = emb.xy(i, j)
                sx, sy = src.xy(i * stride + window / 2, j * stride + window / 2, offset="ul")
                assert ex == pytest.approx(sx, abs=1e-6) and ey == pytest.approx(sy, abs=1e-6)
        assert float(emb.tags()["CBENCH_TIME_DAYS"]) == 18809.0  # 2021-07-01 from the file's tag
    assert "not covered by a full window" in capsys.readouterr().err


def test_window_embedding_equals_the_api_with_independent_metadata(big_raster, tmp_path):
    from copernicus_bench.api import create_encoder

    assert main(["embed", str(big_raster), *TINY, "--out", str(tmp_path), "--window", "224"]) == 0
    enc = create_encoder("copernicus-fm", "random", bands=["B02", "B03", "B04", "B08"], config="tiny")
    i, j = 2, 1
    with rasterio.open(big_raster) as src, rasterio.open(tmp_path / "scene.tif") as emb:
        pixels = src.read(window=rasterio.windows.Window(j * 224, i * 224, 224, 224)).astype("float32")
        x, y = src.xy(i * 224 + 112, j * 224 + 112, offset="ul")
        stored = emb.read()[:, i, j]
    lon, lat = Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True).transform(x, y)
    want = enc(torch.from_numpy(pixels)[None], lon=lon, lat=lat, time="2021-07-01",
               area=(16 * 10 / 1000) ** 2, want_maps=False).pooled[0].numpy()
    np.testing.assert_allclose(stored, want, rtol=1e-4, atol=1e-5)


def test_sample_geotiffs_folder_table_and_resume(builtin_sample, tmp_path):
    folder = builtin_sample / "eurosat_s2" / "all_imgs" / "Forest"
    files = sorted(folder.glob("*.tif"))[:3]
    listing = tmp_path / "files.txt"
    listing.write_text("\n".join(str(f) for f in files) + "\n")
    out, table = tmp_path / "emb", tmp_path / "windows.parquet"
    args = ["embed", str(listing), *TINY, "--bands", EUROSAT_FILE_ORDER, "--window", "64", "--out", str(out),
            "--table", str(table)]
    assert main(args) == 0
    for f in files:
        with rasterio.open(f) as src, rasterio.open(out / f.name) as emb:
            assert emb.crs == src.crs and (emb.height, emb.width) == (1, 1)
            centre = src.xy(32, 32, offset="ul")  # corner of pixel 32 = centre of the 64-px window
            assert emb.xy(0, 0) == pytest.approx(centre, abs=1e-6)
    import pyarrow.parquet as pq

    t = pq.read_table(table)
    assert t.num_rows == 3 and b"geo" in t.schema.metadata
    assert len(t.column("embedding")[0].as_py()) == 64
    with rasterio.open(files[0]) as src:
        lon, lat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True).transform(*src.xy(32, 32, offset="ul"))
    row = t.to_pandas().iloc[0]
    assert row.lon == pytest.approx(lon) and row.lat == pytest.approx(lat)
    mtime = os.path.getmtime(out / files[0].name)
    assert main(args) == 0  # resumed: complete files are skipped
    assert os.path.getmtime(out / files[0].name) == mtime


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    arr = np.ones((2, 64, 64), dtype="float32")
    nogeo = _write(tmp_path / "nogeo.tif", arr, crs=None, transform=Affine.identity(), descriptions=["VV", "VH"])
    geo = _write(tmp_path / "geo.tif", arr, descriptions=["VV", "VH"])
    bare = _write(tmp_path / "bare.tif", arr)
    cases = [
        ([str(nogeo), "--window", "64"], "--no-geo"),
        ([str(geo), "--window", "128"], "larger than the raster"),
        ([str(geo), "--window", "64", "--bands", "VV"], "has 2 bands but --bands names 1"),
        ([str(geo), "--window", "64", "--bands", "VV,XX"], "unknown band name"),
        ([str(bare), "--window", "64"], "no descriptions"),
        ([str(tmp_path / "absent.tif")], "no such file"),
    ]
    for extra, needle in cases:
        out = tmp_path / "out"
        assert main(["embed", *extra, *TINY, "--out", str(out)]) != 0
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
        assert not list(out.glob("*.tif"))  # nothing written
    assert main(["embed", str(nogeo), "--window", "64", "--no-geo", *TINY, "--out", str(tmp_path / "ng")]) == 0
    with rasterio.open(tmp_path / "ng" / "nogeo.tif") as emb:
        assert emb.crs is None and math.isnan(float(emb.tags()["CBENCH_PATCH_AREA_KM2"]))
