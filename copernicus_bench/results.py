"""The results store: one typed, versioned record per result identity, one JSON file each, written atomically.

A result's identity (file name and skip key) is (model, weights hash, task, tier, protocol, seed, and a hash
of any other override) — docs/conventions.md. :class:`ResultRecord` is the one definition of a result: the
runner builds and writes it (:func:`write_result`), the leaderboard reads it back (:func:`load_results`), and
both go through :meth:`ResultRecord.from_dict`, which migrates older files and validates every typed field.
A file that is not a valid record is named in a warning and skipped, never half-used.

Schema history (``schema`` field):

* ``copernicus-bench/result/v1`` — the first release (no ``identity_token``, no ``metric.paper``).
* ``copernicus-bench/result/v2`` — :class:`ResultRecord` (``schema_version`` 2): adds ``identity_token``
  (the cheap weights identity the skip check compares before any model is built) and ``metric.paper``.
  v1 files are migrated on read (the new fields are ``None``); :func:`migrate_file` rewrites one in place.

Readers may use attributes (``record.metric.global_``) or the JSON keys (``record["metric"]["global"]``):
both name the same typed values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .atomic import atomic_file
from .errors import CbenchError

SCHEMA_V1 = "copernicus-bench/result/v1"
SCHEMA = "copernicus-bench/result/v2"
SCHEMA_VERSION = 2
REQUIRED_KEYS = ("schema", "model", "weights", "task", "tier", "protocol", "seed", "metric", "applicable_tasks")


class InvalidResult(ValueError):
    """A file or dict that is not a valid result record (the message names the field)."""


class _JsonView:
    """Dict-style read access by JSON key on a record dataclass (``rec["metric"]["global"]``).

    ``_json_names`` maps JSON keys that are not valid attribute names to attributes.
    """

    _json_names: ClassVar[dict[str, str]] = {}

    def _attr(self, key: str) -> str:
        name = self._json_names.get(key, key)
        if name.startswith("__") or not any(f.name == name for f in dataclasses.fields(self)):  # type: ignore[arg-type]
            extra = getattr(self, "extra", None)
            if isinstance(extra, dict) and key in extra:
                return ""
            raise KeyError(key)
        return name

    def __getitem__(self, key: str) -> Any:
        name = self._attr(key)
        return self.extra[key] if name == "" else getattr(self, name)  # type: ignore[attr-defined]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            value = self[key]
        except KeyError:
            return default
        return value

    def __contains__(self, key: object) -> bool:
        try:
            self[str(key)]
        except KeyError:
            return False
        return True

    def keys(self) -> Iterator[str]:
        return iter(self.to_dict())  # type: ignore[attr-defined]


def _check(where: str, value: Any, kinds: tuple[type, ...], optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) and bool not in kinds:
        raise InvalidResult(f"field '{where}' must be {'/'.join(k.__name__ for k in kinds)}, got a bool")
    if not isinstance(value, kinds):
        raise InvalidResult(f"field '{where}' must be {'/'.join(k.__name__ for k in kinds)}"
                            f"{' or null' if optional else ''}, got {type(value).__name__}")
    return value


def _number(where: str, value: Any) -> float | None:
    """A metric value: a float, or None (null) where it could not be computed. NaN is stored as null."""
    if value is None:
        return None
    _check(where, value, (int, float))
    return float(value)


@dataclass
class MetricValues(_JsonView):
    """The test metric of a result.

    * ``global_`` (JSON ``global``): our headline — the epoch with the best *global* validation metric,
      scored over the whole test split at the target's native size.
    * ``per_batch``: the same epoch, the reference's batch-size-weighted mean of per-batch values.
    * ``paper``: computed as the reference computes it (its epoch: best per-batch validation value, first
      best kept; dense targets at the encoder's input resolution; per-batch mean) — what the paper's numbers
      are compared with. ``None`` in files written before it existed.
    """

    _json_names: ClassVar[dict[str, str]] = {"global": "global_"}

    name: str
    higher_is_better: bool
    global_: float | None
    per_batch: float | None = None
    paper: float | None = None
    unit: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> MetricValues:
        _check("metric", data, (dict,))
        known = {"name", "higher_is_better", "global", "per_batch", "paper", "unit"}
        return cls(name=str(_check("metric.name", data.get("name", ""), (str,))),
                   higher_is_better=bool(_check("metric.higher_is_better", data.get("higher_is_better", True),
                                                (bool,))),
                   global_=_number("metric.global", data.get("global")),
                   per_batch=_number("metric.per_batch", data.get("per_batch")),
                   paper=_number("metric.paper", data.get("paper")),
                   unit=str(_check("metric.unit", data.get("unit", ""), (str,))),
                   extra={k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "higher_is_better": self.higher_is_better, "global": self.global_,
                "per_batch": self.per_batch, "paper": self.paper, "unit": self.unit, **self.extra}


@dataclass
class WeightsRecord(_JsonView):
    """Where the encoder's weights came from (:class:`~copernicus_bench.encoder.WeightsInfo` as stored)."""

    source: str
    sha256: str
    file: str | None = None
    set_sha256: str | None = None
    label: str = ""

    @classmethod
    def from_dict(cls, data: Any) -> WeightsRecord:
        _check("weights", data, (dict,))
        source = _check("weights.source", data.get("source", "user"), (str,))
        sha = _check("weights.sha256", data.get("sha256"), (str,))
        rec = cls(source=source, sha256=sha, file=_check("weights.file", data.get("file"), (str,), True),
                  set_sha256=_check("weights.set_sha256", data.get("set_sha256"), (str,), True),
                  label=_check("weights.label", data.get("label") or "", (str,)))
        if not rec.label:
            rec.label = f"user:{(rec.set_sha256 or sha)[:8]}" if source == "user" else source
        return rec

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ResultRecord(_JsonView):
    """One result: what was run, its metric, and how it was made (every field is written to the JSON).

    Unknown top-level keys of a file (written by a newer minor version) are kept in ``extra`` and written
    back unchanged.
    """

    _json_names: ClassVar[dict[str, str]] = {"_path": "path"}
    #: typed fields and the JSON types a file may hold for them (``None`` allowed where listed)
    _sections: ClassVar[dict[str, tuple[tuple[type, ...], bool]]] = {
        "created": ((str,), False), "model_display": ((str,), False), "identity_token": ((str,), True),
        "task_version": ((int,), True), "task_digest": ((str,), True), "overrides": ((dict,), False),
        "override_hash": ((str,), False), "sample_data": ((bool,), False), "val_metric": ((dict,), True),
        "best_epoch": ((int,), True), "history": ((list,), False), "applicable_tasks": ((list,), False),
        "input_adaptation": ((list,), False), "pipeline": ((dict,), False), "config": ((dict,), False),
        "split_checksums": ((dict,), False), "versions": ((dict,), False), "git_commit": ((str,), True),
        "device": ((str,), True), "timings": ((dict,), False), "peak_memory_mb": ((int, float), True),
        "cache": ((dict,), False),
        # issue 11: per-test-image outputs (file, sha256), cost figures, the adapter's model card
        "per_sample": ((dict,), True), "cost": ((dict,), False), "model_card": ((dict,), True),
    }

    model: str
    weights: WeightsRecord
    task: str
    tier: str
    protocol: str
    seed: int
    metric: MetricValues
    schema: str = SCHEMA
    schema_version: int = SCHEMA_VERSION
    created: str = ""
    model_display: str = ""
    identity_token: str | None = None
    task_version: int | None = None
    task_digest: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    override_hash: str = ""
    sample_data: bool = False
    val_metric: dict[str, Any] | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    applicable_tasks: list[str] = field(default_factory=list)
    input_adaptation: list[str] = field(default_factory=list)
    pipeline: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    split_checksums: dict[str, str] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    git_commit: str | None = None
    device: str | None = None
    timings: dict[str, Any] = field(default_factory=dict)
    peak_memory_mb: float | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    per_sample: dict[str, Any] | None = None  # copernicus_bench.per_sample.write_per_sample's record
    cost: dict[str, Any] = field(default_factory=dict)  # copernicus_bench.cost.cost_record
    model_card: dict[str, Any] | None = None  # copernicus_bench.model_card.ModelCard.to_dict()
    extra: dict[str, Any] = field(default_factory=dict)
    #: the file it was read from (not written)
    path: str | None = None

    @property
    def key(self) -> ResultKey:
        return ResultKey(model=self.model, weights_sha256=self.weights.sha256, task=self.task, tier=self.tier,
                         protocol=self.protocol, seed=self.seed, override_hash=self.override_hash)

    @classmethod
    def from_dict(cls, data: Any) -> ResultRecord:
        """Validate (and migrate) a parsed JSON object; :class:`InvalidResult` names the first bad field."""
        if not isinstance(data, dict):
            raise InvalidResult(f"not a JSON object but {type(data).__name__}")
        data = migrate(data)
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise InvalidResult(f"missing field(s) {', '.join(missing)}")
        kwargs: dict[str, Any] = {
            "model": _check("model", data["model"], (str,)), "task": _check("task", data["task"], (str,)),
            "tier": _check("tier", data["tier"], (str,)), "protocol": _check("protocol", data["protocol"], (str,)),
            "seed": _check("seed", data["seed"], (int,)), "weights": WeightsRecord.from_dict(data["weights"]),
            "metric": MetricValues.from_dict(data["metric"]), "schema": data["schema"],
        }
        for name, (kinds, optional) in cls._sections.items():
            if name in data:
                kwargs[name] = _check(name, data[name], kinds, optional)
        if kwargs.get("peak_memory_mb") is not None:
            kwargs["peak_memory_mb"] = float(kwargs["peak_memory_mb"])
        if not all(isinstance(t, str) for t in kwargs.get("applicable_tasks", [])):
            raise InvalidResult("field 'applicable_tasks' must be a list of task slugs")
        known = set(cls._sections) | set(REQUIRED_KEYS) | {"schema_version", "_path"}
        kwargs["extra"] = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to the file (``path`` is not part of it)."""
        out: dict[str, Any] = {"schema": self.schema, "schema_version": self.schema_version,
                               "created": self.created, "model": self.model, "model_display": self.model_display,
                               "weights": self.weights.to_dict(), "identity_token": self.identity_token}
        for f in dataclasses.fields(self):
            if f.name in out or f.name in ("extra", "path"):
                continue
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, MetricValues | WeightsRecord) else value
        out.update(self.extra)
        return out


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A parsed result of any known schema as a v2 dict (unchanged when it already is v2)."""
    schema = data.get("schema")
    if schema == SCHEMA:
        return data
    if schema == SCHEMA_V1:
        metric = dict(data.get("metric") or {}) if isinstance(data.get("metric"), dict) else data.get("metric")
        if isinstance(metric, dict):
            metric.setdefault("paper", None)
        return {**data, "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "identity_token": None,
                "metric": metric}
    raise InvalidResult(f"schema {schema!r} is not a copernicus-bench result ({SCHEMA} or {SCHEMA_V1})")


def migrate_file(path: str | os.PathLike) -> bool:
    """Rewrite one result file in the current schema (atomically); False when it already was current."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, dict) and data.get("schema") == SCHEMA:
        return False
    atomic_write_json(path, ResultRecord.from_dict(data).to_dict())
    return True


def override_hash(overrides: dict[str, Any]) -> str:
    """Hash of the overrides that change a result (empty string when there are none)."""
    if not overrides:
        return ""
    blob = json.dumps(overrides, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:8]


@dataclass(frozen=True)
class ResultKey:
    model: str
    weights_sha256: str
    task: str
    tier: str
    protocol: str
    seed: int
    override_hash: str = ""

    def filename(self) -> str:
        safe_model = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.model)
        parts = [safe_model, self.weights_sha256[:8], self.task, self.tier, self.protocol, f"seed{self.seed}"]
        if self.override_hash:
            parts.append(f"o{self.override_hash}")
        return "__".join(parts) + ".json"

    @classmethod
    def of(cls, result: dict[str, Any] | ResultRecord) -> ResultKey:
        if isinstance(result, ResultRecord):
            return result.key
        return cls(model=result["model"], weights_sha256=result["weights"]["sha256"], task=result["task"],
                   tier=result["tier"], protocol=result["protocol"], seed=int(result["seed"]),
                   override_hash=result.get("override_hash", ""))


def ensure_writable(out_dir: str | os.PathLike) -> Path:
    """Create ``out_dir`` if needed and check it is writable; one clear error otherwise."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CbenchError(f"results folder {out} is not writable ({exc.strerror}); pass a writable --out DIR") from None
    return out


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write JSON to a temporary file in the same folder, fsync, then rename into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir() and not path.is_symlink():  # a folder squatting the name: set aside, never block a redo
        aside = path.with_name(f"{path.name}.unreadable-{os.getpid()}")
        os.replace(path, aside)
        warnings.warn(f"{path} was a folder, not a result file; moved it to {aside} and wrote the result",
                      stacklevel=2)
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False, default=_json_default)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def result_path(out_dir: str | os.PathLike, key: ResultKey) -> Path:
    return Path(out_dir) / key.filename()


def write_result(out_dir: str | os.PathLike, result: ResultRecord | dict[str, Any]) -> Path:
    """Validate a record and write it atomically under its identity's file name."""
    record = result if isinstance(result, ResultRecord) else ResultRecord.from_dict({"schema": SCHEMA, **result})
    return atomic_write_json(result_path(out_dir, record.key), record.to_dict())


def read_result(path: str | os.PathLike) -> ResultRecord | None:
    """One result file, or None with a warning naming the file and what is wrong with it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        record = ResultRecord.from_dict(data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        warnings.warn(f"skipping {path}: not a readable JSON file ({exc.__class__.__name__}); delete it or "
                      "re-run the job to redo it", stacklevel=2)
        return None
    except InvalidResult as exc:
        warnings.warn(f"skipping {path}: not a valid copernicus-bench result ({exc}); re-run the job to "
                      "redo it", stacklevel=2)
        return None
    record.path = str(path)
    return record


def load_results(results_dir: str | os.PathLike) -> list[ResultRecord]:
    """All valid results under ``results_dir`` (recursively); for two files with the same identity the
    newest (by ``created``, then mtime) wins and a warning names both."""
    root = Path(results_dir)
    if not root.is_dir():
        raise CbenchError(f"results folder {root} does not exist; pass --results DIR with cbench run output")
    by_key: dict[ResultKey, ResultRecord] = {}
    for path in sorted(root.rglob("*.json")):
        if path.name.startswith("."):
            continue
        if not path.is_file():
            warnings.warn(f"skipping {path}: a folder (or special file) named like a result, not a result "
                          "file; remove or rename it", stacklevel=2)
            continue
        data = read_result(path)
        if data is None:
            continue
        key = data.key
        old = by_key.get(key)
        if old is not None:
            newer, older = sorted([data, old], key=_recency, reverse=True)
            warnings.warn(f"two results for the same key: {newer.path} (kept, newest) and "
                          f"{older.path} (ignored)", stacklevel=2)
            data = newer
        by_key[key] = data
    return list(by_key.values())


def _recency(result: ResultRecord) -> tuple[str, float]:
    try:
        mtime = os.path.getmtime(result.path or "")
    except OSError:
        mtime = 0.0
    return (str(result.created), mtime)
