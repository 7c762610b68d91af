"""Loaders: every task's samples match its card (shapes, dtypes, metadata), the reference's
dataset-level steps hold on hand-made values, and bad input fails with one line naming the file.

Two data sources: a tiny release written here in the released on-disk layout (always), and the
colleague's ``generate_sample`` output (when ``copernicus_bench.tasks.sample`` exists).
"""

from __future__ import annotations

import json
import math
import shutil
import zipfile
from datetime import date
from pathlib import Path

import h5py
import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from copernicus_bench.cards import SPLITS
from copernicus_bench.errors import CbenchError
from copernicus_bench.tasks import TASK_SLUGS, get_card, load_dataset, split_status

UTM = "EPSG:32632"
UTM_T = from_origin(500000, 5000000, 10, 10)  # ~9.0°E 45.1°N
GEO_T = from_origin(10.0, 50.0, 0.003, 0.003)  # S3-like degrees grid, origin 10°E 50°N
S3_T = GEO_T


def days(y: int, m: int, d: int) -> float:
    return float((date(y, m, d) - date(1970, 1, 1)).days)


def tif(path: Path, array: np.ndarray, crs: str | None = UTM, transform=UTM_T) -> None:
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    kw = {"crs": crs, "transform": transform} if crs else {}
    with rasterio.open(path, "w", driver="GTiff", height=array.shape[1], width=array.shape[2],
                       count=array.shape[0], dtype=array.dtype, **kw) as dst:
        dst.write(array)


def lines(path: Path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


def band_stack(n: int, size: int, dtype: str) -> np.ndarray:
    """Band i is constant (i + 1) · 10: a band's identity survives reordering."""
    return np.stack([np.full((size, size), (i + 1) * 10) for i in range(n)]).astype(dtype)


# --------------------------------------------------------------------------------- the tiny release
def write_release(root: Path, n: int = 2, zipped: tuple[str, ...] = ("eurosat_s1",)) -> Path:
    """All 15 tasks, ``n`` samples per split, in the released layout (small image sizes)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        names = [f"{split}{i}" for i in range(n)]
        # Cloud-S2
        d = root / "cloud_s2"
        rows = [f"ROI_{i + 10 * SPLITS.index(split):05d}__20200115T101031_20200115T101540_T32TNS" for i in range(n)]
        lines(d / f"{split}.csv", rows)
        for r in rows:
            tif(d / "s2_toa" / f"{r}.tif", band_stack(13, 16, "uint16"))
            tif(d / "cloud" / f"{r}.tif", rng.integers(0, 4, (16, 16)).astype("uint8"))
        # Cloud-S3
        d = root / "cloud_s3"
        rows = [f"S3A_OL_1_EFR____20200603T100000_{split}{i}.tif" for i in range(n)]
        lines(d / f"{split}.csv", rows)
        for r in rows:
            img = band_stack(21, 12, "float32")
            img[0, 0, 0] = np.nan
            tif(d / "s3_olci" / r, img, "EPSG:4326", S3_T)
            lab = rng.integers(0, 6, (12, 12)).astype("uint8")
            lab[0, 0], lab[0, 1] = 0, 3
            tif(d / "cloud_multi" / r, lab, "EPSG:4326", S3_T)
            tif(d / "cloud_binary" / r, (lab > 1).astype("uint8"), "EPSG:4326", S3_T)
        # EuroSAT-S1 / -S2
        for sensor, nb, dt in (("s1", 2, "float32"), ("s2", 13, "uint16")):
            d = root / f"eurosat_{sensor}"
            rows = [f"{c}_{split}{i}.jpg" for i, c in enumerate(["Forest", "SeaLake"] * n)][:max(n, 2)]
            lines(d / f"eurosat-{split}.txt", rows)
            for r in rows:
                cls = r.split("_")[0]
                tif(d / "all_imgs" / cls / r.replace(".jpg", ".tif"), band_stack(nb, 8, dt))
        # BigEarthNet
        d = root / "bigearthnet_s1s2"
        header = "s1_path,s2_path," + ",".join(f"c{k}" for k in range(19))
        rows = [header]
        for i in range(n):
            s1 = f"S1A_IW_GRDH_1SDV_20170613T165043_33UUP_{split}_{i}"
            s2 = f"S2A_MSIL2A_20170617T113321_N9999_R080_T33UUP_{split}_{i}"
            s1p, s2p = f"{s1[:32]}/{s1}/{s1}_allbands.tif", f"{s2[:26]}/{s2}/{s2}_allbands.tif"
            labels = [1 if k in (i, 18) else 0 for k in range(19)]
            rows.append(f"{s1p},{s2p}," + ",".join(map(str, labels)))
            tif(d / "BigEarthNet-S1-5%" / s1p, band_stack(2, 12, "float32"))
            tif(d / "BigEarthNet-S2-5%" / s2p, band_stack(12, 12, "uint16"))
        lines(d / f"multilabel-{split}.csv", rows)
        # LC100 (Cls + Seg share it)
        d = root / "lc100_s3"
        pids = [f"{i:07d}_-70.25_-55.{split}{i}" for i in range(n)]
        ml = ["PID," + ",".join(f"c{k}" for k in range(23))]
        static = []
        for i, pid in enumerate(pids):
            ml.append(pid + "," + ",".join("1" if k in (0, 22 - i) else "0" for k in range(23)))
            file = f"S3A_20190301T101010_20190301T101310_{i}.tif"
            static.append(f"{pid},{file}")
            tif(d / "s3_olci" / pid / file, band_stack(21, 12, "float32"), "EPSG:4326", S3_T)
            tif(d / "s3_olci" / pid / f"S3B_20190401T101010_20190401T101310_{i}.tif",
                band_stack(21, 12, "float32"), "EPSG:4326", S3_T)
            codes = np.full((36, 36), 20, dtype="uint8")
            codes[:18] = 200
            tif(d / "lc100" / f"{pid}.tif", codes, "EPSG:4326", from_origin(10.0, 50.0, 0.001, 0.001))
        lines(d / f"multilabel-{split}.csv", ml)
        lines(d / f"static_fnames-{split}.csv", static)
        # DFC2020
        d = root / "dfc2020_s1s2"
        rows = [f"ROIs0000_{split}_dfc_0_p{i}.tif" for i in range(n)]
        lines(d / f"dfc-{split}-new.csv", rows)
        for r in rows:
            lab = np.tile(np.arange(11, dtype="int32"), (16, 2))[:, :16]
            tif(d / "dfc" / r, lab, None)
            tif(d / "s1" / r.replace("dfc", "s1"), band_stack(2, 16, "float64"), None)
            tif(d / "s2" / r.replace("dfc", "s2"), band_stack(13, 16, "uint16"), None)
        # Flood-S1
        d = root / "flood_s1"
        grid = {}
        for i, name in enumerate(names):
            path = f"{100 + i}/01/{name}"
            grid[f"{i:05d}-{split}"] = {"path": path, "info": {"actid": 100 + i, "aoiid": 1}}
            folder = d / "data" / path
            for ptype, day in (("SL1", "20200101"), ("SL2", "20191220"), ("MS1", "20200113")):
                for band in ("VV", "VH"):
                    img = np.full((16, 16), 0.05 if band == "VV" else 0.5, dtype="float32")
                    img[0, 0] = np.nan
                    tif(folder / f"{ptype}_I{band}_0001_00{i:03d}_{day}.tif", img, "EPSG:3857",
                        from_origin(1e6, 6e6, 10, 10))
            tif(folder / "MK0_MLU_0001_00000_20200113.tif", rng.integers(0, 4, (16, 16)).astype("uint8"),
                "EPSG:3857", from_origin(1e6, 6e6, 10, 10))
            tif(folder / "MK0_MNA_0001_00000_20200113.tif", np.ones((16, 16), "uint8"), "EPSG:3857",
                from_origin(1e6, 6e6, 10, 10))
        d.mkdir(parents=True, exist_ok=True)
        (d / f"grid_dict_{split}.json").write_text(json.dumps(grid))
        # LCZ
        d = root / "lcz_s2"
        d.mkdir(parents=True, exist_ok=True)
        with h5py.File(d / f"lcz_{split}.h5", "w") as f:
            f["sen1"] = np.zeros((n, 32, 32, 8), "float32")
            f["sen2"] = np.broadcast_to(np.arange(10, dtype="float32") / 10, (n, 32, 32, 10)).copy()
            f["label"] = np.eye(17, dtype="uint8")[[(5 * i + 16) % 17 for i in range(n)]]
        # Biomass
        d = root / "biomass_s3"
        static = []
        for i in range(n):
            pid = f"S30E140_ESACCI-BIOMASS-L4-AGB-MERGED-100m-2020-fv4.0_{split}_{i}"
            file = f"S3A_20200701T000000_20200701T000300_{i}.tif"
            static.append(f"{pid},{file}")
            tif(d / "s3_olci" / pid / file, band_stack(21, 12, "float32"), "EPSG:4326", S3_T)
            tif(d / "biomass" / f"{pid}.tif", np.full((36, 36), 100, "uint16"), "EPSG:4326",
                from_origin(10.0, 50.0, 0.001, 0.001))
        lines(d / f"static_fnames-{split}.csv", static)
        # AQ
        for gas in ("no2", "o3"):
            d = root / "airquality_s5p" / gas
            pids = [f"EEA_1kmgrid_2021_{gas}_avg_{split}_{i}" for i in range(n)]
            lines(d / f"{split}.csv", pids)
            for pid in pids:
                img = np.full((10, 10), 3.0, "float32")
                img[0, 0] = np.nan
                tif(d / "s5p_annual" / pid / "2021-01-01_2021-12-31.tif", img, "EPSG:4326",
                    from_origin(10.0, 50.0, 0.01, 0.01))
                lab = np.full((10, 10), 7.0, "float32")
                lab[0, 0], lab[9, 9], lab[5, 5] = np.nan, 1e20, -3.4e38
                tif(d / "label_annual" / f"{pid}.tif", lab, "EPSG:4326", from_origin(10.0, 50.0, 0.01, 0.01))
    zip_names = {"eurosat_s1": "eurosat_s1.zip", "cloud_s2": "cloud_s2.zip", "dfc2020_s1s2": "dfc2020.zip"}
    for folder in zipped:
        make_zip(root / folder, root / zip_names[folder])
        shutil.rmtree(root / folder)
    return root


def make_zip(folder: Path, zip_path: Path) -> None:
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, p.relative_to(folder.parent))


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return write_release(tmp_path_factory.mktemp("release") / "data")


@pytest.fixture
def fresh(tmp_path) -> Path:
    """A private copy for tests that break or extract things."""
    return write_release(tmp_path / "data", n=1)


def _sample_module():
    try:
        from copernicus_bench.tasks import sample  # written by a colleague
    except ImportError:
        return None
    return sample if hasattr(sample, "generate_sample") else None


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory) -> Path:
    mod = _sample_module()
    if mod is None:
        pytest.skip("copernicus_bench.tasks.sample.generate_sample is not written yet")
    out = tmp_path_factory.mktemp("sample") / "data"
    return Path(mod.generate_sample(out, per_split=2, seed=0))


# --------------------------------------------------------------------------------- the contract
def check_sample(card, sample) -> None:
    """What every sample of a card must look like (tasks/__init__.py docstring)."""
    image, target, meta = sample["image"], sample["target"], sample["meta"]
    assert set(sample) >= {"image", "target", "meta"}
    assert image.dtype == torch.float32 and meta.dtype == torch.float32
    if card.num_dates > 1:
        assert image.ndim == 4 and image.shape[0] == card.num_dates
        assert meta.shape == (card.num_dates, 4)
    else:
        assert image.ndim == 3
        assert meta.shape == (4,)
    assert image.shape[-3] == card.num_bands
    assert torch.isfinite(image).all(), "NaN must be filled by the loader"
    if card.loader_size is not None:
        assert tuple(image.shape[-2:]) == (card.loader_size, card.loader_size)
    rows = meta.reshape(-1, 4)
    for k, name in enumerate(("lon", "lat", "time", "area")):
        if name in card.metadata:
            assert torch.isfinite(rows[:, k]).all(), name
        else:
            assert torch.isnan(rows[:, k]).all(), name
    assert torch.allclose(rows[:, 3], torch.tensor(card.patch_area_km2))
    if "lon" in card.metadata:
        assert (rows[:, 0].abs() <= 180).all() and (rows[:, 1].abs() <= 90).all()
    if "time" in card.metadata:
        assert (rows[:, 2] > days(2014, 1, 1)).all() and (rows[:, 2] < days(2026, 1, 1)).all()
    if card.task_type == "multiclass":
        assert target.dtype == torch.int64 and target.ndim == 0
        assert 0 <= int(target) < card.num_classes
    elif card.task_type == "multilabel":
        assert target.dtype == torch.float32 and target.shape == (card.num_classes,)
        assert set(target.unique().tolist()) <= {0.0, 1.0}
    elif card.task_type in ("segmentation", "change_detection"):
        assert target.dtype == torch.int64 and target.shape == image.shape[-2:]
        valid = set(range(card.num_classes)) | ({card.ignore_index} if card.ignore_index is not None else set())
        assert set(target.unique().tolist()) <= valid
    else:
        assert target.dtype == torch.float32 and target.shape == image.shape[-2:]


@pytest.mark.parametrize("slug", TASK_SLUGS)
def test_tiny_release_samples_match_cards(release, slug):
    card = get_card(slug)
    for split in SPLITS:
        ds = load_dataset(slug, split, release)
        assert (ds.card, ds.split, ds.root) == (card, split, release)
        assert len(ds) >= 2
        for i in range(len(ds)):
            check_sample(card, ds[i])
        assert all(f.is_file() for f in ds.split_files())


@pytest.mark.parametrize("slug", TASK_SLUGS)
def test_generated_sample_loads_every_split(sample_root, slug):
    card = get_card(slug)
    for split in SPLITS:
        ds = load_dataset(card, split, sample_root)
        assert len(ds) > 0
        for i in range(len(ds)):
            check_sample(card, ds[i])
        assert split_status(card, sample_root)[split]


# --------------------------------------------------------------------------------- reference steps
def test_eurosat_s2_reorders_b8a_after_b08_and_labels_alphabetically(release):
    s = load_dataset("eurosat-s2", "train", release)[0]
    # file order B01..B12, B8A → band k holds (k+1)·10; model order wants file index 12 (B8A) 9th
    expected = [10, 20, 30, 40, 50, 60, 70, 80, 130, 90, 100, 110, 120]
    assert s["image"][:, 0, 0].tolist() == expected
    assert int(s["target"]) == ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
                                "PermanentCrop", "Residential", "River", "SeaLake"].index("Forest")
    assert math.isnan(float(s["meta"][2]))  # EuroSAT has no time


def test_cloud_s2_time_is_acquisition_day_and_lonlat_from_utm(release):
    meta = load_dataset("cloud-s2", "val", release)[0]["meta"]
    assert float(meta[2]) == days(2020, 1, 15)
    from pyproj import Transformer

    x, y = 500000 + 8.5 * 10, 5000000 - 8.5 * 10  # centre of pixel (8, 8) of a 16 × 16 tile
    lon, lat = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform(x, y)
    assert float(meta[0]) == pytest.approx(lon, abs=1e-4) and float(meta[1]) == pytest.approx(lat, abs=1e-4)


def test_cloud_s3_scales_radiance_fills_nan_and_shifts_labels(release):
    s = load_dataset("cloud-s3", "train", release)[0]
    card = get_card("cloud-s3")
    assert float(s["image"][0, 0, 0]) == 0.0  # NaN → 0
    assert float(s["image"][0, 1, 1]) == pytest.approx(10 * 0.0139465, rel=1e-6)
    assert float(s["image"][20, 1, 1]) == pytest.approx(210 * 0.00324118, rel=1e-6)
    assert int(s["target"][0, 0]) == 255 and int(s["target"][0, 1]) == 2
    assert card.classes[2] == "Cloud-Sure"
    assert float(s["meta"][0]) == pytest.approx(10.0 + 6.5 * 0.003) and float(s["meta"][1]) == pytest.approx(50.0 - 6.5 * 0.003)
    assert float(s["meta"][2]) == days(2020, 6, 3)


def test_dfc2020_remaps_to_eight_classes_and_has_no_geo(release):
    s = load_dataset("dfc2020-s1", "test", release)[0]
    row = s["target"][0, :11].tolist()  # codes 0..10 along the row
    assert row == [255, 0, 1, 255, 2, 3, 4, 5, 255, 6, 7]
    assert torch.isnan(s["meta"][:3]).all() and float(s["meta"][3]) == pytest.approx(0.0256)


def test_flood_clamps_backscatter_and_gives_per_date_meta(release):
    s = load_dataset("flood-s1", "train", release)[0]
    img = s["image"]
    assert img.shape[:2] == (2, 2)
    assert float(img[0, 0, 1, 1]) == pytest.approx(0.05) and float(img[0, 1, 1, 1]) == pytest.approx(0.15)
    assert float(img[1, 0, 0, 0]) == pytest.approx(0.15)  # NaN → 0.15
    assert s["meta"][:, 2].tolist() == [days(2020, 1, 1), days(2020, 1, 13)]
    assert torch.equal(s["meta"][0, :2], s["meta"][1, :2])


def test_lc100_resizes_and_maps_codes(release):
    cls = load_dataset("lc100cls-s3", "train", release)[1]
    assert cls["image"].shape == (21, 96, 96)
    assert cls["target"].tolist() == [1.0 if k in (0, 21) else 0.0 for k in range(23)]
    assert float(cls["image"][3, 50, 50]) == pytest.approx(40 * 0.0115198, rel=1e-5)  # constant band survives bicubic
    assert float(cls["meta"][2]) == days(2019, 3, 1)
    seg = load_dataset("lc100seg-s3", "train", release)[0]
    assert seg["image"].shape == (21, 288, 288) and seg["target"].shape == (288, 288)
    assert int(seg["target"][0, 0]) == 22 and int(seg["target"][-1, -1]) == 1  # 200 → ocean, 20 → shrubs
    assert set(seg["target"][:144].unique().tolist()) == {22}


def test_biomass_target_bicubic_float_in_original_units(release):
    s = load_dataset("biomass-s3", "test", release)[0]
    assert s["target"].shape == (288, 288) and s["target"].dtype == torch.float32
    assert torch.allclose(s["target"], torch.tensor(100.0))
    assert float(s["meta"][3]) == pytest.approx(23.04)


def test_airquality_masks_nodata_and_uses_start_date(release):
    s = load_dataset("aq-no2-s5p", "train", release)[0]
    t = s["target"]
    assert t.shape == (56, 56) and s["image"].shape == (1, 56, 56)
    assert math.isnan(float(t[0, 0])) and math.isnan(float(t[-1, -1]))  # NaN and 1e20
    assert math.isnan(float(t[30, 30]))  # -3.4e38 at source (5, 5) = floor(30 · 10 / 56)
    assert float(t[20, 20]) == pytest.approx(7.0)
    assert torch.isnan(t).sum() < 56 * 56 / 5
    assert float(s["meta"][2]) == days(2021, 1, 1)
    assert float(s["meta"][3]) == pytest.approx(16.0)


def test_lcz_reads_h5_from_lcz_s2_folder(release):
    s = load_dataset("lcz-s2", "val", release)[1]
    assert s["image"].shape == (10, 32, 32)
    assert s["image"][:, 0, 0].tolist() == pytest.approx([k / 10 for k in range(10)])
    assert int(s["target"]) == (5 * 1 + 16) % 17


def test_bigearthnet_time_and_labels(release):
    s1 = load_dataset("bigearthnet-s1", "train", release)[1]
    s2 = load_dataset("bigearthnet-s2", "train", release)[1]
    assert float(s1["meta"][2]) == days(2017, 6, 13) and float(s2["meta"][2]) == days(2017, 6, 17)
    assert s1["target"].nonzero().flatten().tolist() == [1, 18]
    assert s2["image"].shape[0] == 12


def test_limit_keeps_first_n(release):
    full = load_dataset("cloud-s2", "train", release)
    one = load_dataset("cloud-s2", "train", release, limit=1)
    assert len(one) == 1 and torch.equal(one[0]["image"], full[0]["image"])
    with pytest.raises(IndexError):
        one[1]


def test_split_files_are_the_release_split_files(release):
    names = {s: [p.name for p in load_dataset(s, "val", release).split_files()]
             for s in ("cloud-s2", "eurosat-s2", "lc100cls-s3", "flood-s1", "lcz-s2", "aq-o3-s5p")}
    assert names == {"cloud-s2": ["val.csv"], "eurosat-s2": ["eurosat-val.txt"],
                     "lc100cls-s3": ["multilabel-val.csv", "static_fnames-val.csv"],
                     "flood-s1": ["grid_dict_val.json"], "lcz-s2": ["lcz_val.h5"], "aq-o3-s5p": ["val.csv"]}


# --------------------------------------------------------------------------------- zip extraction
def test_released_zip_is_extracted_on_first_use(fresh):
    assert not (fresh / "eurosat_s1").exists() and (fresh / "eurosat_s1.zip").is_file()
    assert split_status(get_card("eurosat-s1"), fresh) == {"train": True, "val": True, "test": True}
    ds = load_dataset("eurosat-s1", "train", fresh)
    check_sample(get_card("eurosat-s1"), ds[0])
    assert (fresh / "eurosat_s1" / "eurosat-train.txt").is_file()
    assert not [p for p in fresh.iterdir() if p.name.startswith(".eurosat_s1")]  # temp folder gone


def test_corrupt_zip_leaves_nothing_half_extracted(fresh):
    (fresh / "eurosat_s1.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CbenchError, match="eurosat_s1.zip"):
        load_dataset("eurosat-s1", "train", fresh)
    assert not (fresh / "eurosat_s1").exists()
    assert not [p for p in fresh.iterdir() if p.name.startswith(".eurosat_s1")]


# --------------------------------------------------------------------------------- bad input
def test_missing_data_root(tmp_path):
    with pytest.raises(CbenchError, match=r"data root .*nope: does not exist; run 'cbench download"):
        load_dataset("cloud-s2", "train", tmp_path / "nope")


def test_empty_data_root(tmp_path):
    with pytest.raises(CbenchError, match=r"data root .*: is empty"):
        load_dataset("cloud-s2", "train", tmp_path)


def test_task_folder_absent(tmp_path):
    (tmp_path / "other").mkdir()
    with pytest.raises(CbenchError, match=r"cloud_s3: task data not found .*cloud_s3.zip"):
        load_dataset("cloud-s3", "train", tmp_path)


def test_missing_split_file(fresh):
    (fresh / "cloud_s3" / "val.csv").unlink()
    with pytest.raises(CbenchError, match=r"val.csv: split file for task 'cloud-s3' \(val\) is missing"):
        load_dataset("cloud-s3", "val", fresh)
    assert split_status(get_card("cloud-s3"), fresh) == {"train": True, "val": False, "test": True}


def test_truncated_geotiff_names_the_file(fresh):
    ds = load_dataset("cloud-s3", "train", fresh)
    path = fresh / "cloud_s3" / "s3_olci" / str(ds.tg.files[0])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CbenchError, match=rf"{path.name}: cannot be read as a GeoTIFF .*truncated or corrupt"):
        ds[0]


def test_garbage_geotiff_names_the_file(fresh):
    ds = load_dataset("biomass-s3", "train", fresh)
    pid = ds.items[0][0]
    path = fresh / "biomass_s3" / "biomass" / f"{pid}.tif"
    path.write_bytes(b"not a tiff at all")
    with pytest.raises(CbenchError, match=rf"{pid}.tif: cannot be read as a GeoTIFF"):
        ds[0]


def test_missing_image_file_names_the_file(fresh):
    ds = load_dataset("dfc2020-s2", "train", fresh)
    shutil.rmtree(fresh / "dfc2020_s1s2" / "s2")
    with pytest.raises(CbenchError, match=r"ROIs0000_train_s2_0_p0.tif: file listed in the split is missing"):
        ds[0]


def test_wrong_band_count_names_file_expected_and_found(fresh):
    ds = load_dataset("cloud-s2", "train", fresh)
    path = fresh / "cloud_s2" / "s2_toa" / f"{ds.tg.files[0]}.tif"
    tif(path, band_stack(12, 16, "uint16"))
    with pytest.raises(CbenchError, match=rf"{path.name}: has 12 bands, expected 13"):
        ds[0]


def test_wrong_lcz_band_count(fresh):
    path = fresh / "lcz_s2" / "lcz_test.h5"
    with h5py.File(path, "w") as f:
        f["sen2"] = np.zeros((1, 32, 32, 8), "float32")
        f["label"] = np.zeros((1, 17), "uint8")
    with pytest.raises(CbenchError, match=r"lcz_test.h5: 'sen2' has shape \(1, 32, 32, 8\), expected \(N, 32, 32, 10\)"):
        load_dataset("lcz-s2", "test", fresh)


def test_unknown_task_suggests_closest(tmp_path):
    with pytest.raises(CbenchError, match=r"unknown task \(did you mean 'eurosat-s2'\?\)"):
        load_dataset("eurosat_s2", "train", tmp_path)


def test_unknown_split(release):
    with pytest.raises(CbenchError, match="split 'dev'"):
        load_dataset("cloud-s2", "dev", release)


def test_lc100seg_code_outside_table_becomes_unknown(fresh):
    ds = load_dataset("lc100seg-s3", "train", fresh)
    pid = ds.items[0][0]
    codes = np.full((36, 36), 255, dtype="uint8")
    codes[:, 18:] = 111
    tif(fresh / "lc100_s3" / "lc100" / f"{pid}.tif", codes, "EPSG:4326", from_origin(10.0, 50.0, 0.001, 0.001))
    target = ds[0]["target"]
    assert int(target[0, 0]) == 0 and int(target[0, -1]) == 10  # 255 → Unknown, 111 → closed evergreen needle


def test_nearest_resize_picks_floor_of_scaled_index_like_cv2():
    from copernicus_bench.tasks.base import resize_nearest

    src = np.arange(100, dtype=np.float32).reshape(10, 10)
    out = resize_nearest(src, 56).numpy()
    idx = [int(np.floor(i * 10 / 56)) for i in range(56)]
    assert np.array_equal(out, src[np.ix_(idx, idx)])


def test_bicubic_resize_keeps_constants_and_interpolates_between_samples():
    from copernicus_bench.tasks.base import resize_bicubic

    assert torch.allclose(resize_bicubic(np.full((2, 5, 5), 3.0), 17), torch.tensor(3.0))
    ramp = np.tile(np.arange(8, dtype=np.float32), (8, 1))
    up = resize_bicubic(ramp, 16).numpy()

    def keys(x: float, a: float = -0.75) -> float:  # cv2.INTER_CUBIC's kernel
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a if x < 2 else 0.0

    expected = []
    for j in range(4, 12):  # away from the border; half-pixel centres: x = (j + 0.5) / 2 - 0.5
        x = (j + 0.5) / 2 - 0.5
        base = int(np.floor(x))
        expected.append(sum(ramp[4, base + k] * keys(x - (base + k)) for k in (-1, 0, 1, 2)))
    assert np.allclose(up[4, 4:12], expected, atol=1e-5)


def test_bench_dataset_is_public(release):
    from copernicus_bench.tasks import BenchDataset

    assert isinstance(load_dataset("lcz-s2", "train", release), BenchDataset)


def test_biomass_target_resized_like_cv2_on_uint16(fresh):
    ds = load_dataset("biomass-s3", "train", fresh)
    pid = ds.items[0][0]
    agb = np.zeros((36, 36), "uint16")
    agb[:, 18:] = 1000  # a step: float bicubic would undershoot below 0 and overshoot above 1000
    tif(fresh / "biomass_s3" / "biomass" / f"{pid}.tif", agb, "EPSG:4326", from_origin(10.0, 50.0, 0.001, 0.001))
    t = ds[0]["target"]
    assert t.dtype == torch.float32 and t.shape == (288, 288)
    assert float(t.min()) == 0.0 and float(t.max()) <= 65535
    assert torch.equal(t, t.round())  # integral, as cv2's uint16 output
    assert float(t[0, 0]) == 0.0 and float(t[0, -1]) == 1000.0
