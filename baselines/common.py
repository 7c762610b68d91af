"""Shared helpers of the baseline adapters (random ViT, DOFA, SoftCon, CROMA).

* Sentinel-2 band layouts and :func:`band_slots`, which maps a card's bands onto a model's fixed layout
  (zero slots, duplicates, dropped bands — each spelled out for ``input_adaptation``);
* :func:`block_indices`: the paper's feature layers, spread evenly for tiny test depths;
* :class:`FrozenEncoder`: a :class:`TaskEncoder` that stays frozen and in eval mode;
* :func:`load_checked`: strict-in-spirit state-dict loading (docs/conventions.md: every encoder key, only
  the allowed head keys and listed pretraining-only keys ignored, anything else fails naming the keys);
* :func:`cached_checkpoint`: one loaded checkpoint per process (the runner builds one encoder per task).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from copernicus_bench import paths
from copernicus_bench.encoder import (
    EncoderAdapter,
    InputPipeline,
    TaskEncoder,
    WeightsInfo,
    random_init_token,
)
from copernicus_bench.errors import CbenchError, NotApplicableError
from copernicus_bench.weights import (
    WeightsSpec,
    check_keys,
    ensure_weights,
    file_sha256,
    find_weights,
    load_checkpoint,
    weights_info,
)

if TYPE_CHECKING:
    from copernicus_bench.cards import TaskCard

#: Sentinel-2 L1C, 13 bands in the reference's (SSL4EO) order.
S2_13: tuple[str, ...] = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10",
                          "B11", "B12")
#: Sentinel-2 without the cirrus band B10 (CROMA's optical encoder, BigEarthNet-S2).
S2_12: tuple[str, ...] = tuple(b for b in S2_13 if b != "B10")
#: Sentinel-1 GRD dual polarisation.
S1_2: tuple[str, ...] = ("VV", "VH")

#: Keys of a classification head: neither required nor used (probes bring their own).
HEAD_PREFIXES: tuple[str, ...] = ("fc_norm.", "head.")

#: Paper's feature layers of a 12-block ViT-B (0-based; docs/models.md, "Baselines").
VIT_B_LAYERS: tuple[int, ...] = (3, 5, 7, 11)


def canonical_band(name: str) -> str:
    """``B1``/``b01``/``B8a``/``B08A`` → ``B01``/``B8A``; polarisations upper-cased; others unchanged."""
    n = name.strip().upper()
    m = re.fullmatch(r"B0?(\d{1,2})(A?)", n)
    if m:
        num, a = m.groups()
        return "B8A" if a else f"B{int(num):02d}"
    return n


def band_slots(card_bands: Sequence[str], layout: Sequence[str],
               substitutes: dict[str, str] | None = None,
               model: str = "model") -> tuple[tuple[int | None, ...], tuple[str, ...]]:
    """Place a card's bands into a model's fixed band ``layout``.

    Returns ``(slots, adaptations)``: ``slots[i]`` is the card index feeding model channel ``layout[i]``
    (``None`` = zero channel); ``substitutes`` maps a missing layout band to a card band that is duplicated
    into it (CROMA's LCZ: B01 ← B02, B09 ← B8A). Card bands the layout lacks are dropped. Every zero slot,
    duplicate and drop is described in ``adaptations``.
    """
    substitutes = substitutes or {}
    canon = [canonical_band(b) for b in card_bands]
    index = {b: i for i, b in enumerate(canon)}
    slots: list[int | None] = []
    adaptations: list[str] = []
    for pos, band in enumerate(layout):
        if band in index:
            slots.append(index[band])
        elif band in substitutes and substitutes[band] in index:
            slots.append(index[substitutes[band]])
            adaptations.append(f"{model} channel {pos} ({band}) duplicates card band {substitutes[band]} "
                               f"(the card has no {band})")
        else:
            slots.append(None)
            adaptations.append(f"{model} channel {pos} ({band}) is a zero channel (the card has no {band})")
    used = {s for s in slots if s is not None}
    for i, b in enumerate(card_bands):
        if i not in used:
            adaptations.append(f"card band {b} dropped ({model} has no {canonical_band(b)} input)")
    return tuple(slots), tuple(adaptations)


def block_indices(depth: int, full: Sequence[int] = VIT_B_LAYERS, full_depth: int = 12) -> tuple[int, ...]:
    """The paper's feature layers for a ``full_depth`` model; for another (tiny) depth, the same layers
    spread evenly over the last blocks: layer ``l`` → ``round((l+1)·depth/full_depth) − 1`` (≥ 0)."""
    if depth == full_depth:
        return tuple(full)
    return tuple(max(0, min(depth - 1, round((i + 1) * depth / full_depth) - 1)) for i in full)


def freeze(module: nn.Module) -> nn.Module:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


class FrozenEncoder(TaskEncoder):
    """A frozen :class:`TaskEncoder`: eval mode whatever ``train()`` asks, no gradients."""

    def train(self, mode: bool = True) -> FrozenEncoder:  # noqa: ARG002 - always eval
        return super().train(False)

    def _finish(self) -> None:
        freeze(self)


def timm_vit_tokens(vit: nn.Module, x: Tensor, indices: Iterable[int],
                    norm: bool = False) -> tuple[Tensor, list[Tensor]]:
    """Patch tokens of a timm ``VisionTransformer`` through timm's own ``forward_features`` /
    ``forward_intermediates``.

    Returns the last block's patch tokens (B, N, D) through ``vit.norm`` (an identity for ``global_pool="avg"``
    models such as ``random``) and the patch tokens after each block in ``indices`` (through ``vit.norm``
    when ``norm``, as DINOv2's ``get_intermediate_layers(norm=True)``). Prefix (cls/register) tokens are removed.
    Bit-identical to running the blocks one by one (``tests/test_library_equivalents.py``).
    """
    p = vit.num_prefix_tokens
    wanted = list(indices)
    if not wanted:  # timm's forward_intermediates needs at least one index
        return vit.forward_features(x)[:, p:], []
    last, feats = vit.forward_intermediates(x, indices=wanted, norm=norm, output_fmt="NLC")
    by_block = dict(zip(sorted(set(wanted)), feats, strict=True))  # timm returns them in block order
    return last[:, p:], [by_block[i] for i in wanted]


# --------------------------------------------------------------------------- checkpoints
_CKPT_CACHE: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
_CKPT_CACHE_MAX = 2


def cached_checkpoint(path: str | os.PathLike, loader: Callable[[Path], dict[str, Any]] | None = None
                      ) -> dict[str, Any]:
    """Load a checkpoint once per process (keyed by path and sha256); ``weights_only=True`` loading."""
    path = Path(path)
    key = (str(path.resolve()), file_sha256(path))
    if key in _CKPT_CACHE:
        _CKPT_CACHE.move_to_end(key)
        return _CKPT_CACHE[key]
    sd = (loader or load_checkpoint)(path)
    _CKPT_CACHE[key] = sd
    while len(_CKPT_CACHE) > _CKPT_CACHE_MAX:
        _CKPT_CACHE.popitem(last=False)
    return sd


def unwrap_state_dict(obj: dict[str, Any], wrappers: Sequence[str] = ("model", "state_dict")) -> dict[str, Any]:
    """A raw state dict, or the one stored under a usual wrapper key."""
    for k in wrappers:
        if k in obj and isinstance(obj[k], dict) and not isinstance(obj[k], Tensor):
            return obj[k]
    return obj


def load_checked(module: nn.Module, state_dict: dict[str, Tensor], path: str | os.PathLike,
                 optional_prefixes: Sequence[str] = HEAD_PREFIXES,
                 ignored_prefixes: Sequence[str] = ()) -> None:
    """Load ``state_dict`` into ``module``; fail naming any missing or unexpected key.

    ``optional_prefixes`` (head keys) may be absent from the file and are dropped when present;
    ``ignored_prefixes`` (pretraining-only parts) are dropped from the file.
    """
    def starts(k: str, prefixes: Sequence[str]) -> bool:
        return any(k.startswith(p) for p in prefixes)

    model_keys = set(module.state_dict())
    sd = {k: v for k, v in state_dict.items() if not starts(k, ignored_prefixes)}
    sd = {k: v for k, v in sd.items() if not (starts(k, optional_prefixes) and k not in model_keys)}
    missing = sorted(k for k in model_keys - set(sd) if not starts(k, optional_prefixes))
    unexpected = sorted(set(sd) - model_keys)
    check_keys(path, missing, unexpected)
    own = module.state_dict()
    bad = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in sd.items()
           if tuple(own[k].shape) != tuple(v.shape)]
    if bad:
        raise CbenchError(f"checkpoint {path} does not match the model: shape mismatch {bad[:4]}"
                          f"{' (+more)' if len(bad) > 4 else ''}; use the released file or a state dict "
                          "of the same architecture")
    module.load_state_dict(sd, strict=False)


def random_weights(module: nn.Module) -> WeightsInfo:
    from copernicus_bench.encoder import state_dict_sha256

    return WeightsInfo("random-init", state_dict_sha256(module))


def seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """Build a module right after ``torch.manual_seed(seed)`` (the reference's ``seed_everything`` before
    model creation), without disturbing the caller's global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


# --------------------------------------------------------------------------- adapters with released weights
class PretrainedAdapter(EncoderAdapter):
    """Shared machinery of the baselines with released weights (DOFA, SoftCon, CROMA).

    Weights come from the weights folder under the conventions' file names, downloaded once when absent
    (:func:`~copernicus_bench.weights.ensure_weights`), loaded once per process; ``random_init`` builds the
    same architecture with weights drawn from the run's seed instead (labelled ``random-init``). Built
    modules are cached per architecture key (and seed when random) so the skip-key hash and the build share
    one load.

    Subclasses set ``specs`` (variant → :class:`WeightsSpec`) and implement :meth:`variant`,
    :meth:`arch_key`, :meth:`make_module`, :meth:`load_into` and :meth:`make_encoder`.
    """

    specs: dict[str, WeightsSpec] = {}
    configs: dict[str, dict[str, Any]] = {}

    def __init__(self, weights_dir: str | os.PathLike | None = None, random_init: bool = False,
                 config: str = "base") -> None:
        if config not in self.configs:
            raise CbenchError(f"--model-args config={config!r}: unknown for {self.name}; "
                              f"choose one of {sorted(self.configs)}")
        self.weights_dir = paths.weights_dir(weights_dir)
        self.random_init = bool(random_init)
        self.config = config
        self.arch = self.configs[config]
        self._built: OrderedDict[tuple, tuple[nn.Module, WeightsInfo]] = OrderedDict()

    # -- subclass hooks
    def variant(self, card: TaskCard) -> str:
        return next(iter(self.specs))

    def arch_key(self, card: TaskCard, pipeline: InputPipeline) -> tuple:
        return (pipeline.resolution, pipeline.num_channels)

    def make_module(self, card: TaskCard, pipeline: InputPipeline) -> nn.Module:
        raise NotImplementedError

    def load_into(self, module: nn.Module, checkpoint: dict[str, Any], path: Path, card: TaskCard) -> None:
        raise NotImplementedError

    def make_encoder(self, module: nn.Module, card: TaskCard, pipeline: InputPipeline,
                     weights: WeightsInfo) -> TaskEncoder:
        raise NotImplementedError

    def checkpoint_path(self, card: TaskCard) -> Path:
        """The local file for ``card``'s variant (downloaded once when absent)."""
        spec = self.specs[self.variant(card)]
        return ensure_weights(spec, self.weights_dir, model=self.name, others=self.weight_files())

    def weight_files(self) -> tuple[WeightsSpec, ...]:
        """Every released file of this model (``cbench weights download`` fetches them)."""
        return tuple(self.specs.values())

    def read_checkpoint(self, path: Path) -> dict[str, Any]:
        return unwrap_state_dict(cached_checkpoint(path))

    # -- contract
    def _module(self, card: TaskCard, pipeline: InputPipeline, seed: int) -> tuple[nn.Module, WeightsInfo]:
        reason = self.applicability(card)
        if reason:
            raise NotApplicableError(f"{self.name} does not apply to {card.slug}: {reason}")
        key = (self.variant(card), *self.arch_key(card, pipeline), int(seed) if self.random_init else None)
        if key not in self._built:
            if self.random_init:
                module = seeded(int(seed), lambda: self.make_module(card, pipeline))
                info = random_weights(module)
            else:
                spec = self.specs[self.variant(card)]
                path = self.checkpoint_path(card)
                info = self._with_set_hash(weights_info(path, spec))
                module = seeded(0, lambda: self.make_module(card, pipeline))
                self.load_into(module, self.read_checkpoint(path), path, card)
            freeze(module)
            self._built[key] = (module, info)
            while len(self._built) > 2:
                self._built.popitem(last=False)
        return self._built[key]

    def _with_set_hash(self, info: WeightsInfo) -> WeightsInfo:
        """Models with one file per variant (SoftCon) get the hash of the set of files present."""
        if len(self.specs) < 2:
            return info
        shas = sorted(file_sha256(p) for s in self.specs.values() if (p := find_weights(s, self.weights_dir)))
        return dataclasses.replace(info, set_sha256=hashlib.sha256("".join(shas).encode()).hexdigest())

    def weights_info(self, card: TaskCard, pipeline: InputPipeline, seed: int) -> WeightsInfo:
        """The weights identity for the result's skip key."""
        return self._module(card, pipeline, seed)[1]

    def build(self, card: TaskCard, pipeline: InputPipeline, seed: int) -> TaskEncoder:
        module, info = self._module(card, pipeline, seed)
        return self.make_encoder(module, card, pipeline, info)

    def identity_token(self, card: TaskCard, pipeline: InputPipeline, seed: int) -> str | None:
        """The seed for random weights, else the sha256 of the file present (None when it is absent: the
        build then downloads it or names it missing)."""
        if self.random_init:
            return random_init_token(seed, self.config, self.variant(card), *self.arch_key(card, pipeline))
        path = find_weights(self.specs[self.variant(card)], self.weights_dir)
        return None if path is None else f"file:{file_sha256(path)}"

    def weights_status(self) -> str:
        if self.random_init:
            return "random init per seed"
        parts = []
        for spec in self.specs.values():
            found = find_weights(spec, self.weights_dir)
            parts.append(f"present: {found.name}" if found else f"missing: {spec.primary} (downloaded on first run)")
        return "; ".join(parts)

    def options(self) -> dict:
        return {} if self.config == "base" else {"config": self.config}
