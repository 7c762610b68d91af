"""The ``copernicus-fm`` adapter: checkpoint in a weights folder → pooled + maps on S2, S3, S5P and Flood cards."""

from __future__ import annotations

import pytest
import torch

from copernicus_bench.encoder import EncoderAdapter, WeightsInfo, state_dict_sha256
from copernicus_bench.errors import CbenchError, WeightsNotFoundError
from copernicus_bench.models.copernicusfm import adapter as cfm_adapter
from copernicus_bench.models.copernicusfm import checkpoint, varembed
from copernicus_bench.models.copernicusfm.model import copernicusfm_base, copernicusfm_tiny
from copernicus_bench.tasks import get_card

RELEASED = checkpoint.SPEC.primary


def _embeddings(folder):
    g = torch.Generator().manual_seed(0)
    torch.save({n: torch.randn(2048, generator=g) for n in varembed.ALIASES.values()}, folder / varembed.FILENAME)


def _meta(card, b):
    """[lon, lat, days, area] as the runner passes it, NaN where the card has no such metadata."""
    m = torch.tensor([[11.0, 48.0, 19000.0, card.patch_area_km2]] * b)
    fields = {"lon": 0, "lat": 1, "time": 2, "area": 3}
    for name, i in fields.items():
        if name not in card.metadata:
            m[:, i] = float("nan")
    return m


@pytest.fixture(scope="module")
def base_weights_dir(tmp_path_factory):
    """A random ViT-B state dict saved under the released file name (+ a fake embedding file)."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(123)
    model = copernicusfm_base()
    torch.save(model.state_dict(), folder / RELEASED)
    _embeddings(folder)
    cfm_adapter.clear_cache()
    yield folder, state_dict_sha256(model)
    cfm_adapter.clear_cache()


@pytest.mark.parametrize("slug", ["cloud-s2", "lc100seg-s3", "aq-no2-s5p", "flood-s1"])
def test_adapter_base_checkpoint_shapes(base_weights_dir, slug):
    folder, model_sha = base_weights_dir
    adapter = cfm_adapter.build_adapter(weights_dir=folder, seed=0, download=False)
    assert isinstance(adapter, EncoderAdapter) and adapter.name == "copernicus-fm"
    assert adapter.head == "ln-bn-linear"
    card = get_card(slug)
    assert adapter.applicability(card) is None
    pipe = adapter.input_pipeline(card, "smoke")
    enc = adapter.build(card, pipe, seed=0)
    # a random file under the released name whose sha does not match the name is a user checkpoint
    assert enc.weights.source == "user" and enc.weights.file.endswith(RELEASED)
    assert state_dict_sha256(enc.model) == model_sha
    x = torch.randn(2, card.num_bands, card.resolution, card.resolution)  # physical, any size
    x = pipe.apply(x)  # one date at a time (Flood: pre, then post)
    with torch.no_grad():
        out = enc(x, _meta(card, 2), want_maps=True)
        pooled_only = enc(x, _meta(card, 2)).pooled
    grid = pipe.resolution // card.kernel_size
    assert out.pooled.shape == (2, 768) and enc.embed_dim == 768
    assert [tuple(m.shape) for m in out.maps] == [(2, 768, grid, grid)] * 4
    torch.testing.assert_close(out.pooled, pooled_only)
    assert torch.isfinite(out.pooled).all()
    if card.input_mode == "variable":
        assert any("s5p_no2" in a and "sha256" in a for a in pipe.adaptations)
    # one model per process: a second task reuses the loaded weights
    assert adapter.build(get_card("eurosat-s2"), adapter.input_pipeline(get_card("eurosat-s2"), "smoke"),
                         seed=0).model is enc.model


def test_full_tier_token_grids():
    adapter = cfm_adapter.build_adapter(random_init=True, config="tiny")
    expected = {"cloud-s2": 32, "cloud-s3": 28, "lc100cls-s3": 12, "lcz-s2": 7, "aq-o3-s5p": 14, "flood-s1": 14}
    for slug, grid in expected.items():
        card = get_card(slug)
        pipe = adapter.input_pipeline(card, "full")
        assert pipe.resolution // card.kernel_size == grid
    card = get_card("lc100cls-s3")
    enc = adapter.build(card, adapter.input_pipeline(card, "full"), seed=0)
    out = enc(torch.randn(1, 21, 96, 96), _meta(card, 1), want_maps=True)
    assert out.maps[0].shape == (1, 64, 12, 12)


def test_all_tasks_apply():
    from copernicus_bench.tasks import list_cards

    adapter = cfm_adapter.build_adapter(random_init=True, config="tiny")
    assert all(adapter.applicability(c) is None for c in list_cards())


def test_random_init_seeded_and_labelled(tmp_path):
    adapter = cfm_adapter.build_adapter(weights_dir=tmp_path, random_init=True, config="tiny", download=False)
    card = get_card("aq-o3-s5p")
    pipe = adapter.input_pipeline(card, "smoke")  # no embedding file needed, but labelled
    assert any("random" in a and "s5p_o3" in a for a in pipe.adaptations)
    e0 = adapter.build(card, pipe, seed=0)
    e0b = adapter.build(card, pipe, seed=0)
    e1 = adapter.build(card, pipe, seed=1)
    assert e0.weights.source == "random-init" and e0.weights.label == "random-init"
    assert e0.weights == e0b.weights and e0.weights.sha256 != e1.weights.sha256
    torch.manual_seed(0)
    assert e0.weights == WeightsInfo("random-init", state_dict_sha256(copernicusfm_tiny()))
    assert not torch.equal(e0.language_embed, e1.language_embed)
    assert adapter.options()["random_init"] is True and "random-init" in adapter.weights_status()


def test_missing_checkpoint_offline_one_sentence(tmp_path, monkeypatch):
    import copernicus_bench.weights as weights

    monkeypatch.setattr(weights, "_download", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("offline")))
    adapter = cfm_adapter.build_adapter(weights_dir=tmp_path, config="tiny")
    assert "missing: CopernicusFM_ViT_base_varlang-085350e4.pth" in adapter.weights_status()
    card = get_card("eurosat-s1")
    with pytest.raises(WeightsNotFoundError) as err:
        adapter.build(card, adapter.input_pipeline(card, "smoke"), seed=0)
    msg = str(err.value)
    assert RELEASED in msg and checkpoint.TORCHGEO_URL in msg and "\n" not in msg
    with pytest.raises(WeightsNotFoundError, match="var_embed_llama3.2_1B.pt"):
        adapter.input_pipeline(get_card("aq-no2-s5p"), "smoke")


def test_user_checkpoint_and_meta_nan_option(tmp_path):
    torch.manual_seed(5)
    model = copernicusfm_tiny()
    torch.save({"model": {**model.state_dict(), "norm.weight": torch.ones(64)}, "epoch": 1}, tmp_path / "mine.pth")
    adapter = cfm_adapter.build_adapter(weights_dir=tmp_path, config="tiny", checkpoint=tmp_path / "mine.pth",
                                        meta_nan_mode="batch")
    card = get_card("eurosat-s1")
    enc = adapter.build(card, adapter.input_pipeline(card, "smoke"), seed=0)
    assert enc.weights.source == "user" and enc.meta_nan_mode == "batch"
    assert adapter.options() == {"config": "tiny", "meta_nan_mode": "batch"}
    with pytest.raises(CbenchError, match="meta_nan_mode"):
        cfm_adapter.build_adapter(meta_nan_mode="global")


def test_entry_point_registered():
    from copernicus_bench.models_registry import create_model

    adapter = create_model("copernicus-fm", weights_dir="/nonexistent", seed=0, random_init=True, config="tiny")
    assert adapter.name == "copernicus-fm"
    with pytest.raises(CbenchError, match="does not take"):
        create_model("copernicus-fm", weights_dir="/nonexistent", seed=0, bogus=1)


def test_pretraining_export_loads_through_adapter(tmp_path):
    """What our MAE pretraining loop saves ({"model": encoder + pretraining keys}) loads through the same rules."""
    mae = pytest.importorskip("copernicus_bench.models.copernicusfm.mae")
    torch.manual_seed(7)
    enc = copernicusfm_tiny()
    wrapper = mae.CopernicusFMMAE(enc, decoder_dim=32, decoder_depth=1, decoder_heads=4)
    torch.save({"model": wrapper.export_state_dict(), "epoch": 0}, tmp_path / "pretrained.pth")
    loaded = copernicusfm_tiny()
    ignored = checkpoint.load_checkpoint_file(loaded, tmp_path / "pretrained.pth")
    assert ignored and all(k.startswith(checkpoint.PRETRAINING_ONLY_PREFIXES) for k in ignored)
    assert state_dict_sha256(loaded) == state_dict_sha256(enc)


def test_random_embeddings_written_by_pretraining_are_labelled_in_the_pipeline(tmp_path):
    import torch

    from copernicus_bench.models.copernicusfm import varembed
    from copernicus_bench.models.copernicusfm.adapter import build_adapter
    from copernicus_bench.tasks import get_card

    names = {"Sentinel 5P Nitrogen Dioxide": torch.randn(2048), "Sentinel 5P Ozone": torch.randn(2048)}
    torch.save(names, tmp_path / varembed.FILENAME)
    card = get_card("aq-no2-s5p")
    plain = build_adapter(weights_dir=str(tmp_path)).input_pipeline(card, "smoke")
    assert not any("RANDOM" in a for a in plain.adaptations)
    (tmp_path / "var_embed_llama3.2_1B.RANDOM.txt").write_text("random stand-in\n")
    labelled = build_adapter(weights_dir=str(tmp_path)).input_pipeline(card, "smoke")
    assert any("RANDOM stand-in" in a for a in labelled.adaptations)
    assert labelled.digest() != plain.digest()  # and so the cache key differs
