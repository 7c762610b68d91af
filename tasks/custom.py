"""Your own task: a task card in a file plus a simple folder layout (``cbench run --task-card``).

Layout (everything relative to the card file's folder)::

    my_task/
      my-task.yaml            the card (same schema as tasks/cards/*.yaml; benchmark-only fields optional)
      images/<id>.tif         one GeoTIFF per sample, the card's bands in card order, physical units
      masks/<id>.tif          segmentation: class index per pixel (ignore_index allowed); regression: values
                              (NaN or the nodata value = invalid); same height × width as the image
      labels.csv              classification instead of masks: header ``id,label``; multiclass: a class
                              name (or its index); multilabel: class names separated by ``;``
      train.txt val.txt test.txt   one ``<id>`` per line

Card fields a user may leave out get defaults (:func:`card_defaults`): ``version`` 1, ``level`` 4
("Your own tasks"), ``loader: custom``, ``archive_dir: .``, the metric and ``higher_is_better`` of the task
type, the sensor's ``resolution`` / ``kernel_size`` / ``gsd_m`` as in the benchmark (S1/S2 224 px and 16,
S3 224 and 8, S5P 56 and 4), ``patch_area_km2 = (kernel × gsd km)²``, metadata lon/lat/time/area, the probe of
a built-in task of the same type (multiclass EuroSAT-S2, multilabel BigEarthNet-S2, segmentation
DFC2020-S2, regression Biomass-S3; any given ``probe`` keys override it), band wavelengths and mean/std from
the sensor's built-in card when the band names match (:data:`copernicus_bench.api.REFERENCE_CARDS`), and
``split_sizes`` from the split files. Acquisition time comes from an image's ``ACQUISITION_DATE`` /
``TIFFTAG_DATETIME`` tag when present. One date per sample (no change detection).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..cards import SPLITS, TaskCard, card_from_dict
from ..errors import CbenchError
from .base import BenchDataset, read_raster, register

LEVEL = 4
LEVEL_NAME = "Your own tasks"
PROBE_FROM = {"multiclass": "eurosat-s2", "multilabel": "bigearthnet-s2", "segmentation": "dfc2020-s2",
              "regression": "biomass-s3"}
METRIC = {"multiclass": "oa", "multilabel": "map-micro", "segmentation": "miou", "regression": "rmse"}


# ----------------------------------------------------------------------------------------------- the card
def card_defaults(data: dict[str, Any], where: str, folder: Path | None = None) -> dict[str, Any]:
    """Fill the fields a user card may omit (module docstring); given values always win."""
    from ..api import _DEFAULTS, _sensor_bands
    from . import TASK_SLUGS, get_card

    if not isinstance(data, dict):
        raise CbenchError(f"task card {where}: must be a YAML mapping; fix the card")
    out = dict(data)
    for key in ("slug", "task_type", "sensor", "bands"):
        if key not in out:
            raise CbenchError(f"task card {where}: field '{key}' is missing; fix the card")
    if out["slug"] in TASK_SLUGS:
        raise CbenchError(f"task card {where}: slug '{out['slug']}' is a built-in task; choose another slug")
    task_type, sensor = out["task_type"], out["sensor"]
    if task_type not in PROBE_FROM:
        raise CbenchError(f"task card {where}: field 'task_type' is {task_type!r}; own tasks support "
                          f"{sorted(PROBE_FROM)}; fix the card")
    if sensor not in _DEFAULTS:
        raise CbenchError(f"task card {where}: field 'sensor' is {sensor!r}, expected one of {sorted(_DEFAULTS)}")
    d = _DEFAULTS[sensor]
    bands = out["bands"]
    if not isinstance(bands, list) or not bands:
        raise CbenchError(f"task card {where}: field 'bands' must be a non-empty list; fix the card")
    # band facts from the sensor's built-in card by name ("B02" or {name: B02})
    table = _sensor_bands().get(sensor, {})
    filled, means, stds = [], [], []
    from ..baselines.common import canonical_band

    for i, b in enumerate(bands):
        b = {"name": b} if isinstance(b, str) else dict(b) if isinstance(b, dict) else b
        if not isinstance(b, dict) or "name" not in b:
            raise CbenchError(f"task card {where}: field 'bands[{i}]' needs a name; fix the card")
        ref = table.get(canonical_band(str(b["name"])))
        if ref is not None:
            for k, v in dataclasses.asdict(ref[0]).items():
                if k != "name" and v is not None:
                    b.setdefault(k, v)
        means.append(ref[1] if ref else None)
        stds.append(ref[2] if ref else None)
        filled.append(b)
    out["bands"] = filled
    if "normalization" not in out:
        if all(m is not None for m in means):
            out["normalization"] = {"mean": [means], "std": [stds]}
        elif all(m is None for m in means) and sensor in ("s3", "s5p"):
            out["normalization"] = {}  # the benchmark does not normalise S3 / S5P inputs
        else:
            raise CbenchError(f"task card {where}: field 'normalization' is missing and not every band has "
                              "built-in statistics; give normalization: {mean: [[...]], std: [[...]]}")
    input_mode = "variable" if all(isinstance(b, dict) and b.get("variable") for b in filled) else "spectral"
    kernel = int(out.get("kernel_size", d["kernel"]))
    gsd = float(out.get("gsd_m", d["gsd"]))
    resolution = int(out.get("resolution", d["resolution"]))
    probe = dict(dataclasses.asdict(get_card(PROBE_FROM[task_type]).probe))
    probe.update(out.get("probe") or {})
    defaults: dict[str, Any] = {
        "version": 1, "name": out["slug"], "level": LEVEL, "level_name": LEVEL_NAME, "product": "user data",
        "loader": "custom", "archive_dir": ".", "classes": [], "ignore_index": None,
        "metric": METRIC[task_type], "higher_is_better": METRIC[task_type] != "rmse", "target_stats": None,
        "native_size": resolution, "loader_size": None, "resolution": resolution, "kernel_size": kernel,
        "gsd_m": gsd, "patch_area_km2": (kernel * gsd / 1000.0) ** 2,
        "metadata": ["lon", "lat", "time", "area"], "input_mode": input_mode, "num_dates": 1,
        "paper": {}, "source": "user", "license": "unknown", "notes": [],
    }
    if "native_size" not in out and folder is not None:  # the images' size (predict's default window)
        size = _first_image_size(folder / str(out.get("archive_dir", ".")))
        if size:
            defaults["native_size"] = size
    for k, v in defaults.items():
        out.setdefault(k, v)
    out["probe"] = probe
    if "split_sizes" not in out:
        out["split_sizes"] = {s: _count_ids(folder / out["archive_dir"] / f"{s}.txt") if folder else 0
                              for s in SPLITS}
    return out


def _first_image_size(folder: Path) -> int | None:
    """Height of the first training image (None when there is none to read)."""
    import rasterio
    from rasterio.errors import RasterioError

    split = folder / "train.txt"
    ids = _read_ids(split) if split.is_file() else []
    if not ids or not (folder / "images" / f"{ids[0]}.tif").is_file():
        return None
    try:
        with rasterio.open(folder / "images" / f"{ids[0]}.tif") as src:
            return int(src.height)
    except RasterioError:
        return None


def _count_ids(path: Path) -> int:
    return len(_read_ids(path)) if path.is_file() else 0


def _read_ids(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def load_user_card(path: str | Path) -> TaskCard:
    """Read, complete (:func:`card_defaults`) and validate a user's task card file."""
    path = Path(path)
    if not path.is_file():
        raise CbenchError(f"--task-card {path}: no such file; give the path of your task's YAML card")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CbenchError(f"task card {path}: cannot be read ({first}); fix the YAML") from exc
    card = card_from_dict(card_defaults(data, str(path), path.parent), str(path))
    if card.loader != "custom":
        raise CbenchError(f"task card {path}: field 'loader' must be 'custom' for an own task; fix the card")
    if card.num_dates != 1:
        raise CbenchError(f"task card {path}: field 'num_dates' must be 1 (own tasks have one date); fix the card")
    return card


def card_folder(card_path: str | Path) -> Path:
    """The data root of a user card: the folder the card file is in."""
    return Path(card_path).resolve().parent


# ----------------------------------------------------------------------------------------------- the loader
@register("custom")
class CustomTask(BenchDataset):
    """One split of a user task in the layout of this module's docstring (``root`` = the card's folder)."""

    tg_class = None

    @classmethod
    def zip_name(cls) -> str:
        return "(none)"

    @property
    def fix(self) -> str:
        return f"fix the task folder {self.task_dir} (layout: 'cbench check-task CARD' lists every problem)"

    def prepare(self) -> None:
        if not self.task_dir.is_dir():
            raise CbenchError(f"{self.task_dir}: task folder not found; fix 'archive_dir' in the card")

    @classmethod
    def split_paths(cls, card: TaskCard, root: Path, split: str) -> list[Path]:
        paths = [Path(root) / card.archive_dir / f"{split}.txt"]
        if not card.is_dense:
            paths.append(Path(root) / card.archive_dir / "labels.csv")
        return paths

    def _torchgeo(self) -> Any:
        return None

    def _index(self) -> Sequence[Any]:
        ids = _read_ids(self.split_files()[0])
        if not self.card.is_dense:
            self.labels = read_labels(self.split_files()[1], self.card)
            missing = [i for i in ids if i not in self.labels]
            if missing:
                raise CbenchError(f"{self.split_files()[1]}: no label for id(s) {missing[:5]} of {self.split}.txt; "
                                  "add them")
        return ids

    def _load(self, item: Any) -> dict[str, Any]:
        from copernicus_bench.windows import TIME_TAGS

        path = self.task_dir / "images" / f"{item}.tif"
        image, lon, lat = self.read(path, self.card.num_bands)
        days = image_days(path, TIME_TAGS)
        sample: dict[str, Any] = {"image": image.astype(np.float32), "meta": self.meta(lon, lat, days)}
        if self.card.is_dense:
            mask_path = self.task_dir / "masks" / f"{item}.tif"
            mask, nodata = read_mask(mask_path, self.fix)
            if mask.shape != image.shape[1:]:
                raise CbenchError(f"{mask_path}: mask is {mask.shape[0]}×{mask.shape[1]} px but its image is "
                                  f"{image.shape[1]}×{image.shape[2]}; make them the same size")
            sample["target"] = dense_target(self.card, mask, nodata)
        else:
            sample["target"] = self.labels[item]
        return sample


def image_days(path: Path, tags: Sequence[str]) -> float:
    import rasterio

    from copernicus_bench.api import days_since_epoch

    with rasterio.open(path) as src:
        t = src.tags()
    for tag in tags:
        if t.get(tag):
            return days_since_epoch(t[tag])
    return math.nan


def read_mask(path: Path, fix: str) -> tuple[np.ndarray, float | None]:
    import rasterio

    array, _, _ = read_raster(path, 1, fix)
    with rasterio.open(path) as src:
        nodata = src.nodata
    return array[0], nodata


def dense_target(card: TaskCard, mask: np.ndarray, nodata: float | None) -> torch.Tensor:
    if card.task_type == "regression":
        t = mask.astype(np.float32)
        if nodata is not None:
            t[mask == nodata] = np.nan
        return torch.from_numpy(t)
    return torch.from_numpy(mask.astype(np.int64))


def read_labels(path: Path, card: TaskCard) -> dict[str, torch.Tensor]:
    """``labels.csv`` (``id,label``) → id → target tensor (multiclass index or multilabel multi-hot)."""
    out: dict[str, torch.Tensor] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"id", "label"} <= set(reader.fieldnames):
            raise CbenchError(f"{path}: needs a header 'id,label'; fix the file")
        for n, row in enumerate(reader, start=2):
            key, label = (row["id"] or "").strip(), (row["label"] or "").strip()
            if card.task_type == "multilabel":
                hot = torch.zeros(card.num_classes, dtype=torch.float32)
                for name in filter(None, (s.strip() for s in label.split(";"))):
                    hot[_class_index(name, card, path, n)] = 1.0
                out[key] = hot
            else:
                out[key] = torch.tensor(_class_index(label, card, path, n), dtype=torch.int64)
    return out


def _class_index(label: str, card: TaskCard, path: Path, line: int) -> int:
    if label in card.classes:
        return card.classes.index(label)
    if label.isdigit() and int(label) < card.num_classes:
        return int(label)
    raise CbenchError(f"{path}:{line}: label '{label}' is not one of the card's classes {list(card.classes)}; "
                      "fix the label or the card")


# ----------------------------------------------------------------------------------------------- validator
def check_task(card_path: str | Path) -> tuple[TaskCard | None, list[str]]:
    """Every problem of a user task in one pass: the card, then each split file, image, mask and label."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    try:
        card = load_user_card(card_path)
    except CbenchError as exc:
        return None, [str(exc)]
    folder = card_folder(card_path) / card.archive_dir
    problems: list[str] = []
    labels: dict[str, Any] = {}
    if not card.is_dense:
        lpath = folder / "labels.csv"
        if not lpath.is_file():
            problems.append(f"{lpath}: missing; classification tasks need labels.csv (id,label)")
        else:
            try:
                labels = read_labels(lpath, card)
            except CbenchError as exc:
                problems.append(str(exc))
    seen: dict[str, str] = {}
    sizes: set[tuple[int, int]] = set()
    for split in SPLITS:
        spath = folder / f"{split}.txt"
        if not spath.is_file():
            problems.append(f"{spath}: split file is missing; list one image id per line")
            continue
        ids = _read_ids(spath)
        if not ids:
            problems.append(f"{spath}: lists no ids")
        for i in ids:
            if i in seen:
                problems.append(f"{spath}: id '{i}' is also in {seen[i]}.txt; each sample in one split only")
            seen[i] = split
            img = folder / "images" / f"{i}.tif"
            if not img.is_file():
                problems.append(f"{img}: image listed in {split}.txt is missing")
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    with rasterio.open(img) as src:
                        shape, count, crs = (src.height, src.width), src.count, src.crs
            except RasterioError as exc:
                problems.append(f"{img}: cannot be read as a GeoTIFF ({str(exc).splitlines()[0]})")
                continue
            sizes.add(shape)
            if count != card.num_bands:
                problems.append(f"{img}: has {count} bands, the card lists {card.num_bands}; fix the card's bands")
            if crs is None and {"lon", "lat"} & set(card.metadata):
                problems.append(f"{img}: has no CRS, so no lon/lat; georeference it or drop lon/lat from "
                                "the card's metadata")
            if card.is_dense:
                problems += _check_mask(folder / "masks" / f"{i}.tif", shape, card)
            elif labels and i not in labels:
                problems.append(f"{folder / 'labels.csv'}: no label for id '{i}' ({split}.txt)")
    if len(sizes) > 1:
        problems.append(f"{folder / 'images'}: images have different sizes {sorted(sizes)}; crop them to one size")
    return card, problems


def _check_mask(path: Path, shape: tuple[int, int], card: TaskCard) -> list[str]:
    import rasterio
    from rasterio.errors import RasterioError

    if not path.is_file():
        return [f"{path}: mask is missing"]
    try:
        with rasterio.open(path) as src:
            mask, count = src.read(1), src.count
    except RasterioError as exc:
        return [f"{path}: cannot be read as a GeoTIFF ({str(exc).splitlines()[0]})"]
    out = []
    if count != 1:
        out.append(f"{path}: has {count} bands; a mask has one")
    if mask.shape != shape:
        out.append(f"{path}: mask is {mask.shape[0]}×{mask.shape[1]} px but its image is {shape[0]}×{shape[1]}; "
                   "make them the same size")
    if card.task_type == "segmentation":
        values = set(np.unique(mask).tolist()) - ({card.ignore_index} if card.ignore_index is not None else set())
        bad = sorted(v for v in values if not (0 <= v < card.num_classes))
        if bad:
            out.append(f"{path}: class values {bad[:5]} outside 0..{card.num_classes - 1} (and not ignore_index)")
    return out


def cards_from_results(results: Sequence[Any], known: Sequence[TaskCard]) -> list[TaskCard]:
    """The cards of own tasks stored in results (``task_card``), so a leaderboard needs no card file; for a
    slug stored with several card versions the newest result's card wins."""
    slugs = {c.slug for c in known}
    found: dict[str, tuple[str, TaskCard]] = {}
    for r in results:
        extra = getattr(r, "extra", None) or {}
        data = extra.get("task_card")
        if not isinstance(data, dict) or r["task"] in slugs:
            continue
        try:
            card = card_from_dict(data, f"result {getattr(r, 'path', '')}")
        except CbenchError:
            continue  # a result of an older card schema: skipped like a result without a card
        created = str(r["created"] or "")
        if r["task"] not in found or created > found[r["task"]][0]:
            found[r["task"]] = (created, card)
    return [card for _, card in sorted(found.values(), key=lambda v: v[1].slug)]
