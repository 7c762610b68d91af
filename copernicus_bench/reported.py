"""Reported (published, not measured) Copernicus-Bench numbers: the paper's columns and other papers'.

The Copernicus-FM paper's seven columns (supervised ViT-S/16 and ViT-B/16, random ViT-B/16, SoftCon, CROMA,
DOFA, Copernicus-FM; arXiv:2503.11849, results table of Copernicus-Bench, mean ± std of 3 runs) come from
the task cards' ``paper:`` entries; other publications from ``reported.yaml`` beside this module or from
files passed with ``cbench leaderboard --reported FILE`` (format documented in that file). Each column keeps
its source; the leaderboard shows them as *reported* columns, never ranked or averaged with measured ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .errors import CbenchError

if TYPE_CHECKING:
    from .cards import TaskCard

PAPER_SOURCE = ("Wang et al., Towards a Unified Copernicus Foundation Model for Earth Vision, ICCV 2025 "
                "(arXiv:2503.11849), Copernicus-Bench results table (frozen encoder, mean ± std of 3 runs)")
PAPER_DISPLAY = {"supervised-vit-s16": "Sup. ViT-S/16", "supervised-vit-b16": "Sup. ViT-B/16",
                 "random": "Random ViT-B/16", "softcon": "SoftCon", "croma": "CROMA", "dofa": "DOFA",
                 "copernicus-fm": "Copernicus-FM"}
BUILTIN_FILE = Path(__file__).with_name("reported.yaml")


@dataclass
class ReportedColumn:
    model: str
    display: str
    source: str
    scores: dict[str, tuple[float, float | None]] = field(default_factory=dict)  # task -> (mean, std)
    metric: str = "per_batch"


def paper_columns(cards: Sequence[TaskCard]) -> list[ReportedColumn]:
    """The Copernicus-FM paper's columns, from the cards (card order of first appearance)."""
    cols: dict[str, ReportedColumn] = {}
    for card in cards:
        for model, res in card.paper.items():
            col = cols.setdefault(model, ReportedColumn(model=model, display=PAPER_DISPLAY.get(model, model),
                                                        source=PAPER_SOURCE))
            col.scores[card.slug] = (float(res.mean), float(res.std))
    return list(cols.values())


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def load_reported(path: str | Path, known_tasks: Sequence[str]) -> list[ReportedColumn]:
    """Columns of one reported-numbers file; a bad entry is one error naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text()
        root = yaml.compose(text)
    except OSError as exc:
        raise CbenchError(f"--reported {path}: cannot read ({exc.strerror}); pass an existing file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise CbenchError(f"{where}: not valid YAML; fix the file (format: see {BUILTIN_FILE.name})") from None

    def fail(node: yaml.Node, msg: str) -> CbenchError:
        return CbenchError(f"{path}:{_line(node)}: {msg}; fix the file (format: see {BUILTIN_FILE.name})")

    if root is None:
        return []
    if not isinstance(root, yaml.MappingNode):
        raise fail(root, "expected a mapping with 'sources'")
    top = {k.value: v for k, v in root.value}
    sources = top.get("sources")
    if sources is None:
        raise fail(root, "missing 'sources'")
    if not isinstance(sources, yaml.SequenceNode):
        raise fail(sources, "'sources' must be a list")
    out: list[ReportedColumn] = []
    for entry in sources.value:
        if not isinstance(entry, yaml.MappingNode):
            raise fail(entry, "each source must be a mapping (model, display, source, scores)")
        e = {k.value: v for k, v in entry.value}
        for key in ("model", "source", "scores"):
            if key not in e:
                raise fail(entry, f"source entry lacks '{key}'")
        col = ReportedColumn(model=str(e["model"].value), display=str(e.get("display", e["model"]).value),
                             source=str(e["source"].value),
                             metric=str(e["metric"].value) if "metric" in e else "per_batch")
        if col.metric not in ("global", "per_batch"):
            raise fail(e["metric"], f"metric {col.metric!r} must be 'global' or 'per_batch'")
        if not isinstance(e["scores"], yaml.MappingNode):
            raise fail(e["scores"], "'scores' must map task slugs to {mean, std}")
        for knode, vnode in e["scores"].value:
            task = knode.value
            if task not in known_tasks:
                raise fail(knode, f"unknown task {task!r} (known: {', '.join(known_tasks)})")
            if not isinstance(vnode, yaml.MappingNode):
                raise fail(vnode, f"task {task}: expected {{mean: number, std: number or null}}")
            v = {k.value: n for k, n in vnode.value}
            mean = _number(v.get("mean"), allow_null=False)
            std = _number(v.get("std"), allow_null=True)
            if mean is None or std == "bad":
                raise fail(vnode, f"task {task}: mean must be a finite number and std a number >= 0 or null")
            col.scores[task] = (mean, std)  # type: ignore[assignment]
        out.append(col)
    return out


def _number(node: yaml.Node | None, allow_null: bool) -> float | None | str:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
        return None if allow_null else None
    if not isinstance(node, yaml.ScalarNode):
        return "bad" if allow_null else None
    try:
        value = float(yaml.safe_load(node.value))
    except (TypeError, ValueError):
        return "bad" if allow_null else None
    if not math.isfinite(value) or (allow_null and value < 0):
        return "bad" if allow_null else None
    return value


def reported_columns(cards: Sequence[TaskCard], files: Sequence[str | Path] = ()) -> list[ReportedColumn]:
    """The paper's columns, then the built-in file's, then each of ``files``."""
    known = [c.slug for c in cards]
    cols = paper_columns(cards) + load_reported(BUILTIN_FILE, known)
    for f in files:
        cols += load_reported(f, known)
    return cols
