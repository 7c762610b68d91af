"""Task cards: the declarative facts of each Copernicus-Bench task, validated when loaded.

A card is a YAML file in ``tasks/cards/<slug>.yaml`` (installed as ``copernicus_bench/tasks/cards``). Every
other module reads facts from the card (bands, classes, metric, probe hyper-parameters, paper numbers); they
are never retyped in code, tests or docs. A wrong card fails with the field named.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

from .errors import CbenchError

Sensor = Literal["s1", "s2", "s3", "s5p"]
TaskType = Literal["multiclass", "multilabel", "segmentation", "change_detection", "regression"]
MetricName = Literal["oa", "map-micro", "miou", "rmse"]
HeadName = Literal["linear", "upernet"]
MetaField = Literal["lon", "lat", "time", "area"]
SPLITS: tuple[str, ...] = ("train", "val", "test")
DENSE_TYPES = ("segmentation", "change_detection", "regression")
#: card fields that change no number, left out of :meth:`TaskCard.digest`.
DIGEST_EXCLUDES = ("release", "order")


@dataclass(frozen=True)
class Band:
    """One input channel in model order.

    ``wavelength_nm``/``bandwidth_nm`` are the centre wavelength and width the reference configs feed
    Copernicus-FM (S1 uses 5e7 / 1e9 by convention); ``variable`` names a non-spectral variable (S5P) by
    the key of the variable-embedding file (``s5p_no2``, ``s5p_o3``).
    """

    name: str
    wavelength_nm: float | None = None
    bandwidth_nm: float | None = None
    variable: str | None = None


@dataclass(frozen=True)
class Normalization:
    """Band statistics of the reference configs; one list per date (Flood has pre and post).

    ``mean``/``std`` are None for tasks the reference does not normalise (S3: scale factors only; S5P: raw).
    ``scale_factors`` are the OLCI radiance factors the loader applies (physical units), listed for record.
    """

    mean: tuple[tuple[float, ...], ...] | None = None
    std: tuple[tuple[float, ...], ...] | None = None
    scale_factors: tuple[float, ...] | None = None


@dataclass(frozen=True)
class TargetStats:
    """Z-score statistics of a regression target (the reference's ``target_stats``)."""

    mean: float
    std: float


@dataclass(frozen=True)
class ProbeSpec:
    """The paper's probe and its hyper-parameters (docs/protocol.md, "Run")."""

    head: HeadName
    batch_size: int
    lr: float
    epochs: int
    optimizer: Literal["sgd", "adamw"]
    weight_decay: float
    schedule: Literal["onecycle"] = "onecycle"
    aux_weight: float = 0.4


@dataclass(frozen=True)
class Release:
    """Where a task's released files lie under a data root (what torchgeo's reader opens; a test checks them
    against torchgeo's class). ``split_files`` are relative to the data root with ``{split}`` substituted;
    ``zip`` is the released archive's name at the root. Read without importing torch, for ``cbench tasks``."""

    zip: str
    split_files: tuple[str, ...]


@dataclass(frozen=True)
class PaperResult:
    mean: float
    std: float


@dataclass(frozen=True)
class TaskCard:
    """All facts of one task. See ``tasks/cards/*.yaml``."""

    slug: str
    version: int
    name: str
    level: int
    level_name: str
    sensor: Sensor
    product: str
    task_type: TaskType
    loader: str
    archive_dir: str
    bands: tuple[Band, ...]
    classes: tuple[str, ...]
    ignore_index: int | None
    metric: MetricName
    higher_is_better: bool
    normalization: Normalization
    target_stats: TargetStats | None
    native_size: int
    loader_size: int | None
    resolution: int
    kernel_size: int
    gsd_m: float
    patch_area_km2: float
    metadata: tuple[MetaField, ...]
    input_mode: Literal["spectral", "variable"]
    num_dates: int
    probe: ProbeSpec
    split_sizes: dict[str, int]
    paper: dict[str, PaperResult]
    source: str
    license: str
    citation: str = "Wang et al., Towards a Unified Copernicus Foundation Model for Earth Vision, ICCV 2025 (arXiv:2503.11849)"
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: where the released files lie (None: the loader class knows, at the cost of importing it).
    release: Release | None = None
    #: row in the paper's table (arXiv 2503.11849, Table 2); tasks without one follow, by level then slug.
    order: int | None = None

    # ----------------------------------------------------------------- derived facts
    @property
    def num_bands(self) -> int:
        return len(self.bands)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def is_dense(self) -> bool:
        return self.task_type in DENSE_TYPES

    @property
    def band_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)

    @property
    def wavelengths_nm(self) -> tuple[float | None, ...]:
        return tuple(b.wavelength_nm for b in self.bands)

    @property
    def bandwidths_nm(self) -> tuple[float | None, ...]:
        return tuple(b.bandwidth_nm for b in self.bands)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """Content hash of the card (goes into cache keys and results); ``release`` (file locations) and
        ``order`` (table position) change no number, so they are left out."""
        facts = {k: v for k, v in self.to_dict().items() if k not in DIGEST_EXCLUDES}
        blob = json.dumps(facts, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# --------------------------------------------------------------------- validation
def _fail(where: str, path: str, msg: str) -> CbenchError:
    return CbenchError(f"task card {where}: field '{path}' {msg}; fix the card")


def _convert(tp: Any, value: Any, where: str, path: str) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise _fail(where, path, f"is {value!r}, expected one of {list(args)}")
        return value
    if origin in (type(int | None),) or (origin is not None and str(origin) == "typing.Union"):
        if value is None:
            if type(None) in args:
                return None
            raise _fail(where, path, "is missing (null)")
        non_none = [a for a in args if a is not type(None)]
        errors = []
        for a in non_none:
            try:
                return _convert(a, value, where, path)
            except CbenchError as exc:
                errors.append(exc)
        raise errors[0]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _fail(where, path, f"must be a mapping, got {type(value).__name__}")
        return _build(tp, value, where, path + ".")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _fail(where, path, f"must be a list, got {type(value).__name__}")
        item_tp = args[0]
        return tuple(_convert(item_tp, v, where, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(where, path, f"must be a mapping, got {type(value).__name__}")
        return {str(k): _convert(args[1], v, where, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(where, path, f"must be true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, path, f"must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(where, path, f"must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _fail(where, path, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported card type {tp!r}")


def _build(cls: type, data: dict[str, Any], where: str, prefix: str = "") -> Any:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise _fail(where, prefix + unknown[0], "is not a known card field")
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                continue
            raise _fail(where, prefix + name, "is missing")
        kwargs[name] = _convert(hints[name], data[name], where, prefix + name)
    return cls(**kwargs)


def _check_consistency(card: TaskCard, where: str) -> None:
    """Cross-field rules a type check cannot see."""
    if card.version < 1:
        raise _fail(where, "version", "must be >= 1")
    if card.num_bands == 0:
        raise _fail(where, "bands", "must list at least one band")
    norm = card.normalization
    for name in ("mean", "std"):
        stats = getattr(norm, name)
        if stats is None:
            continue
        if len(stats) != card.num_dates:
            raise _fail(where, f"normalization.{name}", f"has {len(stats)} date lists, num_dates is {card.num_dates}")
        for i, per_date in enumerate(stats):
            if len(per_date) != card.num_bands:
                raise _fail(where, f"normalization.{name}[{i}]",
                            f"has {len(per_date)} values for {card.num_bands} bands")
    if norm.std is not None and any(s <= 0 for d in norm.std for s in d):
        raise _fail(where, "normalization.std", "must be positive")
    if norm.scale_factors is not None and len(norm.scale_factors) != card.num_bands:
        raise _fail(where, "normalization.scale_factors", f"must have {card.num_bands} values")
    if card.task_type == "regression" and card.target_stats is None:
        raise _fail(where, "target_stats", "is required for regression tasks")
    if card.task_type != "regression" and card.num_classes < 2:
        raise _fail(where, "classes", "must list at least two classes")
    expected_head = "upernet" if card.is_dense else "linear"
    if card.probe.head != expected_head:
        raise _fail(where, "probe.head", f"must be '{expected_head}' for a {card.task_type} task")
    expected_metric = {"multiclass": "oa", "multilabel": "map-micro", "segmentation": "miou",
                       "change_detection": "miou", "regression": "rmse"}[card.task_type]
    if card.metric != expected_metric:
        raise _fail(where, "metric", f"must be '{expected_metric}' for a {card.task_type} task")
    if card.higher_is_better != (card.metric != "rmse"):
        raise _fail(where, "higher_is_better", f"is wrong for metric '{card.metric}'")
    if card.input_mode == "variable" and any(b.variable is None for b in card.bands):
        raise _fail(where, "bands", "need a 'variable' key for input_mode 'variable'")
    if card.input_mode == "spectral" and any(b.wavelength_nm is None for b in card.bands):
        raise _fail(where, "bands", "need wavelength_nm for input_mode 'spectral'")
    if card.resolution % card.kernel_size:
        raise _fail(where, "resolution", f"{card.resolution} is not a multiple of kernel_size {card.kernel_size}")
    if set(card.split_sizes) != set(SPLITS):
        raise _fail(where, "split_sizes", f"must list exactly {list(SPLITS)}")
    if card.release is not None and (not card.release.split_files
                                     or any("{split}" not in f for f in card.release.split_files)):
        raise _fail(where, "release.split_files", "must list at least one path, each with '{split}'")


def card_from_dict(data: dict[str, Any], where: str = "<dict>") -> TaskCard:
    """Build and validate a card from plain data."""
    if not isinstance(data, dict):
        raise CbenchError(f"task card {where}: must be a YAML mapping; fix the card")
    card = _build(TaskCard, data, where)
    _check_consistency(card, where)
    return card


def load_card(path: str | Path) -> TaskCard:
    """Read and validate one card file."""
    path = Path(path)
    try:
        # libyaml's safe loader when built in: the same data, ~7x faster (15 cards per sweep or re-run)
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as exc:
        raise CbenchError(f"task card {path}: cannot be read ({exc}); fix the YAML") from exc
    card = card_from_dict(data, str(path))
    if card.slug != path.stem:
        raise _fail(str(path), "slug", f"is '{card.slug}' but the file is named '{path.stem}.yaml'")
    return card
