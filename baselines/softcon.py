"""``softcon``: SoftCon ViT-B/14 (Wang et al. 2024), separate Sentinel-1 and Sentinel-2 encoders.

As the reference (docs/models.md "Baselines"; docs/conventions.md "Facts resolved"), on timm's
``vit_base_patch14_dinov2`` (init_values 1e-5, no registers) with ``img_size`` = the run's resolution and
``in_chans`` 13 (S2) or 2 (S1):

* **applies to S1 and S2 tasks only** — there are no SoftCon runs on S3/S5P and it never sees zero-padded
  stand-ins for them;
* **normalisation**: the ``softcon`` form (clip to mean ± 2σ, scale to [0, 1]) with the reference's SoftCon
  stats per task — the card's stats, except BigEarthNet-S2 with its own BEN stats (:data:`BEN_S2_STATS`);
  S1 tasks first clip each image to its own 1–99 % quantiles; Flood-S1 uses plain mean/std (the
  reference's SoftCon Flood config has no ``norm_form``);
* **13-band S2 layout** (B01…B12 with B8A after B08): bands are placed by name; BigEarthNet-S2's missing B10
  is a zero slot; LCZ's 10 bands go to their TRUE positions with zeros for B01, B09, B10. The reference's
  LCZ insertion misplaces B08/B8A into the B09/B10 slots; ``lcz_reference_order=True`` reproduces that
  order (only to match the paper's SoftCon LCZ number);
* **resolutions** multiples of 14 as in the paper: 224 for classification, DFC2020 and Flood, 504 for
  Cloud-S2, 112 for LCZ; smoke tier near 64 px → 70;
* pooled = mean of **normed** patch tokens (DINOv2 ``x_norm_patchtokens``), head ``linear``; maps = normed
  patch tokens after blocks 4, 6, 10, 11 (DINOv2 ``get_intermediate_layers(norm=True)``).

Weights: ``B13_vitb14_softcon_enc.pth`` (S2) and ``B2_vitb14_softcon_enc.pth`` (S1), the authors'
encoder-only files in timm key format (torchgeo's ``ViTBase14_DINOv2_Weights``); also the authors'
``B13_vitb14_softcon.pth`` / ``B2_vitb14_softcon.pth``, which the reference loads strictly into
``DinoVisionTransformer(block_chunks=0)``: their flat DINOv2 keys are timm's (plus the ignored
``mask_token``); any other layout (chunked ``blocks.0.0.``, a teacher/student dict) fails naming the file and
the key. The 224-px 16×16 position embedding is resized to the run's grid exactly as DINOv2's
``interpolate_pos_encoding`` does at forward time in the reference: bicubic with ``scale_factor =
(g + 0.1) / 16`` (the ``interpolate_offset``), no antialias, in float32 (:func:`dinov2_pos_embed`). The
final ``norm`` is required (the normed tokens need it).
"""

from __future__ import annotations

import math
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
    tier_resolution,
    tokens_to_map,
)
from copernicus_bench.errors import CbenchError
from copernicus_bench.weights import WeightsSpec

from .common import (
    S1_2,
    S2_13,
    FrozenEncoder,
    PretrainedAdapter,
    band_slots,
    block_indices,
    canonical_band,
    load_checked,
    timm_vit_tokens,
)

if TYPE_CHECKING:
    from copernicus_bench.cards import TaskCard

PATCH = 14
LAYERS = (4, 6, 10, 11)
S1_QUANTILES = (0.01, 0.99)
#: Pretraining-only keys (iBOT mask token), listed once and ignored.
PRETRAINING_ONLY = ("mask_token",)
_BASE = "https://huggingface.co/wangyi111/softcon/resolve/bae909781911f8ec034b4b959992fae17b973c0c/"
WEIGHTS = {
    # sizes: fp32 parameters of timm's vit_base_patch14_dinov2 with 13 / 2 input channels at 224 px
    "s2": WeightsSpec("SoftCon ViT-B/14 (Sentinel-2)", ("B13_vitb14_softcon_enc.pth", "B13_vitb14_softcon.pth"),
                      _BASE + "B13_vitb14_softcon_enc.pth", size="≈350 MB"),
    "s1": WeightsSpec("SoftCon ViT-B/14 (Sentinel-1)", ("B2_vitb14_softcon_enc.pth", "B2_vitb14_softcon.pth"),
                      _BASE + "B2_vitb14_softcon_enc.pth", size="≈340 MB"),
}
#: The authors' file names the reference loads (flat DINOv2 keys, accepted as the second name above).
HUB_FILES = {"s2": "B13_vitb14_softcon.pth", "s1": "B2_vitb14_softcon.pth"}
#: DINOv2's ``interpolate_offset`` (``vision_transformer.py``): added to the target grid before the scale.
INTERPOLATE_OFFSET = 0.1

#: The reference's SoftCon BigEarthNet-S2 stats (12 bands, no B10; docs/models.md, "Baselines").
BEN_S2_STATS: dict[str, tuple[float, float]] = dict(zip(
    ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"),
    # full precision, as the reference's configs/dataset/softcon/cobench_bigearthnet_s2.yaml
    zip((752.40087073, 884.29673756, 1144.16202635, 1297.47289228, 1624.90992062, 2194.6423161, 2422.21248945,
         2517.76053101, 2581.64687018, 2645.51888987, 2368.51236873, 1805.06846033),
        (1108.02887453, 1155.15170768, 1183.6292542, 1368.11351514, 1370.265037, 1355.55390699, 1416.51487101,
         1474.78900051, 1439.3086061, 1582.28010962, 1455.52084939, 1343.48379601)),
))
#: The paper's SoftCon resolutions where they differ from "the card's, floored to a multiple of 14".
RESOLUTION = {"cloud-s2": 504, "dfc2020-s1": 224, "dfc2020-s2": 224}
#: The reference's LCZ placement: card bands (B02..B08, B8A, B11, B12) → model slots.
LCZ_REFERENCE_SLOTS: tuple[int | None, ...] = (None, 0, 1, 2, 3, 4, 5, None, None, 6, 7, 8, 9)


def dinov2_pos_embed(pos_embed: Tensor, grid: int) -> Tensor:
    """(1, 1+N, D) → (1, 1+grid², D) as DINOv2's ``interpolate_pos_encoding`` for a square input whose
    patch grid is ``grid``: unchanged when the grid already matches, else bicubic with ``scale_factor =
    (grid + 0.1) / sqrt(N)`` (not ``size=``), no antialias, in float32."""
    n = pos_embed.shape[1] - 1
    side = math.sqrt(n)
    if n == grid * grid:
        return pos_embed
    if int(side) ** 2 != n:
        raise CbenchError(f"softcon: checkpoint pos_embed has {n} patch positions, not a square grid")
    pe = pos_embed.float()
    scale = float(grid + INTERPOLATE_OFFSET) / side
    tok = pe[:, 1:].reshape(1, int(side), int(side), -1).permute(0, 3, 1, 2)
    tok = F.interpolate(tok, scale_factor=(scale, scale), mode="bicubic", antialias=False)
    if tuple(tok.shape[-2:]) != (grid, grid):
        raise CbenchError(f"softcon: position embedding resize gave {tuple(tok.shape[-2:])}, not {grid}×{grid}")
    tok = tok.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)
    return torch.cat([pe[:, :1], tok], dim=1).to(pos_embed.dtype)


def softcon_resolution(card: TaskCard) -> int:
    return RESOLUTION.get(card.slug, max(PATCH, card.resolution // PATCH * PATCH))


class SoftConEncoder(FrozenEncoder):
    """Frozen SoftCon ViT for one task."""

    def __init__(self, vit: nn.Module, weights: WeightsInfo) -> None:
        super().__init__()
        self.vit = vit
        self.embed_dim = vit.embed_dim
        self.weights = weights
        self.layers = block_indices(len(vit.blocks), LAYERS)
        self._finish()

    def forward(self, x: Tensor, meta: Tensor, want_maps: bool = False) -> EncoderOutput:  # noqa: ARG002
        last, feats = timm_vit_tokens(self.vit, x, self.layers if want_maps else (), norm=True)
        maps = [tokens_to_map(f) for f in feats] if want_maps else None
        return EncoderOutput(pooled=last.mean(dim=1), maps=maps)


class SoftConAdapter(PretrainedAdapter):
    name = "softcon"
    description = "SoftCon ViT-B/14 (DINOv2 backbone; separate S1 and S2 encoders), S1/S2 tasks only"
    head = "linear"

    def model_card(self):
        from copernicus_bench.model_card import UNVERIFIED, ModelCard

        return ModelCard(
            name="softcon", architecture="DINOv2 ViT-B/14, separate Sentinel-1 (2-band) and Sentinel-2 (13-band) "
                                         "encoders",
            parameters="about 86 M per encoder (ViT-B/14; the cost columns count each built encoder)",
            code_license=f"{UNVERIFIED}: see https://github.com/zhu-xlab/softcon",
            weights_license=f"{UNVERIFIED}: see https://huggingface.co/wangyi111/softcon",
            pretraining_data="SSL4EO-S12 with land-cover-derived multi-label supervision (S2 encoder initialised "
                             "from DINOv2)",
            pretraining_sensors=("Sentinel-1 GRD", "Sentinel-2 L1C"),
            citation="Wang, Albrecht, Zhu, Multi-Label Guided Soft Contrastive Learning for Efficient Earth "
                     "Observation Pretraining, IEEE TGRS 2024 (arXiv:2405.20462)",
            release="weights B13_vitb14_softcon_enc.pth / B2_vitb14_softcon_enc.pth (timm-format export)",
            overlap="possible", overlap_note="SSL4EO-S12 samples Sentinel-1/2 scenes worldwide, the missions of the "
                                             "S1/S2 tasks; not checked image by image",
            url="https://github.com/zhu-xlab/softcon")
    specs = WEIGHTS
    configs: dict[str, dict[str, Any]] = {
        "base": {"embed_dim": 768, "depth": 12, "num_heads": 12},
        "tiny": {"embed_dim": 64, "depth": 4, "num_heads": 4},
    }

    def __init__(self, weights_dir: str | None = None, random_init: bool = False, config: str = "base",
                 lcz_reference_order: bool = False) -> None:
        super().__init__(weights_dir=weights_dir, random_init=random_init, config=config)
        self.lcz_reference_order = bool(lcz_reference_order)

    def applicability(self, card: TaskCard) -> str | None:
        if card.sensor not in ("s1", "s2"):
            return f"SoftCon has Sentinel-1 and Sentinel-2 encoders only (task sensor {card.sensor.upper()})"
        return None

    def variant(self, card: TaskCard) -> str:
        return card.sensor

    def input_pipeline(self, card: TaskCard, tier: Tier) -> InputPipeline:
        reason = self.applicability(card)
        if reason:
            raise CbenchError(f"softcon: no input pipeline for {card.slug}: {reason}")
        layout = S2_13 if card.sensor == "s2" else S1_2
        slots, adaptations = band_slots(card.band_names, layout, model="SoftCon")
        if card.slug == "lcz-s2" and self.lcz_reference_order:
            slots = LCZ_REFERENCE_SLOTS
            adaptations = ("SoftCon 13-band input in the reference's LCZ order (lcz_reference_order): "
                           "zeros at B01, B08, B8A slots; card B08 → B09 slot, B8A → B10 slot",)
        mean, std = card.normalization.mean, card.normalization.std
        if mean is None or std is None:
            raise CbenchError(f"softcon: task {card.slug} has no band statistics; SoftCon needs them")
        norm = "softcon"
        clip = None
        if card.slug == "bigearthnet-s2":
            stats = [BEN_S2_STATS[canonical_band(b)] for b in card.band_names]
            mean = (tuple(m for m, _ in stats),)
            std = (tuple(s for _, s in stats),)
            adaptations += ("SoftCon BigEarthNet-S2 statistics (the reference's BEN stats, not the card's)",)
        if card.sensor == "s1":
            if card.task_type == "change_detection":
                norm = "meanstd"  # the reference's SoftCon Flood config has no norm_form
            else:
                clip = S1_QUANTILES
        return InputPipeline(
            slots=slots, norm=norm, mean=mean, std=std,
            resolution=tier_resolution(softcon_resolution(card), tier, PATCH),
            quantile_clip=clip, adaptations=adaptations,
        )

    def arch_key(self, card: TaskCard, pipeline: InputPipeline) -> tuple:
        return (pipeline.resolution, pipeline.num_channels)

    def make_module(self, card: TaskCard, pipeline: InputPipeline) -> nn.Module:
        import timm  # lazy: listing models imports no timm

        return timm.create_model(
            "vit_base_patch14_dinov2", pretrained=False, img_size=pipeline.resolution,
            in_chans=pipeline.num_channels, num_classes=0, init_values=1e-5, **self.arch)

    def load_into(self, module: nn.Module, checkpoint: dict[str, Any], path: Path, card: TaskCard) -> None:
        bad = next((k for k in checkpoint if k.startswith(("teacher", "student", "backbone.", "module."))
                    or k.startswith("blocks.0.0.")), None)
        if bad is not None:
            raise CbenchError(_layout_message(path, bad))
        sd = dict(checkpoint)
        pe = sd.get("pos_embed")
        if pe is not None and pe.shape != module.pos_embed.shape:
            sd["pos_embed"] = dinov2_pos_embed(pe, int(module.patch_embed.grid_size[0]))
        load_checked(module, sd, path, ignored_prefixes=PRETRAINING_ONLY)

    def make_encoder(self, module: nn.Module, card: TaskCard, pipeline: InputPipeline,
                     weights: WeightsInfo) -> SoftConEncoder:
        return SoftConEncoder(module, weights)

    def options(self) -> dict:
        out = super().options()
        if self.lcz_reference_order:
            out["lcz_reference_order"] = True
        return out


def _layout_message(path: Path, key: str) -> str:
    return (f"{path}: unexpected key '{key}' — not the flat DINOv2 encoder layout the reference loads "
            f"(DinoVisionTransformer(block_chunks=0), keys like 'blocks.0.attn.qkv.weight'); put "
            f"{WEIGHTS['s2'].primary} (S2) / {WEIGHTS['s1'].primary} (S1) from {_BASE.rstrip('/')} in the "
            f"weights folder instead")


def build_adapter(weights_dir: str | None = None, seed: int = 0, random_init: bool = False,
                  config: str = "base", lcz_reference_order: bool = False) -> SoftConAdapter:
    """Factory of the ``softcon`` entry point (``seed`` only matters with ``random_init``, per run)."""
    return SoftConAdapter(weights_dir=weights_dir, random_init=random_init, config=config,
                          lcz_reference_order=lcz_reference_order)
