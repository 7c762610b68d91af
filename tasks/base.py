"""Shared machinery of the Copernicus-Bench loaders (torchgeo style: one small file per dataset on this base).

Each dataset module subclasses :class:`BenchDataset`, names the torchgeo 0.8.1 ``CopernicusBench*`` class
it wraps (which knows the release's file names, URL, md5 and split-file format) and implements
``_index`` (what one sample is) and ``_load`` (read it). Everything else lives here once: data-root checks,
atomic zip extraction, GeoTIFF reading with one-line errors, the reference's metadata parsing
(centre pixel → lon/lat, day from the file name → days since 1970-01-01) and the reference's
dataset-level resizes (cv2-equivalent bicubic / nearest).

Loaders return physical values after the reference's dataset-level steps only; normalisation belongs to
the model's input pipeline (docs/conventions.md, "The encoder contract").
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from ..cards import SPLITS, TaskCard
from ..errors import CbenchError, DataNotFoundError
from ..guards import check_labels
from ..nearest import resize_nearest_cv2

EPOCH = date(1970, 1, 1)
META_FIELDS = ("lon", "lat", "time", "area")

#: loader key (card field ``loader``) → dataset class; filled by :func:`register`.
LOADERS: dict[str, type[BenchDataset]] = {}


def register(key: str) -> Callable[[type[BenchDataset]], type[BenchDataset]]:
    """Class decorator: make a dataset class the loader for the card field ``loader: <key>``."""

    def add(cls: type[BenchDataset]) -> type[BenchDataset]:
        cls.loader_key = key
        LOADERS[key] = cls
        return cls

    return add


# ----------------------------------------------------------------------------------------------- helpers
def days_since_epoch(text: str, fmt: str) -> float:
    """Whole days between 1970-01-01 and the calendar day in ``text`` (the reference's ``(d - ref).days``)."""
    return float((datetime.strptime(text, fmt).date() - EPOCH).days)


def day_from_name(name: str, regex: str) -> float:
    """Days since 1970 of the acquisition *day* named in a file name (NaN when the name has none).

    ``regex`` is the torchgeo class's ``filename_regex``: a ``date`` group (``YYYYMMDD[THHMMSS]``, only the
    day is used, as the reference) or a ``start``/``stop`` pair (``YYYY-MM-DD``; the reference takes the
    start, torchgeo the midpoint).
    """
    match = re.match(regex, os.path.basename(name))
    if match is None:
        return math.nan
    groups = match.groupdict()
    if groups.get("date"):
        return days_since_epoch(groups["date"][:8], "%Y%m%d")
    if groups.get("start"):
        return days_since_epoch(groups["start"][:10], "%Y-%m-%d")
    return math.nan


@functools.lru_cache(maxsize=64)
def _to_lonlat(crs_wkt: str) -> Any:
    from pyproj import Transformer

    return Transformer.from_crs(crs_wkt, "EPSG:4326", always_xy=True)


def read_raster(path: Path, expected_bands: int | None, fix: str) -> tuple[np.ndarray, float, float]:
    """Read all bands of a GeoTIFF as (C, H, W) plus the reference's lon/lat of its centre pixel.

    lon/lat: ``src.xy(h // 2, w // 2)`` reprojected to EPSG:4326 (always_xy), NaN when the file carries
    no georeference. ``fix`` is what the user should do if the file is missing or unreadable.
    """
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: file listed in the split is missing; {fix}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # DFC2020 files carry no georeference
            src = rasterio.open(path)
        with src:
            if expected_bands is not None and src.count != expected_bands:
                raise CbenchError(f"{path}: has {src.count} bands, expected {expected_bands}; "
                                  f"the file is not the released one, {fix}")
            array = src.read()
            lon = lat = math.nan
            if src.crs is not None and src.transform != rasterio.Affine.identity():
                cx, cy = src.xy(src.height // 2, src.width // 2)
                if src.crs.to_epsg() == 4326:
                    lon, lat = cx, cy
                else:
                    lon, lat = _to_lonlat(src.crs.to_wkt()).transform(cx, cy)
    except CbenchError:
        raise
    except (RasterioError, OSError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CbenchError(f"{path}: cannot be read as a GeoTIFF ({msg}); the file is truncated or corrupt, "
                          f"{fix}") from exc
    return array, float(lon), float(lat)


def resize_bicubic(array: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """Bicubic resize of (C, H, W) or (H, W) to ``size``², as cv2.INTER_CUBIC (a = -0.75, half-pixel
    centres, replicated border, no antialias) which the reference uses."""
    x = torch.as_tensor(np.asarray(array, dtype=np.float32))
    squeeze = x.ndim == 2
    x = x[None, None] if squeeze else x[None]
    if tuple(x.shape[-2:]) != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False,
                                            antialias=False)
    return x[0, 0] if squeeze else x[0]


def resize_nearest(array: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """Nearest resize of (H, W) to ``size``², exactly cv2.INTER_NEAREST (the reference's label resize; see
    :mod:`copernicus_bench.nearest` for the rule and why PyTorch's ``nearest`` differs)."""
    return resize_nearest_cv2(torch.as_tensor(np.asarray(array)), size)


def extract_zip(zip_path: Path, root: Path, directory: str) -> None:
    """Extract a released zip whose top-level folder is ``directory`` into ``root``, atomically.

    The archive is unpacked into a temporary folder beside the target and renamed into place, so an
    interrupted extraction never leaves a half-filled ``root/directory``.
    """
    target = root / directory
    if target.exists():
        return
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory}.extract-", dir=root))
    try:
        try:
            from ..download import check_zip_bounds, extraction_error

            with zipfile.ZipFile(zip_path) as zf:
                check_zip_bounds(zf, zip_path, root)  # zip bombs and archives larger than the free space
                zf.extractall(tmp)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise extraction_error(Path(zip_path), root, exc) from exc
        inner = tmp / directory
        if not inner.is_dir():
            raise CbenchError(f"{zip_path}: does not contain the folder '{directory}/'; "
                              f"it is not the released archive, replace it")
        try:
            os.replace(inner, target)
        except OSError:
            if not target.is_dir():  # another process may have won the race; anything else is an error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_data_root(root: Path, card: TaskCard) -> None:
    """A missing or empty data root is a user error with a fix."""
    fix = (f"run 'cbench download --task {card.slug} --data-root {root}' or "
           f"'cbench sample --out {root}', or pass --data-root / set CBENCH_DATA_ROOT")
    if not root.exists():
        raise DataNotFoundError(f"data root {root}: does not exist; {fix}")
    if not root.is_dir():
        raise DataNotFoundError(f"data root {root}: is not a folder; {fix}")
    if not any(root.iterdir()):
        raise DataNotFoundError(f"data root {root}: is empty; {fix}")


# ----------------------------------------------------------------------------------------------- base
class BenchDataset(Dataset):
    """One split of one Copernicus-Bench task.

    ``__getitem__`` returns ``{"image", "target", "meta"}``: image float32 (C, H, W) ((T, C, H, W) for
    multi-date cards), target per the card's task type (multiclass int64 scalar; multilabel float32 (K,);
    segmentation / change detection int64 (H, W) with the card's ignore index; regression float32 (H, W)
    in original units, NaN where invalid) and meta float32 (4,) or (T, 4) = [lon°, lat°, days since
    1970-01-01, patch area km²], NaN where unknown.
    """

    #: torchgeo 0.8.1 class this loader wraps (release facts: url, md5, zipfile, directory, file names).
    tg_class: ClassVar[Any]
    #: extra keyword arguments for the torchgeo class (e.g. ``mode``).
    tg_kwargs: ClassVar[dict[str, Any]] = {}
    #: set by :func:`register`.
    loader_key: ClassVar[str] = ""

    def __init__(self, card: TaskCard, split: str, root: str | os.PathLike, limit: int | None = None) -> None:
        if split not in SPLITS:
            raise CbenchError(f"split '{split}': unknown; use one of {', '.join(SPLITS)}")
        if limit is not None and limit < 0:
            raise CbenchError(f"limit {limit}: must be >= 0")
        self.card = card
        self.split = split
        self.root = Path(root)
        check_data_root(self.root, card)
        self.prepare()
        for f in self.split_files():
            if f.exists() and not f.is_file():
                raise CbenchError(f"{f}: split file for task '{card.slug}' ({split}) is a folder, not a file; "
                                  f"replace it with the released split file ({self.fix})")
            if not f.is_file():
                raise DataNotFoundError(
                    f"{f}: split file for task '{card.slug}' ({split}) is missing; {self.fix}")
        self.tg = self._torchgeo()
        items = self._index()
        self.items: list[Any] = list(items if limit is None else items[:limit])

    # -------------------------------------------------------------- release facts
    @classmethod
    def zip_name(cls) -> str:
        return str(cls.tg_class.zipfile)

    @property
    def release_zip(self) -> str:
        """The released archive's name at the data root: the card's ``release.zip`` (else torchgeo's)."""
        return self.card.release.zip if self.card.release is not None else self.zip_name()

    @property
    def task_dir(self) -> Path:
        """``<data root>/<archive_dir>`` (the folder the released zip unpacks to)."""
        return self.root / self.card.archive_dir

    @property
    def tg_root(self) -> Path:
        """The ``root`` torchgeo's class expects (the data root, except for LCZ)."""
        return self.root

    @property
    def fix(self) -> str:
        return (f"delete {self.task_dir} and re-extract {self.release_zip} or re-run "
                f"'cbench download --task {self.card.slug} --data-root {self.root}'")

    def prepare(self) -> None:
        """Extract the released zip at the root when the task folder is absent (atomically)."""
        target = self.task_dir
        zip_path = self.root / self.release_zip
        if not target.exists() and zip_path.is_file():
            extract_zip(zip_path, self.root, self.card.archive_dir)
        if not target.exists():
            raise DataNotFoundError(
                f"{target}: task data not found (nor {zip_path}); run 'cbench download --task "
                f"{self.card.slug} --data-root {self.root}' or place {self.release_zip} in {self.root}")

    @classmethod
    def split_paths(cls, card: TaskCard, root: Path, split: str) -> list[Path]:
        """The split / label files of one split under a data root (no I/O): the card's ``release.split_files``
        (else torchgeo's ``directory``/``filename``)."""
        if card.release is not None:
            return [Path(root) / f.format(split=split) for f in card.release.split_files]
        return [Path(root) / cls.tg_class.directory / cls.tg_class.filename.format(split)]

    def split_files(self) -> list[Path]:
        """The split / label files of this split (their sha256 goes into results)."""
        return self.split_paths(self.card, self.root, self.split)

    # -------------------------------------------------------------- torchgeo wrapping
    def _torchgeo(self) -> Any:
        try:
            return self.tg_class(root=str(self.tg_root), split=self.split, **self.tg_kwargs)
        except CbenchError:
            raise
        except Exception as exc:  # a malformed split file: name it
            files = ", ".join(str(f) for f in self.split_files())
            raise CbenchError(f"{files}: cannot be parsed ({type(exc).__name__}: {exc}); {self.fix}") from exc

    # -------------------------------------------------------------- per dataset
    def _index(self) -> Sequence[Any]:
        """One entry per sample, in release order."""
        return list(range(len(self.tg)))

    def _load(self, item: Any) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    # -------------------------------------------------------------- helpers for subclasses
    def read(self, path: Path, expected_bands: int | None = None) -> tuple[np.ndarray, float, float]:
        return read_raster(path, expected_bands, self.fix)

    def band_order(self) -> list[int]:
        """0-based file band index for each card band (model order); names match torchgeo's ``all_bands``
        with any ``_radiance`` suffix dropped."""
        file_bands = [b.removesuffix("_radiance") for b in self.tg_class.all_bands]
        return [file_bands.index(name) for name in self.card.band_names]

    def read_image(self, path: Path) -> tuple[np.ndarray, float, float]:
        """All file bands, checked against the release's band count, reordered to the card's band order."""
        array, lon, lat = self.read(path, len(self.tg_class.all_bands))
        return array[self.band_order()].astype(np.float32), lon, lat

    def meta(self, lon: float = math.nan, lat: float = math.nan, days: float = math.nan) -> torch.Tensor:
        """[lon, lat, days, area] float32; fields the card does not list as available are NaN."""
        values = dict(zip(META_FIELDS, (lon, lat, days, self.card.patch_area_km2)))
        return torch.tensor([values[k] if k in self.card.metadata else math.nan for k in META_FIELDS],
                            dtype=torch.float32)

    def scale_olci(self, image: np.ndarray) -> np.ndarray:
        """NaN → 0 and the OLCI radiance scale factors of the card (reference's S3 steps)."""
        factors = np.asarray(self.card.normalization.scale_factors, dtype=np.float32)[:, None, None]
        return np.nan_to_num(image, nan=0.0) * factors

    # -------------------------------------------------------------- Dataset
    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        item = self.items[index]
        sample = self._load(item)
        sample["image"] = torch.as_tensor(sample["image"], dtype=torch.float32)
        check_labels(self.card, sample["target"], lambda: self._where(item))  # e.g. a raw 255 remapped to 254
        return sample

    def _where(self, item: Any) -> str:
        """The file (or the split entry) a sample comes from, for error messages."""
        files = getattr(getattr(self, "tg", None), "files", None)
        if isinstance(item, int) and isinstance(files, list | tuple) and 0 <= item < len(files):
            return f"{self.task_dir / str(files[item])} ({self.card.slug}, {self.split})"
        return f"{self.task_dir} ({self.card.slug}, {self.split} sample {item!r})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.card.slug!r}, split={self.split!r}, n={len(self)}, root={str(self.root)!r})"
