"""cbench grid-embed: ERA5 0.25° cell assignment (by hand and by rasterio's rowcol), the grid transform, a file
torchgeo's CopernicusEmbed reader takes, per-cell means equal to the mean of create_encoder outputs (GeoTIFF
and shard inputs), and one-line errors that write nothing."""

from __future__ import annotations

import io
import json
import re
import tarfile

import numpy as np
import pytest
import rasterio
import torch
from pyproj import Transformer
from rasterio.transform import Affine, rowcol

from copernicus_bench.cli import main
from copernicus_bench.grid import CellMeans, cell_centre, cell_index, grid_transform, write_grid_geotiff

TINY = ["--model", "copernicus-fm", "--weights", "random", "--model-args", "config=tiny"]
BANDS = ["B02", "B03", "B04", "B08"]
#: torchgeo's CopernicusEmbed fixture (tests/data/copernicus/embed/data.py): the released map's transform
TORCHGEO_TRANSFORM = Affine(0.25, 0.0, -180.125, 0.0, -0.25, 90.125)


UTM = Affine(10.0, 0, 600000.0, 0, -10.0, 5300000.0)


def _write(path, arr, crs="EPSG:32632", transform=UTM, tags=None):
    with rasterio.open(path, "w", driver="GTiff", count=arr.shape[0], height=arr.shape[1], width=arr.shape[2],
                       dtype=str(arr.dtype), crs=crs, transform=transform) as dst:
        dst.write(arr)
        for i, d in enumerate(BANDS[: arr.shape[0]], 1):
            dst.set_band_description(i, d)
        if tags:
            dst.update_tags(**tags)
    return path


def _reader():
    try:
        from torchgeo.datasets import CopernicusEmbed  # torchgeo ≥ 0.9

        return CopernicusEmbed
    except ImportError:
        from torchgeo.datasets import RasterDataset

        class EmbedMap(RasterDataset):  # torchgeo 0.9's CopernicusEmbed is this reader plus download and plot
            filename_glob = "embed_map_*"

        return EmbedMap


# ----------------------------------------------------------------------------------------------- the grid
@pytest.mark.parametrize("lon,lat,row,col", [
    (0.0, 0.0, 360, 720),            # the equator / Greenwich cell
    (-180.0, 90.0, 0, 0),            # the released map's first pixel
    (179.75, -90.0, 720, 1439),      # its last
    (180.0, 0.0, 360, 0),            # 180° is the −180° column
    (11.58, 48.14, 167, 766),        # nearest centre 11.50 / 48.25: (48.25 − 48.14) < 0.125, (11.58 − 11.5) < 0.125
    (-179.875, 89.875, 1, 1),        # on a cell edge: the east / south cell (pixel [left, right), (bottom, top])
    (-96.0, 44.0, 184, 336),         # a released grid id, 0772176_-96.00_44.00
])
def test_cell_index_by_hand(lon, lat, row, col):
    r, c = cell_index(lon, lat)
    assert (int(r[0]), int(c[0])) == (row, col)


def test_cell_index_is_rasterio_rowcol_and_the_centre_is_within_half_a_cell():
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(-180, 179.99, 5000), rng.uniform(-90, 90, 5000)
    r, c = cell_index(lon, lat)
    rr, cc = rowcol(TORCHGEO_TRANSFORM, lon, lat)  # floor of the fractional pixel
    assert np.array_equal(r, np.asarray(rr)) and np.array_equal(c, np.asarray(cc))
    clon, clat = cell_centre(r, c)
    assert np.all(np.abs(clon - lon) <= 0.125) and np.all(np.abs(clat - lat) <= 0.125)
    assert np.allclose(clon * 4, np.round(clon * 4)) and np.allclose(clat * 4, np.round(clat * 4))


def test_full_globe_has_the_released_layout_and_transform(tmp_path):
    means = CellMeans()
    means.add([0, 720, 360], [0, 1439, 720], np.array([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]]), "s2")
    path = tmp_path / "embed_map_globe.tif"
    assert write_grid_geotiff(path, means, full_globe=True) == (721, 1440)
    with rasterio.open(path) as src:
        assert (src.count, src.height, src.width, src.dtypes[0]) == (3, 721, 1440, "float32")
        assert src.crs.to_epsg() == 4326 and src.transform == TORCHGEO_TRANSFORM and src.nodata is None
        assert src.xy(0, 0) == (-180.0, 90.0) and src.xy(720, 1439) == (179.75, -90.0)
        a = src.read()
    assert a[:, 0, 0].tolist() == [1, 2, 3] and a[:, 720, 1439].tolist() == [4, 5, 6]
    assert a[:, 360, 720].tolist() == [7, 8, 9] and np.count_nonzero(a) == 9  # empty cells are 0, as released


def test_subset_transform_puts_each_pixel_centre_on_its_cell_centre(tmp_path):
    means = CellMeans()
    cells = [(150, 700), (152, 705), (151, 703)]
    means.add([r for r, _ in cells], [c for _, c in cells], np.eye(3), "s2")
    path = tmp_path / "embed_map_sub.tif"
    assert write_grid_geotiff(path, means) == (3, 6)
    with rasterio.open(path) as src:
        assert src.transform == grid_transform(150, 700) == TORCHGEO_TRANSFORM @ Affine.translation(700, 150)
        for i, (r, c) in enumerate(cells):
            lon, lat = cell_centre(r, c)
            assert src.xy(r - 150, c - 700) == pytest.approx((float(lon), float(lat)), abs=1e-9)
            assert src.read()[:, r - 150, c - 700].tolist() == np.eye(3)[i].tolist()


def test_average_images_or_modalities():
    """s2 images 1, 1, 4 (mean 2) and s1 images 4, 4 (mean 4): over images 14/5, over modalities (2 + 4)/2."""
    for average, want in (("images", 14 / 5), ("modalities", 3.0)):
        m = CellMeans(average)
        m.add([5, 5, 5], [7, 7, 7], np.array([[1.0], [1.0], [4.0]]), "s2")
        m.add([5, 5], [7, 7], np.array([[4.0], [4.0]]), "s1")
        assert m.mean((5, 7))[0] == pytest.approx(want) and m.count((5, 7)) == 5


# ----------------------------------------------------------------------------------------------- GeoTIFF inputs
@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Three 64 px S2 scenes (UTM 32N): a and b 1 km apart, c 100 km east."""
    root = tmp_path_factory.mktemp("cells")
    rng = np.random.default_rng(0)
    out = {}
    for name, x0 in (("a", 600000.0), ("b", 601000.0), ("c", 700000.0)):
        arr = rng.integers(200, 4000, size=(4, 64, 64)).astype("uint16")
        out[name] = _write(root / f"{name}.tif", arr, transform=Affine(10.0, 0, x0, 0, -10.0, 5300000.0),
                           tags={"ACQUISITION_DATE": "2021-07-01"})
    return root, out


def _expected_cells(paths):
    """The cell of each raster's centre, computed here: pyproj to WGS84, then the 0.25° lattice by hand."""
    tr = Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True)
    out = {}
    for name, p in paths.items():
        with rasterio.open(p) as src:
            x, y = src.xy(src.height / 2, src.width / 2, offset="ul")
        lon, lat = tr.transform(x, y)
        out[name] = (int(np.floor((90.125 - lat) * 4)), int(np.floor((lon + 180.125) * 4)), lon, lat)
    return out


def test_geotiff_cells_are_the_mean_of_create_encoder_outputs_and_torchgeo_reads_them(scenes, tmp_path):
    from copernicus_bench import create_encoder

    root, paths = scenes
    cells = _expected_cells(paths)
    assert cells["a"][:2] == cells["b"][:2] != cells["c"][:2]  # the set-up: a and b share a cell
    out = tmp_path / "embed_map_mine.tif"
    assert main(["grid-embed", str(root), *TINY, "--out", str(out), "--table", str(tmp_path / "cells.parquet")]) == 0

    enc = create_encoder("copernicus-fm", "random", bands=BANDS, config="tiny")
    emb = {}
    for name, p in paths.items():
        with rasterio.open(p) as src:
            x = torch.from_numpy(src.read().astype(np.float32))[None]
        _, _, lon, lat = cells[name]
        emb[name] = enc(x, lon=lon, lat=lat, time="2021-07-01", area=(16 * 10 / 1000) ** 2).pooled[0].numpy()
    want = {cells["a"][:2]: (emb["a"] + emb["b"]) / 2, cells["c"][:2]: emb["c"]}

    with rasterio.open(out) as src:
        assert src.count == enc.embed_dim and src.crs.to_epsg() == 4326
        grid = src.read()
        for (r, c), vec in want.items():
            i, j = rowcol(src.transform, *cell_centre(r, c))
            np.testing.assert_allclose(grid[:, i, j], vec, rtol=1e-5, atol=1e-5)
        assert np.count_nonzero(np.abs(grid).sum(0)) == 2  # every other cell of the box is 0
        assert src.tags()["CBENCH_IMAGES"] == "3" and src.tags()["CBENCH_CELLS"] == "2"

    ds = _reader()(paths=str(tmp_path))
    for (r, c), vec in want.items():
        lon, lat = (float(v) for v in cell_centre(r, c))
        sample = ds[lon - 0.125:lon + 0.125, lat - 0.125:lat + 0.125]
        assert sample["image"].shape == (enc.embed_dim, 1, 1)
        np.testing.assert_allclose(sample["image"][:, 0, 0].numpy(), vec, rtol=1e-5, atol=1e-5)

    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "cells.parquet").to_pandas().set_index(["row", "col"])
    assert table.loc[cells["a"][:2], "count"] == 2 and table.loc[cells["c"][:2], "count"] == 1
    np.testing.assert_allclose(np.asarray(table.loc[cells["a"][:2], "embedding"]), want[cells["a"][:2]], atol=1e-5)


# ----------------------------------------------------------------------------------------------- shard inputs
def _read_shard(path):
    """Members of each sample, read here with tarfile + torch.load(weights_only=True) (not our reader)."""
    samples: dict[str, dict] = {}
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            key, member = m.name.split(".", 1)
            data = tar.extractfile(m).read()
            samples.setdefault(key, {})[member] = (json.loads(data) if member == "json"
                                                   else torch.load(io.BytesIO(data), weights_only=True))
    return samples


def _flat(ident):
    while isinstance(ident, list):
        ident = ident[0]
    return ident


def test_shard_cells_are_the_mean_of_the_grid_images_embeddings(tmp_path):
    from copernicus_bench import create_encoder
    from copernicus_bench.models.copernicusfm.pretrain_data import S2_PRETRAIN_MEAN, S2_PRETRAIN_STD

    assert main(["pretrain-sample", "--out", str(tmp_path / "shards"), "--shards", "1", "--grids-per-shard",
                 "2"]) == 0
    out = tmp_path / "embed_map_shards.tif"
    assert main(["grid-embed", "--shards", str(tmp_path / "shards"), "--modalities", "s2", *TINY,
                 "--out", str(out)]) == 0
    enc = create_encoder("copernicus-fm", "random", bands=list("B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 "
                                                               "B12".split()),
                         mean=S2_PRETRAIN_MEAN, std=S2_PRETRAIN_STD, config="tiny")
    with rasterio.open(out) as src:
        grid, transform = src.read(), src.transform
    samples = _read_shard(tmp_path / "shards" / "example-000000.tar")
    assert len(samples) == 2
    for s in samples.values():
        glon, glat = (float(v) for v in re.findall(r"_(-?[\d.]+)_(-?[\d.]+)$", _flat(s["json"]["dem"]))[0])
        x, ids = s["s2_toa.pth"], s["json"]["s2_toa"]
        vecs = []
        for p in range(x.shape[0]):
            for t in range(x.shape[1]):
                ident = _flat(ids[p][t])  # grid/patch_lon_lat/YYYYMMDD
                lon, lat = (float(v) for v in re.findall(r"_(-?[\d.]+)_(-?[\d.]+)/", ident)[0])
                day = ident.rsplit("/", 1)[1]
                vecs.append(enc(x[p, t][None].float(), lon=lon, lat=lat, time=f"{day[:4]}-{day[4:6]}-{day[6:]}",
                                area=0.0256).pooled[0].numpy())
        i, j = rowcol(transform, glon, glat)
        assert (i + round((90.125 - transform.f) * 4), j + round((transform.c + 180.125) * 4)) == (
            round((90 - glat) * 4), round((glon + 180) * 4))  # the grid id's centre is the pixel's cell
        np.testing.assert_allclose(grid[:, i, j], np.mean(vecs, axis=0), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------- bad input
def _one_line_error(capsys, *parts):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cbench: error:") and "Traceback" not in err[0], err
    for part in parts:
        assert part in err[0], err[0]
    return err[0]


def test_raster_without_crs_is_one_line_and_writes_nothing(tmp_path, capsys):
    arr = np.ones((4, 32, 32), dtype="uint16")
    bad = _write(tmp_path / "nocrs.tif", arr, crs=None, transform=Affine.identity())
    out = tmp_path / "o" / "embed_map_x.tif"
    assert main(["grid-embed", str(bad), *TINY, "--out", str(out)]) != 0
    _one_line_error(capsys, str(bad), "no CRS", "0.25° cell")
    assert not out.exists() and not any(out.parent.glob("*.tif*"))


@pytest.mark.parametrize("inputs,what", [([], "no input"), (["EMPTY"], "holds no .tif"),
                                         (["--shards", "EMPTY"], "no .tar shards")])
def test_empty_input_is_one_line(tmp_path, capsys, inputs, what):
    (tmp_path / "empty").mkdir()
    args = [str(tmp_path / "empty") if a == "EMPTY" else a for a in inputs]
    out = tmp_path / "embed_map_x.tif"
    assert main(["grid-embed", *args, *TINY, "--out", str(out)]) != 0
    _one_line_error(capsys, what)
    assert not out.exists()


def test_unknown_model_is_one_line(scenes, tmp_path, capsys):
    root, _ = scenes
    out = tmp_path / "embed_map_x.tif"
    assert main(["grid-embed", str(root), "--model", "copernicus-fn", "--out", str(out)]) != 0
    _one_line_error(capsys, "unknown model 'copernicus-fn'")
    assert not out.exists()


def test_bad_out_suffix_and_unknown_modality_are_one_line(tmp_path, capsys):
    assert main(["grid-embed", "x.tif", *TINY, "--out", str(tmp_path / "map.nc")]) != 0
    _one_line_error(capsys, "--out", ".tif")
    assert main(["grid-embed", "--shards", str(tmp_path), "--modalities", "s9", *TINY,
                 "--out", str(tmp_path / "embed_map_x.tif")]) != 0
    _one_line_error(capsys, "--modalities", "s9")


def test_shard_variable_modalities_every_image_counted(tmp_path):
    """S3 (2 dates), S5P CO (2 dates) and the DEM (1) of one grid: 5 images in its cell, all three modalities."""
    import pyarrow.parquet as pq

    assert main(["pretrain-sample", "--out", str(tmp_path / "shards"), "--shards", "1", "--grids-per-shard",
                 "1"]) == 0
    assert main(["grid-embed", "--shards", str(tmp_path / "shards"), "--modalities", "s3,s5p_co,dem", *TINY,
                 "--out", str(tmp_path / "embed_map_v.tif"), "--table", str(tmp_path / "cells.parquet")]) == 0
    table = pq.read_table(tmp_path / "cells.parquet").to_pandas()
    assert len(table) == 1 and table["count"][0] == 5 and table["modalities"][0] == "dem,s3,s5p_co"
    vec = np.asarray(table["embedding"][0])
    assert np.isfinite(vec).all() and np.abs(vec).sum() > 0
    with rasterio.open(tmp_path / "embed_map_v.tif") as src:
        assert (src.height, src.width) == (1, 1)
        np.testing.assert_allclose(src.read()[:, 0, 0], vec, rtol=1e-6)
        lon, lat = src.xy(0, 0)
        assert f"{lon:.2f}_{lat:.2f}" == table["grid_id_coord"][0]
