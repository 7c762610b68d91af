"""The results store: one JSON file per result identity, written atomically.

A result's identity (file name and skip key) is (model, weights hash, task, tier, protocol, seed, and a hash
of any other override) — shared/conventions.md. The file carries the metric, the best epoch, the full
resolved config, the task-card version, weights sha256, split-file checksums, package versions, git commit,
device, timings and peak memory, so a number can always be traced to how it was made.

Schema ``copernicus-bench/result/v1`` (keys every reader may rely on)::

    schema, created, model, weights{source,sha256,file,label}, task, task_version, task_digest, tier, protocol,
    seed, overrides{...}, override_hash, sample_data (bool), metric{name,higher_is_better,global,per_batch,
    unit}, best_epoch, val_metric, applicable_tasks[...], input_adaptation[...], pipeline{...}, config{...},
    split_checksums{...}, versions{...}, git_commit, device, timings{encode_s,train_s,total_s},
    peak_memory_mb, cache{...}
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CbenchError

SCHEMA = "copernicus-bench/result/v1"
REQUIRED_KEYS = ("schema", "model", "weights", "task", "tier", "protocol", "seed", "metric", "applicable_tasks")


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
    def of(cls, result: dict[str, Any]) -> ResultKey:
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=False, default=_json_default)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
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


def write_result(out_dir: str | os.PathLike, result: dict[str, Any]) -> Path:
    """Validate the minimum schema and write one result atomically under its identity's file name."""
    result = {"schema": SCHEMA, **result}
    missing = [k for k in REQUIRED_KEYS if k not in result]
    if missing:
        raise ValueError(f"result lacks keys {missing}")
    return atomic_write_json(result_path(out_dir, ResultKey.of(result)), result)


def read_result(path: str | os.PathLike) -> dict[str, Any] | None:
    """One result file, or None with a warning naming the file when it is truncated or foreign."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        warnings.warn(f"skipping {path}: not valid JSON ({exc.__class__.__name__})", stacklevel=2)
        return None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or any(k not in data for k in REQUIRED_KEYS):
        warnings.warn(f"skipping {path}: not a copernicus-bench result ({SCHEMA})", stacklevel=2)
        return None
    data["_path"] = str(path)
    return data


def load_results(results_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """All valid results under ``results_dir`` (recursively); for two files with the same identity the
    newest (by ``created``, then mtime) wins and a warning names both."""
    root = Path(results_dir)
    if not root.is_dir():
        raise CbenchError(f"results folder {root} does not exist; pass --results DIR with cbench run output")
    by_key: dict[ResultKey, dict[str, Any]] = {}
    for path in sorted(root.rglob("*.json")):
        if path.name.startswith("."):
            continue
        data = read_result(path)
        if data is None:
            continue
        key = ResultKey.of(data)
        old = by_key.get(key)
        if old is not None:
            newer, older = sorted([data, old], key=_recency, reverse=True)
            warnings.warn(f"two results for the same key: {newer['_path']} (kept, newest) and "
                          f"{older['_path']} (ignored)", stacklevel=2)
            data = newer
        by_key[key] = data
    return list(by_key.values())


def _recency(result: dict[str, Any]) -> tuple[str, float]:
    try:
        mtime = os.path.getmtime(result["_path"])
    except OSError:
        mtime = 0.0
    return (str(result.get("created", "")), mtime)
