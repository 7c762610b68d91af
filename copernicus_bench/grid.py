"""Grid embeddings on the ERA5 0.25° grid (Copernicus-Embed, arXiv 2503.11849 and the reference's
``Copernicus-Embed-025deg/README.md``).

The paper encodes every image of a 0.25° Copernicus-Pretrain grid cell with Copernicus-FM and averages the
embeddings into one vector per cell ("obtained by simply averaging model-encoded images from various
modalities"); the released map is 721 × 1440 × 768 with empty (mostly ocean) cells 0. Here each image's
**pooled embedding** is the encoder's own pooled output (Copernicus-FM: the mean of the last block's patch
tokens without the CLS token and without ``fc_norm``, the reference's ``global_pool`` in ``model_vit.py``), and
a cell's vector is the mean over its images (``average="images"``, default) or the mean of per-modality means
(``average="modalities"``). The reference's aggregation script is not released, so which of the two it used,
and how each image was cropped or resized, is not known.

**The grid** is torchgeo's ``CopernicusEmbed`` file layout (``embed_map_310k.tif``; torchgeo's fixture
``tests/data/copernicus/embed/data.py``): EPSG:4326, pixel (row, col) centred on lon ``-180 + 0.25·col``, lat
``90 − 0.25·row`` — ERA5's cell-centred 0.25° lattice with longitudes in [-180, 180) instead of ERA5's
[0, 360) — so the full globe is 1440 × 721 with transform ``Affine(0.25, 0, -180.125, 0, -0.25, 90.125)``; one
float32 band per embedding dimension, pixel interleaved, no nodata, empty cells 0. A point belongs to the cell
whose pixel contains it (rasterio's ``rowcol`` rule: a cell spans lon [left, right) and lat (bottom, top]);
longitude 180 is cell column 0 (−180).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_file
from .errors import CbenchError

RES = 0.25
NCOLS = 1440
NROWS = 721
WEST = -180.0 - RES / 2  # left edge of column 0
NORTH = 90.0 + RES / 2  # top edge of row 0
AVERAGES = ("images", "modalities")


# ----------------------------------------------------------------------------------------------- the grid
def cell_index(lon: Any, lat: Any, where: str = "input") -> tuple[np.ndarray, np.ndarray]:
    """(row, col) int arrays of the ERA5 0.25° cells containing the points (degrees WGS84)."""
    lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    bad = ~np.isfinite(lon) | ~np.isfinite(lat) | (np.abs(lat) > 90) | (np.abs(lon) > 180)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CbenchError(f"{where}: location lon={lon[i]}, lat={lat[i]} is not on the globe (lon −180..180, "
                          "lat −90..90); check its georeference")
    col = np.floor((lon - WEST) / RES).astype(np.int64) % NCOLS
    row = np.minimum(np.floor((NORTH - lat) / RES).astype(np.int64), NROWS - 1)
    return row, col


def cell_centre(row: Any, col: Any) -> tuple[np.ndarray, np.ndarray]:
    """(lon, lat) of cell centres."""
    return -180.0 + RES * np.asarray(col, dtype=np.float64), 90.0 - RES * np.asarray(row, dtype=np.float64)


def grid_transform(row0: int = 0, col0: int = 0):
    """Affine transform of a grid raster whose pixel (0, 0) is cell (row0, col0)."""
    from affine import Affine

    return Affine(RES, 0.0, WEST + RES * col0, 0.0, -RES, NORTH - RES * row0)


def cell_id(row: int, col: int) -> str:
    """``lon_lat`` of a cell centre with two decimals, as the release's ``grid_id_coord`` tail."""
    lon, lat = cell_centre(row, col)
    return f"{float(lon):.2f}_{float(lat):.2f}"


# ----------------------------------------------------------------------------------------------- means
@dataclass
class CellMeans:
    """Running sums of embeddings per (cell, modality) in float64."""

    average: str = "images"
    sums: dict[tuple[int, int], dict[str, np.ndarray]] = field(default_factory=dict)
    counts: dict[tuple[int, int], dict[str, int]] = field(default_factory=dict)
    dim: int | None = None

    def __post_init__(self) -> None:
        if self.average not in AVERAGES:
            raise CbenchError(f"--average {self.average}: unknown; use one of {', '.join(AVERAGES)}")

    def add(self, rows: Sequence[int], cols: Sequence[int], embeddings: np.ndarray, modality: str) -> None:
        emb = np.asarray(embeddings, dtype=np.float64)
        if emb.ndim != 2 or emb.shape[0] != len(rows) or len(rows) != len(cols):
            raise ValueError(f"CellMeans.add: {len(rows)} cells for embeddings of shape {emb.shape}")
        if self.dim is None:
            self.dim = emb.shape[1]
        elif emb.shape[1] != self.dim:
            raise CbenchError(f"{modality}: embeddings of {emb.shape[1]} dimensions after {self.dim}; embed every "
                              "input with the same model")
        for r, c, e in zip(rows, cols, emb):
            key = (int(r), int(c))
            s, n = self.sums.setdefault(key, {}), self.counts.setdefault(key, {})
            if modality in s:
                s[modality] += e
                n[modality] += 1
            else:
                s[modality], n[modality] = e.copy(), 1

    def __len__(self) -> int:
        return len(self.sums)

    def cells(self) -> list[tuple[int, int]]:
        return sorted(self.sums)

    def count(self, cell: tuple[int, int]) -> int:
        return sum(self.counts[cell].values())

    def mean(self, cell: tuple[int, int]) -> np.ndarray:
        s, n = self.sums[cell], self.counts[cell]
        if self.average == "images":
            return sum(s.values()) / sum(n.values())
        return sum(s[m] / n[m] for m in s) / len(s)

    def bounds(self) -> tuple[int, int, int, int]:
        """(row0, col0, row1, col1), inclusive, of the cells present."""
        rows = [r for r, _ in self.sums]
        cols = [c for _, c in self.sums]
        return min(rows), min(cols), max(rows), max(cols)


# ----------------------------------------------------------------------------------------------- writers
def write_grid_geotiff(path: str | os.PathLike, means: CellMeans, full_globe: bool = False,
                       tags: dict[str, Any] | None = None) -> tuple[int, int]:
    """Write the cell means as torchgeo's ``CopernicusEmbed`` GeoTIFF (atomically, tile by tile); returns
    (height, width). ``full_globe``: 1440 × 721; else the bounding box of the cells present."""
    import rasterio
    from rasterio.windows import Window

    if not len(means):
        raise CbenchError("grid-embed: no cell received an embedding; nothing to write")
    path = Path(path)
    row0, col0, row1, col1 = (0, 0, NROWS - 1, NCOLS - 1) if full_globe else means.bounds()
    height, width, dim = row1 - row0 + 1, col1 - col0 + 1, int(means.dim or 0)
    profile: dict[str, Any] = {"driver": "GTiff", "dtype": "float32", "count": dim, "height": height, "width": width,
                               "crs": "EPSG:4326", "transform": grid_transform(row0, col0), "nodata": None,
                               "compress": "deflate", "interleave": "pixel"}
    block = 256
    if height >= block and width >= block:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    by_tile: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for r, c in means.cells():
        by_tile.setdefault(((r - row0) // block, (c - col0) // block), []).append((r, c))
    with atomic_file(path, suffix=".tif.tmp") as tmp, rasterio.open(tmp, "w", **profile) as dst:
        for ti in range(0, height, block):
            for tj in range(0, width, block):
                h, w = min(block, height - ti), min(block, width - tj)
                tile = np.zeros((dim, h, w), dtype=np.float32)
                for r, c in by_tile.get((ti // block, tj // block), ()):
                    tile[:, r - row0 - ti, c - col0 - tj] = means.mean((r, c))
                dst.write(tile, window=Window(tj, ti, w, h))
        if tags:
            dst.update_tags(**{k: str(v) for k, v in tags.items()})
    return height, width


def write_grid_table(path: str | os.PathLike, means: CellMeans, model: str) -> int:
    """One Parquet row per cell (the release's ``avg_chunks`` rows, plus where and how many): ``grid_id_coord``
    (``lon_lat``), ``row``, ``col`` (in the full 721 × 1440 map), ``lon``, ``lat``, ``count``, ``modalities``,
    ``model``, ``embedding``."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise CbenchError("--table needs pyarrow; pip install pyarrow") from None
    path = Path(path)
    cells = means.cells()
    lon, lat = cell_centre([r for r, _ in cells], [c for _, c in cells])
    table = pa.table({
        "grid_id_coord": [cell_id(r, c) for r, c in cells], "row": [r for r, _ in cells],
        "col": [c for _, c in cells], "lon": lon, "lat": lat, "count": [means.count(k) for k in cells],
        "modalities": [",".join(sorted(means.counts[k])) for k in cells], "model": [model] * len(cells),
        "embedding": [means.mean(k).astype(np.float32) for k in cells]})
    with atomic_file(path, suffix=".parquet.tmp") as tmp:
        pq.write_table(table, tmp)
    return len(cells)


# ----------------------------------------------------------------------------------------------- GeoTIFF inputs
def image_meta(info: Any, kernel: int, time_days: float) -> tuple[np.ndarray, tuple[float, float]]:
    """[lon°, lat°, days since 1970, patch area km²] of a whole georeferenced image (its centre; the patch area
    at its pixel size, ``cbench embed``'s convention) and its centre (lon, lat)."""
    from .windows import pixel_area_m2, to_lonlat

    t = info.transform
    x = t.a * info.width / 2 + t.b * info.height / 2 + t.c
    y = t.d * info.width / 2 + t.e * info.height / 2 + t.f
    lon, lat = to_lonlat(info.crs, np.array([x]), np.array([y]))
    area = kernel**2 * pixel_area_m2(info, lon, lat)[0] / 1e6
    return np.array([lon[0], lat[0], time_days, area], dtype=np.float32), (float(lon[0]), float(lat[0]))


def read_image(path: Path) -> np.ndarray:
    """(C, H, W) float32 pixels of a whole raster."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            return src.read().astype(np.float32)


# ----------------------------------------------------------------------------------------------- shard inputs
@dataclass(frozen=True)
class ShardImage:
    """One image of a Copernicus-Pretrain grid sample, in the units the encoder's pipeline expects."""

    grid: str  # the sample's key
    lon: float  # the grid cell's centre (its id), which decides the cell
    lat: float
    modality: str
    image: Any  # torch.Tensor (C, H, W)
    meta: tuple[float, float, float, float]  # the image's own [lon, lat, days, area]


def _grid_centre(ids: dict[str, Any], key: str, url: str) -> tuple[float, float]:
    """The grid cell's centre from its DEM / S3 / S5P id (``grid_lon_lat``); S1/S2 ids name the grid number
    only, so a sample with only those is placed by its first patch centre."""
    from .models.copernicusfm.pretrain_data import parse_id

    for member in ("dem", "s3_olci", "s5p_co", "s5p_no2", "s5p_o3", "s5p_so2", "s2_toa", "s1_grd"):
        entry = ids.get(member)
        while isinstance(entry, list) and entry and isinstance(entry[0], list):
            entry = entry[0]  # the first patch / date
        if entry:
            try:
                lon, lat, _ = parse_id(entry)
            except TypeError:
                continue
            if math.isfinite(lon) and math.isfinite(lat):
                return lon, lat
    raise CbenchError(f"{url}: sample {key!r} has no id with a location (grid_lon_lat) in its json; rebuild the "
                      "shard in the Copernicus-Pretrain format")


def _physical(x: Any, mod: Any) -> Any:
    """A shard tensor in the encoder's input units, as pretraining's ``normalise`` treats it: S1/S2 as stored
    (dB, L1C DN; the encoder's pipeline applies the pretraining mean/std) with NaN/inf at the band mean (0
    after normalising, the reference's NaN rule); S3 with pretraining's Oa01/Oa10 rule (``fix_s3_bands``,
    auto) × the OLCI scale factors; S5P as stored; DEM ÷ 10000; NaN/inf there → 0."""
    import torch

    from .models.copernicusfm.pretrain_data import fix_s3_bands

    x = x.float()
    if x.ndim == 2:
        x = x[None]
    if mod.mean is not None:
        fill = torch.tensor(mod.mean, dtype=x.dtype).view(-1, 1, 1).expand_as(x)
        return torch.where(torch.isfinite(x), x, fill)
    if mod.name == "s3":
        x = fix_s3_bands(x)
    if mod.scale is not None:
        x = x * torch.tensor(mod.scale, dtype=x.dtype).view(-1, 1, 1)
    return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def iter_shard_images(shards: str | Sequence[str], modalities: Sequence[str]) -> Iterable[ShardImage]:
    """Every image (each S1/S2 patch and date, each S3/S5P date, the DEM) of the chosen modalities of every
    sample, read once in shard order, decoded weights-only by the pretraining reader."""
    import webdataset as wds
    import webdataset.autodecode as wds_autodecode

    from .models.copernicusfm.pretrain_data import (
        DEM_DAYS,
        MODALITY_BY_NAME,
        _shard_error,
        decode_sample,
        parse_id,
        resolve_shards,
    )

    wds_autodecode.pytorch_weights_only = True
    urls = resolve_shards(shards) if isinstance(shards, str | Path) else list(shards)
    mods = [MODALITY_BY_NAME[m] for m in modalities]
    stream = wds.WebDataset(urls, shardshuffle=False, empty_check=False, handler=_shard_error)
    for raw in stream:
        key, url = raw.get("__key__", "?"), raw.get("__url__", "?")
        present = tuple(m.member for m in mods if m.member in raw)
        if "json" not in raw or not present:
            continue
        sample = decode_sample(raw, present + ("json",))
        ids = sample["json"]
        glon, glat = _grid_centre(ids, key, url)
        for mod in mods:
            if mod.member not in sample:
                continue
            x, mid = sample[mod.member], ids.get(mod.json_key)
            try:
                if mod.name == "dem":
                    items = [(x, parse_id(mid[0] if isinstance(mid, list) and len(mid) == 1 else mid))]
                elif mod.has_patches:
                    items = [(x[p, t], parse_id(mid[p][t])) for p in range(x.shape[0]) for t in range(x.shape[1])]
                else:
                    items = [(x[t], parse_id(mid[t])) for t in range(x.shape[0])]
            except (IndexError, KeyError, TypeError) as exc:
                raise CbenchError(f"{url}: sample {key!r} member {mod.member}: its json ids do not line up with "
                                  f"the tensor ({type(exc).__name__}); remove or rebuild this shard") from None
            for img, (lon, lat, days) in items:
                if mod.name == "dem":
                    days = DEM_DAYS  # the reference's fixed DEM date, as pretraining
                yield ShardImage(key, glon, glat, mod.name, _physical(img, mod),
                                 (lon, lat, days, mod.patch_area_km2))


def modality_card(name: str):
    """The embedding card of a pretraining modality: its bands (wavelengths, or variable key), its pretraining
    size and kernel, and its pretraining normalisation (S1/S2 mean/std; S3/S5P/DEM none after :func:`_physical`)."""
    import dataclasses

    from .api import embedding_card
    from .cards import Band, Normalization
    from .models.copernicusfm.pretrain_data import MODALITY_BY_NAME
    from .tasks import get_card

    mod = MODALITY_BY_NAME[name]
    bands = {"s1": "eurosat-s1", "s2": "cloud-s2", "s3": "cloud-s3"}  # pretrain_data's band sources
    if name in ("s1", "s2"):
        card = embedding_card(list(get_card(bands[name]).band_names), sensor=name, mean=mod.mean, std=mod.std)
    elif name == "s3":
        card = embedding_card(list(get_card(bands[name]).band_names), sensor="s3", normalize=False)
    else:
        card = dataclasses.replace(embedding_card("s5p_no2"), bands=(Band(name=name.upper(), variable=name),),
                                   normalization=Normalization(mean=None, std=None))
    return dataclasses.replace(card, native_size=mod.size, resolution=mod.size, kernel_size=mod.kernel,
                               gsd_m=mod.gsd_m, patch_area_km2=mod.patch_area_km2)
