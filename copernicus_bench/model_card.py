"""Model cards: what an encoder is, where its weights and pretraining data come from, and how to cite it.

Every adapter (built-in or plug-in) declares one through :meth:`EncoderAdapter.model_card`; ``cbench models
--card NAME`` prints it and the leaderboard carries it beside each column (filterable on ``overlap``).
Facts we could not verify offline are written as such, never guessed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

#: does the pretraining data overlap a Copernicus-Bench source?
#: ``none`` = no pretraining; ``possible`` = same missions / global sampling, not checked image by image;
#: ``yes`` = known to contain benchmark images or regions; ``unknown`` = not declared.
Overlap = Literal["none", "possible", "yes", "unknown"]
OVERLAP_VALUES = ("none", "possible", "yes", "unknown")
UNVERIFIED = "not verified offline"


@dataclass(frozen=True)
class ModelCard:
    name: str
    architecture: str
    parameters: str  # the declared size; the leaderboard's cost columns count each built encoder
    code_license: str
    weights_license: str
    pretraining_data: str
    pretraining_sensors: tuple[str, ...]
    citation: str
    release: str
    overlap: Overlap = "unknown"
    overlap_note: str = ""
    url: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.overlap not in OVERLAP_VALUES:
            raise ValueError(f"model card {self.name}: overlap must be one of {OVERLAP_VALUES}, got {self.overlap!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pretraining_sensors"] = list(self.pretraining_sensors)
        d["notes"] = list(self.notes)
        return d

    def lines(self) -> list[tuple[str, str]]:
        """(field, text) pairs for printing."""
        d = self.to_dict()
        out = [(k.replace("_", " "), ", ".join(v) if isinstance(v, list) else str(v)) for k, v in d.items()
               if v not in ("", [], None)]
        return out


def undeclared(name: str) -> ModelCard:
    """The card of an adapter that declares none (third-party code written before cards existed)."""
    return ModelCard(name=name, architecture="not declared", parameters="not declared",
                     code_license="not declared", weights_license="not declared", pretraining_data="not declared",
                     pretraining_sensors=(), citation="not declared", release="not declared", overlap="unknown",
                     overlap_note="the adapter declares no model card")
