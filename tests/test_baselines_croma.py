"""The ``croma`` baseline: single-modality torchgeo CROMA, 12 optical bands, sizes, GAP LayerNorm pooling."""

from __future__ import annotations

import dataclasses

import pytest
import requests
import torch
from test_baselines_cards import card, synthetic_card
from torchgeo.models.croma import CROMA, get_2dalibi

from copernicus_bench.baselines import croma
from copernicus_bench.errors import CbenchError, WeightsNotFoundError


def _tiny():
    return croma.build_adapter(random_init=True, config="tiny")


def _channels(c, p) -> list:
    """Model channels of a card-ordered image whose band i is the constant i + 1."""
    img = torch.arange(1, c.num_bands + 1, dtype=torch.float32).view(1, -1, 1, 1).expand(1, -1, 8, 8)
    q = dataclasses.replace(p, norm="none", mean=None, std=None)
    return q.apply(img)[0, :, 0, 0].tolist()


@pytest.mark.parametrize("slug", ["cloud-s3", "lc100seg-s3", "aq-o3-s5p"])
def test_not_applicable_outside_s1_s2(slug: str) -> None:
    from test_baselines_cards import real_card

    c = real_card(slug)
    if c is None:
        pytest.skip("task cards have not landed yet")
    assert "Sentinel-1 and Sentinel-2" in (_tiny().applicability(c) or "")


@pytest.mark.parametrize("slug,expected", [
    ("cloud-s2", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13]),  # B10 (card band 11) dropped
    ("bigearthnet-s2", list(range(1, 13))),
    ("lcz-s2", [1, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 10]),  # B01 ← B02, B09 ← B8A (paper)
    ("eurosat-s1", [1, 2]),
])
def test_band_layout_and_adaptations(slug: str, expected: list) -> None:
    c = card(slug)
    p = _tiny().input_pipeline(c, "smoke")
    assert _channels(c, p) == expected
    assert p.norm == "meanstd" and p.mean == c.normalization.mean
    if slug == "cloud-s2":
        assert any("B10 dropped" in a for a in p.adaptations)
    if slug == "lcz-s2":
        assert sum("duplicates" in a for a in p.adaptations) == 2


def test_bands_are_placed_by_name() -> None:
    c = synthetic_card("b8a-last-s2")
    p = _tiny().input_pipeline(c, "smoke")
    assert _channels(c, p)[8] == 13  # B8A slot ← the card's last band


@pytest.mark.parametrize("slug,full", [("eurosat-s2", 120), ("lcz-s2", 120), ("bigearthnet-s1", 120),
                                       ("dfc2020-s2", 256), ("cloud-s2", 512), ("flood-s1", 224)])
def test_resolutions_are_the_papers(slug: str, full: int) -> None:
    a = _tiny()
    assert a.input_pipeline(card(slug), "full").resolution == full
    assert a.input_pipeline(card(slug), "smoke").resolution == 64


def test_alibi_matches_torchgeo() -> None:
    torch.testing.assert_close(croma.alibi_2d(16, 6), get_2dalibi(16, 36))


@pytest.mark.parametrize("slug,grid", [("eurosat-s1", 8), ("dfc2020-s1", 8), ("flood-s1", 8),
                                       ("bigearthnet-s2", 8), ("dfc2020-s2", 8)])
def test_forward_tiny(slug: str, grid: int) -> None:
    a = _tiny()
    assert a.head == "linear"
    c = card(slug)
    p = a.input_pipeline(c, "smoke")
    enc = a.build(c, p, 0)
    assert enc.modality == ("sar" if c.sensor == "s1" else "optical")
    assert isinstance(enc.model, CROMA) and enc.model.modalities == [enc.modality]
    with torch.no_grad():
        out = enc(torch.randn(2, p.num_channels, p.resolution, p.resolution), torch.zeros(2, 4), want_maps=True)
    assert out.pooled.shape == (2, 64)
    assert out.maps is not None and [m.shape for m in out.maps] == [(2, 64, grid, grid)] * 4
    assert not any(q.requires_grad for q in enc.parameters())


# ---------------------------------------------------------------------------------- released-file format
@pytest.fixture(scope="module")
def croma_file(tmp_path_factory):
    """A checkpoint in the released layout (sub-dicts) made from torchgeo's two-modality CROMA at 120 px."""
    d = tmp_path_factory.mktemp("croma_weights")
    torch.manual_seed(0)
    model = CROMA(modalities=["sar", "optical"], image_size=120).eval()
    ckpt = {name: getattr(model, name).state_dict() for name in croma.KNOWN_SUBDICTS}
    torch.save(ckpt, d / croma.WEIGHTS.primary)
    return d, model, ckpt


@pytest.mark.parametrize("slug,modality", [("eurosat-s2", "optical"), ("eurosat-s1", "sar")])
def test_torchgeo_checkpoint_loads_and_matches(croma_file, slug: str, modality: str) -> None:
    d, tg, _ = croma_file
    a = croma.build_adapter(weights_dir=str(d))
    assert a.weights_status() == f"present: {croma.WEIGHTS.primary}"
    c = card(slug)
    p = a.input_pipeline(c, "full")
    enc = a.build(c, p, 0)
    assert enc.weights.source == "user"
    x = torch.randn(1, p.num_channels, 120, 120)
    with torch.no_grad():
        ours = enc(x, torch.zeros(1, 4)).pooled
        # torchgeo's own forward crashes with one input on a two-modality model (0.8.1), so run its
        # per-modality encoder and GAP exactly as CROMA.forward does
        encoder, gap = (tg.s1_encoder, tg.s1_GAP_FFN) if modality == "sar" else (tg.s2_encoder, tg.s2_GAP_FFN)
        encodings = encoder(imgs=x, attn_bias=tg.attn_bias)
        full_gap = gap(encodings.mean(dim=1))
    # pooled = the GAP_FFN LayerNorm only (not the whole FFN that torchgeo's *_GAP runs)
    torch.testing.assert_close(ours, gap[0](encodings.mean(dim=1)), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(ours, full_gap, atol=1e-3)


@pytest.mark.parametrize("edit,named", [("extra", "foo"), ("missing", "s2_GAP_FFN"),
                                        ("missing-key", "transformer.norm_out.weight")])
def test_wrong_checkpoint_fails_naming_keys(croma_file, tmp_path, edit: str, named: str) -> None:
    _, _, ckpt = croma_file
    bad = {k: dict(v) for k, v in ckpt.items()}
    if edit == "extra":
        bad["foo"] = {"x": torch.zeros(1)}
    elif edit == "missing":
        del bad["s2_GAP_FFN"]
    else:
        del bad["s2_encoder"]["transformer.norm_out.weight"]
    torch.save(bad, tmp_path / croma.WEIGHTS.primary)
    a = croma.build_adapter(weights_dir=str(tmp_path))
    c = card("eurosat-s2")
    with pytest.raises(CbenchError, match=named.replace(".", r"\.")):
        a.build(c, a.input_pipeline(c, "smoke"), 0)


def test_offline_download_one_sentence(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("CBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def refuse(*args, **kwargs):
        raise requests.ConnectionError("offline")

    monkeypatch.setattr(requests, "get", refuse)
    a = croma.build_adapter(weights_dir=str(tmp_path / "w"))
    c = card("dfc2020-s1")
    with pytest.raises(WeightsNotFoundError) as err:
        a.build(c, a.input_pipeline(c, "smoke"), 0)
    msg = str(err.value)
    assert croma.WEIGHTS.primary in msg and croma.WEIGHTS.url in msg and str(tmp_path / "w") in msg
    assert "\n" not in msg
