"""Copernicus-FM checkpoint compatibility: torchgeo equivalence (full ViT-B), key rules, variable embeddings."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from copernicus_bench.errors import CbenchError, WeightsNotFoundError
from copernicus_bench.models.copernicusfm import checkpoint, varembed
from copernicus_bench.models.copernicusfm.model import copernicusfm_base, copernicusfm_tiny

S2_WL = [440, 490, 560, 665, 705, 740, 783, 842, 860, 940, 1370, 1610, 2190]
S2_BW = [20, 65, 35, 30, 15, 15, 20, 115, 20, 20, 30, 90, 180]
INDICES = (3, 5, 7, 11)


@pytest.fixture(scope="module")
def pair():
    """torchgeo's copernicusfm_base (eps 1e-6, random weights) and ours loaded from its state dict."""
    from torchgeo.models.copernicusfm import copernicusfm_base as tg_base

    torch.manual_seed(0)
    tg = tg_base(norm_layer=partial(nn.LayerNorm, eps=1e-6)).eval()
    ours = copernicusfm_base().eval()
    with torch.no_grad():
        # torchgeo leaves pos_embed and the tokens at zero: give them non-trivial values first
        tg.pos_embed.copy_(ours.pos_embed)
        for name in ("cls_token", "coord_token", "scale_token", "time_token"):
            getattr(tg, name).normal_(0, 0.5)
    ignored = checkpoint.load_into(ours, tg.state_dict(), "torchgeo")
    assert ignored == ["fc_norm.bias", "fc_norm.weight"]  # the head is the only thing not loaded
    tg.fc_norm = nn.Identity()  # torchgeo's pooled output = fc_norm(mean of patch tokens)
    return tg, ours


def _compare(tg, ours, x, meta, mode, **kw):
    maps_tg = {}
    hooks = [tg.blocks[i].register_forward_hook(lambda m, a, out, i=i: maps_tg.__setitem__(i, out)) for i in INDICES]
    try:
        with torch.no_grad():
            pooled_tg = tg.forward_features(x, meta, **kw)
            pooled, maps = ours.forward_intermediates(x, meta, indices=INDICES, return_pooled=True,
                                                      meta_nan_mode=mode, **kw)
    finally:
        for h in hooks:
            h.remove()
    assert (pooled - pooled_tg).abs().max() <= 1e-5
    for i, m in zip(INDICES, maps):
        b, d, gh, gw = m.shape
        ref = maps_tg[i][:, 1:].transpose(1, 2).reshape(b, d, gh, gw)
        assert (m - ref).abs().max() <= 1e-5, f"block {i}"
    return pooled


def test_equivalence_spectral_k16(pair):
    tg, ours = pair
    torch.manual_seed(1)
    x = torch.randn(2, 13, 224, 224)
    meta = torch.tensor([[11.0, 48.0, 19000.0, 0.0256], [-70.0, -30.0, 18000.0, 0.0256]])
    pooled = _compare(tg, ours, x, meta, "sample", wavelengths=S2_WL, bandwidths=S2_BW, kernel_size=16)
    assert pooled.shape == (2, 768)


def test_equivalence_spectral_k8_flexivit(pair):
    tg, ours = pair
    torch.manual_seed(2)
    x = torch.randn(2, 13, 96, 96)  # 12x12 tokens: kernel PI-resize and pos-embed resize
    meta = torch.tensor([[11.0, 48.0, float("nan"), 0.09], [5.0, 40.0, 18000.0, 0.09]])
    _compare(tg, ours, x, meta, "batch", wavelengths=S2_WL, bandwidths=S2_BW, kernel_size=8)


def test_equivalence_variable_k4(pair):
    tg, ours = pair
    torch.manual_seed(3)
    x = torch.randn(2, 1, 56, 56)
    meta = torch.tensor([[float("nan"), 48.0, 19000.0, 16.0], [5.0, 40.0, 18000.0, float("nan")]])
    _compare(tg, ours, x, meta, "batch", language_embed=torch.randn(2048), input_mode="variable", kernel_size=4)


# ------------------------------------------------------------------------------ key rules (tiny)
@pytest.fixture()
def tiny_sd():
    torch.manual_seed(0)
    return copernicusfm_tiny().state_dict()


def test_extra_key_fails_naming_it(tiny_sd):
    sd = dict(tiny_sd, **{"blocks.0.extra.weight": torch.zeros(1)})
    with pytest.raises(CbenchError, match=r"unexpected keys \[blocks\.0\.extra\.weight\]"):
        checkpoint.load_into(copernicusfm_tiny(), sd, "x.pth")


def test_missing_key_fails_naming_it(tiny_sd):
    sd = {k: v for k, v in tiny_sd.items() if k != "time_token"}
    with pytest.raises(CbenchError, match=r"missing keys \[time_token\]"):
        checkpoint.load_into(copernicusfm_tiny(), sd, "x.pth")


def test_wrong_shape_fails_naming_it(tiny_sd):
    sd = dict(tiny_sd, cls_token=torch.zeros(1, 1, 32))
    with pytest.raises(CbenchError, match="cls_token"):
        checkpoint.load_into(copernicusfm_tiny(), sd, "x.pth")


def test_pretraining_and_head_keys_ignored_and_model_wrapper(tiny_sd, tmp_path):
    extra = {
        "norm.weight": torch.ones(64), "norm.bias": torch.zeros(64), "mask_token": torch.zeros(1, 1, 32),
        "decoder_embed.weight": torch.zeros(32, 64), "decoder_blocks.0.attn.qkv.weight": torch.zeros(3),
        "decoder_pred_spectral.weight_generator.fc_bias.weight": torch.zeros(2),
        "coord_fc_decoder.weight": torch.zeros(2), "time_token_dec": torch.zeros(1, 1, 32),
        "student_proj.weight": torch.zeros(768, 64), "teacher.blocks.0.norm1.weight": torch.zeros(768),
        "fc_norm.weight": torch.ones(64), "head.weight": torch.zeros(10, 64),
    }
    path = tmp_path / "ours.pth"
    torch.save({"model": {**tiny_sd, **extra}, "epoch": 3, "args": {"lr": 1e-4}}, path)
    model = copernicusfm_tiny()
    ignored = checkpoint.load_checkpoint_file(model, path)
    assert set(ignored) == set(extra)
    for k, v in model.state_dict().items():
        assert torch.equal(v, tiny_sd[k]), k
    # a raw state dict (the released format) and a DDP prefix load too
    torch.save({f"module.{k}": v for k, v in tiny_sd.items()}, tmp_path / "raw.pth")
    assert checkpoint.load_checkpoint_file(copernicusfm_tiny(), tmp_path / "raw.pth") == []


def test_spec_matches_conventions_and_torchgeo():
    from torchgeo.models import CopernicusFM_Base_Weights

    assert checkpoint.SPEC.filenames == ("CopernicusFM_ViT_base_varlang-085350e4.pth",
                                         "CopernicusFM_ViT_base_varlang_e100.pth")
    assert checkpoint.SPEC.url == CopernicusFM_Base_Weights.CopernicusFM_ViT.url


# ------------------------------------------------------------------------------ variable embeddings
def _write_embeddings(path, names=None):
    names = tuple(varembed.ALIASES.values()) if names is None else names
    g = torch.Generator().manual_seed(0)
    torch.save({n: torch.randn(2048, generator=g) for n in names}, path)


def test_embeddings_from_local_path_with_aliases(tmp_path):
    path = tmp_path / "emb.pt"
    _write_embeddings(path)
    emb = varembed.load_embeddings(path=path)
    assert torch.equal(emb["s5p_no2"], emb["Sentinel 5P Nitrogen Dioxide"])
    assert torch.equal(emb["dem"], emb["Copernicus Digital Elevation Model"])
    assert emb["s5p_o3"].shape == (2048,) and len(emb.sha256) == 64
    with pytest.raises(CbenchError, match="no entry for 'soil_moisture'"):
        emb["soil_moisture"]


def test_embeddings_from_weights_folder(tmp_path):
    _write_embeddings(tmp_path / varembed.FILENAME)
    emb = varembed.load_embeddings(weights_dir=tmp_path, download=False)
    assert "s5p_co" in emb and emb.path.endswith(varembed.FILENAME)


def test_embeddings_bad_entry(tmp_path):
    torch.save({"s5p_no2": torch.zeros(10)}, tmp_path / "bad.pt")
    with pytest.raises(CbenchError, match="not a 2048-d tensor"):
        varembed.load_embeddings(path=tmp_path / "bad.pt")


def test_embeddings_offline_one_sentence(tmp_path, monkeypatch):
    import copernicus_bench.weights as weights

    def fail(url, target, timeout=30.0):
        raise ConnectionError("no network")

    monkeypatch.setattr(weights, "_download", fail)
    with pytest.raises(WeightsNotFoundError) as err:
        varembed.load_embeddings(weights_dir=tmp_path)
    msg = str(err.value)
    assert "var_embed_llama3.2_1B.pt" in msg and varembed.URL in msg and "\n" not in msg
    assert msg.count(". ") == 0  # one sentence
    monkeypatch.setenv("CBENCH_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="var_embed_llama3.2_1B.pt"):
        varembed.load_embeddings(weights_dir=tmp_path)


def test_random_embedding_is_seeded_and_per_variable():
    a = varembed.random_embedding("s5p_no2", 0)
    assert torch.equal(a, varembed.random_embedding("Sentinel 5P Nitrogen Dioxide", 0))
    assert not torch.equal(a, varembed.random_embedding("s5p_no2", 1))
    assert not torch.equal(a, varembed.random_embedding("s5p_o3", 0))


def test_embed_variable_cli_without_transformers_is_one_line(tmp_path, capsys):
    import importlib.util

    from copernicus_bench.cli import main

    if importlib.util.find_spec("transformers") is not None:
        pytest.skip("transformers is installed")
    rc = main(["embed-variable", "Sentinel 5P Methane", "--model-path", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "\n" not in err and "transformers" in err and "not installed" in err
