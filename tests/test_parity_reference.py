"""Parity items 2, 3, 4 and cheap "already equal" lines of docs/protocol.md "Parity", each pinned by an independent
computation (OpenCV, plain F.interpolate, nn.Linear's documented init, OneCycle's closed form)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn
from torchgeo.models.dofa import DOFA

from copernicus_bench.baselines import dofa, softcon
from copernicus_bench.errors import CbenchError
from copernicus_bench.features import rotate_batch, rotate_target, target_fill, target_mode
from copernicus_bench.nearest import cv2_nearest_indices, resize_nearest_cv2
from copernicus_bench.probes.linear import LinearProbe
from copernicus_bench.probes.train_utils import make_optimizer
from copernicus_bench.probes.upernet import UPerNetProbe
from copernicus_bench.tasks import get_card
from copernicus_bench.tasks.base import resize_nearest


# ------------------------------------------------------------------------ item 3: cv2 INTER_NEAREST
@pytest.mark.parametrize("src", [7, 96, 255, 256, 287, 288, 289, 300, 512, 513])
@pytest.mark.parametrize("dst", [56, 96, 112, 224, 252, 288, 504])
def test_label_resize_equals_cv2_inter_nearest(src, dst):
    rng = np.random.default_rng(src * 1000 + dst)
    label = rng.integers(0, 250, size=(src, src + 3)).astype(np.uint8)  # non-square: both axes checked
    want = cv2.resize(label, (dst, dst), interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(resize_nearest(label, dst).numpy(), want)
    assert np.array_equal(cv2_nearest_indices(src, dst).numpy(),
                          cv2.resize(np.arange(src, dtype=np.float32)[None], (dst, 1),
                                     interpolation=cv2.INTER_NEAREST)[0].astype(np.int64))


def test_cv2_rule_differs_from_torch_nearest_where_it_matters():
    """The 10–25 LC100Seg pixels: torch's float32 ``nearest`` picks other rows at some sizes."""
    diffs = 0
    for src in range(250, 330):
        t = F.interpolate(torch.arange(src, dtype=torch.float32)[None, None, None], size=(1, 288),
                          mode="nearest")[0, 0, 0].long()
        diffs += int((t != cv2_nearest_indices(src, 288)).sum())
    assert diffs > 0


def test_nearest_keeps_nan_and_dtype():
    x = torch.tensor([[1.0, math.nan], [3.0, 4.0]])
    y = resize_nearest_cv2(x, 4)
    assert y.dtype == x.dtype and int(torch.isnan(y).sum()) == 4


# ------------------------------------------------------------------------ item 2: DOFA, SoftCon
def test_dofa_56px_task_has_the_reference_position_embedding(tmp_path):
    """AQ (56 px, 3×3 tokens): the 224 table resized bicubic with align_corners=True (interpolate_pos_embed_dofa)."""
    torch.manual_seed(0)
    arch = dofa.DOFAAdapter.configs["tiny"]
    src = DOFA(img_size=224, patch_size=16, num_classes=0, global_pool=True, **arch)
    with torch.no_grad():
        src.pos_embed.normal_()  # a non-smooth table: any other resize rule shows
    torch.save(src.state_dict(), tmp_path / dofa.WEIGHTS.primary)
    a = dofa.build_adapter(weights_dir=str(tmp_path), config="tiny")
    c = get_card("aq-o3-s5p")
    enc = a.build(c, a.input_pipeline(c, "full"), 0)
    grid = src.pos_embed[:, 1:].reshape(1, 14, 14, -1).permute(0, 3, 1, 2)
    want = F.interpolate(grid, size=(3, 3), mode="bicubic", align_corners=True).permute(0, 2, 3, 1).reshape(1, 9, -1)
    got = enc.model.pos_embed.detach()
    assert got.shape == (1, 10, arch["embed_dim"])
    torch.testing.assert_close(got[:, 1:], want, rtol=0, atol=1e-6)
    torch.testing.assert_close(got[:, :1], src.pos_embed[:, :1].detach())
    other = F.interpolate(grid, size=(3, 3), mode="bicubic", align_corners=False).permute(0, 2, 3, 1).reshape(1, 9, -1)
    assert (other - got[:, 1:]).abs().max() > 1e-2


@pytest.mark.parametrize("slug, grid", [("lcz-s2", 8), ("cloud-s2", 36)])
def test_softcon_position_embedding_as_dinov2_at_forward_time(tmp_path, slug, grid):
    """LCZ (112 px) and Cloud-S2 (504 px): DINOv2's interpolate_pos_encoding from the 224-px 16×16 table,
    bicubic with scale_factor (g + 0.1) / 16 — not timm's size=(g, g)."""
    torch.manual_seed(0)
    arch = softcon.SoftConAdapter.configs["tiny"]
    src = timm.create_model("vit_base_patch14_dinov2", pretrained=False, img_size=224, in_chans=13,
                            num_classes=0, init_values=1e-5, **arch)
    with torch.no_grad():
        src.pos_embed.normal_()
    sd = src.state_dict()
    sd["mask_token"] = torch.zeros(1, arch["embed_dim"])  # the reference's flat DINOv2 file has it
    torch.save(sd, tmp_path / softcon.HUB_FILES["s2"])  # the authors' name, accepted
    a = softcon.build_adapter(weights_dir=str(tmp_path), config="tiny")
    c = get_card(slug)
    p = a.input_pipeline(c, "full")
    assert p.resolution == grid * 14
    enc = a.build(c, p, 0)
    assert enc.weights.file.endswith(softcon.HUB_FILES["s2"]) and enc.weights.source == "user"
    table = src.pos_embed[:, 1:].detach().reshape(1, 16, 16, -1).permute(0, 3, 1, 2)
    s = (grid + 0.1) / 16
    want = F.interpolate(table, scale_factor=(s, s), mode="bicubic", antialias=False)
    want = want.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)
    got = enc.vit.pos_embed.detach()
    torch.testing.assert_close(got[:, 1:], want, rtol=0, atol=1e-6)
    timm_rule = F.interpolate(table, size=(grid, grid), mode="bicubic").permute(0, 2, 3, 1).reshape(1, grid * grid, -1)
    assert (timm_rule - got[:, 1:]).abs().max() > 1e-3
    x = torch.randn(1, 13, grid * 14, grid * 14)
    assert enc(x, torch.zeros(1, 4), want_maps=False).pooled.shape == (1, arch["embed_dim"])


def test_softcon_224_table_is_untouched():
    pe = torch.randn(1, 257, 8)
    assert softcon.dinov2_pos_embed(pe, 16) is pe
    with pytest.raises(CbenchError, match="not a square grid"):
        softcon.dinov2_pos_embed(torch.randn(1, 11, 8), 3)


def test_softcon_bigearthnet_s2_statistics_at_full_precision():
    c = get_card("bigearthnet-s2")
    p = softcon.build_adapter(random_init=True, config="tiny").input_pipeline(c, "full")
    stats = dict(zip(c.band_names, zip(p.mean[0], p.std[0])))
    # configs/dataset/softcon/cobench_bigearthnet_s2.yaml of the reference: first and last band
    assert stats[c.band_names[0]] == (752.40087073, 1108.02887453)
    assert stats["B12"] == (1805.06846033, 1343.48379601)


# ------------------------------------------------------------------------ item 3: linear-probe init
def test_linear_probe_init_as_the_reference():
    torch.manual_seed(0)
    d = 768
    bound = 1 / math.sqrt(d)
    mae = LinearProbe(d, 2000, head="ln-bn-linear").linear  # DOFA / Copernicus-FM / random: trunc-normal weight
    assert mae.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert mae.bias.abs().max() <= bound and mae.bias.abs().max() > 0.9 * bound  # nn.Linear's default bias
    plain = LinearProbe(d, 2000, head="linear").linear  # SoftCon / CROMA: nn.Linear's default weight too
    assert plain.weight.abs().max() <= bound and plain.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert plain.bias.abs().max() > 0.9 * bound


# ------------------------------------------------------------------------ item 4: --protocol paper
def test_paper_rotation_fills_as_the_reference():
    seg, reg, aq = get_card("cloud-s3"), get_card("biomass-s3"), get_card("aq-o3-s5p")
    assert target_fill(seg) == 0.0 and target_fill(reg) == pytest.approx(92.3196)
    assert target_fill(seg, "paper-ignore") == seg.ignore_index and math.isnan(target_fill(reg, "paper-ignore"))
    assert target_mode(aq) == "bilinear" and target_mode(reg) == target_mode(seg) == "nearest"
    t = torch.full((2, 9, 9), 3, dtype=torch.long)
    out = rotate_target(t, torch.tensor([45.0, 0.0]), target_fill(seg))
    assert int(out[0, 0, 0]) == 0 and int(out[0, 4, 4]) == 3  # corners come in as class 0
    assert torch.equal(out[1], t[1])  # not drawn by p=0.5: untouched
    r = torch.full((1, 9, 9), 10.0)
    rr = rotate_target(r, torch.tensor([45.0]), target_fill(reg))
    assert rr[0, 0, 0].item() == pytest.approx(92.3196) and rr[0, 4, 4].item() == pytest.approx(10.0)
    a = torch.ones(1, 9, 9)
    a[0, 4, 4] = math.nan
    ra = rotate_target(a, torch.tensor([30.0]), target_fill(aq), target_mode(aq))
    assert int(torch.isnan(ra).sum()) > 1  # bilinear: the NaN hole grows, as the reference's AQ target
    x = torch.ones(1, 1, 9, 9)  # images: plain zero padding of grid_sample (kornia), no extra masking
    theta = torch.deg2rad(torch.tensor(45.0))
    mat = torch.tensor([[[torch.cos(theta), -torch.sin(theta), 0.0], [torch.sin(theta), torch.cos(theta), 0.0]]])
    want = F.grid_sample(x, F.affine_grid(mat, [1, 1, 9, 9], align_corners=False), mode="bilinear",
                         padding_mode="zeros", align_corners=False)
    torch.testing.assert_close(rotate_batch(x, torch.tensor([45.0]), "bilinear", 0.0), want)


# ------------------------------------------------------------------------ "already equal" lines
def test_upernet_parameter_count_at_one_output():
    n = sum(p.numel() for p in UPerNetProbe(768, 1).parameters())
    assert n == 41_108_482


@pytest.mark.parametrize("opt", ["sgd", "adamw"])
def test_onecycle_lr_first_mid_last(opt):
    """OneCycleLR(max_lr, T, cos, pct_start=0): the warm-up phase ends at step -1, so lr_t = min + (max - min)
    (1 + cos(π (t + 1) / T)) / 2 with min = max / 25 / 1e4 — the reference's schedule at every step."""
    spec = get_card("eurosat-s1" if opt == "sgd" else "cloud-s3").probe
    assert spec.optimizer == opt
    params = [nn.Parameter(torch.zeros(1))]
    optimizer, sched = make_optimizer(spec, params, steps_per_epoch=10, epochs=5)
    lr, total = spec.lr, 50
    lo = lr / 25 / 1e4
    seen = []
    for _ in range(total):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if sched.last_epoch + 1 < sched.total_steps:
            sched.step()

    def closed(step):  # OneCycle's annealing phase runs from step -1 to total - 1
        pct = (step + 1) / total
        return lo + (lr - lo) * (1 + math.cos(math.pi * pct)) / 2

    for step in (0, 25, total - 1):
        assert seen[step] == pytest.approx(closed(step), rel=1e-6)
