"""The encoder contract: what flows between loader, model adapter and probe (docs/conventions.md).

* A **loader** returns physical values (``image`` (C,H,W) or (T,C,H,W), ``target``, ``meta`` (4,) or (T,4)).
* A model's **adapter** declares, per task card and tier, an :class:`InputPipeline` (plain data, hashed
  into the cache key) and builds a :class:`TaskEncoder` for the task.
* The **runner** applies the pipeline, calls the encoder one date at a time with ``(B,C,H,W)`` and meta
  ``(B,4)``, and trains the probe on :class:`EncoderOutput`.

Third-party encoders implement :class:`EncoderAdapter` and register a factory in the entry-point group
``copernicus_bench.models``; the factory is called with keyword arguments (at least ``weights_dir`` and
``seed``, plus any ``--model-args``) and returns the adapter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from .cards import TaskCard
    from .model_card import ModelCard

PIPELINE_VERSION = "1"
Tier = Literal["full", "smoke"]
SMOKE_MAX_RESOLUTION = 64
#: Smoke tier: at most this many tokens per side (only AQ's 4-px kernel reaches it: 32 px instead of 56, so
#: its UPerNet runs at 32² instead of 56², a third of the cost; every other task stays near 64 px).
SMOKE_MAX_TOKENS = 8
HeadKind = Literal["ln-bn-linear", "linear"]


@dataclass(frozen=True)
class InputPipeline:
    """How a model wants a task's physical input: plain data, so it hashes into the cache key.

    Applied in this order (the reference normalises first, then resizes):

    1. ``quantile_clip``: clip each image and band to its own (low, high) quantiles (SoftCon on S1);
    2. normalise with the per-date, per-card-band ``mean``/``std``: ``meanstd`` → (x−μ)/σ; ``softcon`` →
       (x − (μ−2σ)) / 4σ clipped to [0, 1]; ``none`` → unchanged;
    3. gather ``slots``: model channel i takes card band ``slots[i]``; ``None`` is a zero channel (in
       normalised units); repeated indices duplicate a band;
    4. resize to ``resolution`` × ``resolution`` (bilinear, ``align_corners=True`` as Kornia's Resize).

    Every padding, duplication or dropped band is spelled out in ``adaptations`` and lands in the result's
    ``input_adaptation``.
    """

    slots: tuple[int | None, ...]
    norm: Literal["meanstd", "softcon", "none"]
    mean: tuple[tuple[float, ...], ...] | None
    std: tuple[tuple[float, ...], ...] | None
    resolution: int
    quantile_clip: tuple[float, float] | None = None
    adaptations: tuple[str, ...] = ()
    version: str = PIPELINE_VERSION

    def __post_init__(self) -> None:
        if self.norm != "none" and (self.mean is None or self.std is None):
            raise ValueError(f"InputPipeline: norm '{self.norm}' needs mean and std")

    def digest(self) -> str:
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def num_channels(self) -> int:
        return len(self.slots)

    def apply(self, image: Tensor, date: int = 0) -> Tensor:
        """Turn a physical batch (B, C_card, H, W) into the model's input (B, C_model, R, R)."""
        x = image.float()
        if x.ndim != 4:
            raise ValueError(f"InputPipeline.apply expects (B,C,H,W), got {tuple(x.shape)}")
        if self.quantile_clip is not None:
            lo_q, hi_q = self.quantile_clip
            flat = x.flatten(2)
            lo = torch.quantile(flat, lo_q, dim=2, keepdim=True).unsqueeze(-1)
            hi = torch.quantile(flat, hi_q, dim=2, keepdim=True).unsqueeze(-1)
            x = torch.maximum(torch.minimum(x, hi), lo)
        if self.norm != "none":
            assert self.mean is not None and self.std is not None
            mean = torch.tensor(self.mean[date], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std[date], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            if self.norm == "meanstd":
                x = (x - mean) / std
            else:  # softcon
                low = mean - 2 * std
                x = ((x - low) / (4 * std)).clamp(0.0, 1.0)
        channels = [x[:, i] if i is not None else torch.zeros_like(x[:, 0]) for i in self.slots]
        x = torch.stack(channels, dim=1)
        if x.shape[-2:] != (self.resolution, self.resolution):
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=True)
        return x


def default_pipeline(card: TaskCard, tier: Tier, patch_multiple: int | None = None) -> InputPipeline:
    """The card's own pipeline: its band mean/std (or none), all bands in card order, the card resolution."""
    norm = card.normalization
    patch = patch_multiple or card.kernel_size
    return InputPipeline(
        slots=tuple(range(card.num_bands)),
        norm="meanstd" if norm.mean is not None else "none",
        mean=norm.mean,
        std=norm.std,
        resolution=tier_resolution(card.resolution, tier, patch),
    )


def tier_resolution(resolution: int, tier: Tier, patch: int) -> int:
    """Full tier: ``resolution``. Smoke tier: capped near 64 px and at ``SMOKE_MAX_TOKENS`` patches per side,
    rounded to a multiple of ``patch``."""
    if tier == "full":
        return resolution
    capped = min(resolution, SMOKE_MAX_RESOLUTION, SMOKE_MAX_TOKENS * patch)
    return max(patch, int(round(capped / patch)) * patch)


@dataclass
class EncoderOutput:
    """What an encoder returns for one date: a pooled embedding and, for dense tasks, four maps."""

    pooled: Tensor  # (B, D)
    maps: list[Tensor] | None = None  # 4 × (B, D, h, w)


@dataclass(frozen=True)
class WeightsInfo:
    """Where an encoder's weights came from; ``label`` is the leaderboard column's weights source."""

    source: Literal["released", "user", "random-init"]
    sha256: str
    file: str | None = None
    #: for a model whose weights are several files (SoftCon: one per sensor), the hash of the whole set,
    #: so all its tasks share one leaderboard column; ``sha256`` stays the file this task used
    set_sha256: str | None = None

    @property
    def label(self) -> str:
        if self.source == "user":
            return f"user:{(self.set_sha256 or self.sha256)[:8]}"
        return self.source


class TaskEncoder(nn.Module, ABC):
    """A frozen encoder built for one task. Plain ``nn.Module``: ``forward`` takes one date."""

    embed_dim: int
    weights: WeightsInfo

    @abstractmethod
    def forward(self, x: Tensor, meta: Tensor, want_maps: bool = False) -> EncoderOutput:
        """``x`` (B,C,R,R) from the pipeline; ``meta`` (B,4) = [lon, lat, days since 1970, area km²]."""


class EncoderAdapter(ABC):
    """One model's entry in the harness: applicability, input pipeline and encoder per task."""

    #: registry name, e.g. ``copernicus-fm``
    name: str = ""
    #: one line for ``cbench models``
    description: str = ""
    #: the probe head fed by the pooled embedding (conventions: ``ln-bn-linear`` default, or ``linear``)
    head: HeadKind = "ln-bn-linear"

    def applicability(self, card: TaskCard) -> str | None:
        """None when the model applies to the task, else the reason it does not (shown as "-")."""
        return None

    def input_pipeline(self, card: TaskCard, tier: Tier) -> InputPipeline:
        """The declared input pipeline; the default is the card's normalisation and resolution."""
        return default_pipeline(card, tier)

    @abstractmethod
    def build(self, card: TaskCard, pipeline: InputPipeline, seed: int) -> TaskEncoder:
        """A frozen encoder for ``card`` that accepts ``pipeline``'s output. Raises on missing weights."""

    def weights_status(self) -> str:
        """One phrase for ``cbench models``: e.g. ``released (present)``, ``missing: FILE``, ``random``."""
        return "n/a"

    def identity_token(self, card: TaskCard, pipeline: InputPipeline, seed: int) -> str | None:
        """A cheap string naming the weights :meth:`build` would use for ``card`` and ``seed``, computed
        without building the model (e.g. the checkpoint file's sha256, or the seed for random weights).

        The runner compares it with the token stored in an existing result to skip a finished job before any
        model is built. ``None`` (the default, and for any weights it cannot name cheaply) means unknown:
        the runner then builds the encoder first, as before.
        """
        return None

    def options(self) -> dict:
        """Constructor options that change the encoder (hashed into the result identity)."""
        return {}

    def model_card(self) -> ModelCard:
        """Architecture, licences, pretraining data and sensors, citation, release and benchmark overlap
        (``cbench models --card NAME``); the default says the adapter declares none."""
        from .model_card import undeclared

        return undeclared(self.name)


def random_init_token(seed: int, *parts: object) -> str:
    """:meth:`EncoderAdapter.identity_token` of weights drawn from ``seed`` (the torch version is part of it:
    another torch may draw other numbers)."""
    return "random-init:" + ":".join(str(p) for p in (torch.__version__, int(seed), *parts))


def state_dict_sha256(module: nn.Module) -> str:
    """sha256 over a module's state dict (names, shapes, dtypes and bytes), in key order."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def tokens_to_map(tokens: Tensor) -> Tensor:
    """(B, N, D) patch tokens (no cls) on a square grid → (B, D, √N, √N)."""
    b, n, d = tokens.shape
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"{n} patch tokens are not a square grid")
    return tokens.transpose(1, 2).reshape(b, d, side, side)
