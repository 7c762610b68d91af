"""Copernicus-FM encoder behaviour on tiny configurations (shapes, masking, metadata, FlexiViT resize)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from copernicus_bench.models.copernicusfm.model import (
    CopernicusFMViT,
    _pi_resize_matrix,
    copernicusfm_tiny,
    pi_resize_kernel,
    sincos_pos_embed_2d,
)

S2_WL = [440, 490, 560, 665, 705, 740, 783, 842, 860, 940, 1370, 1610, 2190]
S2_BW = [20, 65, 35, 30, 15, 15, 20, 115, 20, 20, 30, 90, 180]


@pytest.fixture(scope="module")
def model() -> CopernicusFMViT:
    torch.manual_seed(0)
    m = copernicusfm_tiny().eval()
    with torch.no_grad():  # make the learned meta tokens clearly different from any encoding
        for t in (m.coord_token, m.scale_token, m.time_token):
            t.normal_(0, 1.0)
    return m


def _meta(b: int) -> torch.Tensor:
    return torch.tensor([[10.0 + i, 45.0 - i, 19000.0 + 10 * i, 0.0256] for i in range(b)])


def test_shapes_pooled_and_maps(model):
    x = torch.randn(2, 13, 64, 96)  # non-square, not the 224 grid: pos-embed is resized
    with torch.no_grad():
        pooled, maps = model.forward_intermediates(x, _meta(2), S2_WL, S2_BW, kernel_size=16, indices=(0, 1),
                                                   return_pooled=True)
        feats = model.forward_features(x, _meta(2), S2_WL, S2_BW, kernel_size=16)
    assert pooled.shape == (2, 64)
    assert [tuple(m.shape) for m in maps] == [(2, 64, 4, 6)] * 2
    torch.testing.assert_close(pooled, feats)
    # the last map's mean over positions is the pooled embedding (mean of patch tokens of the last block)
    torch.testing.assert_close(maps[-1].mean(dim=(2, 3)), pooled)


def test_variable_mode_any_multiple_of_kernel(model):
    for size, k in ((56, 4), (28, 4), (64, 8)):
        maps = model.forward_intermediates(torch.randn(1, 1, size, size), _meta(1), language_embed=torch.randn(2048),
                                           input_mode="variable", kernel_size=k, indices=(1,))
        assert maps[0].shape == (1, 64, size // k, size // k)


def test_forward_encoder_masking(model):
    torch.manual_seed(1)
    x = torch.randn(3, 13, 64, 64)  # 4x4 = 16 tokens at k16
    g = torch.Generator().manual_seed(5)
    seen = []
    hook = model.blocks[0].register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape))
    try:
        out = model.forward_encoder(x, _meta(3), S2_WL, S2_BW, None, "spectral", 16, mask_ratio=0.75, generator=g)
    finally:
        hook.remove()
    latent, mask, ids_restore, band_embed = out
    assert latent.shape == (3, 1 + 4, 64) and seen == [torch.Size([3, 5, 64])]  # masked tokens never reach blocks
    assert mask.shape == (3, 16) and torch.all(mask.sum(1) == 12)
    assert ids_restore.shape == (3, 16) and band_embed.shape == (13, 32)
    # kept tokens are the ones with mask 0: zeroing the pixels of masked patches changes nothing
    pix_mask = mask.view(3, 1, 4, 4).repeat_interleave(16, 2).repeat_interleave(16, 3)
    # the conv uses padding 1, so a token also reads one pixel of its neighbours: keep a 1-px margin
    keep_px = F.max_pool2d(1 - pix_mask, 3, stride=1, padding=1)
    x2 = x * keep_px
    g2 = torch.Generator().manual_seed(5)
    latent2 = model.forward_encoder(x2, _meta(3), S2_WL, S2_BW, None, "spectral", 16, mask_ratio=0.75,
                                    generator=g2).latent
    torch.testing.assert_close(latent, latent2)
    # ids_restore un-shuffles [kept, masked] back to grid order: kept positions are where mask == 0
    ids_shuffle = torch.argsort(ids_restore, dim=1)
    assert torch.all(mask.gather(1, ids_shuffle[:, :4]) == 0)


def test_forward_encoder_without_masking_matches_features(model):
    x = torch.randn(2, 13, 64, 64)
    latent, mask, ids_restore, _ = model.forward_encoder(x, _meta(2), S2_WL, S2_BW, None, "spectral", 16)
    assert mask.sum() == 0 and torch.equal(ids_restore[0], torch.arange(16))
    torch.testing.assert_close(latent[:, 1:].mean(1), model.forward_features(x, _meta(2), S2_WL, S2_BW,
                                                                             kernel_size=16))


def test_missing_metadata_per_sample_vs_batch(model):
    torch.manual_seed(2)
    x = torch.randn(3, 13, 32, 32)
    meta = _meta(3)
    meta_nan = meta.clone()
    meta_nan[1, 0] = float("nan")  # sample 1 has no location
    with torch.no_grad():
        ref = model.forward_features(x, meta, S2_WL, S2_BW, kernel_size=16, meta_nan_mode="sample")
        per_sample = model.forward_features(x, meta_nan, S2_WL, S2_BW, kernel_size=16, meta_nan_mode="sample")
        batch = model.forward_features(x, meta_nan, S2_WL, S2_BW, kernel_size=16, meta_nan_mode="batch")
        alone = model.forward_features(x[1:2], meta_nan[1:2], S2_WL, S2_BW, kernel_size=16)
    # per-sample: only sample 1 changes, and it equals that sample encoded on its own
    torch.testing.assert_close(per_sample[[0, 2]], ref[[0, 2]])
    assert not torch.allclose(per_sample[1], ref[1])
    torch.testing.assert_close(per_sample[1], alone[0])
    # batch-global (reference): every sample uses the learned location token
    for i in range(3):
        assert not torch.allclose(batch[i], ref[i])
    torch.testing.assert_close(batch[1], per_sample[1])
    # the model attribute sets the default
    model.meta_nan_mode = "batch"
    try:
        torch.testing.assert_close(model.forward_features(x, meta_nan, S2_WL, S2_BW, kernel_size=16), batch)
    finally:
        model.meta_nan_mode = "sample"


def test_all_unknown_metadata_same_in_both_modes(model):
    x = torch.randn(2, 2, 32, 32)
    meta = torch.full((2, 4), float("nan"))
    a = model.forward_features(x, meta, [5e7, 5e7], [1e9, 1e9], kernel_size=16, meta_nan_mode="sample")
    b = model.forward_features(x, meta, [5e7, 5e7], [1e9, 1e9], kernel_size=16, meta_nan_mode="batch")
    torch.testing.assert_close(a, b)
    assert torch.isfinite(a).all()


def _bicubic(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x[None, None], size=(size, size), mode="bicubic", antialias=True)[0, 0]


def test_flexivit_pi_resize_preserves_response():
    torch.manual_seed(3)
    w = torch.randn(16, 16)
    pinv = _pi_resize_matrix((16, 16), (8, 8))
    resize = torch.stack([_bicubic(e.view(16, 16), 8).reshape(-1) for e in torch.eye(256)])  # (256, 64)
    w8 = pi_resize_kernel(w.view(1, 1, 16, 16), 8).view(8, 8)
    torch.testing.assert_close(w8.reshape(-1), pinv @ w.reshape(-1))
    # a 16-px pattern in the span of the resize's adjoint: exactly the same token
    x = (resize @ torch.randn(64)).view(16, 16)
    assert torch.allclose((x * w).sum(), (_bicubic(x, 8) * w8).sum(), rtol=1e-4, atol=1e-4)
    # a smooth 16-px pattern: approximately the same token; a naive bicubic kernel resize is far off
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    smooth = torch.sin(2 * math.pi * xx) + torch.cos(math.pi * yy)
    w_smooth = torch.randn(4, 4)
    w_smooth = _bicubic(w_smooth, 16)  # a kernel with smooth structure
    token16 = (smooth * w_smooth).sum()
    token8 = (_bicubic(smooth, 8) * pi_resize_kernel(w_smooth.view(1, 1, 16, 16), 8).view(8, 8)).sum()
    naive = (_bicubic(smooth, 8) * _bicubic(w_smooth, 8)).sum()
    assert abs(token8 - token16) < 0.15 * abs(token16)
    assert abs(naive - token16) > 0.5 * abs(token16)  # (it ignores the 4x smaller patch area)


def test_patch_embed_uses_pi_resized_kernels(model):
    pe = model.patch_embed_spectral
    waves = pe.band_embeddings(torch.tensor(S2_WL[:3]).float(), torch.tensor(S2_BW[:3]).float())
    w16, b16, _ = pe.kernels(waves, 16)
    w8, b8, k = pe.kernels(waves, 8)
    assert k == 8 and w8.shape == (64, 3, 8, 8)
    torch.testing.assert_close(w8, pi_resize_kernel(w16, 8))
    torch.testing.assert_close(b8, b16)


def test_sincos_pos_embed_matches_mae_layout():
    emb = sincos_pos_embed_2d(16, 3)
    assert emb.shape == (10, 16) and torch.all(emb[0] == 0)
    # first half encodes the column (w) index, second half the row (h) index; channel 0 is sin(pos)
    grid = emb[1:].view(3, 3, 16)
    torch.testing.assert_close(grid[:, :, 0], torch.sin(torch.arange(3.0)).expand(3, 3))
    torch.testing.assert_close(grid[:, :, 8], torch.sin(torch.arange(3.0)).view(3, 1).expand(3, 3))
