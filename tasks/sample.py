"""``cbench sample``: small Copernicus-Bench datasets in exactly the released on-disk layout.

The released data (HF ``wangyi111/Copernicus-Bench``, docs/tasks.md, "Released data") cannot be downloaded
here, so this module writes look-alikes that torchgeo 0.8.1's ``CopernicusBench*`` readers and the reference
loaders read unchanged: the same folder and file names, split files (with or without header as released),
GeoTIFF dtypes, band counts and orders, CRS and transform (UTM for the S1/S2 tasks, EPSG:4326 for S3,
EPSG:3857 for Flood, EPSG:3035 for AQ; none for DFC2020 and LCZ), and dates where torchgeo's regexes and the
reference parse them. One archive, ``eurosat_s1``, is written only as its released zip
(``eurosat_s1.zip`` holding ``eurosat_s1/...``) so that the extraction path is exercised.

Labels carry signal a probe can learn: every class has a fixed random spectral signature (per seed and
archive) added to realistic per-band means/stds, plus smooth texture and pixel noise. Segmentation classes
come from a smooth random field (argmax of per-class fields); multi-label images mix the signatures of the
classes present; regression targets are a smooth latent field that also drives the image bands (linear),
plus noise.

Values: S2 uint16 TOA DN around the SSL4EO means; S1 float32 dB (DFC2020-S1 float64); Flood linear
backscatter float32 ~0-0.15 with NaN pockets; S3 OLCI float32 raw counts (radiance / scale factor) with NaN
pockets; S5P float32 columns (mol/m²) with NaN pockets; LCZ reflectance 0-1; Biomass target uint16 (no NaN);
AQ labels float32 with NaN and huge no-data values (-3.4e38, |v| > 1e10); DFC2020 int32 labels 1..10 with
some 0/3/8 (ignored by the loader); Cloud-S3 label 0 (invalid) present where the image is NaN; Flood
label 3 (out of AOI) present.

Deviations from the release (kept small to fit ~200 MB and ~1 min on 2 cores):

* Cloud-S2: 128×128 crops instead of 512×512 (square, multiple of the 16-px kernel).
* Cloud-S3: 128×128 instead of 256×256 (multiple of the 8-px kernel).
* DFC2020: 128×128 instead of 256×256.
* Flood-S1: 128×128 instead of 224×224 (multiple of 16); all activation ids have 7 digits (1111xxx),
  because torchgeo's fixed-width regex ``.{18}_(?P<date>\\d{8})`` only finds the date for those (the real
  release also has 3-digit ids, for which torchgeo returns no time; the reference parses the last token).
  ``grid_dict_{split}.json`` carries ``path``, ``info`` (``actid``, ``aoiid``, ``datasets``) and ``clz``;
  the reference's ``pickles/`` copies are not written.
* LC100 / Biomass: 1-2 images per location (the release has 1-4); S3 images are 95-97 px (label 3× finer),
  Biomass images 96 px with a 288-px target.
* AQ: image and label share one 56×56 EPSG:3035 grid (1113.2 m pixels, as torchgeo's test data).
* BigEarthNet / LC100 multi-label CSV header names are the class names (BigEarthNet) and the LC100 codes
  (LC100); the loaders read them by position.
* Sample counts are small (``DEFAULT_PER_SPLIT``); numbers and locations are synthetic.

Default sample (``DEFAULT_PER_SPLIT`` per split; ~165 MB in all, ~8 s of CPU on one core):

============== ====== ========================================== =======
archive        /split image (bands × px) / target               MB
============== ====== ========================================== =======
cloud_s2       8      13×128² uint16 / 128² uint8                 10
cloud_s3       5      21×128² float32 / 128² uint8 (multi, binary) 20
eurosat_s1     40     2×64² float32 (zip only)                    4 (zip)
eurosat_s2     40     13×64² uint16                              13
bigearthnet    20     2×120² float32 + 12×120² uint16 / 19 labels 28
lc100_s3       10     21×(95-97)² float32 / 3× finer uint8        32
dfc2020_s1s2   6      2×128² float64 + 13×128² uint16 / int32     12
flood_s1       6      3 dates × 2 pols 128² float32 / uint8       9
lcz_s2         68     h5: sen2 32²×10, sen1 32²×8 / one-hot 17    13
biomass_s3     6      21×96² float32 / 288² uint16                21
airquality_s5p 12     per gas: 1+4 × 56² float32 / 56² float32    6
============== ====== ========================================== =======

Everything is deterministic per ``seed``: the same seed gives byte-identical files (GeoTIFFs without
timestamps, HDF5 without object times, zip entries with a fixed date).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from copernicus_bench.cards import SPLITS
from copernicus_bench.errors import CbenchError
from copernicus_bench.filelock import exclusive_lock
from copernicus_bench.umask import match_umask

SAMPLE_VERSION = 1
MARKER = ".cbench-sample-complete"

# ------------------------------------------------------------------------------------------------
# Facts come from the cards and the loaders (one source each); the generator's own choices stay here.
def _card(slug: str):
    from copernicus_bench.tasks import get_card

    return get_card(slug)


def _tg(slug: str):
    """The torchgeo class the task's loader wraps (file band order, LC100 code table)."""
    from copernicus_bench.tasks import get_card, loader_class

    return loader_class(get_card(slug)).tg_class


def _stats(slug: str, date: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The card's per-band mean and std (float32) of one date, in model order."""
    norm = _card(slug).normalization
    assert norm.mean is not None and norm.std is not None, slug
    return np.asarray(norm.mean[date], np.float32), np.asarray(norm.std[date], np.float32)


def _olci_scale(slug: str) -> np.ndarray:
    return np.asarray(_card(slug).normalization.scale_factors, np.float32)


def _split_file(root: Path, slug: str, split: str, index: int = 0) -> Path:
    """``root`` / the card's ``release.split_files[index]`` for ``split``."""
    release = _card(slug).release
    assert release is not None, f"task card {slug}: needs 'release' for the sample generator"
    return root / release.split_files[index].format(split=split)


# Typical TOA radiance (mW m-2 sr-1 nm-1) per OLCI band, Oa01 (400 nm) .. Oa21 (1020 nm).
OLCI_RADIANCE = np.array([75, 72, 66, 58, 52, 45, 40, 39, 38, 37, 35, 30, 12, 18, 24, 28, 26, 25, 22, 14, 16],
                         np.float32)
OLCI_PIXEL_DEG = 0.0026949458523585646
FLOOD_ACTS = (1111002, 1111003, 1111004, 1111005, 1111006, 1111007, 1111008, 1111009, 1111010, 1111011,
              1111013)
ZIP_DATE = (2025, 1, 1, 0, 0, 0)


# ------------------------------------------------------------------------------------------------
# Writer registry: one writer per released archive (the card field ``archive_dir``)
Writer = Callable[[Path, int, int], None]


@dataclass(frozen=True)
class SampleWriter:
    """How ``cbench sample`` writes one archive: ``write(root, n_per_split, seed)`` fills
    ``root/<archive_dir>/``; ``per_split`` is the default count; ``zip_only`` writes only the released zip
    (the card's ``release.zip``) so that the extraction path is exercised."""

    archive: str
    write: Writer
    per_split: int
    zip_only: bool = False


#: archive folder → its writer; filled by :func:`writer` (here and in any task package's loader module).
WRITERS: dict[str, SampleWriter] = {}


def writer(archive: str, per_split: int, zip_only: bool = False) -> Callable[[Writer], Writer]:
    """Decorator: register the sample writer of the archive ``archive`` (a card's ``archive_dir``)."""

    def add(fn: Writer) -> Writer:
        WRITERS[archive] = SampleWriter(archive, fn, per_split, zip_only)
        return fn

    return add


def _archives() -> dict[str, tuple[str, ...]]:
    """Archive folder → the slugs of the cards it serves, in table order (every discovered card)."""
    from copernicus_bench.tasks import list_cards

    out: dict[str, tuple[str, ...]] = {}
    for card in list_cards():
        out[card.archive_dir] = (*out.get(card.archive_dir, ()), card.slug)
    return out


def _writers() -> dict[str, SampleWriter]:
    """All registered writers, after the task packages' loader modules had their chance to register."""
    from copernicus_bench.tasks import _import_loaders

    _import_loaders()
    return WRITERS


def __getattr__(name: str):  # derived views, computed from the cards on use
    if name == "ARCHIVES":
        return _archives()
    if name == "TASKS":
        return tuple(t for ts in _archives().values() for t in ts)
    if name == "TASK_ARCHIVE":
        return {t: a for a, ts in _archives().items() for t in ts}
    if name == "DEFAULT_PER_SPLIT":
        return {a: w.per_split for a, w in _writers().items()}
    raise AttributeError(name)


# ------------------------------------------------------------------------------------------------
# Small helpers
def _rng(seed: int, *key: str | int) -> np.random.Generator:
    ints = [seed] + [zlib.crc32(str(k).encode()) for k in key]
    return np.random.default_rng(ints)


def _upsample(low: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear upsampling of (n, gh, gw) to (n, h, w)."""
    n, gh, gw = low.shape
    ys = np.linspace(0, gh - 1, h, dtype=np.float32)
    xs = np.linspace(0, gw - 1, w, dtype=np.float32)
    y0 = np.minimum(ys.astype(int), gh - 2)
    x0 = np.minimum(xs.astype(int), gw - 2)
    fy = (ys - y0)[None, :, None]
    fx = (xs - x0)[None, None, :]
    a = low[:, y0][:, :, x0]
    b = low[:, y0][:, :, x0 + 1]
    c = low[:, y0 + 1][:, :, x0]
    d = low[:, y0 + 1][:, :, x0 + 1]
    return (a * (1 - fy) * (1 - fx) + b * (1 - fy) * fx + c * fy * (1 - fx) + d * fy * fx).astype(np.float32)


def _smooth(rng: np.random.Generator, h: int, w: int, n: int = 1, cells: int = 5) -> np.ndarray:
    """``n`` smooth random fields (n, h, w), roughly N(0, 1)."""
    low = rng.standard_normal((n, cells + 1, cells + 1)).astype(np.float32)
    return _upsample(low, h, w)


def _class_map(rng: np.random.Generator, h: int, w: int, classes: Sequence[int], cells: int = 4) -> np.ndarray:
    """Per-pixel class values from the argmax of smooth per-class fields."""
    fields = _smooth(rng, h, w, n=len(classes), cells=cells)
    return np.asarray(classes)[fields.argmax(0)]


def _balanced(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """``n`` class indices cycling over ``k`` classes, shuffled (every class ≥ n // k times)."""
    return rng.permutation(np.arange(n) % k)


def _spectral(rng: np.random.Generator, sig: np.ndarray, mean: np.ndarray, std: np.ndarray,
              weights: np.ndarray, texture: float = 0.35, noise: float = 0.25) -> np.ndarray:
    """Image (C, H, W) = mean + std · (Σ_k w_k·sig_k + texture + noise); ``weights`` is (K, H, W)."""
    c = sig.shape[1]
    _, h, w = weights.shape
    z = np.einsum("kc,khw->chw", sig, weights, optimize=True)
    z += texture * _smooth(rng, h, w, n=c, cells=8)
    z += noise * rng.standard_normal((c, h, w), dtype=np.float32)
    return mean[:, None, None] + std[:, None, None] * z


def _onehot(values: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """(K, H, W) float32 indicator of each class value."""
    return np.stack([(values == c) for c in classes]).astype(np.float32)


def _write_tif(path: Path, arr: np.ndarray, dtype: str, crs: object = None, transform: object = None,
               nodata: float | None = None, compress: bool = False) -> None:
    import rasterio
    import rasterio.errors
    from rasterio.transform import Affine

    if arr.ndim == 2:
        arr = arr[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    profile: dict[str, object] = {
        "driver": "GTiff", "count": arr.shape[0], "height": arr.shape[1], "width": arr.shape[2],
        "dtype": dtype, "crs": crs, "transform": transform if transform is not None else Affine.identity(),
    }
    if nodata is not None:
        profile["nodata"] = nodata
    if compress:
        profile["compress"] = "deflate"
    if arr.shape[0] > 1:
        profile["interleave"] = "band"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)  # DFC2020: no georeference
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(arr.astype(dtype, copy=False))


@functools.cache
def _to_crs(epsg: int) -> object:
    from pyproj import Transformer

    return Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)


def _utm(lon: float, lat: float, pixel: float, h: int, w: int) -> tuple[str, object]:
    """(EPSG code string, affine transform) of a north-up UTM tile centred near lon/lat."""
    from rasterio.transform import Affine

    zone = int((lon + 180) // 6) + 1
    epsg = (32600 if lat >= 0 else 32700) + zone
    x, y = _to_crs(epsg).transform(lon, lat)
    x0 = round((x - w * pixel / 2) / pixel) * pixel
    y0 = round((y + h * pixel / 2) / pixel) * pixel
    return f"EPSG:{epsg}", Affine(pixel, 0.0, x0, 0.0, -pixel, y0)


def _geo(lon: float, lat: float, pixel: float) -> object:
    from rasterio.transform import Affine

    return Affine(pixel, 0.0, lon, 0.0, -pixel, lat)


def _mgrs(lon: float, lat: float, rng: np.random.Generator) -> str:
    zone = int((lon + 180) // 6) + 1
    band = "CDEFGHJKLMNPQRSTUVWX"[min(int((lat + 80) // 8), 19)]
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    return f"{zone:02d}{band}{letters[rng.integers(24)]}{letters[rng.integers(20)]}"


def _stamp(rng: np.random.Generator, year: int | tuple[int, int] = (2017, 2021)) -> np.datetime64:
    lo, hi = (year, year) if isinstance(year, int) else year
    start = np.datetime64(f"{lo}-01-01T00:00:00")
    span = (np.datetime64(f"{hi + 1}-01-01T00:00:00") - start).astype(int)
    return start + np.timedelta64(int(rng.integers(span)), "s")


def _fmt(t: np.datetime64) -> str:
    return str(t).replace("-", "").replace(":", "")[:15]  # YYYYmmddTHHMMSS


def _nan_pocket(rng: np.random.Generator, arr: np.ndarray, p: float = 0.5, frac: float = 0.2) -> np.ndarray:
    """Sets a random rectangle (≤ frac of each side) of the last two axes to NaN with probability p;
    returns the boolean pocket mask (H, W)."""
    h, w = arr.shape[-2:]
    mask = np.zeros((h, w), bool)
    if rng.random() < p:
        ph, pw = max(1, int(h * frac * rng.uniform(0.3, 1))), max(1, int(w * frac * rng.uniform(0.3, 1)))
        y, x = rng.integers(0, h - ph + 1), rng.integers(0, w - pw + 1)
        mask[y:y + ph, x:x + pw] = True
        arr[..., mask] = np.nan
    return mask


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def _csv(path: Path, header: Sequence[str] | None, rows: Iterable[Sequence[object]]) -> None:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buf.getvalue())


def _s2_uint16(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 65535).astype(np.uint16)


def _olci_counts(rng: np.random.Generator, sig: np.ndarray, weights: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """S3 OLCI raw counts (float32) whose radiance (counts × the card's ``scale``) follows per-class spectra."""
    rad = _spectral(rng, sig, OLCI_RADIANCE, 0.18 * OLCI_RADIANCE, weights, texture=0.3, noise=0.15)
    rad = np.maximum(rad, 0.5)
    return (rad / scale[:, None, None]).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# Per-archive writers. Each takes (root, n per split, seed) and writes <root>/<archive>/...
@writer("cloud_s2", per_split=8)
def _cloud_s2(root: Path, n: int, seed: int) -> None:
    size = 128
    card = _card("cloud-s2")
    rng = _rng(seed, card.archive_dir)
    base = root / card.archive_dir
    mean, std = _stats(card.slug)
    k = card.num_classes
    # clear (surface, signature 0), thick cloud (bright), thin cloud (brighter), shadow (dark)
    sig = rng.standard_normal((k, card.num_bands)).astype(np.float32) * 0.4
    sig[1] += 2.5
    sig[2] += 1.2
    sig[3] -= 1.0
    roi = 0
    for split in SPLITS:
        names = []
        for _ in range(n):
            roi += int(rng.integers(1, 40))
            lon, lat = rng.uniform(-170, 170), rng.uniform(-50, 65)
            t0 = _stamp(rng)
            t1 = t0 + np.timedelta64(int(rng.integers(60, 600)), "s")
            name = f"ROI_{roi:05d}__{_fmt(t0)}_{_fmt(t1)}_T{_mgrs(lon, lat, rng)}"
            names.append(name)
            crs, tr = _utm(lon, lat, 10.0, size, size)
            mask = _class_map(rng, size, size, range(k)).astype(np.uint8)
            img = _spectral(rng, sig, mean, std, _onehot(mask, range(k)))
            _write_tif(base / "s2_toa" / f"{name}.tif", _s2_uint16(img), "uint16", crs, tr)
            _write_tif(base / "cloud" / f"{name}.tif", mask, "uint8", crs, tr, compress=True)
        _write_lines(_split_file(root, card.slug, split), names)


@writer("cloud_s3", per_split=5)
def _cloud_s3(root: Path, n: int, seed: int) -> None:
    size = 128
    card = _card("cloud-s3")
    rng = _rng(seed, card.archive_dir)
    base = root / card.archive_dir
    scale = _olci_scale(card.slug)
    k = card.num_classes  # on-disk codes 1..k; 0 = invalid
    sig = rng.standard_normal((k + 1, card.num_bands)).astype(np.float32) * 0.6
    sig[2] += 1.0  # ambiguous cloud: brighter
    sig[3] += 2.2  # sure cloud: brightest
    sig[4] -= 1.2  # shadow: dark
    sig[5] += 1.6  # snow/ice: bright in the visible, dark in the SWIR-ish bands
    sig[5, 16:] -= 2.5
    for split in SPLITS:
        names = []
        for _ in range(n):
            t0 = _stamp(rng, (2019, 2021))
            t1 = t0 + np.timedelta64(180, "s")
            t2 = t0 + np.timedelta64(int(rng.integers(86400, 2 * 86400)), "s")
            name = (f"S3{'AB'[int(rng.integers(2))]}_OL_1_EFR____{_fmt(t0)}_{_fmt(t1)}_{_fmt(t2)}_"
                    f"{rng.integers(100, 400):04d}_{rng.integers(10, 70):03d}_{rng.integers(1, 400):03d}_"
                    f"{rng.integers(1000, 4000):04d}_LN1_O_NT_002_{rng.integers(1, 6):02d}_{rng.integers(1, 6):02d}"
                    ".tif")
            names.append(name)
            lon, lat = rng.uniform(-170, 170), rng.uniform(-60, 70)
            tr = _geo(lon, lat, OLCI_PIXEL_DEG)
            multi = _class_map(rng, size, size, range(1, k + 1)).astype(np.uint8)
            img = _olci_counts(rng, sig, _onehot(multi, range(k + 1)), scale)
            invalid = _nan_pocket(rng, img, p=0.7, frac=0.25)
            multi[invalid] = 0
            binary = np.where(np.isin(multi, (2, 3)), 2, 1).astype(np.uint8)
            binary[invalid] = 0
            _write_tif(base / "s3_olci" / name, img, "float32", "EPSG:4326", tr)
            _write_tif(base / "cloud_multi" / name, multi, "uint8", "EPSG:4326", tr, compress=True)
            _write_tif(base / "cloud_binary" / name, binary, "uint8", "EPSG:4326", tr, compress=True)
        _write_lines(_split_file(root, card.slug, split), names)


def _eurosat(root: Path, n: int, seed: int, sensor: str) -> None:
    card = _card(f"eurosat-{sensor}")
    size = card.native_size
    rng = _rng(seed, card.archive_dir)
    base = root / card.archive_dir
    mean, std = _stats(card.slug)
    sig = rng.standard_normal((card.num_classes, card.num_bands)).astype(np.float32)
    if sensor == "s2":  # files store the bands in torchgeo's order (B8A last)
        file_order = [card.band_names.index(b.removesuffix("_radiance")) for b in _tg(card.slug).all_bands]
    used: set[tuple[int, int]] = set()
    for split in SPLITS:
        lines = []
        for k in _balanced(rng, n, card.num_classes):
            cls = card.classes[k]
            idx = int(rng.integers(1, 3001))
            while (k, idx) in used:
                idx = int(rng.integers(1, 3001))
            used.add((k, idx))
            lon, lat = rng.uniform(-9, 28), rng.uniform(37, 60)
            crs, tr = _utm(lon, lat, 10.0, size, size)
            weights = np.ones((1, size, size), np.float32)
            if sensor == "s1":
                img = _spectral(rng, sig[k:k + 1], mean, std, weights).astype(np.float32)
                dtype = "float32"
            else:
                img = _s2_uint16(_spectral(rng, sig[k:k + 1], mean, std, weights)[file_order])
                dtype = "uint16"
            _write_tif(base / "all_imgs" / cls / f"{cls}_{idx}.tif", img, dtype, crs, tr)
            lines.append(f"{cls}_{idx}.jpg")
        _write_lines(_split_file(root, card.slug, split), lines)


@writer("eurosat_s1", per_split=40, zip_only=True)
def _eurosat_s1(root: Path, n: int, seed: int) -> None:
    _eurosat(root, n, seed, "s1")


@writer("eurosat_s2", per_split=40)
def _eurosat_s2(root: Path, n: int, seed: int) -> None:
    _eurosat(root, n, seed, "s2")


@writer("bigearthnet_s1s2", per_split=20)
def _bigearthnet(root: Path, n: int, seed: int) -> None:
    card1, card2 = _card("bigearthnet-s1"), _card("bigearthnet-s2")
    size = card1.native_size
    rng = _rng(seed, card1.archive_dir)
    base = root / card1.archive_dir
    k = card1.num_classes
    mean1, std1 = _stats(card1.slug)
    s2_idx = [card2.band_names.index(b) for b in _tg(card2.slug).all_bands]  # file band order
    mean2, std2 = (a[s2_idx] for a in _stats(card2.slug))
    sig1 = rng.standard_normal((k, card1.num_bands)).astype(np.float32)
    sig2 = rng.standard_normal((k, card2.num_bands)).astype(np.float32)
    for split in SPLITS:
        rows = []
        first = _balanced(rng, n, k)
        for i in range(n):
            extra = rng.choice(k, size=int(rng.integers(0, 4)), replace=False)
            present = sorted({int(first[i]), *map(int, extra)})
            lon, lat = rng.uniform(-9, 28), rng.uniform(37, 68)
            crs, tr = _utm(lon, lat, 10.0, size, size)
            zone = crs[-2:]
            t2 = _stamp(rng, (2017, 2018))
            t1 = t2 - np.timedelta64(int(rng.integers(3600, 3 * 86400)), "s")
            r, c = int(rng.integers(0, 100)), int(rng.integers(0, 100))
            letters = _mgrs(lon, lat, rng)[-3:]
            s1_prod = f"S1{'AB'[int(rng.integers(2))]}_IW_GRDH_1SDV_{_fmt(t1)}"
            s1_patch = f"{s1_prod}_{zone}{letters}_{r}_{c}"
            s2_prod = (f"S2{'AB'[int(rng.integers(2))]}_MSIL2A_{_fmt(t2)}_N9999_R{rng.integers(1, 144):03d}_"
                       f"T{zone}{letters}")
            s2_patch = f"{s2_prod}_{r:02d}_{c:02d}"
            s1_path = f"{s1_prod}/{s1_patch}/{s1_patch}_allbands.tif"
            s2_path = f"{s2_prod}/{s2_patch}/{s2_patch}_allbands.tif"
            cmap = _class_map(rng, size, size, present)
            w = _onehot(cmap, range(k))
            s1 = _spectral(rng, sig1, mean1, std1, w).astype(np.float32)
            s2 = _s2_uint16(_spectral(rng, sig2, mean2, std2, w))
            _write_tif(base / "BigEarthNet-S1-5%" / s1_path, s1, "float32", crs, tr)
            _write_tif(base / "BigEarthNet-S2-5%" / s2_path, s2, "uint16", crs, tr)
            onehot = [1 if c in present else 0 for c in range(k)]
            rows.append([s1_path, s2_path, *onehot])
        _csv(_split_file(root, card1.slug, split), ["s1_path", "s2_path", *card1.classes], rows)


def _s3_location_images(rng: np.random.Generator, folder: Path, latent_hr: np.ndarray, make_image:
                        Callable[[np.ndarray], np.ndarray], lon: float, lat: float, year: int,
                        count: int) -> list[str]:
    """Writes ``count`` S3 OLCI images (block means of a 3×-finer latent) of one location."""
    files = []
    for _ in range(count):
        t0 = _stamp(rng, year)
        t1 = t0 + np.timedelta64(int(rng.integers(8, 300)), "s")
        fname = f"S3{'AB'[int(rng.integers(2))]}_{_fmt(t0)}_{_fmt(t1)}.tif"
        while fname in files:
            fname = fname.replace(".tif", "0.tif")
        img = make_image(latent_hr)
        _nan_pocket(rng, img, p=0.4, frac=0.15)
        _write_tif(folder / fname, img, "float32", "EPSG:4326", _geo(lon, lat, OLCI_PIXEL_DEG))
        files.append(fname)
    return sorted(files)


def _block_mean(a: np.ndarray, f: int = 3) -> np.ndarray:
    k, h, w = a.shape
    return a[:, : h - h % f, : w - w % f].reshape(k, h // f, f, w // f, f).mean((2, 4))


@writer("lc100_s3", per_split=10)
def _lc100(root: Path, n: int, seed: int) -> None:
    card = _card("lc100seg-s3")
    rng = _rng(seed, card.archive_dir)
    base = root / card.archive_dir
    codes_all = tuple(sorted(_tg(card.slug).class_map))  # the CGLS-LC100 codes of torchgeo's table
    k = len(codes_all)
    scale = _olci_scale(card.slug)
    sig = rng.standard_normal((k, card.num_bands)).astype(np.float32)
    pid_no = 200000
    for split in SPLITS:
        rows, static = [], []
        first = _balanced(rng, n, k)
        for i in range(n):
            pid_no += int(rng.integers(1, 5000))
            lon, lat = round(rng.uniform(-170, 170) * 4) / 4, round(rng.uniform(-55, 70) * 4) / 4
            pid = f"{pid_no:07d}_{lon:.2f}_{lat:.2f}"
            h, w = (int(v) for v in rng.integers(95, 98, size=2))
            extra = rng.choice(k, size=int(rng.integers(1, 4)), replace=False)
            present = sorted({int(first[i]), *map(int, extra)})
            codes = np.asarray(codes_all)
            label = _class_map(rng, 3 * h, 3 * w, codes[present]).astype(np.uint8)
            onehot_hr = _onehot(label, codes_all)

            def make(hr: np.ndarray) -> np.ndarray:
                return _olci_counts(rng, sig, _block_mean(hr), scale)

            files = _s3_location_images(rng, base / "s3_olci" / pid, onehot_hr, make, lon, lat, 2019,
                                        1 + int(i % 3 == 0))
            _write_tif(base / "lc100" / f"{pid}.tif", label, "uint8", "EPSG:4326",
                       _geo(lon, lat, OLCI_PIXEL_DEG / 3), compress=True)
            codes_present = set(np.unique(label).tolist())
            rows.append([pid, *[int(c in codes_present) for c in codes_all]])
            static.append([pid, files[int(rng.integers(len(files)))]])
        _csv(_split_file(root, card.slug, split, 0), ["PID", *map(str, codes_all)], rows)
        _csv(_split_file(root, card.slug, split, 1), None, static)


@writer("dfc2020_s1s2", per_split=6)
def _dfc2020(root: Path, n: int, seed: int) -> None:
    size = 128
    card1, card2 = _card("dfc2020-s1"), _card("dfc2020-s2")
    rng = _rng(seed, card1.archive_dir)
    base = root / card1.archive_dir
    mean1, std1 = _stats(card1.slug)
    mean2, std2 = _stats(card2.slug)
    codes = 11  # on-disk DFC2020 codes 0..10 (0 background; 3 savanna and 8 snow are ignored)
    sig1 = rng.standard_normal((codes, card1.num_bands)).astype(np.float32)
    sig2 = rng.standard_normal((codes, card2.num_bands)).astype(np.float32)
    main = (1, 2, 4, 5, 6, 7, 9, 10)
    used: set[str] = set()
    for split in SPLITS:
        names = []
        for i in range(n):
            present = list(rng.choice(main, size=int(rng.integers(3, 6)), replace=False))
            present.append(main[(i + SPLITS.index(split)) % len(main)])
            if i % 2 == 0:
                present.append((3, 8)[(i // 2) % 2])  # savanna / snow: mapped to ignore by the loader
            label = _class_map(rng, size, size, sorted(set(map(int, present)))).astype(np.int32)
            if i % 3 == 0:
                label[rng.random((size, size)) < 0.01] = 0  # background: ignored
            w = _onehot(label, range(codes))
            s1 = _spectral(rng, sig1, mean1, std1, w).astype(np.float64)
            s2 = _s2_uint16(_spectral(rng, sig2, mean2, std2, w))
            name = ""
            while not name or name in used:
                kind = ("validation", "test")[int(rng.integers(2))]
                name = f"ROIs0000_{kind}_dfc_0_p{int(rng.integers(1, 1000))}.tif"
            used.add(name)
            names.append(name)
            _write_tif(base / "s1" / name.replace("dfc", "s1"), s1, "float64", "EPSG:4326")
            _write_tif(base / "s2" / name.replace("dfc", "s2"), s2, "uint16", "EPSG:4326")
            _write_tif(base / "dfc" / name, label, "int32", "EPSG:4326", compress=True)
        _write_lines(_split_file(root, card1.slug, split), names)


@writer("flood_s1", per_split=6)
def _flood(root: Path, n: int, seed: int) -> None:
    from rasterio.transform import Affine

    size = 128
    card = _card("flood-s1")
    rng = _rng(seed, card.archive_dir)
    base = root / card.archive_dir
    to_merc = _to_crs(3857)
    # Linear backscatter: land ~ (0.10, 0.025); water dark (0.01, 0.003).
    land = np.array([0.10, 0.026], np.float32)
    water = np.array([0.012, 0.003], np.float32)
    for split in SPLITS:
        grid: dict[str, dict[str, object]] = {}
        for _ in range(n):
            act = int(FLOOD_ACTS[int(rng.integers(len(FLOOD_ACTS)))])
            aoi = int(rng.integers(1, 10))
            key = hashlib.md5(rng.bytes(16)).hexdigest()
            path = f"{act}/{aoi:02d}/{key}"
            post = _stamp(rng, (2017, 2022))
            pre1 = post - np.timedelta64(int(rng.integers(6, 30)) * 86400, "s")
            pre2 = pre1 - np.timedelta64(int(rng.integers(6, 30)) * 86400, "s")
            days = {"MS1": _fmt(post)[:8], "SL1": _fmt(pre1)[:8], "SL2": _fmt(pre2)[:8]}
            lon, lat = rng.uniform(-10, 30), rng.uniform(35, 60)
            x, y = to_merc.transform(lon, lat)
            tr = Affine(10.0, 0.0, round(x / 10) * 10, 0.0, -10.0, round(y / 10) * 10)
            label = _class_map(rng, size, size, (0, 0, 1, 2)).astype(np.uint8)
            out = np.zeros((size, size), bool)
            if len(grid) % 2 == 0:  # out-of-AOI strip (label 3, ignored) along one edge
                edge = int(rng.integers(8, size // 3))
                if rng.random() < 0.5:
                    out[:, :edge] = True
                else:
                    out[:edge, :] = True
            label[out] = 3
            valid = (~out).astype(np.uint8)
            datasets: dict[str, dict[str, object]] = {}

            def put(name: str, arr: np.ndarray, dtype: str, ptype: str, rank: int, pname: str,
                    datasets: dict = datasets, folder: Path = base / "data" / path, tr: object = tr) -> None:
                datasets[name] = {"name": name, "dtype": dtype, "ptype": ptype, "rank": rank, "pname": pname}
                _write_tif(folder / f"{name}.tif", arr, dtype, "EPSG:3857", tr, compress=dtype != "float32")

            wet_pre = label == 1
            wet_post = np.isin(label, (1, 2))
            for ptype, rank, wet in (("SL", 2, wet_pre), ("SL", 1, wet_pre), ("MS", 1, wet_post)):
                tag = f"{ptype}{rank}"
                for b, pol in enumerate(("VV", "VH")):
                    mu = np.where(wet, water[b], land[b]).astype(np.float32)
                    tex = 1 + 0.25 * _smooth(rng, size, size, cells=8)[0]
                    speckle = rng.gamma(4.0, 0.25, (size, size)).astype(np.float32)
                    img = np.clip(mu * tex * speckle, 0, None).astype(np.float32)
                    img[out & (rng.random((size, size)) < 0.5)] = np.nan
                    put(f"{tag}_I{pol}_{act}_{aoi:02d}_{days[tag]}", img, "float32", ptype, rank, f"I{pol}")
            put(f"MK0_MLU_{act}_{aoi:02d}_{days['MS1']}", label, "uint8", "MK", 0, "MLU")
            put(f"MK0_MNA_{act}_{aoi:02d}_{days['MS1']}", valid, "uint8", "MK", 0, "MNA")
            dem = (80 + 150 * _smooth(rng, size, size, cells=3)[0] - 40 * wet_post).astype(np.float32)
            put(f"MK0_DEM_{act}_{aoi:02d}_{days['MS1']}", dem, "float32", "MK", 0, "DEM")
            grid[key] = {"path": path, "clz": int(rng.integers(1, 4)),
                         "info": {"actid": act, "aoiid": aoi, "datasets": datasets}}
        (base).mkdir(parents=True, exist_ok=True)
        _split_file(root, card.slug, split).write_text(json.dumps(grid, indent=1, sort_keys=True))


@writer("lcz_s2", per_split=68)
def _lcz(root: Path, n: int, seed: int) -> None:
    import h5py

    card = _card("lcz-s2")
    size = card.native_size
    rng = _rng(seed, card.archive_dir)
    base = root / card.archive_dir
    base.mkdir(parents=True, exist_ok=True)
    k, nb = card.num_classes, card.num_bands
    mean, std = _stats(card.slug)
    sig2 = rng.standard_normal((k, nb)).astype(np.float32)
    sig1 = rng.standard_normal((k, 8)).astype(np.float32)  # the release's 8 Sentinel-1 channels (unused)
    for split in SPLITS:
        labels = _balanced(rng, n, k)
        sen2 = np.empty((n, size, size, nb), np.float32)
        sen1 = np.empty((n, size, size, 8), np.float32)
        ones = np.ones((1, size, size), np.float32)
        for i, c in enumerate(labels):
            s2 = _spectral(rng, sig2[c:c + 1], mean, std, ones)
            sen2[i] = np.clip(s2, 0, 2.8).transpose(1, 2, 0)
            s1 = _spectral(rng, sig1[c:c + 1], np.zeros(8, np.float32), np.full(8, 0.05, np.float32), ones)
            sen1[i] = s1.transpose(1, 2, 0)
        label = np.eye(k, dtype="|u1")[labels]
        with h5py.File(_split_file(root, card.slug, split), "w", track_order=False) as f:
            for name, data in (("label", label), ("sen1", sen1), ("sen2", sen2)):
                f.create_dataset(name, data=data, compression="gzip", compression_opts=1, track_times=False)


@writer("biomass_s3", per_split=6)
def _biomass(root: Path, n: int, seed: int) -> None:
    card = _card("biomass-s3")
    rng = _rng(seed, card.archive_dir)
    base = root / card.archive_dir
    scale = _olci_scale(card.slug)
    sig = rng.standard_normal((1, card.num_bands)).astype(np.float32)
    sig[0, 12:] = np.abs(sig[0, 12:]) + 1.0  # NIR rises with biomass
    sig[0, :8] = -np.abs(sig[0, :8]) - 0.5  # visible darkens
    target_px = 0.00088888888888
    for split in SPLITS:
        static = []
        for i in range(n):
            la, lo = int(rng.integers(-3, 7)) * 10, int(rng.integers(-8, 15)) * 10
            tile = f"{'N' if la >= 0 else 'S'}{abs(la):02d}{'E' if lo >= 0 else 'W'}{abs(lo):03d}"
            r, c = int(rng.integers(0, 40)), int(rng.integers(0, 40))
            pid = f"{tile}_ESACCI-BIOMASS-L4-AGB-MERGED-100m-2020-fv4.0_{r:02d}_{c:02d}"
            lon = lo + c * 0.256 + 0.0003
            lat = la - r * 0.256 - 0.0003
            latent = _smooth(rng, 288, 288, cells=4)  # (1, 288, 288)
            agb = 92.3 + 117.8 * (latent[0] + 0.2 * rng.standard_normal((288, 288), dtype=np.float32))
            agb = np.clip(np.rint(agb), 0, 600).astype(np.uint16)

            def make(hr: np.ndarray) -> np.ndarray:
                return _olci_counts(rng, sig, _block_mean(hr), scale)

            files = _s3_location_images(rng, base / "s3_olci" / pid, latent, make, lon, lat, 2020,
                                        1 + int(i % 3 == 0))
            _write_tif(base / "biomass" / f"{pid}.tif", agb, "uint16", "EPSG:4326", _geo(lon, lat, target_px))
            static.append([pid, files[int(rng.integers(len(files)))]])
        _csv(_split_file(root, card.slug, split), None, static)


@writer("airquality_s5p", per_split=12)
def _airquality(root: Path, n: int, seed: int) -> None:
    from rasterio.transform import Affine

    cards = {"no2": _card("aq-no2-s5p"), "o3": _card("aq-o3-s5p")}
    size = cards["no2"].native_size
    rng = _rng(seed, cards["no2"].archive_dir)
    base = root / cards["no2"].archive_dir
    quarters = ("2021-01-01_2021-04-01", "2021-04-01_2021-07-01", "2021-07-01_2021-10-01",
                "2021-10-01_2021-12-31")
    # image column mean/std (mol/m²) and seasonal amplitude; the label follows the card's target stats
    spec = {"no2": (4.0e-5, 2.5e-5, 0.3), "o3": (0.14, 0.008, 0.06)}
    for var, (im_mu, im_sd, amp) in spec.items():
        stats = cards[var].target_stats
        assert stats is not None
        lb_mu, lb_sd = stats.mean, stats.std
        used: set[str] = set()
        for split in SPLITS:
            pids = []
            for _ in range(n):
                pid = ""
                while not pid or pid in used:
                    pid = f"EEA_1kmgrid_2021_{var}_avg_{int(rng.integers(20, 75))}_{int(rng.integers(5, 55))}"
                used.add(pid)
                pids.append(pid)
                x0 = 2_600_000 + 1113.2 * int(rng.integers(0, 3000))
                y0 = 1_500_000 + 1113.2 * int(rng.integers(0, 3000))
                tr = Affine(1113.2, 0.0, x0, 0.0, -1113.2, y0)
                latent = _smooth(rng, size, size, cells=4)[0]
                label = lb_mu + lb_sd * (0.9 * latent + 0.3 * rng.standard_normal((size, size), dtype=np.float32))
                label = np.maximum(label, 0).astype(np.float32)
                _nan_pocket(rng, label, p=0.5, frac=0.3)
                if rng.random() < 0.5:  # no-data pocket with a huge value (the reference maps |v|>1e10 to NaN)
                    nd = np.zeros_like(label)
                    _nan_pocket(rng, nd, p=1.0, frac=0.2)
                    label[np.isnan(nd)] = np.float32(-3.4028235e38)
                _write_tif(base / var / "label_annual" / f"{pid}.tif", label, "float32", "EPSG:3035", tr)

                def image(scale: float, latent: np.ndarray = latent, im_mu: float = im_mu,
                          im_sd: float = im_sd) -> np.ndarray:
                    z = latent + 0.25 * rng.standard_normal((size, size), dtype=np.float32)
                    img = (im_mu * scale + im_sd * z).astype(np.float32)
                    _nan_pocket(rng, img, p=0.4, frac=0.2)
                    return img

                _write_tif(base / var / "s5p_annual" / pid / "2021-01-01_2021-12-31.tif", image(1.0), "float32",
                           "EPSG:3035", tr)
                for q, name in enumerate(quarters):
                    season = 1 + amp * np.cos(2 * np.pi * (q + 0.5) / 4)
                    _write_tif(base / var / "s5p_seasonal" / pid / f"{name}.tif", image(season), "float32",
                               "EPSG:3035", tr)
            _write_lines(_split_file(root, cards[var].slug, split), pids)


def _zip_folder(root: Path, folder: str, zip_name: str) -> None:
    """Zips ``root/folder`` as ``root/zip_name`` (entries ``folder/...``, fixed dates) and removes it."""
    src = root / folder
    files = sorted(p for p in src.rglob("*") if p.is_file())
    dirs = sorted({p.parent for p in files} | {src})
    tmp = root / f".{zip_name}.tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for d in dirs:
            info = zipfile.ZipInfo(d.relative_to(root).as_posix() + "/", ZIP_DATE)
            info.external_attr = 0o40755 << 16
            zf.writestr(info, b"")
        for p in files:
            info = zipfile.ZipInfo(p.relative_to(root).as_posix(), ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, p.read_bytes(), compresslevel=1)
    os.replace(tmp, root / zip_name)
    shutil.rmtree(src)


# ------------------------------------------------------------------------------------------------
# Public API
def _check_per_split(per_split: object) -> int | None:
    if per_split is None:
        return None
    if isinstance(per_split, bool) or not isinstance(per_split, (int, np.integer)) or per_split < 1:
        raise CbenchError(f"--per-split: must be a positive whole number of samples per split, got {per_split!r} ; "
                          "pass e.g. --per-split 4, or leave it out for the defaults")
    return int(per_split)


def resolve_tasks(tasks: str | Sequence[str] | None) -> list[str]:
    """Task slugs from a list or a comma-separated string; ``None``/``all`` → every task with a writer."""
    archives, writers = _archives(), _writers()
    known = [t for a, ts in archives.items() for t in ts]
    items = [] if tasks is None else [t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks)
                                      if t.strip()]
    if not items or "all" in items:
        return [t for a, ts in archives.items() if a in writers for t in ts]
    from copernicus_bench.registry import closest

    task_archive = {t: a for a, ts in archives.items() for t in ts}
    for t in items:
        if t not in task_archive:
            raise CbenchError(f"--task: unknown task '{t}'{closest(t, known)} ; "
                              f"choose from {', '.join(known)} or 'all'")
        if task_archive[t] not in writers:
            raise CbenchError(f"--task: task '{t}' has no sample writer for its archive "
                              f"'{task_archive[t]}' ; register one with copernicus_bench.tasks.sample.writer "
                              f"in its loader module")
    return items


def archives_for(tasks: Sequence[str]) -> list[str]:
    """Released archives (in table order of their first task) that hold the given task slugs."""
    archives = _archives()
    wanted = {a for a, ts in archives.items() for t in ts if t in tasks}
    return [a for a in archives if a in wanted]


def generate_sample(out_dir: str | os.PathLike[str], tasks: list[str] | None = None,
                    per_split: int | None = None, seed: int = 0) -> Path:
    """Writes a data root with small datasets for ``tasks`` (default: all) in the released layout.

    Tasks sharing an archive are written together. ``per_split`` samples per split for every archive
    (default: each writer's ``per_split``). Same ``seed`` → byte-identical files. Returns the data root.
    """
    n_override = _check_per_split(per_split)
    slugs = resolve_tasks(tasks)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    archives, writers = _archives(), _writers()
    for archive in archives_for(slugs):
        w = writers[archive]
        n = n_override or w.per_split
        if w.zip_only:
            release = _card(archives[archive][0]).release
            assert release is not None, f"task card {archives[archive][0]}: a zip-only writer needs 'release'"
            with tempfile.TemporaryDirectory(dir=root, prefix=f".{archive}.") as tmp:
                w.write(Path(tmp), n, seed)
                _zip_folder(Path(tmp), archive, release.zip)
                os.replace(Path(tmp) / release.zip, root / release.zip)
            if (root / archive).is_dir():  # a stale extraction would shadow the new zip
                shutil.rmtree(root / archive)
        else:
            w.write(root, n, seed)
    return root


def _marker_ok(path: Path) -> bool:
    try:
        return json.loads((path / MARKER).read_text()).get("version") == SAMPLE_VERSION
    except (OSError, ValueError, AttributeError):
        return False


def ensure_builtin_sample() -> Path:
    """The built-in sample (all 15 tasks, default settings) in ``paths.sample_dir()``, generated once.

    Generation happens in a temporary sibling folder, gets a completion marker and is renamed into
    place; a lock file serialises concurrent processes, and a lost rename race is tolerated.
    """
    from copernicus_bench.paths import sample_dir

    final = sample_dir()
    if _marker_ok(final):
        return final
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(parent / f".{final.name}.lock"):
        if _marker_ok(final):
            return final
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{final.name}.tmp-"))
        match_umask(tmp)  # renamed into place: not 0700
        try:
            t0 = time.time()
            generate_sample(tmp)
            (tmp / MARKER).write_text(json.dumps({"version": SAMPLE_VERSION, "seed": 0,
                                                  "seconds": round(time.time() - t0, 1)}))
            if final.exists():  # incomplete or outdated: move aside, then remove
                old = Path(tempfile.mkdtemp(dir=parent, prefix=f".{final.name}.old-"))
                os.replace(final, old / "x")
                shutil.rmtree(old, ignore_errors=True)
            try:
                os.replace(tmp, final)
            except OSError:
                if not _marker_ok(final):
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


def sample_size_bytes(root: str | os.PathLike[str]) -> int:
    """Total size of the files under ``root``."""
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())
