"""``dofa``: DOFA ViT-B/16 (Xiong et al. 2024), wavelength-conditioned patch embedding, all 15 tasks.

As the reference wrapper (docs/models.md, "Baselines"), on torchgeo's :class:`~torchgeo.models.DOFA`:

* same normalised images and sizes as Copernicus-FM (the card's pipeline) — a **fixed 16-px patch** at every
  task's card resolution (e.g. 3×3 tokens for AQ's 56 px, 6×6 for LC100Cls' 96 px), no FlexiViT;
* the model is built with ``img_size`` = the pipeline resolution and the checkpoint's 14×14 position
  embedding is resized to the run's grid when loading (bicubic, **``align_corners=True``**, no antialias,
  as the reference's ``interpolate_pos_embed_dofa`` in ``src/util/pos_embed.py`` — MAE's own
  ``interpolate_pos_embed`` uses ``False``); torchgeo's model at 224 fails on a 96×96 input otherwise;
* wavelengths per model channel in DOFA's unit, µm (card nm / 1000); Sentinel-1 bands at DOFA's SAR
  convention 3.75 µm; S5P (``input_mode: variable``) at 0, as the reference passes ``[0]`` — DOFA's
  wavelength embedding is a sin-cos of λ·1000, so 0 gives the finite vector (sin 0, cos 0) = (0…, 1…) and
  the hypernetwork produces an ordinary kernel from it (checked in the tests);
* no metadata, no bandwidths; pooled = mean of the last block's patch tokens (head ``ln-bn-linear``:
  the reference's fresh frozen ``fc_norm`` → BN → Linear); maps = patch tokens after blocks 3, 5, 7, 11.

Weights: ``dofa_base_patch16_224-a0275954.pth`` (torchgeo's ``DOFABase16_Weights.DOFA_MAE``), also the
authors' ``DOFA_ViT_base_e100.pth``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from copernicus_bench.encoder import (
    EncoderOutput,
    InputPipeline,
    Tier,
    WeightsInfo,
    default_pipeline,
    tokens_to_map,
)
from copernicus_bench.errors import CbenchError
from copernicus_bench.weights import WeightsSpec

from .common import FrozenEncoder, PretrainedAdapter, block_indices, load_checked

if TYPE_CHECKING:
    from torchgeo.models.dofa import DOFA

    from copernicus_bench.cards import TaskCard

PATCH = 16
#: DOFA's placeholder wavelength for Sentinel-1 VV/VH (µm).
SAR_WAVELENGTH_UM = 3.75
#: The reference's wavelength for non-spectral (variable) inputs such as S5P gases.
VARIABLE_WAVELENGTH_UM = 0.0
#: Keys of MAE pretraining parts: the encoder's final ``norm`` (the probe uses fc_norm instead), the
#: decoder and the mask token — listed once and ignored.
PRETRAINING_ONLY = ("norm.", "decoder", "mask_token")

WEIGHTS = WeightsSpec(
    model="DOFA ViT-B/16",
    filenames=("dofa_base_patch16_224-a0275954.pth", "DOFA_ViT_base_e100.pth"),
    url="https://hf.co/torchgeo/dofa/resolve/b8db318b64a90b9e085ec04ba8851233c5893666/"
        "dofa_base_patch16_224-a0275954.pth",
    size="≈445 MB",  # fp32 parameters of torchgeo's dofa_base_patch16_224
)


def dofa_wavelengths_um(card: TaskCard, pipeline: InputPipeline) -> tuple[float, ...]:
    """Wavelength (µm) of each model channel (pipeline slot), by DOFA's conventions."""
    def one(i: int | None) -> float:
        if card.input_mode == "variable":
            return VARIABLE_WAVELENGTH_UM
        if card.sensor == "s1":
            return SAR_WAVELENGTH_UM
        if i is None:
            raise CbenchError(f"dofa: zero slot in the pipeline of {card.slug} has no wavelength; fix the pipeline")
        wl = card.bands[i].wavelength_nm
        assert wl is not None
        return wl / 1000.0

    return tuple(one(i) for i in pipeline.slots)


def mae_sincos_pos_embed(embed_dim: int, grid: int) -> Tensor:
    """MAE's fixed 2-D sin-cos position embedding (1, 1 + grid², D) with a zero cls entry."""
    def one_d(dim: int, pos: Tensor) -> Tensor:
        omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
        out = pos.reshape(-1).double()[:, None] * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)

    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    # MAE's get_2d_sincos_pos_embed: grid = meshgrid(w, h) → emb_h uses grid[0] (w index)
    emb = torch.cat([one_d(embed_dim // 2, xs), one_d(embed_dim // 2, ys)], dim=1)
    return torch.cat([torch.zeros(1, embed_dim), emb.float()], dim=0)[None]


def resize_pos_embed(pos_embed: Tensor, grid: int) -> Tensor:
    """(1, 1+g0², D) → (1, 1+grid², D): cls kept, patch grid resized bicubic with ``align_corners=True``
    (the reference's ``interpolate_pos_embed_dofa``)."""
    n = pos_embed.shape[1] - 1
    g0 = int(round(n ** 0.5))
    if g0 * g0 != n:
        raise CbenchError(f"dofa: checkpoint pos_embed has {n} patch positions, not a square grid")
    if g0 == grid:
        return pos_embed
    cls, tok = pos_embed[:, :1], pos_embed[:, 1:]
    tok = tok.reshape(1, g0, g0, -1).permute(0, 3, 1, 2).float()
    tok = F.interpolate(tok, size=(grid, grid), mode="bicubic", align_corners=True)
    tok = tok.permute(0, 2, 3, 1).reshape(1, grid * grid, -1).to(pos_embed.dtype)
    return torch.cat([cls, tok], dim=1)


def token_grid(resolution: int, patch: int = PATCH) -> int:
    """DOFA's patch conv has stride = kernel = 16 and padding 1: the token grid side for ``resolution``."""
    return (resolution + 2 - patch) // patch + 1


class DOFAEncoder(FrozenEncoder):
    """Frozen DOFA for one task (fixed wavelengths)."""

    def __init__(self, model: DOFA, wavelengths_um: tuple[float, ...], weights: WeightsInfo) -> None:
        super().__init__()
        self.model = model
        self.embed_dim = model.embed_dim
        self.weights = weights
        self.layers = block_indices(len(model.blocks))
        self.register_buffer("wavelengths", torch.tensor(wavelengths_um, dtype=torch.float32), persistent=False)
        self._finish()

    def forward(self, x: Tensor, meta: Tensor, want_maps: bool = False) -> EncoderOutput:  # noqa: ARG002
        m = self.model
        tokens, _ = m.patch_embed(x, self.wavelengths.to(x.device))
        tokens = tokens + m.pos_embed[:, 1:, :]
        cls = (m.cls_token + m.pos_embed[:, :1, :]).expand(tokens.shape[0], -1, -1)
        h = torch.cat([cls, tokens], dim=1)
        wanted = set(self.layers) if want_maps else set()
        feats: dict[int, Tensor] = {}
        for i, blk in enumerate(m.blocks):
            h = blk(h)
            if i in wanted:
                feats[i] = h[:, 1:]
        maps = [tokens_to_map(feats[i]) for i in self.layers] if want_maps else None
        return EncoderOutput(pooled=h[:, 1:].mean(dim=1), maps=maps)


class DOFAAdapter(PretrainedAdapter):
    name = "dofa"
    description = "DOFA ViT-B/16 (wavelength-conditioned patch embedding; fixed 16-px patch), all sensors"
    head = "ln-bn-linear"

    def model_card(self):
        from copernicus_bench.model_card import UNVERIFIED, ModelCard

        return ModelCard(
            name="dofa", architecture="ViT-B/16 with a wavelength-conditioned dynamic patch embedding",
            parameters="about 86 M + the weight generator (the cost columns count each built encoder)",
            code_license="MIT (github.com/zhu-xlab/DOFA; torchgeo's port)",
            weights_license=f"{UNVERIFIED}: see https://huggingface.co/torchgeo/dofa",
            pretraining_data="SatlasPretrain, Five-Billion-Pixels, HySpecNet-11k (torchgeo weight metadata)",
            pretraining_sensors=("Sentinel-2 and others in SatlasPretrain", "Gaofen-2", "EnMAP"),
            citation="Xiong et al., Neural Plasticity-Inspired Multimodal Foundation Model for Earth Observation, "
                     "arXiv:2403.15356 (2024)",
            release="dofa_base_patch16_224-a0275954.pth (torchgeo, pinned revision)",
            overlap="possible", overlap_note="SatlasPretrain holds Sentinel-2 scenes worldwide; not checked image by "
                                             "image",
            url="https://github.com/zhu-xlab/DOFA")
    specs = {"dofa": WEIGHTS}
    configs: dict[str, dict[str, Any]] = {
        "base": {"embed_dim": 768, "depth": 12, "num_heads": 12},
        "tiny": {"embed_dim": 64, "depth": 4, "num_heads": 4},
    }

    def applicability(self, card: TaskCard) -> str | None:
        return None

    def input_pipeline(self, card: TaskCard, tier: Tier) -> InputPipeline:
        return default_pipeline(card, tier, patch_multiple=PATCH)

    def arch_key(self, card: TaskCard, pipeline: InputPipeline) -> tuple:
        return (pipeline.resolution,)

    def make_module(self, card: TaskCard, pipeline: InputPipeline) -> DOFA:
        from torchgeo.models.dofa import DOFA  # lazy: listing models must not import torchgeo

        grid = token_grid(pipeline.resolution)
        model = DOFA(img_size=grid * PATCH, patch_size=PATCH, num_classes=0, global_pool=True, **self.arch)
        with torch.no_grad():
            model.pos_embed.copy_(mae_sincos_pos_embed(model.embed_dim, grid))
        return model

    def load_into(self, module: nn.Module, checkpoint: dict[str, Any], path: Path, card: TaskCard) -> None:
        sd = dict(checkpoint)
        if "pos_embed" in sd and sd["pos_embed"].shape != module.pos_embed.shape:
            sd["pos_embed"] = resize_pos_embed(sd["pos_embed"], int(round((module.pos_embed.shape[1] - 1) ** 0.5)))
        load_checked(module, sd, path, ignored_prefixes=PRETRAINING_ONLY)

    def make_encoder(self, module: nn.Module, card: TaskCard, pipeline: InputPipeline,
                     weights: WeightsInfo) -> DOFAEncoder:
        from torchgeo.models.dofa import DOFA

        assert isinstance(module, DOFA)
        return DOFAEncoder(module, dofa_wavelengths_um(card, pipeline), weights)


def build_adapter(weights_dir: str | None = None, seed: int = 0, random_init: bool = False,
                  config: str = "base") -> DOFAAdapter:
    """Factory of the ``dofa`` entry point (``seed`` only matters with ``random_init``, per run)."""
    return DOFAAdapter(weights_dir=weights_dir, random_init=random_init, config=config)
