"""``croma``: CROMA ViT-B/8 (Fuller et al. 2023), its SAR or optical encoder, S1/S2 tasks only.

As the reference (docs/models.md, "Baselines"), on torchgeo's :class:`~torchgeo.models.CROMA` built with a
SINGLE modality (``['sar']`` or ``['optical']``; the default two-modality model crashes with one input in
torchgeo 0.8.1):

* **S1** → the SAR encoder (2 bands, 6 layers; maps after layers 2, 3, 4, 5);
* **S2** → the optical encoder (12 bands = S2 without B10, placed by name; 12 layers; maps after layers
  3, 5, 7, 11). B10 is dropped; LCZ's 10 bands are padded to 12 by duplicating B02 as B01 and B8A as B09,
  as the paper — both recorded in ``adaptations``;
* standard mean/std normalisation with the card's stats; sizes as the paper: 120 for classification
  (15×15 tokens), 256 DFC2020, 512 Cloud-S2, 224 Flood (the card's resolution, a multiple of 8, for dense
  tasks); smoke tier near 64 → 64;
* 2D-ALiBi attention bias for the run's grid (computed vectorised; identical to torchgeo's ``get_2dalibi``,
  whose pure-Python loop takes minutes at 512 px); maps are the layer outputs (before the final
  ``norm_out``);
* pooled = mean of the encodings (after ``norm_out``) through the pretrained FIRST layer of ``GAP_FFN`` only
  (its LayerNorm); torchgeo's ``*_GAP`` outputs run the whole FFN and are not what the paper probed. Head
  ``linear``.

Weights: ``CROMA_base-0238d814.pt`` (torchgeo's ``CROMABase_Weights.CROMA_VIT``), also the authors'
``CROMA_base.pt``: sub-dicts ``s1_encoder``, ``s1_GAP_FFN``, ``s2_encoder``, ``s2_GAP_FFN``,
``joint_encoder`` (the joint encoder is not used by single-modality probing and is ignored).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from einops import rearrange
from torch import Tensor, nn

from copernicus_bench.encoder import (
    EncoderOutput,
    InputPipeline,
    Tier,
    WeightsInfo,
    tier_resolution,
    tokens_to_map,
)
from copernicus_bench.errors import CbenchError
from copernicus_bench.weights import WeightsSpec

from .common import S1_2, S2_12, FrozenEncoder, PretrainedAdapter, band_slots, block_indices, load_checked

if TYPE_CHECKING:
    from torchgeo.models.croma import CROMA

    from copernicus_bench.cards import TaskCard

PATCH = 8
CLASSIFICATION_RESOLUTION = 120
OPTICAL_LAYERS = (3, 5, 7, 11)
SAR_LAYERS = (2, 3, 4, 5)
#: LCZ padding of the paper: missing optical bands filled by duplicating a neighbour.
LCZ_SUBSTITUTES = {"B01": "B02", "B09": "B8A"}
SUBDICTS = {"sar": ("s1_encoder", "s1_GAP_FFN"), "optical": ("s2_encoder", "s2_GAP_FFN")}
KNOWN_SUBDICTS = ("s1_encoder", "s1_GAP_FFN", "s2_encoder", "s2_GAP_FFN", "joint_encoder")

WEIGHTS = WeightsSpec(
    model="CROMA ViT-B/8",
    filenames=("CROMA_base-0238d814.pt", "CROMA_base.pt"),
    url="https://hf.co/torchgeo/croma/resolve/387883f08af79d777167519c57cd826eda89a16f/CROMA_base-0238d814.pt",
    size="≈780 MB",  # fp32 parameters of torchgeo's CROMA base with both encoders and the joint encoder
)


def alibi_2d(num_heads: int, grid: int) -> Tensor:
    """CROMA's 2D-ALiBi bias (1, heads, grid², grid²): −slope_h · Euclidean patch distance."""
    start = 2 ** (-(2 ** -(math.log2(num_heads) - 3)))
    slopes = torch.tensor([start * start**i for i in range(num_heads)], dtype=torch.float32)
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    pts = torch.stack([ys.reshape(-1), xs.reshape(-1)], dim=1).double()
    dist = torch.cdist(pts, pts).float()
    return (-dist[None] * slopes[:, None, None])[None]


def croma_resolution(card: TaskCard) -> int:
    if not card.is_dense:
        return CLASSIFICATION_RESOLUTION
    return max(PATCH, card.resolution // PATCH * PATCH)


class CROMAEncoder(FrozenEncoder):
    """Frozen CROMA SAR or optical encoder for one task."""

    def __init__(self, model: CROMA, modality: str, weights: WeightsInfo) -> None:
        super().__init__()
        self.model = model
        self.modality = modality
        enc_name, gap_name = SUBDICTS[modality]
        self.encoder = getattr(model, enc_name)
        self.gap_norm = getattr(model, gap_name)[0]  # the pretrained LayerNorm only
        self.embed_dim = model.encoder_dim
        self.weights = weights
        depth = len(self.encoder.transformer.layers)
        full, full_depth = (SAR_LAYERS, 6) if modality == "sar" else (OPTICAL_LAYERS, 12)
        self.layers = block_indices(depth, full, full_depth)
        self._finish()

    def forward(self, x: Tensor, meta: Tensor, want_maps: bool = False) -> EncoderOutput:  # noqa: ARG002
        enc = self.encoder
        p = enc.patch_size
        h = enc.linear_input(rearrange(x, "b c (h i) (w j) -> b (h w) (c i j)", i=p, j=p))
        bias = self.model.attn_bias
        wanted = set(self.layers) if want_maps else set()
        feats: dict[int, Tensor] = {}
        for i, (attn, ffn) in enumerate(enc.transformer.layers):
            h = attn(h, bias) + h
            h = ffn(h) + h
            if i in wanted:
                feats[i] = h
        encodings = enc.transformer.norm_out(h)
        pooled = self.gap_norm(encodings.mean(dim=1))
        maps = [tokens_to_map(feats[i]) for i in self.layers] if want_maps else None
        return EncoderOutput(pooled=pooled, maps=maps)


class CROMAAdapter(PretrainedAdapter):
    name = "croma"
    description = "CROMA ViT-B/8 (SAR encoder for S1, 12-band optical encoder for S2), S1/S2 tasks only"
    head = "linear"

    def model_card(self):
        from copernicus_bench.model_card import ModelCard

        return ModelCard(
            name="croma", architecture="ViT-B/8 with 2D-ALiBi: 6-layer SAR and 12-layer optical encoders",
            parameters="ViT-B encoders (the cost columns count each built encoder)",
            code_license="MIT (github.com/antofuller/CROMA; torchgeo's port)",
            weights_license="MIT (torchgeo's rehosted CROMA_base-0238d814.pt, hub torchgeo/croma)",
            pretraining_data="SSL4EO-S12 (torchgeo weight metadata: 'SSL4EO')",
            pretraining_sensors=("Sentinel-1 GRD", "Sentinel-2"),
            citation="Fuller, Millard, Green, CROMA: Remote Sensing Representations with Contrastive Radar-Optical "
                     "Masked Autoencoders, NeurIPS 2023 (arXiv:2311.00566)",
            release="CROMA_base-0238d814.pt (torchgeo, pinned revision)",
            overlap="possible", overlap_note="SSL4EO-S12 samples Sentinel-1/2 scenes worldwide, the missions of the "
                                             "S1/S2 tasks; not checked image by image",
            url="https://github.com/antofuller/CROMA")
    specs = {"croma": WEIGHTS}
    configs: dict[str, dict[str, Any]] = {
        "base": {"encoder_dim": 768, "encoder_depth": 12},
        "tiny": {"encoder_dim": 64, "encoder_depth": 4},
    }

    def applicability(self, card: TaskCard) -> str | None:
        if card.sensor not in ("s1", "s2"):
            return f"CROMA has Sentinel-1 and Sentinel-2 encoders only (task sensor {card.sensor.upper()})"
        return None

    @staticmethod
    def modality(card: TaskCard) -> str:
        return "sar" if card.sensor == "s1" else "optical"

    def input_pipeline(self, card: TaskCard, tier: Tier) -> InputPipeline:
        reason = self.applicability(card)
        if reason:
            raise CbenchError(f"croma: no input pipeline for {card.slug}: {reason}")
        if card.sensor == "s1":
            slots, adaptations = band_slots(card.band_names, S1_2, model="CROMA SAR")
        else:
            slots, adaptations = band_slots(card.band_names, S2_12, substitutes=LCZ_SUBSTITUTES, model="CROMA optical")
        if any(s is None for s in slots):
            raise CbenchError(f"croma: task {card.slug} lacks bands for CROMA's {self.modality(card)} encoder: "
                              f"{'; '.join(a for a in adaptations if 'zero' in a)}")
        norm = card.normalization
        if norm.mean is None or norm.std is None:
            raise CbenchError(f"croma: task {card.slug} has no band statistics; CROMA needs mean/std")
        return InputPipeline(slots=slots, norm="meanstd", mean=norm.mean, std=norm.std,
                             resolution=tier_resolution(croma_resolution(card), tier, PATCH),
                             adaptations=adaptations)

    def arch_key(self, card: TaskCard, pipeline: InputPipeline) -> tuple:
        return (self.modality(card), pipeline.resolution)

    def make_module(self, card: TaskCard, pipeline: InputPipeline) -> CROMA:
        from torchgeo.models.croma import CROMA  # lazy: listing models must not import torchgeo

        res = pipeline.resolution
        if res % PATCH:
            raise CbenchError(f"croma: resolution {res} is not a multiple of {PATCH}")
        # built at 8 px (one patch) to skip torchgeo's slow pure-Python ALiBi, then set for the run's grid
        model = CROMA(modalities=[self.modality(card)], num_heads=16, patch_size=PATCH, image_size=PATCH,
                      **self.arch)
        grid = res // PATCH
        model.image_size, model.num_patches = res, grid * grid
        model.attn_bias = alibi_2d(model.num_heads, grid)
        return model

    def load_into(self, module: nn.Module, checkpoint: dict[str, Any], path: Path, card: TaskCard) -> None:
        unknown = sorted(k for k in checkpoint if k not in KNOWN_SUBDICTS)
        needed = SUBDICTS[self.modality(card)]
        missing = [k for k in needed if k not in checkpoint]
        if unknown or missing:
            from copernicus_bench.weights import check_keys

            check_keys(path, missing, unknown)
        for name in needed:
            load_checked(getattr(module, name), checkpoint[name], f"{path} [{name}]", optional_prefixes=())

    def make_encoder(self, module: nn.Module, card: TaskCard, pipeline: InputPipeline,
                     weights: WeightsInfo) -> CROMAEncoder:
        from torchgeo.models.croma import CROMA

        assert isinstance(module, CROMA)
        return CROMAEncoder(module, self.modality(card), weights)


def build_adapter(weights_dir: str | None = None, seed: int = 0, random_init: bool = False,
                  config: str = "base") -> CROMAAdapter:
    """Factory of the ``croma`` entry point (``seed`` only matters with ``random_init``, per run)."""
    return CROMAAdapter(weights_dir=weights_dir, random_init=random_init, config=config)
