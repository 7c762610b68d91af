"""Library calls that replaced hand-written code give identical results (issue 14, part 5).

Each test keeps the hand-written version it replaced as the independent reference: timm's
``forward_features`` / ``forward_intermediates`` for the ViT token maps, ``FlopCounterMode`` for FLOP counts,
``hashlib.file_digest`` for file hashes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from test_baselines_cards import card
from torch import Tensor, nn

from copernicus_bench import cache, download, splits, weights
from copernicus_bench.baselines import random_vit, softcon
from copernicus_bench.baselines.common import timm_vit_tokens
from copernicus_bench.encoder import tokens_to_map
from copernicus_bench.probes.upernet import UPerNetProbe, count_flops


# ------------------------------------------------------------------------------- timm ViT token maps
def block_by_block(vit: nn.Module, x: Tensor, indices: list[int], norm: bool) -> tuple[Tensor, list[Tensor]]:
    """The loop ``timm_vit_tokens`` ran before: blocks one by one, prefix tokens dropped."""
    x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))
    feats = {}
    for i, blk in enumerate(vit.blocks):
        x = blk(x)
        feats[i] = x
    p = vit.num_prefix_tokens
    post = vit.norm if norm else (lambda t: t)
    return post(x)[:, p:], [post(feats[i])[:, p:] for i in indices]


def _encoder(model: str, slug: str):
    adapter = (random_vit.build_adapter(config="tiny") if model == "random"
               else softcon.build_adapter(random_init=True, config="tiny"))
    c = card(slug)
    pipe = adapter.input_pipeline(c, "smoke")
    enc = adapter.build(c, pipe, 3)
    x = torch.randn(2, pipe.num_channels, pipe.resolution, pipe.resolution, generator=torch.Generator().manual_seed(0))
    return enc, x


@pytest.mark.parametrize(("model", "slug"), [("random", "dfc2020-s2"), ("random", "lc100seg-s3"),
                                             ("softcon", "dfc2020-s2"), ("softcon", "lcz-s2")])
@pytest.mark.parametrize("indices", [[], [0, 1, 2, 3], [3, 1], [2, 2]])
def test_timm_vit_tokens_equal_the_block_loop(model: str, slug: str, indices: list[int]) -> None:
    enc, x = _encoder(model, slug)
    norm = model == "softcon"
    with torch.no_grad():
        last, feats = timm_vit_tokens(enc.vit, x, indices, norm=norm)
        ref_last, ref_feats = block_by_block(enc.vit, x, indices, norm)
    assert torch.equal(last, ref_last)
    assert len(feats) == len(indices)
    for a, b in zip(feats, ref_feats, strict=True):
        assert torch.equal(a, b)


def test_random_vit_final_norm_is_identity() -> None:
    """Why ``random``'s pooled embedding did not change: timm's final ``norm`` is an identity with avg pooling."""
    enc, _ = _encoder("random", "eurosat-s2")
    assert isinstance(enc.vit.norm, nn.Identity)


@pytest.mark.parametrize("model", ["random", "softcon"])
def test_encoder_outputs_unchanged(model: str) -> None:
    enc, x = _encoder(model, "dfc2020-s2")
    with torch.no_grad():
        out = enc(x, torch.zeros(2, 4), want_maps=True)
        last, feats = block_by_block(enc.vit, x, list(enc.layers), norm=model == "softcon")
    assert torch.equal(out.pooled, last.mean(dim=1))
    assert out.maps is not None and len(out.maps) == 4
    for m, f in zip(out.maps, feats, strict=True):
        assert torch.equal(m, tokens_to_map(f))


# ------------------------------------------------------------------------------------------ FLOPs
def hook_flops(module: nn.Module, *args: object) -> int:
    """The forward-hook count ``count_flops`` used before: 2 x multiply-adds of Conv2d, ConvTranspose2d, Linear."""
    total = [0]

    def hook(mod: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> None:
        if isinstance(mod, nn.ConvTranspose2d):
            kh, kw = mod.kernel_size
            total[0] += inp[0].numel() * mod.out_channels * kh * kw // mod.groups
        elif isinstance(mod, nn.Conv2d):
            kh, kw = mod.kernel_size
            total[0] += out.numel() * (mod.in_channels // mod.groups) * kh * kw
        elif isinstance(mod, nn.Linear):
            total[0] += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    try:
        with torch.no_grad():
            module(*args)
    finally:
        for h in handles:
            h.remove()
    return 2 * total[0]


@pytest.mark.parametrize(("dim", "grid", "outputs", "device"), [(64, 4, 3, "cpu"), (64, 7, 1, "meta"),
                                                                (768, 14, 10, "meta")])
def test_flop_counter_mode_equals_the_hook_count(dim: int, grid: int, outputs: int, device: str) -> None:
    with torch.device(device):
        probe = UPerNetProbe(dim, outputs).eval()
        maps = [torch.randn(2, dim, grid, grid) for _ in range(4)]
    size = (16 * grid, 16 * grid)
    assert count_flops(probe, maps, size) == hook_flops(probe, maps, size) > 0
    linear = nn.Linear(10, 4)
    assert count_flops(linear, torch.randn(5, 10)) == hook_flops(linear, torch.randn(5, 10)) == 2 * 5 * 10 * 4


# ------------------------------------------------------------------------------------- file hashes
def chunked(path: Path, make) -> str:
    h = make()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "blob.bin"
    path.write_bytes(torch.randint(0, 256, ((3 << 20) + 17,), generator=torch.Generator().manual_seed(1),
                                   dtype=torch.uint8).numpy().tobytes())
    return path


def test_file_digest_equals_chunked_hashing(blob: Path) -> None:
    assert weights.file_sha256(blob, persist=False) == chunked(blob, hashlib.sha256)
    assert splits.file_sha256(blob) == chunked(blob, hashlib.sha256)
    assert download.file_checksum(blob, "md5") == chunked(blob, hashlib.md5)
    assert download.file_checksum(blob, "sha256") == chunked(blob, hashlib.sha256)
    assert cache._digest(blob) == chunked(blob, lambda: hashlib.blake2b(digest_size=16))
