"""``random``: a frozen, randomly initialised ViT-B/16 — the paper's "Random ViT-B/16" column.

As the reference (docs/models.md, "Baselines"): a timm ``VisionTransformer`` (768 wide, 12 blocks, 12 heads)
with ``patch_size`` = the task's kernel size (16 for S1/S2, 8 for S3, 4 for S5P), ``in_chans`` = the card's
bands and ``img_size`` = the pipeline resolution, its weights drawn right after ``torch.manual_seed(seed)``
(the reference's ``seed_everything`` before model creation). It applies to all 15 tasks with the card's own
pipeline (band mean/std, card resolution).

* pooled embedding = mean of the last block's patch tokens (no cls, no norm; the probe's fresh LayerNorm
  follows — head ``ln-bn-linear``);
* maps = patch tokens after blocks 3, 5, 7, 11 (0-based). The ``tiny`` test config (width 64, depth 4,
  4 heads) uses the same layers spread over its depth (:func:`~copernicus_bench.baselines.common.block_indices`:
  blocks 0, 1, 2, 3).

The weights hash is the state-dict hash, so each seed is its own cache entry; the built module is cached per
(shape, seed) so hashing it for the skip key and building the encoder do not initialise twice.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from torch import Tensor

from copernicus_bench.encoder import (
    EncoderAdapter,
    EncoderOutput,
    InputPipeline,
    Tier,
    WeightsInfo,
    default_pipeline,
    random_init_token,
    state_dict_sha256,
    tokens_to_map,
)
from copernicus_bench.errors import CbenchError

from .common import FrozenEncoder, block_indices, seeded, timm_vit_tokens

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer

    from copernicus_bench.cards import TaskCard

CONFIGS: dict[str, dict[str, int]] = {
    "base": {"embed_dim": 768, "depth": 12, "num_heads": 12},
    "tiny": {"embed_dim": 64, "depth": 4, "num_heads": 4},
}


def _config(config: str) -> dict[str, int]:
    if config not in CONFIGS:
        raise CbenchError(f"--model-args config={config!r}: unknown; choose one of {sorted(CONFIGS)}")
    return CONFIGS[config]


class RandomViTEncoder(FrozenEncoder):
    """Frozen random ViT for one task."""

    def __init__(self, vit: VisionTransformer, weights: WeightsInfo) -> None:
        super().__init__()
        self.vit = vit
        self.embed_dim = vit.embed_dim
        self.weights = weights
        self.layers = block_indices(len(vit.blocks))
        self._finish()

    def forward(self, x: Tensor, meta: Tensor, want_maps: bool = False) -> EncoderOutput:  # noqa: ARG002
        last, feats = timm_vit_tokens(self.vit, x, self.layers if want_maps else ())
        maps = [tokens_to_map(f) for f in feats] if want_maps else None
        return EncoderOutput(pooled=last.mean(dim=1), maps=maps)


class RandomViTAdapter(EncoderAdapter):
    name = "random"
    description = "ViT-B/16 (patch = task kernel) with frozen random weights drawn from the run's seed"
    head = "ln-bn-linear"

    def model_card(self):
        from copernicus_bench.model_card import ModelCard

        return ModelCard(
            name="random", architecture="timm ViT-B (12 blocks, width 768), patch = the task's kernel size",
            parameters="about 86 M (ViT-B; the cost columns count each built encoder)",
            code_license="MIT (this project)", weights_license="none (weights drawn from the run's seed)",
            pretraining_data="none", pretraining_sensors=(),
            citation="Wang et al., Towards a Unified Copernicus Foundation Model for Earth Vision, ICCV 2025 "
                     "(arXiv:2503.11849): the paper's 'Random ViT-B/16' baseline",
            release="n/a", overlap="none", overlap_note="no pretraining")

    def __init__(self, config: str = "base") -> None:
        self.config = config
        self.arch = _config(config)
        self._modules: OrderedDict[tuple, tuple[VisionTransformer, WeightsInfo]] = OrderedDict()

    def applicability(self, card: TaskCard) -> str | None:
        return None

    def input_pipeline(self, card: TaskCard, tier: Tier) -> InputPipeline:
        return default_pipeline(card, tier, patch_multiple=card.kernel_size)

    def _module(self, card: TaskCard, pipeline: InputPipeline, seed: int) -> tuple[VisionTransformer, WeightsInfo]:
        res, patch, chans = pipeline.resolution, card.kernel_size, pipeline.num_channels
        if res % patch:
            raise CbenchError(f"random: resolution {res} is not a multiple of the patch {patch} "
                              f"(task {card.slug}); fix the pipeline")
        key = (res, patch, chans, int(seed))
        if key not in self._modules:
            from timm.models.vision_transformer import VisionTransformer  # lazy: listing imports no timm

            vit = seeded(int(seed), lambda: VisionTransformer(
                img_size=res, patch_size=patch, in_chans=chans, num_classes=0, global_pool="avg",
                **self.arch))
            self._modules[key] = (vit, WeightsInfo("random-init", state_dict_sha256(vit)))
            while len(self._modules) > 2:
                self._modules.popitem(last=False)
        return self._modules[key]

    def weights_info(self, card: TaskCard, pipeline: InputPipeline, seed: int) -> WeightsInfo:
        """The weights identity for the result's skip key (hash of the seed's state dict)."""
        return self._module(card, pipeline, seed)[1]

    def build(self, card: TaskCard, pipeline: InputPipeline, seed: int) -> RandomViTEncoder:
        vit, info = self._module(card, pipeline, seed)
        return RandomViTEncoder(vit, info)

    def weights_status(self) -> str:
        return "random init per seed"

    def identity_token(self, card: TaskCard, pipeline: InputPipeline, seed: int) -> str | None:
        return random_init_token(seed, self.config, pipeline.resolution, card.kernel_size, pipeline.num_channels)

    def options(self) -> dict:
        return {} if self.config == "base" else {"config": self.config}


def build_adapter(weights_dir: str | None = None, seed: int = 0, random_init: bool = True,
                  config: str = "base") -> RandomViTAdapter:
    """Factory of the ``random`` entry point (``weights_dir``/``seed``/``random_init`` are accepted for the
    common factory signature; the weights are always random, drawn per run seed in :meth:`build`)."""
    return RandomViTAdapter(config=config)
