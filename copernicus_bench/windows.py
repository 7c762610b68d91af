"""Sliding windows over a GeoTIFF and each window's own Copernicus-FM metadata.

For every window: lon/lat of its centre (the raster's CRS reprojected to WGS84 with pyproj, ``always_xy``),
time (``--time`` or the file's tags, in days since 1970-01-01 as the reference) and patch area — the area of
one ``kernel × kernel`` patch at the raster's pixel size in km², the reference's convention
``(kernel px × pixel size km)²`` (not rescaled when a window is resized to the model's size). A raster in a
geographic CRS gets its pixel size on the ellipsoid at the window centre (pyproj ``Geod``).

Windows of ``size`` px step by ``stride`` px from the top-left pixel. ``cover=False`` (``cbench embed``)
keeps a regular grid — windows that would cross the right or bottom edge are left out, so the embedding
raster's pixel (i, j) is window (i, j) and its centre is the window's centre (:func:`grid_transform`);
``cover=True`` (``cbench predict``) adds a last row/column aligned to the edge so every pixel is covered.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_file
from .errors import CbenchError

#: tags looked up (in this order) for an acquisition time when no ``--time`` is given
TIME_TAGS = ("ACQUISITION_DATE", "DATETIME", "TIFFTAG_DATETIME", "time", "date", "datetime")


@dataclass(frozen=True)
class Window:
    """One window: grid index (``row``, ``col``) and pixel offsets of its top-left corner."""

    row: int
    col: int
    row_off: int
    col_off: int
    size: int


@dataclass(frozen=True)
class RasterInfo:
    """What the windowing needs from one GeoTIFF (no pixels)."""

    path: Path
    height: int
    width: int
    count: int
    crs: Any  # rasterio CRS or None
    transform: Any  # affine.Affine
    descriptions: tuple[str | None, ...]
    tags: dict[str, str]

    @property
    def georeferenced(self) -> bool:
        from affine import Affine

        return self.crs is not None and self.transform != Affine.identity()


def _offsets(length: int, size: int, stride: int, cover: bool) -> list[int]:
    offs = list(range(0, length - size + 1, stride))
    if cover and offs[-1] + size < length:
        offs.append(length - size)
    return offs


def window_grid(height: int, width: int, size: int, stride: int | None = None, cover: bool = False,
                where: str = "raster") -> tuple[list[Window], tuple[int, int]]:
    """Windows of ``size`` px every ``stride`` px (default ``size``); returns them and the grid shape."""
    stride = stride or size
    if size < 1 or stride < 1:
        raise CbenchError(f"--window {size} / --stride {stride}: must be positive")
    if size > height or size > width:
        raise CbenchError(f"{where}: window {size} px is larger than the raster ({height}×{width} px); "
                          f"pass a smaller --window (at most {min(height, width)})")
    rows = _offsets(height, size, stride, cover)
    cols = _offsets(width, size, stride, cover)
    wins = [Window(i, j, r, c, size) for i, r in enumerate(rows) for j, c in enumerate(cols)]
    return wins, (len(rows), len(cols))


def open_raster(path: str | os.PathLike, no_geo: bool = False) -> RasterInfo:
    """Header of a GeoTIFF; a raster without CRS is an error unless ``no_geo``."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    path = Path(path)
    if not path.is_file():
        raise CbenchError(f"{path}: no such file; check the input path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                info = RasterInfo(path, src.height, src.width, src.count, src.crs, src.transform,
                                  tuple(src.descriptions), dict(src.tags()))
    except RasterioError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CbenchError(f"{path}: cannot be read as a GeoTIFF ({msg}); check the file") from exc
    if not info.georeferenced and not no_geo:
        raise CbenchError(f"{path}: has no CRS/georeference, so windows get no lon/lat; georeference the file "
                          "or pass --no-geo to run with location and area unknown")
    return info


def read_windows(path: Path, wins: Sequence[Window]) -> np.ndarray:
    """(N, C, size, size) float32 pixels of several windows (one open file)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.windows import Window as RioWindow

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            return np.stack([src.read(window=RioWindow(w.col_off, w.row_off, w.size, w.size)) for w in wins]
                            ).astype(np.float32)


def raster_time(info: RasterInfo, option: str | None) -> float:
    """Days since 1970 from ``--time`` or the file's tags (:data:`TIME_TAGS`), NaN when neither has one."""
    from .api import days_since_epoch

    if option:
        return days_since_epoch(option)
    for tag in TIME_TAGS:
        if info.tags.get(tag):
            try:
                return days_since_epoch(info.tags[tag])
            except CbenchError:
                raise CbenchError(f"{info.path}: tag {tag}={info.tags[tag]!r} is not a date; fix the tag or "
                                  "pass --time YYYY-MM-DD") from None
    return math.nan


def window_centres(info: RasterInfo, wins: Sequence[Window]) -> tuple[np.ndarray, np.ndarray]:
    """Centre of each window in the raster's CRS (x, y): ``transform * (col_off + size/2, row_off + size/2)``."""
    cols = np.array([w.col_off + w.size / 2 for w in wins], dtype=np.float64)
    rows = np.array([w.row_off + w.size / 2 for w in wins], dtype=np.float64)
    t = info.transform
    return t.a * cols + t.b * rows + t.c, t.d * cols + t.e * rows + t.f


def to_lonlat(crs: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from pyproj import CRS, Transformer

    src = CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    if src.equals(CRS.from_epsg(4326)):
        return np.asarray(x, np.float64), np.asarray(y, np.float64)
    tr = Transformer.from_crs(src, "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(x, y)
    return np.asarray(lon, np.float64), np.asarray(lat, np.float64)


def pixel_area_m2(info: RasterInfo, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Ground area of one pixel (m²): projected CRS → |a·e − b·d| × (metres per unit)²; geographic → on the
    WGS84 ellipsoid at each (lon, lat)."""
    from pyproj import CRS, Geod

    crs = CRS.from_user_input(info.crs.to_wkt())
    t = info.transform
    det = abs(t.a * t.e - t.b * t.d)
    if not crs.is_geographic:
        factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        return np.full(len(lon), det * factor**2)
    geod = Geod(ellps="WGS84")
    dx, dy = abs(t.a), abs(t.e)
    out = []
    for lo, la in zip(lon, lat):
        area, _ = geod.polygon_area_perimeter([lo, lo + dx, lo + dx, lo], [la, la, la - dy, la - dy])
        out.append(abs(area))
    return np.asarray(out, dtype=np.float64)


def window_meta(info: RasterInfo, wins: Sequence[Window], kernel: int, time_days: float) -> np.ndarray:
    """(N, 4) float32 = [lon°, lat°, days since 1970, patch area km²] per window; NaN without georeference."""
    n = len(wins)
    meta = np.full((n, 4), np.nan, dtype=np.float64)
    meta[:, 2] = time_days
    if info.georeferenced:
        x, y = window_centres(info, wins)
        lon, lat = to_lonlat(info.crs, x, y)
        meta[:, 0], meta[:, 1] = lon, lat
        meta[:, 3] = kernel**2 * pixel_area_m2(info, lon, lat) / 1e6
    return meta.astype(np.float32)


def grid_transform(transform: Any, size: int, stride: int) -> Any:
    """Transform of the window grid raster: pixel (i, j) centred on window (i, j)'s centre."""
    from affine import Affine

    offset = (size - stride) / 2
    return transform * Affine.translation(offset, offset) * Affine.scale(stride)


def write_geotiff(path: str | os.PathLike, array: np.ndarray, crs: Any, transform: Any,
                  tags: dict[str, Any] | None = None, nodata: float | None = None,
                  descriptions: Sequence[str] | None = None) -> Path:
    """Write (C, H, W) atomically (temporary name in the same folder, then rename)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    path = Path(path)
    profile: dict[str, Any] = {"driver": "GTiff", "count": array.shape[0], "height": array.shape[1],
                               "width": array.shape[2], "dtype": str(array.dtype), "crs": crs,
                               "transform": transform, "compress": "deflate"}
    if array.shape[0] > 1:
        profile["interleave"] = "pixel" if array.shape[0] > 16 else "band"
    if nodata is not None:
        profile["nodata"] = nodata
    with atomic_file(path, suffix=".tif.tmp") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(array)
            if tags:
                dst.update_tags(**{k: str(v) for k, v in tags.items()})
            if descriptions:
                for i, d in enumerate(descriptions, start=1):
                    dst.set_band_description(i, d)
    return path
