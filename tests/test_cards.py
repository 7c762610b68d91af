"""Task cards: the 15 cards load, validate, and hold the facts of the paper and the reference configs."""

from __future__ import annotations

import pytest

from copernicus_bench.cards import load_card
from copernicus_bench.errors import CbenchError
from copernicus_bench.tasks import CARDS_DIR, TASK_SLUGS, get_card, list_cards, resolve_tasks

PAPER_ORDER = ["cloud-s2", "cloud-s3", "eurosat-s1", "eurosat-s2", "bigearthnet-s1", "bigearthnet-s2", "lc100cls-s3",
               "dfc2020-s1", "dfc2020-s2", "lc100seg-s3", "flood-s1", "lcz-s2", "biomass-s3", "aq-no2-s5p", "aq-o3-s5p"]
# slug: (level, sensor, type, #classes, #bands, ignore index, metric)
FACTS = {
    "cloud-s2": (1, "s2", "segmentation", 4, 13, None, "miou"),
    "cloud-s3": (1, "s3", "segmentation", 5, 21, 255, "miou"),
    "eurosat-s1": (2, "s1", "multiclass", 10, 2, None, "oa"),
    "eurosat-s2": (2, "s2", "multiclass", 10, 13, None, "oa"),
    "bigearthnet-s1": (2, "s1", "multilabel", 19, 2, None, "map-micro"),
    "bigearthnet-s2": (2, "s2", "multilabel", 19, 12, None, "map-micro"),
    "lc100cls-s3": (2, "s3", "multilabel", 23, 21, None, "map-micro"),
    "dfc2020-s1": (2, "s1", "segmentation", 8, 2, 255, "miou"),
    "dfc2020-s2": (2, "s2", "segmentation", 8, 13, 255, "miou"),
    "lc100seg-s3": (2, "s3", "segmentation", 23, 21, None, "miou"),
    "flood-s1": (3, "s1", "change_detection", 3, 2, 3, "miou"),
    "lcz-s2": (3, "s2", "multiclass", 17, 10, None, "oa"),
    "biomass-s3": (3, "s3", "regression", 0, 21, None, "rmse"),
    "aq-no2-s5p": (3, "s5p", "regression", 0, 1, None, "rmse"),
    "aq-o3-s5p": (3, "s5p", "regression", 0, 1, None, "rmse"),
}
LEVEL_NAMES = {1: "Preprocessing", 2: "Base applications", 3: "Specialized applications"}


def test_slugs_in_paper_order_and_one_file_each():
    assert list(TASK_SLUGS) == PAPER_ORDER
    assert sorted(p.stem for p in CARDS_DIR.glob("*.yaml")) == sorted(PAPER_ORDER)
    assert [c.slug for c in list_cards()] == PAPER_ORDER


@pytest.mark.parametrize("slug", PAPER_ORDER)
def test_card_facts(slug):
    card = load_card(CARDS_DIR / f"{slug}.yaml")
    level, sensor, ttype, ncls, nbands, ignore, metric = FACTS[slug]
    assert (card.level, card.level_name, card.sensor, card.task_type) == (level, LEVEL_NAMES[level], sensor, ttype)
    assert (card.num_classes, card.num_bands, card.ignore_index, card.metric) == (ncls, nbands, ignore, metric)
    assert card.higher_is_better == (metric != "rmse")
    assert card.version == 1 and card.source and card.license
    assert set(card.split_sizes) == {"train", "val", "test"}
    assert card.probe.epochs == 50 and card.probe.schedule == "onecycle" and card.probe.aux_weight == 0.4
    if card.is_dense:
        assert (card.probe.head, card.probe.optimizer, card.probe.weight_decay) == ("upernet", "adamw", 0.01)
    else:
        assert (card.probe.head, card.probe.optimizer, card.probe.weight_decay) == ("linear", "sgd", 1e-4)
    assert card.num_dates == (2 if slug == "flood-s1" else 1)
    assert card.resolution % card.kernel_size == 0
    assert "copernicus-fm" in card.paper and "dofa" in card.paper and "random" in card.paper


@pytest.mark.parametrize("slug", PAPER_ORDER)
def test_patch_area_is_the_reference_constant(slug):
    card = get_card(slug)
    expected = (16 * 0.3) ** 2 if slug == "biomass-s3" else (card.kernel_size * card.gsd_m / 1000) ** 2
    assert card.patch_area_km2 == pytest.approx(expected)


def test_band_orders_and_wavelengths():
    s2 = get_card("cloud-s2")
    assert s2.band_names == ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
    assert s2.wavelengths_nm[8] == 860 and s2.bandwidths_nm[7] == 115
    assert get_card("eurosat-s2").band_names == s2.band_names  # model order, not EuroSAT's file order
    assert "B10" not in get_card("bigearthnet-s2").band_names
    assert get_card("lcz-s2").band_names == ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    s1 = get_card("flood-s1")
    assert s1.wavelengths_nm == (5e7, 5e7) and s1.bandwidths_nm == (1e9, 1e9)
    olci = get_card("biomass-s3")
    assert olci.wavelengths_nm[0] == 400 and olci.wavelengths_nm[-1] == 1020 and olci.bandwidths_nm[14] == 2.5
    for slug, key in (("aq-no2-s5p", "s5p_no2"), ("aq-o3-s5p", "s5p_o3")):
        card = get_card(slug)
        assert card.input_mode == "variable" and card.bands[0].variable == key


def test_class_names_follow_loader_indices():
    assert get_card("eurosat-s1").classes == tuple(sorted(get_card("eurosat-s1").classes))
    assert get_card("dfc2020-s2").classes == ("Forest", "Shrubland", "Grassland", "Wetlands", "Croplands",
                                              "Urban/Built-up", "Barren", "Water")
    assert get_card("lc100seg-s3").classes[0] == "Unknown" and get_card("lc100seg-s3").classes[22] == "Oceans, seas"
    assert get_card("biomass-s3").classes == ()


def test_normalization_and_targets():
    s2 = get_card("dfc2020-s2").normalization
    assert s2.mean[0][0] == 1353.7 and s2.std[0][10] == 98.3
    assert get_card("eurosat-s1").normalization.mean == ((-12.548, -20.192),)
    ben = get_card("bigearthnet-s2").normalization
    assert len(ben.mean[0]) == 12 and 12.1 not in ben.mean[0]
    flood = get_card("flood-s1")
    assert flood.normalization.mean == ((0.0981, 0.0253), (0.0981, 0.0253))
    assert flood.normalization.std == ((0.0430, 0.0174), (0.0981, 0.0253))  # reference list split, as-is
    assert any("copy error" in n for n in flood.notes)
    for slug in ("cloud-s3", "lc100cls-s3", "lc100seg-s3", "biomass-s3"):
        norm = get_card(slug).normalization
        assert norm.mean is None and norm.std is None and norm.scale_factors[0] == 0.0139465
    assert get_card("aq-o3-s5p").normalization.mean is None
    stats = {s: (get_card(s).target_stats.mean, get_card(s).target_stats.std)
             for s in ("biomass-s3", "aq-no2-s5p", "aq-o3-s5p")}
    assert stats == {"biomass-s3": (92.3196, 117.8162), "aq-no2-s5p": (5.3167, 3.9948),
                     "aq-o3-s5p": (4654.2632, 2589.4207)}


def test_sizes_and_protocol():
    sizes = {c.slug: (c.native_size, c.loader_size, c.resolution, c.kernel_size) for c in list_cards()}
    assert sizes["lc100cls-s3"] == (96, 96, 96, 8)
    assert sizes["lc100seg-s3"] == (96, 288, 288, 8)
    assert sizes["biomass-s3"] == (96, 288, 288, 8)
    assert sizes["aq-no2-s5p"] == (56, 56, 56, 4)
    assert sizes["cloud-s2"] == (512, None, 512, 16)
    assert sizes["cloud-s3"] == (256, None, 224, 8)
    assert sizes["lcz-s2"] == (32, None, 112, 16)
    probe = get_card("bigearthnet-s1").probe
    assert (probe.batch_size, probe.lr) == (64, 1.0)
    assert (get_card("cloud-s3").probe.batch_size, get_card("cloud-s3").probe.lr) == (16, 1e-4)


def test_paper_numbers_and_unsupported_models():
    fm = get_card("aq-o3-s5p").paper["copernicus-fm"]
    assert (fm.mean, fm.std) == (789.4, 2.6)
    assert "softcon" not in get_card("biomass-s3").paper and "croma" not in get_card("lc100cls-s3").paper
    assert get_card("eurosat-s1").paper["croma"].mean == 83.9
    assert set(get_card("cloud-s2").paper) == {"supervised-vit-s16", "supervised-vit-b16", "random", "softcon",
                                               "croma", "dofa", "copernicus-fm"}


def test_metadata_availability():
    meta = {c.slug: c.metadata for c in list_cards()}
    assert meta["dfc2020-s1"] == ("area",) and meta["lcz-s2"] == ("area",)
    assert meta["eurosat-s2"] == ("lon", "lat", "area")
    assert meta["flood-s1"] == ("lon", "lat", "time", "area")


def test_resolve_tasks():
    assert [c.slug for c in resolve_tasks("all")] == PAPER_ORDER
    assert [c.slug for c in resolve_tasks("lcz-s2, eurosat-s1,lcz-s2")] == ["lcz-s2", "eurosat-s1"]
    with pytest.raises(CbenchError, match=r"did you mean 'biomass-s3'"):
        resolve_tasks("biomas-s3")
    with pytest.raises(CbenchError, match="empty"):
        resolve_tasks(" , ")
