"""The ``softcon`` baseline: 13-band layout, SoftCon normalisation, sizes of 14, S1/S2 only, checkpoints."""

from __future__ import annotations

import dataclasses

import pytest
import requests
import timm
import torch
from test_baselines_cards import card, synthetic_card
from torchgeo.models.vit import vit_base_patch14_dinov2

from copernicus_bench.baselines import softcon
from copernicus_bench.errors import CbenchError, WeightsNotFoundError


def _tiny(**kw):
    return softcon.build_adapter(random_init=True, config="tiny", **kw)


def _slots_only(p):
    return dataclasses.replace(p, norm="none", mean=None, std=None, quantile_clip=None)


def _band_index_image(c, size: int = 8) -> torch.Tensor:
    """Card-ordered image whose band i is the constant i + 1 (0 marks a zero slot)."""
    return torch.arange(1, c.num_bands + 1, dtype=torch.float32).view(1, -1, 1, 1).expand(1, -1, size, size)


@pytest.mark.parametrize("slug", ["cloud-s3", "lc100cls-s3", "biomass-s3", "aq-no2-s5p"])
def test_not_applicable_outside_s1_s2(slug: str) -> None:
    a = _tiny()
    reason = a.applicability(card(slug))
    assert reason and "Sentinel-1 and Sentinel-2" in reason
    with pytest.raises(CbenchError):
        a.input_pipeline(card(slug), "smoke")


@pytest.mark.parametrize("slug,kw,expected", [
    ("cloud-s2", {}, list(range(1, 14))),
    ("bigearthnet-s2", {}, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 11, 12]),  # zero B10 inserted
    # LCZ (B02..B08, B8A, B11, B12) at the TRUE positions, zeros at B01, B09, B10
    ("lcz-s2", {}, [0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 9, 10]),
    # the reference's misplacement, behind the option: B08/B8A in the B09/B10 slots
    ("lcz-s2", {"lcz_reference_order": True}, [0, 1, 2, 3, 4, 5, 6, 0, 0, 7, 8, 9, 10]),
    ("eurosat-s1", {}, [1, 2]),
])
def test_band_layout(slug: str, kw: dict, expected: list) -> None:
    c = card(slug)
    p = _tiny(**kw).input_pipeline(c, "smoke")
    x = _slots_only(p).apply(_band_index_image(c))
    assert x[0, :, 0, 0].tolist() == expected
    zero_slots = [i for i, v in enumerate(expected) if v == 0]
    if zero_slots and not kw:
        assert len([a for a in p.adaptations if "zero channel" in a]) == len(zero_slots)


def test_bands_are_placed_by_name() -> None:
    c = synthetic_card("b8a-last-s2")  # B8A is the card's last band
    p = _tiny().input_pipeline(c, "smoke")
    x = _slots_only(p).apply(_band_index_image(c))
    assert x[0, 8, 0, 0] == 13 and x[0, 9, 0, 0] == 9  # B8A slot ← card band 13; B09 ← card band 9


@pytest.mark.parametrize("slug,full,smoke", [
    ("eurosat-s2", 224, 70), ("bigearthnet-s1", 224, 70), ("dfc2020-s2", 224, 70), ("flood-s1", 224, 70),
    ("cloud-s2", 504, 70), ("lcz-s2", 112, 70),
])
def test_resolutions_are_the_papers(slug: str, full: int, smoke: int) -> None:
    a = _tiny()
    assert a.input_pipeline(card(slug), "full").resolution == full
    assert a.input_pipeline(card(slug), "smoke").resolution == smoke


def test_normalisation_forms() -> None:
    a = _tiny()
    torch.manual_seed(0)
    # S2: softcon form with the card's stats -> [0, 1]
    c = card("eurosat-s2")
    p = a.input_pipeline(c, "smoke")
    assert p.norm == "softcon" and p.quantile_clip is None and p.mean == c.normalization.mean
    x = p.apply(torch.rand(2, c.num_bands, 64, 64) * 20000 - 5000)
    assert x.min() >= 0 and x.max() <= 1 and x.shape == (2, 13, 70, 70)
    # S1: per-image 1-99 % quantile clip first, then softcon form
    c = card("dfc2020-s1")
    p = a.input_pipeline(c, "smoke")
    assert p.quantile_clip == (0.01, 0.99) and p.norm == "softcon"
    img = torch.randn(2, 2, 32, 32) * 5 - 15
    img[:, :, 0, 0] = 1e6  # an outlier the quantile clip removes
    x = p.apply(img)
    assert 0 <= x.min() and x.max() <= 1
    # BigEarthNet-S2: the reference's BEN stats, not the card's
    c = card("bigearthnet-s2")
    p = a.input_pipeline(c, "smoke")
    b02 = [softcon.canonical_band(b) for b in c.band_names].index("B02")
    assert p.mean[0][b02] == 884.29673756 and p.std[0][b02] == 1155.15170768  # full precision (parity item 7)
    assert p.mean != c.normalization.mean
    # Flood: plain mean/std per date
    c = card("flood-s1")
    p = a.input_pipeline(c, "smoke")
    assert p.norm == "meanstd" and p.quantile_clip is None and p.mean == c.normalization.mean


@pytest.mark.parametrize("slug", ["eurosat-s1", "bigearthnet-s2", "dfc2020-s2", "flood-s1", "lcz-s2"])
def test_forward_tiny(slug: str) -> None:
    a = _tiny()
    assert a.head == "linear"
    c = card(slug)
    p = a.input_pipeline(c, "smoke")
    enc = a.build(c, p, 0)
    assert enc.vit.patch_embed.proj.in_channels == (13 if c.sensor == "s2" else 2)
    with torch.no_grad():
        out = enc(torch.rand(2, p.num_channels, p.resolution, p.resolution), torch.zeros(2, 4), want_maps=True)
    assert out.pooled.shape == (2, 64)
    assert out.maps is not None and [m.shape for m in out.maps] == [(2, 64, 5, 5)] * 4
    # the last map is the normed last block: its mean is the pooled embedding (mean of normed patch tokens)
    torch.testing.assert_close(out.maps[-1].mean(dim=(2, 3)), out.pooled)


# ---------------------------------------------------------------------------------- released-file format
@pytest.fixture(scope="module")
def s2_timm(tmp_path_factory):
    d = tmp_path_factory.mktemp("softcon_weights")
    torch.manual_seed(0)
    model = timm.create_model("vit_base_patch14_dinov2", img_size=224, in_chans=13, num_classes=0,
                              init_values=1e-5).eval()
    torch.save(model.state_dict(), d / softcon.WEIGHTS["s2"].primary)
    return d, model


def test_timm_state_dict_loads_and_matches(s2_timm) -> None:
    d, ref = s2_timm
    a = softcon.build_adapter(weights_dir=str(d))
    assert a.weights_status() == (f"present: {softcon.WEIGHTS['s2'].primary}; "
                                  f"missing: {softcon.WEIGHTS['s1'].primary} (downloaded on first run)")
    c = card("eurosat-s2")
    p = a.input_pipeline(c, "full")
    enc = a.build(c, p, 0)
    assert enc.weights.source == "user"
    x = torch.rand(1, 13, 224, 224)
    with torch.no_grad():
        ours = enc(x, torch.zeros(1, 4)).pooled
        theirs = ref.forward_features(x)[:, 1:].mean(dim=1)  # mean of normed patch tokens
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    small = a.build(card("lcz-s2"), a.input_pipeline(card("lcz-s2"), "full"), 0)  # 112 px: 8×8 grid
    assert small.vit.pos_embed.shape == (1, 65, 768)


def test_torchgeo_s1_state_dict_loads(tmp_path) -> None:
    torch.manual_seed(0)
    model = vit_base_patch14_dinov2(in_chans=2, img_size=224)  # torchgeo's builder, with a timm head
    torch.save(model.state_dict(), tmp_path / softcon.WEIGHTS["s1"].primary)
    a = softcon.build_adapter(weights_dir=str(tmp_path))
    c = card("eurosat-s1")
    enc = a.build(c, a.input_pipeline(c, "smoke"), 0)
    torch.testing.assert_close(enc.vit.blocks[3].attn.qkv.weight, model.blocks[3].attn.qkv.weight)
    torch.testing.assert_close(enc.vit.norm.weight, model.norm.weight)


@pytest.mark.parametrize("edit,named", [("extra", "foo.bar"), ("missing", "norm.weight")])
def test_wrong_state_dict_fails_naming_keys(s2_timm, tmp_path, edit: str, named: str) -> None:
    _, ref = s2_timm
    sd = dict(ref.state_dict())
    if edit == "extra":
        sd["foo.bar"] = torch.zeros(1)
    else:
        del sd["norm.weight"]
    torch.save(sd, tmp_path / softcon.WEIGHTS["s2"].primary)
    a = softcon.build_adapter(weights_dir=str(tmp_path))
    c = card("eurosat-s2")
    with pytest.raises(CbenchError, match=named.replace(".", r"\.")):
        a.build(c, a.input_pipeline(c, "smoke"), 0)


def test_authors_file_in_another_layout_fails_naming_file_and_key(tmp_path) -> None:
    torch.save({"blocks.0.0.norm1.weight": torch.zeros(1)}, tmp_path / "B13_vitb14_softcon.pth")  # chunked
    a = softcon.build_adapter(weights_dir=str(tmp_path))
    c = card("cloud-s2")
    with pytest.raises(CbenchError, match=r"B13_vitb14_softcon\.pth: unexpected key 'blocks\.0\.0\.norm1") as err:
        a.build(c, a.input_pipeline(c, "smoke"), 0)
    assert "B13_vitb14_softcon_enc.pth" in str(err.value) and "\n" not in str(err.value)


def test_offline_download_one_sentence(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("CBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def refuse(*args, **kwargs):
        raise requests.ConnectionError("offline")

    monkeypatch.setattr(requests, "get", refuse)
    a = softcon.build_adapter(weights_dir=str(tmp_path / "w"))
    c = card("eurosat-s1")
    with pytest.raises(WeightsNotFoundError) as err:
        a.build(c, a.input_pipeline(c, "smoke"), 0)
    msg = str(err.value)
    spec = softcon.WEIGHTS["s1"]
    assert spec.primary in msg and spec.url in msg and str(tmp_path / "w") in msg and "\n" not in msg
