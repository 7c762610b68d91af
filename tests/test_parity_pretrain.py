"""Pretraining parity with the reference (zhu-xlab/Copernicus-FM @ da95635, ``Copernicus-FM/src``): one test per
item of issue 9.5 / README "Facts and deviations", each against an independent computation of the reference's
rule (its tables and formulas written out here, not imported from our code)."""

from __future__ import annotations

import argparse
import json
import math
import random
from datetime import date

import pytest
import torch

from copernicus_bench.cli import pretrain as cli_pretrain
from copernicus_bench.errors import CbenchError
from copernicus_bench.models.copernicusfm import mae as mae_mod
from copernicus_bench.models.copernicusfm import pretrain_data as pdata
from copernicus_bench.models.copernicusfm.mae import DECODER_CONFIGS, CopernicusFMMAE, mae_loss, patchify
from copernicus_bench.models.copernicusfm.model import copernicusfm_tiny
from copernicus_bench.models.copernicusfm.pretrain import PretrainConfig
from copernicus_bench.models.copernicusfm.pretrain_data import (
    MODALITIES,
    SampleTransform,
    parse_id,
    pick_one,
    scaled_modalities,
    with_oa21,
)
from copernicus_bench.models.copernicusfm.pretrain_sample import make_grid_sample

SCALE = 0.25
# the reference's engine_pretrain.py: KERNEL_SIZE × GSD (m) → AREA = (k·gsd/1000)² km²
REF_KERNEL_GSD = {"s1": (16, 10), "s2": (16, 10), "s3": (8, 300), "s5p_co": (4, 1000), "s5p_no2": (4, 1000),
                  "s5p_o3": (4, 1000), "s5p_so2": (4, 1000), "dem": (64, 30)}
REF_S1_MEAN, REF_S1_STD = (-12.59, -20.26), (5.26, 5.91)
REF_S3_WV_FIRST20 = [400, 412.5, 442.5, 490, 510, 560, 620, 665, 673.75, 681.25, 708.75, 753.75, 761.25, 764.375,
                     767.5, 778.75, 865, 885, 900, 940]


def raw_sample(seed: int = 0, **overrides: torch.Tensor) -> dict:
    """One decoded grid sample (1 patch, 1 date, so picking is deterministic) as ``decode_sample`` returns it."""
    s = make_grid_sample(1_000_000 + seed, torch.Generator().manual_seed(seed), random.Random(seed), patches=1,
                         dates=1)
    s["json"] = json.loads(s["json"])
    s.update({f"{member}.pth": x for member, x in overrides.items()})
    return s


def transform(raw: dict, **kw) -> dict:
    return SampleTransform(scaled_modalities(SCALE), seed=3, **kw)(raw)


# ------------------------------------------------------------------------------------------- M8 patch area
def test_patch_area_is_the_reference_fixed_kernel_times_gsd_squared():
    out = transform(raw_sample())
    for name, (k, gsd) in REF_KERNEL_GSD.items():
        assert float(out[f"meta_{name}"][3]) == pytest.approx((k * gsd / 1000) ** 2, rel=1e-6)
    # the numbers of the issue: S1/S2 0.0256, S3 5.76, S5P 16, DEM 3.6864 km²
    assert [round(float(out[f"meta_{n}"][3]), 6) for n in ("s1", "s3", "s5p_no2", "dem")] == [0.0256, 5.76, 16.0,
                                                                                              3.6864]
    # crop mode (the reference's augarea area): fixed × crop-area fraction, within the crop scale (0.2–1)
    crop = transform(raw_sample(), area_mode="crop")
    for name, (k, gsd) in REF_KERNEL_GSD.items():
        frac = float(crop[f"meta_{name}"][3]) / (k * gsd / 1000) ** 2
        assert 0.15 <= frac <= 1.0 + 1e-6
    with pytest.raises(CbenchError, match="area_mode"):
        SampleTransform(area_mode="augarea")


# ------------------------------------------------------------------------------------------- M9 DEM time
def test_dem_time_is_2015_01_01_and_other_times_come_from_the_ids():
    raw = raw_sample()
    out = transform(raw)
    assert float(out["meta_dem"][2]) == (date(2015, 1, 1) - date(1970, 1, 1)).days == 16436
    s3_id = raw["json"]["s3_olci"][0][0]  # released nesting: one-element list per date
    y, m, d = int(s3_id[-8:-4]), int(s3_id[-4:-2]), int(s3_id[-2:])
    assert float(out["meta_s3"][2]) == (date(y, m, d) - date(1970, 1, 1)).days


# ------------------------------------------------------------------------------------------- M12 NaN order
def test_nan_becomes_zero_after_normalisation_crop_flip_normalise_order():
    size = scaled_modalities(SCALE)[0].size  # S1 at its model size: a full crop is an identity resize
    x = torch.full((1, 1, 2, size, size), -15.0)
    x[..., 0, 5, 7] = math.nan
    x[..., 1, 9, 2] = math.inf
    out = transform(raw_sample(s1_grd=x), crop_scale=(1.0, 1.0))["s1"]
    mean = torch.tensor(REF_S1_MEAN).view(2, 1, 1)
    std = torch.tensor(REF_S1_STD).view(2, 1, 1)
    expected = (x[0, 0] - mean) / std
    expected[torch.isnan(expected) | torch.isinf(expected)] = 0.0
    assert torch.allclose(out, expected, atol=1e-5) or torch.allclose(out, expected.flip(-1), atol=1e-5)
    assert float(out.abs().max()) < 1.0  # the old order made the NaN pixel (0 + 12.59) / 5.26 = +2.39
    assert (out == 0).sum() == 2


# ------------------------------------------------------------------------------------------- M10 S3 Oa01/Oa10
def test_s3_oa01_oa10_rescale_auto_reference_and_off():
    base = raw_sample()
    s3 = base["s3_olci.pth"].clone()
    big = s3.clone()
    big[:, [0, 9]] *= 1e9  # what the reference's ×1e-9 implies the released shards hold in those two bands
    native = transform(raw_sample(s3_olci=s3))["s3"]
    off = transform(raw_sample(s3_olci=s3), s3_band_fix="off")["s3"]
    auto_big = transform(raw_sample(s3_olci=big))["s3"]
    ref_native = transform(raw_sample(s3_olci=s3), s3_band_fix="reference")["s3"]
    off_big = transform(raw_sample(s3_olci=big), s3_band_fix="off")["s3"]
    assert torch.equal(native, off)  # native units: auto leaves every band alone
    assert torch.allclose(auto_big, native, rtol=1e-5)  # ~1e9 too large: auto undoes it exactly as the reference
    expected = off.clone()
    expected[[0, 9]] *= 1e-9  # reference: always ×1e-9 before the OLCI scale factors
    assert torch.allclose(ref_native, expected, rtol=1e-5, atol=0)
    assert float(off_big[[0, 9]].abs().min()) > 1e6  # off: the huge values reach the model
    others = [b for b in range(21) if b not in (0, 9)]
    assert torch.equal(ref_native[others], off[others])
    with pytest.raises(CbenchError, match="s3_band_fix"):
        pdata.fix_s3_bands(s3[0], "sometimes")


# ------------------------------------------------------------------------------------------- M11 Oa21
def test_oa21_is_1020_by_default_1029_on_request_and_the_other_bands_match_the_reference():
    s3 = pdata.MODALITY_BY_NAME["s3"]
    assert list(s3.wavelengths[:20]) == REF_S3_WV_FIRST20
    assert s3.wavelengths[20] == 1020.0 == PretrainConfig().oa21_nm  # ESA's Oa21 centre, the benchmark cards
    ref = {m.name: m for m in with_oa21(MODALITIES, pdata.REFERENCE_OA21_NM)}
    assert ref["s3"].wavelengths == (*s3.wavelengths[:20], 1029.0)
    assert all(ref[m.name] == m for m in MODALITIES if m.name != "s3")


# ------------------------------------------------------------------------------------------- M4 student feature
def test_student_feature_reference_is_unnormed_mean_over_all_tokens_incl_cls():
    torch.manual_seed(0)
    model = CopernicusFMMAE(copernicusfm_tiny(), **DECODER_CONFIGS["tiny"]).eval()
    assert model.student_feature == "reference"
    with torch.no_grad():
        model.norm.weight.uniform_(0.5, 2.0)  # a non-identity final norm, so the two pools must differ
        model.norm.bias.normal_()
    x = torch.randn(2, 3, 32, 32)
    meta = torch.tensor([[11.0, 48.0, 18000.0, 0.0256]] * 2)
    wl, bw = [665.0, 560.0, 490.0], [30.0, 35.0, 65.0]
    captured: list[torch.Tensor] = []
    hook = model.encoder.blocks[-1].register_forward_hook(lambda m, i, o: captured.append(o.detach()))
    with torch.no_grad():
        ref = model.pooled_student(x, meta, wl, bw, 16)
        model.student_feature = "normed-patch"
        ours = model.pooled_student(x, meta, wl, bw, 16)
    hook.remove()
    last = captured[0]  # (B, 1 + N, D): the last block's output, before any final norm
    assert last.shape[1] == 1 + (32 // 16) ** 2
    assert torch.allclose(ref, last.mean(dim=1), atol=1e-6)  # AdaptiveAvgPool1d over every token, CLS included
    assert torch.allclose(ours, model.norm(captured[1])[:, 1:].mean(dim=1), atol=1e-6)
    assert not torch.allclose(ref, ours, atol=1e-3)
    with pytest.raises(ValueError, match="student_feature"):
        CopernicusFMMAE(copernicusfm_tiny(), **DECODER_CONFIGS["tiny"], student_feature="cls")


# ------------------------------------------------------------------------------------------- M1 loss pairing
def _ref_loss(imgs: torch.Tensor, pred_cij: torch.Tensor, mask: torch.Tensor, p: int, order: str) -> torch.Tensor:
    """The reference's patchify (``nchpwq->nhwpqc``; ``nhwcpq`` for the consistent pairing) + norm-pix MSE."""
    n, c, h, w = imgs.shape
    x = imgs.reshape(n, c, h // p, p, w // p, p)
    target = torch.einsum(f"nchpwq->{order}", x).reshape(n, (h // p) * (w // p), p * p * c)
    mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
    target = (target - mean) / (var + 1.0e-6) ** 0.5
    loss = ((pred_cij - target) ** 2).mean(dim=-1)
    return (loss * mask).sum() / mask.sum()


def test_loss_pairing_consistent_default_and_reference_reproduces_the_upstream_flattening():
    torch.manual_seed(0)
    p, c = 4, 3
    imgs = torch.randn(2, c, 8, 12)
    pred = torch.randn(2, 6, c, p, p)
    mask = (torch.rand(2, 6) > 0.4).float()
    mask[:, 0] = 1.0
    target = patchify(imgs, p)
    consistent = mae_loss(pred, target, mask, True)
    reference = mae_loss(pred, target, mask, True, "reference")
    assert consistent == pytest.approx(float(_ref_loss(imgs, pred.flatten(2), mask, p, "nhwcpq")), rel=1e-5)
    assert reference == pytest.approx(float(_ref_loss(imgs, pred.flatten(2), mask, p, "nhwpqc")), rel=1e-5)
    assert abs(float(consistent) - float(reference)) > 1e-3  # C > 1: the pairings differ
    one = patchify(imgs[:, :1], p)  # C = 1: identical
    assert mae_loss(pred[:, :, :1], one, mask, True, "reference") == pytest.approx(
        float(mae_loss(pred[:, :, :1], one, mask, True)), rel=1e-6)
    assert CopernicusFMMAE(copernicusfm_tiny(), **DECODER_CONFIGS["tiny"]).loss_pairing == "consistent"
    with pytest.raises(ValueError, match="pairing"):
        mae_loss(pred, target, mask, True, "ijc")


# ------------------------------------------------------------------------------------------- M6 meta drop + CLI
def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli_pretrain.add_parser(parser.add_subparsers())
    return parser.parse_args(["pretrain", "--shards", "x", "--out", "y", *argv])


def test_meta_drop_default_is_the_papers_and_reference_flag_reproduces_the_reference_code():
    assert PretrainConfig().meta_drop == 0.7
    assert cli_pretrain.parity_options(_args()) == {}  # our defaults
    ref = PretrainConfig(**cli_pretrain.parity_options(_args("--reference")))
    assert (ref.meta_drop, ref.loss_pairing, ref.student_feature, ref.area_mode, ref.s3_band_fix, ref.oa21_nm) == (
        0.0, "reference", "reference", "fixed", "reference", 1029.0)
    mixed = cli_pretrain.parity_options(_args("--reference", "--meta-drop", "0.5", "--loss-pairing", "consistent"))
    assert mixed["meta_drop"] == 0.5 and mixed["loss_pairing"] == "consistent" and mixed["oa21_nm"] == 1029.0
    # the CLI's choices are the modules' (no torch import in the parser)
    assert cli_pretrain.LOSS_PAIRINGS == mae_mod.LOSS_PAIRINGS
    assert cli_pretrain.STUDENT_FEATURES == mae_mod.STUDENT_FEATURES
    assert cli_pretrain.AREA_MODES == pdata.AREA_MODES and cli_pretrain.S3_FIX_MODES == pdata.S3_FIX_MODES
    # the reference's drop: each group NaN for the whole batch with probability p; p = 0 never drops
    meta = torch.tensor([[1.0, 2.0, 3.0, 4.0]] * 3)
    gen = torch.Generator().manual_seed(0)
    assert all(torch.equal(pdata.drop_meta(meta, 0.0, gen), meta) for _ in range(20))
    rates = torch.stack([torch.isnan(pdata.drop_meta(meta, 0.7, gen)[0]) for _ in range(2000)]).float().mean(0)
    assert torch.allclose(rates, torch.full((4,), 0.7), atol=0.04)


# ------------------------------------------------------------------------------------------- shard json format
def test_json_ids_as_released_one_element_lists_and_as_torchgeo_fixture_strings():
    released = {"s3_olci": ["0772176_-96.00_44.00/20210127"], "dem": ["0772176_-96.00_44.00"]}  # REF notebook
    assert parse_id(released["s3_olci"]) == parse_id("0772176_-96.00_44.00/20210127") == (
        -96.0, 44.0, float((date(2021, 1, 27) - date(1970, 1, 1)).days))
    assert parse_id(released["dem"])[:2] == (-96.0, 44.0)
    raw = raw_sample()
    assert isinstance(raw["json"]["dem"][0], list) and isinstance(raw["json"]["s1_grd"][0][0], list)
    assert all(isinstance(v, str) for v in pick_one(raw, random.Random(0))["json"].values())
    bad = raw_sample()
    bad["json"]["s3_olci"] = [["a_1.00_2.00/20200101", "b_1.00_2.00/20200101"]]
    with pytest.raises(CbenchError, match="Copernicus-Pretrain layout"):
        transform(bad)
