"""The ``random`` baseline: a frozen seed-initialised ViT with patch = task kernel, default pipeline."""

from __future__ import annotations

import pytest
import torch
from test_baselines_cards import card

from copernicus_bench.baselines import random_vit
from copernicus_bench.baselines.common import block_indices
from copernicus_bench.encoder import default_pipeline


def _forward(adapter, slug: str, tier: str = "smoke", seed: int = 0, want_maps: bool = False, b: int = 2):
    c = card(slug)
    pipe = adapter.input_pipeline(c, tier)
    enc = adapter.build(c, pipe, seed)
    x = torch.randn(b, pipe.num_channels, pipe.resolution, pipe.resolution)
    meta = torch.zeros(b, 4)
    with torch.no_grad():
        return c, pipe, enc, enc(x, meta, want_maps=want_maps)


def test_factory_and_status() -> None:
    a = random_vit.build_adapter(weights_dir=None, seed=0)
    assert a.weights_status() == "random init per seed"
    assert a.head == "ln-bn-linear"
    assert a.options() == {}
    assert random_vit.build_adapter(config="tiny").options() == {"config": "tiny"}


@pytest.mark.parametrize("slug", ["eurosat-s1", "eurosat-s2", "lc100cls-s3", "aq-no2-s5p"])
def test_classification_and_all_sensors_apply(slug: str) -> None:
    a = random_vit.build_adapter(config="tiny")
    c, pipe, enc, out = _forward(a, slug)
    assert a.applicability(c) is None
    assert pipe == default_pipeline(c, "smoke", c.kernel_size)
    assert pipe.num_channels == c.num_bands
    assert pipe.resolution % c.kernel_size == 0 and pipe.resolution <= 64 + c.kernel_size
    assert out.pooled.shape == (2, 64) and out.maps is None
    assert enc.vit.patch_embed.proj.kernel_size == (c.kernel_size, c.kernel_size)
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training and not enc.vit.training


@pytest.mark.parametrize("slug", ["dfc2020-s2", "biomass-s3", "flood-s1"])
def test_dense_maps_on_token_grid(slug: str) -> None:
    a = random_vit.build_adapter(config="tiny")
    c, pipe, enc, out = _forward(a, slug, want_maps=True)
    grid = pipe.resolution // c.kernel_size
    assert out.maps is not None and len(out.maps) == 4
    for m in out.maps:
        assert m.shape == (2, 64, grid, grid)
    # the last map is the last block, whose mean over the grid is the pooled embedding
    torch.testing.assert_close(out.maps[-1].mean(dim=(2, 3)), out.pooled)


def test_full_tier_uses_card_resolution() -> None:
    a = random_vit.build_adapter(config="tiny")
    c = card("aq-no2-s5p")
    assert a.input_pipeline(c, "full").resolution == c.resolution


def test_seed_determinism_and_hash() -> None:
    a = random_vit.build_adapter(config="tiny")
    b = random_vit.build_adapter(config="tiny")
    c = card("eurosat-s2")
    pipe = a.input_pipeline(c, "smoke")
    state = torch.get_rng_state()
    e0 = a.build(c, pipe, 0)
    assert torch.equal(state, torch.get_rng_state()), "building must not disturb the global RNG"
    e0b = b.build(c, pipe, 0)
    e1 = a.build(c, pipe, 1)
    assert e0.weights.source == "random-init"
    assert e0.weights.sha256 == e0b.weights.sha256 != e1.weights.sha256
    for (k, v), (_, w) in zip(e0.state_dict().items(), e0b.state_dict().items()):
        assert torch.equal(v, w), k
    # the same as the reference: torch.manual_seed(seed) right before creating the model
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    ref = VisionTransformer(img_size=pipe.resolution, patch_size=c.kernel_size, in_chans=c.num_bands,
                            num_classes=0, global_pool="avg", **random_vit.CONFIGS["tiny"])
    torch.testing.assert_close(ref.patch_embed.proj.weight, e0.vit.patch_embed.proj.weight)
    # hashing for the skip key and building share one initialisation
    assert a.weights_info(c, pipe, 0) is e0.weights


def test_block_indices() -> None:
    assert block_indices(12) == (3, 5, 7, 11)
    assert block_indices(4) == (0, 1, 2, 3)
    assert block_indices(6, (2, 3, 4, 5), 6) == (2, 3, 4, 5)


def test_unknown_config_fails() -> None:
    from copernicus_bench.errors import CbenchError

    with pytest.raises(CbenchError, match="config"):
        random_vit.build_adapter(config="huge")


def test_full_vit_b_architecture() -> None:
    """ViT-B/16: 768 wide, 12 blocks, 12 heads, maps from blocks 3, 5, 7, 11 (one full build)."""
    a = random_vit.build_adapter()
    c = card("eurosat-s1")
    pipe = a.input_pipeline(c, "smoke")
    enc = a.build(c, pipe, 0)
    assert enc.embed_dim == 768 and len(enc.vit.blocks) == 12 and enc.vit.blocks[0].attn.num_heads == 12
    assert enc.layers == (3, 5, 7, 11)
    assert sum(p.numel() for p in enc.parameters()) > 80e6
