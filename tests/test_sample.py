"""``cbench sample``: the released layout (read by torchgeo 0.8.1's own classes), determinism, the zip-only
task, size, and that labels carry a learnable signal."""

from __future__ import annotations

import hashlib
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from copernicus_bench.errors import CbenchError
from copernicus_bench.tasks import sample as S

warnings.filterwarnings("ignore", category=UserWarning)

# Released facts (docs/tasks.md, "Per-dataset layout and loading"): bands and georeference per registry key.
BANDS = {"cloud_s2": 13, "cloud_s3": 21, "eurosat_s1": 2, "eurosat_s2": 13, "bigearthnet_s1": 2,
         "bigearthnet_s2": 12, "lc100cls_s3": 21, "lc100seg_s3": 21, "dfc2020_s1": 2, "dfc2020_s2": 13,
         "flood_s1": 2, "lcz_s2": 10, "biomass_s3": 21, "aq_no2_s5p": 1, "aq_o3_s5p": 1}
NO_GEO = {"dfc2020_s1", "dfc2020_s2", "lcz_s2"}
NO_TIME = NO_GEO | {"eurosat_s1", "eurosat_s2"}


@pytest.fixture(scope="module")
def default_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default sample (all 15 tasks, default counts), generated once for this module."""
    return S.generate_sample(tmp_path_factory.mktemp("sample_default"))


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return S.generate_sample(tmp_path_factory.mktemp("sample_small"), per_split=2, seed=0)


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _dataset(root: Path, key: str, split: str, **kw):
    from torchgeo.datasets import CopernicusBench

    return CopernicusBench(key, root=str(root / "lcz_s2" if key == "lcz_s2" else root), split=split, **kw)


def test_every_task_and_registry_key_covered() -> None:
    from torchgeo.datasets.copernicus import DATASET_REGISTRY

    assert sorted(t.replace("-", "_") for t in S.TASKS) == sorted(DATASET_REGISTRY)
    assert sorted(S.TASK_ARCHIVE) == sorted(S.TASKS) and len(S.TASKS) == 15


@pytest.mark.parametrize("slug", S.TASKS)
def test_torchgeo_reads_released_layout(default_root: Path, slug: str) -> None:
    """torchgeo 0.8.1's own reader loads every split; bands, georeference and dates as released."""
    import torch

    key = slug.replace("-", "_")
    n = S.DEFAULT_PER_SPLIT[S.TASK_ARCHIVE[slug]]
    for split in S.SPLITS:
        ds = _dataset(default_root, key, split)
        assert len(ds) == n
        for i in (0, n - 1):
            s = ds[i]
            img = s["image"]
            assert img.shape[-3] == BANDS[key]
            if key in NO_GEO:
                assert "lon" not in s and "lat" not in s
            else:
                lon, lat = float(s["lon"]), float(s["lat"])
                assert -180 <= lon <= 180 and -90 <= lat <= 90 and (lon, lat) != (0.0, 0.0)
            if key in NO_TIME:
                assert "time" not in s
            else:
                t = s["time"].reshape(-1)
                # seconds since the epoch, between 2016 and 2023
                assert torch.all((t > 1.45e9) & (t < 1.70e9)), t
            if key == "flood_s1":
                assert img.shape[0] == 2 and len(s["time"]) == 2 and s["time"][0] < s["time"][1]


def test_modes_and_seasonal_files_read(small_root: Path) -> None:
    for key, kw, shape0 in [("cloud_s3", {"mode": "binary"}, 21), ("lc100cls_s3", {"mode": "time-series"}, None),
                            ("lc100seg_s3", {"mode": "time-series"}, None),
                            ("biomass_s3", {"mode": "time-series"}, None),
                            ("aq_no2_s5p", {"mode": "seasonal"}, 4), ("aq_o3_s5p", {"mode": "seasonal"}, 4),
                            ("flood_s1", {"mode": 2}, 3)]:
        ds = _dataset(small_root, key, "train", **kw)
        for i in range(len(ds)):
            s = ds[i]
            if shape0 is not None:
                assert s["image"].shape[0] == shape0


def test_layout_details(small_root: Path) -> None:
    import pandas as pd
    import rasterio

    r = small_root
    # split files: header or not, as released
    assert "," not in (r / "cloud_s2/train.csv").read_text().splitlines()[0]
    assert not (r / "cloud_s2/train.csv").read_text().splitlines()[0].endswith(".tif")
    assert (r / "cloud_s3/train.csv").read_text().splitlines()[0].endswith(".tif")
    ben = pd.read_csv(r / "bigearthnet_s1s2/multilabel-train.csv")
    assert list(ben.columns[:2]) == ["s1_path", "s2_path"] and ben.shape[1] == 21
    lc = pd.read_csv(r / "lc100_s3/multilabel-train.csv")
    assert lc.shape[1] == 24
    static = pd.read_csv(r / "lc100_s3/static_fnames-train.csv", header=None)
    assert static.shape[1] == 2 and list(static[0]) == list(lc.iloc[:, 0])
    assert all(x.endswith(".jpg") for x in (r / "eurosat_s2/eurosat-val.txt").read_text().split())
    assert (r / "lcz_s2/lcz_test.h5").is_file()
    for var in ("no2", "o3"):
        assert (r / f"airquality_s5p/{var}/s5p_annual").is_dir() and (r / f"airquality_s5p/{var}/val.csv").is_file()
    # CRS as released: UTM for S1/S2, EPSG:4326 for S3, EPSG:3857 for Flood, none for DFC2020
    def crs(p: Path) -> int | None:
        with rasterio.open(p) as f:
            return f.crs.to_epsg() if f.crs else None
    assert 32601 <= crs(next((r / "cloud_s2/s2_toa").iterdir())) <= 32760
    assert crs(next((r / "cloud_s3/s3_olci").iterdir())) == 4326
    assert crs(next((r / "flood_s1/data").rglob("MS1_IVV_*.tif"))) == 3857
    for name in ("MK0_MLU_", "MK0_MNA_", "MK0_DEM_", "SL2_IVH_"):
        assert any((r / "flood_s1/data").rglob(f"{name}*.tif"))
    with rasterio.open(next((r / "dfc2020_s1s2/s1").iterdir())) as f:
        assert f.transform == rasterio.Affine.identity() and f.dtypes[0] == "float64"
    with rasterio.open(next((r / "eurosat_s2/all_imgs").rglob("*.tif"))) as f:
        assert f.dtypes[0] == "uint16" and f.count == 13


def test_zip_only_task(small_root: Path) -> None:
    assert (small_root / "eurosat_s1.zip").is_file() and not (small_root / "eurosat_s1").exists()
    with zipfile.ZipFile(small_root / "eurosat_s1.zip") as zf:
        names = zf.namelist()
    assert all(n.startswith("eurosat_s1/") for n in names)
    assert "eurosat_s1/eurosat-train.txt" in names and any(n.endswith(".tif") for n in names)


def test_deterministic_per_seed(small_root: Path, tmp_path: Path) -> None:
    again = S.generate_sample(tmp_path / "again", per_split=2, seed=0)
    h0 = _hashes(small_root)
    assert h0 == _hashes(again)
    # another seed changes the content (checked on three archives to keep the test short)
    other = S.generate_sample(tmp_path / "other", tasks=["lcz-s2", "flood-s1", "cloud-s2"], per_split=2, seed=1)
    h1 = _hashes(other)
    sub = {k: v for k, v in h0.items() if k.split("/")[0] in {"lcz_s2", "flood_s1", "cloud_s2"}}
    assert h1 != sub and not set(h1.values()) & set(sub.values())


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "4"])
def test_bad_per_split(tmp_path: Path, bad: object) -> None:
    with pytest.raises(CbenchError, match="--per-split"):
        S.generate_sample(tmp_path, tasks=["lcz-s2"], per_split=bad)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from copernicus_bench.cli import main

    assert main(["sample", "--out", str(tmp_path / "d"), "--task", "lcz-s2,aq-o3-s5p", "--per-split", "1"]) == 0
    out = capsys.readouterr()
    assert str((tmp_path / "d").resolve()) in out.out
    # the archives, plus the marker that records the root as sample data (issue 10)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [".cbench-sample-complete", "airquality_s5p",
                                                                  "lcz_s2"]
    assert main(["sample", "--out", str(tmp_path / "e"), "--per-split", "0"]) == 2
    assert "--per-split" in capsys.readouterr().err
    assert main(["sample", "--out", str(tmp_path / "e"), "--task", "nope"]) == 2
    assert "--task" in capsys.readouterr().err


def test_total_size(default_root: Path) -> None:
    size = S.sample_size_bytes(default_root)
    assert 20e6 < size < 200e6, size


def test_value_conventions(default_root: Path) -> None:
    """The special values the loaders must handle are really present."""
    import rasterio

    r = default_root

    def values(pattern: str) -> list[np.ndarray]:
        out = []
        for p in sorted(r.glob(pattern)):
            with rasterio.open(p) as f:
                out.append(f.read())
        return out

    dfc = np.unique(np.concatenate([v.ravel() for v in values("dfc2020_s1s2/dfc/*.tif")]))
    assert {0, 3, 8} <= set(dfc.tolist()) <= set(range(11)) and values("dfc2020_s1s2/dfc/*.tif")[0].dtype == np.int32
    assert any((v == 0).any() for v in values("cloud_s3/cloud_multi/*.tif"))
    assert any(np.isnan(v).any() for v in values("cloud_s3/s3_olci/*.tif"))
    assert any(np.isnan(v).any() for v in values("lc100_s3/s3_olci/*/*.tif"))
    mlu = values("flood_s1/data/*/*/*/MK0_MLU_*.tif")
    assert mlu[0].dtype == np.uint8 and {0, 1, 2, 3} <= set(np.unique(np.concatenate([m.ravel() for m in mlu])))
    flood = np.concatenate([v.ravel() for v in values("flood_s1/data/*/*/*/MS1_IVV_*.tif")])
    assert np.nanmedian(flood) < 0.15 and np.nanmin(flood) >= 0
    bio = values("biomass_s3/biomass/*.tif")
    assert bio[0].dtype == np.uint16
    for var in ("no2", "o3"):
        labels = values(f"airquality_s5p/{var}/label_annual/*.tif")
        assert labels[0].dtype == np.float32
        assert any(np.isnan(v).any() for v in labels) and any((np.abs(v) > 1e10).any() for v in labels)
        assert any(np.isnan(v).any() for v in values(f"airquality_s5p/{var}/s5p_annual/*/*.tif"))
    import h5py

    with h5py.File(r / "lcz_s2/lcz_train.h5") as f:
        assert f["sen2"].shape[1:] == (32, 32, 10) and f["sen1"].shape[1:] == (32, 32, 8)
        assert f["label"].shape[1] == 17 and (np.asarray(f["label"]).sum(1) == 1).all()
        assert 0 <= float(np.min(f["sen2"])) and float(np.mean(f["sen2"])) < 1


def _centroid_accuracy(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> float:
    """Nearest-class-mean probe on standardised features: an independent check that labels are learnable."""
    xtr, ytr = train
    xte, yte = test
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-9
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    classes = np.unique(ytr)
    cents = np.stack([xtr[ytr == c].mean(0) for c in classes])
    pred = classes[((xte[:, None] - cents[None]) ** 2).sum(-1).argmin(1)]
    return float((pred == yte).mean())


@pytest.mark.parametrize("key", ["eurosat_s1", "eurosat_s2", "lcz_s2"])
def test_classification_labels_learnable(default_root: Path, key: str) -> None:
    def feats(split: str) -> tuple[np.ndarray, np.ndarray]:
        ds = _dataset(default_root, key, split)
        xs, ys = zip(*[(ds[i]["image"].mean((1, 2)).numpy(), int(ds[i]["label"])) for i in range(len(ds))])
        return np.stack(xs), np.array(ys)

    train, test = feats("train"), feats("test")
    k = len(np.unique(train[1]))
    assert np.bincount(train[1]).min() >= 4  # ≥ 4 samples per class
    # class means of one band differ
    assert np.ptp([train[0][train[1] == c, 0].mean() for c in range(k)]) > train[0][:, 0].std() * 0.5
    assert _centroid_accuracy(train, test) > 3 / k  # well above chance (1/k)


@pytest.mark.parametrize("key", ["cloud_s2", "cloud_s3", "dfc2020_s2", "lc100seg_s3"])
def test_segmentation_labels_learnable(default_root: Path, key: str) -> None:
    import torch.nn.functional as F

    def pixels(split: str, n: int = 3) -> tuple[np.ndarray, np.ndarray]:
        ds = _dataset(default_root, key, split)
        xs, ys = [], []
        for i in range(min(n, len(ds))):
            s = ds[i]
            img, mask = s["image"], s["mask"]
            if img.shape[-2:] != mask.shape:  # LC100: 3× finer labels
                img = F.interpolate(img[None], size=tuple(mask.shape), mode="nearest")[0]
            x = img.flatten(1).T.numpy()
            y = mask.flatten().numpy()
            ok = np.isfinite(x).all(1) & (y != 0 if key == "cloud_s3" else True)
            xs.append(x[ok][::7])
            ys.append(y[ok][::7])
        return np.concatenate(xs), np.concatenate(ys)

    train, test = pixels("train"), pixels("test")
    keep = np.isin(test[1], np.unique(train[1]))
    test = (test[0][keep], test[1][keep])
    chance = np.bincount(test[1]).max() / len(test[1])  # majority-class rate
    assert _centroid_accuracy(train, test) > min(0.95, chance + 0.1)


def test_change_detection_learnable(default_root: Path) -> None:
    ds = _dataset(default_root, "flood_s1", "train")
    diffs = {0: [], 2: []}
    for i in range(len(ds)):
        s = ds[i]
        d = (s["image"][1, 0] - s["image"][0, 0]).numpy()  # post − pre VV
        for c in diffs:
            sel = (s["mask"].numpy() == c) & np.isfinite(d)
            diffs[c].append(d[sel])
    # flooded pixels darken after the event, dry land does not
    assert np.median(np.concatenate(diffs[2])) < np.median(np.concatenate(diffs[0])) - 0.03


@pytest.mark.parametrize("key", ["biomass_s3", "aq_no2_s5p", "aq_o3_s5p"])
def test_regression_target_follows_image(default_root: Path, key: str) -> None:
    import torch.nn.functional as F

    ds = _dataset(default_root, key, "train")
    corrs = []
    for i in range(len(ds)):
        s = ds[i]
        img, tgt = s["image"], s["mask"]
        band = 16 if key == "biomass_s3" else 0  # Oa17 (NIR) for biomass
        x = F.interpolate(img[None, band:band + 1], size=tuple(tgt.shape), mode="bilinear")[0, 0].numpy()
        y = tgt.numpy().astype(np.float64)
        ok = np.isfinite(x) & np.isfinite(y) & (np.abs(y) < 1e10)
        corrs.append(np.corrcoef(x[ok], y[ok])[0, 1])
    assert np.median(corrs) > 0.5, corrs


def test_ensure_builtin_sample_once_and_concurrent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "cache" / "sample"
    monkeypatch.setenv("CBENCH_SAMPLE_DIR", str(target))
    calls: list[Path] = []
    real = S.generate_sample

    def small(out_dir, tasks=None, per_split=None, seed=0):  # noqa: ANN001
        calls.append(Path(out_dir))
        return real(out_dir, tasks=["lcz-s2", "aq-no2-s5p"], per_split=1, seed=seed)

    monkeypatch.setattr(S, "generate_sample", small)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(S.ensure_builtin_sample())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [target] * 3 and len(calls) == 1
    assert calls[0] != target and calls[0].parent == target.parent  # generated in a temporary sibling
    assert (target / S.MARKER).is_file() and (target / "lcz_s2/lcz_train.h5").is_file()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".sample.tmp")]
    assert S.ensure_builtin_sample() == target and len(calls) == 1  # marker present: returns at once
    # an incomplete folder (no marker) is regenerated
    (target / S.MARKER).unlink()
    assert S.ensure_builtin_sample() == target and len(calls) == 2 and (target / S.MARKER).is_file()
