"""The ``dofa`` baseline: wavelengths in µm by DOFA's conventions, fixed 16-px patch, checkpoint loading."""

from __future__ import annotations

import pytest
import requests
import torch
from test_baselines_cards import card, synthetic_card
from torchgeo.models.dofa import dofa_base_patch16_224

from copernicus_bench.baselines import dofa
from copernicus_bench.encoder import default_pipeline
from copernicus_bench.errors import CbenchError, WeightsNotFoundError


def _tiny():
    return dofa.build_adapter(random_init=True, config="tiny", seed=0)


def _spy_wavelengths(enc) -> list:
    seen: list = []
    enc.model.patch_embed.register_forward_pre_hook(lambda mod, args: seen.append(args[1].tolist()))
    return seen


@pytest.mark.parametrize("slug,expected", [
    ("eurosat-s1", [3.75, 3.75]),
    ("flood-s1", [3.75, 3.75]),
    ("aq-no2-s5p", [0.0]),
    ("lcz-s2", [0.49, 0.56, 0.665, 0.705, 0.74, 0.783, 0.842, 0.86, 1.61, 2.19]),
])
def test_wavelengths_passed_to_dofa(slug: str, expected: list) -> None:
    a = _tiny()
    c = card(slug)
    p = a.input_pipeline(c, "smoke")
    enc = a.build(c, p, 0)
    seen = _spy_wavelengths(enc)
    with torch.no_grad():
        out = enc(torch.randn(2, p.num_channels, p.resolution, p.resolution), torch.zeros(2, 4))
    assert len(seen) == 1
    assert seen[0] == pytest.approx(expected, rel=1e-6)
    assert torch.isfinite(out.pooled).all()  # wavelength 0 (S5P) gives an ordinary kernel


def test_s2_wavelengths_follow_card_order() -> None:
    """A card listing B8A last: its wavelength (0.86 µm) must be last too."""
    a = _tiny()
    c = synthetic_card("b8a-last-s2")
    p = a.input_pipeline(c, "smoke")
    wl = dofa.dofa_wavelengths_um(c, p)
    assert wl == pytest.approx([b.wavelength_nm / 1000 for b in c.bands])
    assert wl[-1] == pytest.approx(0.86)


@pytest.mark.parametrize("slug,tier,grid", [
    ("aq-no2-s5p", "full", 3),  # 56 px with a fixed 16-px patch: 3×3 tokens, as the reference
    ("lc100cls-s3", "full", 6),  # 96 px (torchgeo's 224-px model would fail here)
    ("cloud-s3", "smoke", 4),
    ("dfc2020-s2", "smoke", 4),
    ("flood-s1", "smoke", 4),
])
def test_dense_maps_grid_and_pipeline(slug: str, tier: str, grid: int) -> None:
    a = _tiny()
    c = card(slug)
    p = a.input_pipeline(c, tier)
    assert p == default_pipeline(c, tier, 16)  # same normalised images as Copernicus-FM
    assert a.applicability(c) is None
    enc = a.build(c, p, 0)
    with torch.no_grad():
        out = enc(torch.randn(2, p.num_channels, p.resolution, p.resolution), torch.zeros(2, 4), want_maps=True)
    assert out.pooled.shape == (2, 64)
    assert out.maps is not None and [m.shape for m in out.maps] == [(2, 64, grid, grid)] * 4
    torch.testing.assert_close(out.maps[-1].mean(dim=(2, 3)), out.pooled)
    assert not any(q.requires_grad for q in enc.parameters())


def test_random_init_is_seeded() -> None:
    c = card("eurosat-s1")
    a, b = _tiny(), _tiny()
    p = a.input_pipeline(c, "smoke")
    assert a.build(c, p, 3).weights.sha256 == b.build(c, p, 3).weights.sha256 != a.build(c, p, 4).weights.sha256
    assert a.build(c, p, 3).weights.source == "random-init"
    assert a.weights_status() == "random init per seed"


def test_pos_embed_resize_keeps_cls_and_identity() -> None:
    pe = dofa.mae_sincos_pos_embed(64, 14)
    assert dofa.resize_pos_embed(pe, 14) is pe
    small = dofa.resize_pos_embed(pe, 3)
    assert small.shape == (1, 10, 64) and torch.equal(small[:, 0], pe[:, 0])


# ---------------------------------------------------------------------------------- released-file format
@pytest.fixture(scope="module")
def torchgeo_dofa_dir(tmp_path_factory):
    """A state dict of torchgeo's own DOFA-B/16 (with its fc_norm/head) saved under the released name."""
    d = tmp_path_factory.mktemp("dofa_weights")
    torch.manual_seed(0)
    model = dofa_base_patch16_224()
    torch.save(model.state_dict(), d / dofa.WEIGHTS.primary)
    return d, model.eval()


def test_torchgeo_state_dict_loads_and_matches(torchgeo_dofa_dir) -> None:
    d, tg = torchgeo_dofa_dir
    a = dofa.build_adapter(weights_dir=str(d))
    assert a.weights_status() == f"present: {dofa.WEIGHTS.primary}"
    c = card("eurosat-s2")
    p = a.input_pipeline(c, "full")
    enc = a.build(c, p, 0)
    assert enc.weights.source == "user" and enc.weights.file.endswith(dofa.WEIGHTS.primary)
    x = torch.randn(1, p.num_channels, 224, 224)
    wl = [b.wavelength_nm / 1000 for b in c.bands]
    with torch.no_grad():
        ours = enc(x, torch.zeros(1, 4)).pooled
        theirs = tg.forward_features(x, wl)  # fc_norm(mean of patch tokens)
    torch.testing.assert_close(tg.fc_norm(ours), theirs, atol=1e-4, rtol=1e-4)
    # a smaller grid: pos_embed resized from 14×14 to 4×4, the rest unchanged
    ps = a.input_pipeline(c, "smoke")
    small = a.build(c, ps, 0)
    assert small.model.pos_embed.shape == (1, 17, 768)
    torch.testing.assert_close(small.model.blocks[5].mlp.fc1.weight, tg.blocks[5].mlp.fc1.weight)


@pytest.mark.parametrize("edit,named", [("extra", "foo.bar"), ("missing", "blocks.0.norm1.weight")])
def test_wrong_state_dict_fails_naming_keys(torchgeo_dofa_dir, tmp_path, edit: str, named: str) -> None:
    d, tg = torchgeo_dofa_dir
    sd = dict(tg.state_dict())
    if edit == "extra":
        sd["foo.bar"] = torch.zeros(1)
    else:
        del sd["blocks.0.norm1.weight"]
    torch.save(sd, tmp_path / dofa.WEIGHTS.primary)
    a = dofa.build_adapter(weights_dir=str(tmp_path))
    c = card("eurosat-s1")
    with pytest.raises(CbenchError, match=named.replace(".", r"\.")):
        a.build(c, a.input_pipeline(c, "smoke"), 0)


def test_offline_download_one_sentence(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("CBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def refuse(*args, **kwargs):
        raise requests.ConnectionError("offline")

    monkeypatch.setattr(requests, "get", refuse)
    a = dofa.build_adapter(weights_dir=str(tmp_path / "w"))
    assert a.weights_status() == f"missing: {dofa.WEIGHTS.primary} (downloaded on first run)"
    c = card("eurosat-s2")
    with pytest.raises(WeightsNotFoundError) as err:
        a.build(c, a.input_pipeline(c, "smoke"), 0)
    msg = str(err.value)
    assert dofa.WEIGHTS.primary in msg and dofa.WEIGHTS.url in msg and str(tmp_path / "w") in msg
    assert "\n" not in msg
