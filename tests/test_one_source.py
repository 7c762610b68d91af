"""One source for each fact: the task cards' band statistics, OLCI scale factors, wavelengths and class
names are not retyped in the package's code (read them from the card). Fails naming the file and the fact."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

from copernicus_bench.tasks import list_cards

REPO = Path(__file__).resolve().parents[1]
CODE_DIRS = ("copernicus_bench", "tasks", "baselines", "models")
RUN = 4  # this many consecutive card values retyped in order count as a restated fact


def card_facts() -> dict[tuple, str]:
    """Every window of RUN consecutive values of a card list → where it comes from."""
    facts: dict[tuple, str] = {}
    for card in list_cards():
        norm = card.normalization
        lists = {"classes": card.classes, "scale_factors": norm.scale_factors or (),
                 "wavelength_nm": card.wavelengths_nm, "bandwidth_nm": card.bandwidths_nm}
        for name in ("mean", "std"):
            for i, per_date in enumerate(getattr(norm, name) or ()):
                lists[f"normalization.{name}[{i}]"] = per_date
        for name, values in lists.items():
            values = tuple(v for v in values if v is not None)
            for i in range(len(values) - RUN + 1):
                window = values[i:i + RUN]
                if len(set(window)) > 1:  # runs of one repeated value are not distinctive
                    facts.setdefault(window, f"{card.slug}: {name}")
    return facts


def literal_runs(source: str) -> list[tuple]:
    """Consecutive number / string literals of a source file (separated only by commas and brackets)."""
    runs, current = [], []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NUMBER:
            current.append(float(eval(tok.string)))  # noqa: S307 - a number literal (0o755, 1e-3, 1_000)
        elif tok.type == tokenize.STRING and tok.string[0] in "\"'":
            current.append(tok.string[1:-1])
        elif tok.type in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT) or tok.string in ",[]()":
            continue
        else:
            if len(current) >= RUN:
                runs.append(tuple(current))
            current = []
    if len(current) >= RUN:
        runs.append(tuple(current))
    return runs


def restated(path: Path, facts: dict[tuple, str]) -> set[str]:
    hits = set()
    for run in literal_runs(path.read_text()):
        for i in range(len(run) - RUN + 1):
            if run[i:i + RUN] in facts:
                hits.add(facts[run[i:i + RUN]])
    return hits


def test_finds_a_restated_fact(tmp_path):
    card = list_cards()[1]  # Cloud-S3
    f = tmp_path / "x.py"
    f.write_text(f"SCALE = {list(card.normalization.scale_factors)!r}\n")
    assert restated(f, card_facts()) == {"cloud-s3: scale_factors"}
    f.write_text("SCALE = card.normalization.scale_factors\nX = [0.1, 0.2, 0.3, 0.4]\n")
    assert restated(f, card_facts()) == set()


def test_no_card_fact_is_retyped_in_code():
    facts = card_facts()
    found = {str(p.relative_to(REPO)): sorted(hits) for d in CODE_DIRS for p in sorted((REPO / d).rglob("*.py"))
             if (hits := restated(p, facts))}
    assert not found, f"facts of the task cards retyped in code (read them from the card instead): {found}"
