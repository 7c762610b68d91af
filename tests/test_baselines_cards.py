"""Task cards for the baseline tests (synthetic stand-ins built from the facts doc, or the real cards).

``card(slug)`` returns the real card from ``copernicus_bench.tasks`` when it has landed and synthetic ones
otherwise, so the baseline tests run either way; the test below checks that the real cards (when present)
agree with what the baselines assume (band names and counts).
"""

from __future__ import annotations

from typing import Any

import pytest

from copernicus_bench.cards import TaskCard, card_from_dict

S2_13 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
S2_WL = [440, 490, 560, 665, 705, 740, 783, 842, 860, 940, 1370, 1610, 2190]
S2_MEAN = [1353.7, 1117.2, 1041.8, 946.5, 1199.1, 2003.0, 2374.0, 2301.2, 2599.7, 732.1, 12.1, 1820.6, 1118.2]
S2_STD = [897.3, 736.0, 684.8, 620.0, 791.9, 1341.3, 1595.4, 1545.5, 1750.1, 475.1, 98.3, 1216.5, 736.7]
OLCI_WL = [400, 412.5, 442.5, 490, 510, 560, 620, 665, 673.75, 681.25, 708.75, 753.75, 761.25, 764.375, 767.5,
           778.75, 865, 885, 900, 940, 1020]


def _s2(names: list[str]) -> list[dict]:
    wl = dict(zip(S2_13, S2_WL))
    return [{"name": n, "wavelength_nm": wl[n], "bandwidth_nm": 20.0} for n in names]


S1 = [{"name": "VV", "wavelength_nm": 5e7, "bandwidth_nm": 1e9}, {"name": "VH", "wavelength_nm": 5e7, "bandwidth_nm": 1e9}]

# slug: (sensor, task_type, bands, resolution, kernel, num_dates, mean, std)
_SPECS: dict[str, tuple] = {
    "eurosat-s1": ("s1", "multiclass", S1, 224, 16, 1, [-12.548, -20.192], [5.257, 5.912]),
    "bigearthnet-s1": ("s1", "multilabel", S1, 224, 16, 1, [-12.548, -20.192], [5.257, 5.912]),
    "dfc2020-s1": ("s1", "segmentation", S1, 256, 16, 1, [-12.548, -20.192], [5.257, 5.912]),
    "flood-s1": ("s1", "change_detection", S1, 224, 16, 2, None, None),
    "eurosat-s2": ("s2", "multiclass", _s2(S2_13), 224, 16, 1, S2_MEAN, S2_STD),
    # synthetic only: a 13-band card with B8A last (torchgeo's raw EuroSAT order) — bands are placed by name
    "b8a-last-s2": ("s2", "multiclass", _s2(S2_13[:8] + S2_13[9:] + ["B8A"]), 224, 16, 1,
                    S2_MEAN[:8] + S2_MEAN[9:] + [S2_MEAN[8]], S2_STD[:8] + S2_STD[9:] + [S2_STD[8]]),
    "bigearthnet-s2": ("s2", "multilabel", _s2([b for b in S2_13 if b != "B10"]), 224, 16, 1,
                       [m for i, m in enumerate(S2_MEAN) if i != 10], [s for i, s in enumerate(S2_STD) if i != 10]),
    "cloud-s2": ("s2", "segmentation", _s2(S2_13), 512, 16, 1, S2_MEAN, S2_STD),
    "dfc2020-s2": ("s2", "segmentation", _s2(S2_13), 256, 16, 1, S2_MEAN, S2_STD),
    "lcz-s2": ("s2", "multiclass", _s2(["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]),
               112, 16, 1, [0.112, 0.104, 0.095, 0.120, 0.200, 0.237, 0.230, 0.260, 0.182, 0.112],
               [0.074, 0.068, 0.062, 0.079, 0.134, 0.160, 0.155, 0.175, 0.122, 0.074]),
    "cloud-s3": ("s3", "segmentation", [{"name": f"Oa{i + 1:02d}_radiance", "wavelength_nm": w, "bandwidth_nm": 10.0}
                                        for i, w in enumerate(OLCI_WL)], 224, 8, 1, None, None),
    "lc100cls-s3": ("s3", "multilabel", [{"name": f"Oa{i + 1:02d}_radiance", "wavelength_nm": w, "bandwidth_nm": 10.0}
                                         for i, w in enumerate(OLCI_WL)], 96, 8, 1, None, None),
    "biomass-s3": ("s3", "regression", [{"name": f"Oa{i + 1:02d}_radiance", "wavelength_nm": w, "bandwidth_nm": 10.0}
                                        for i, w in enumerate(OLCI_WL)], 288, 8, 1, None, None),
    "aq-no2-s5p": ("s5p", "regression", [{"name": "NO2", "variable": "s5p_no2"}], 56, 4, 1, None, None),
}
_FLOOD_MEAN = [[0.0981, 0.0253], [0.0981, 0.0253]]
_FLOOD_STD = [[0.0430, 0.0174], [0.0981, 0.0253]]


def synthetic_card(slug: str) -> TaskCard:
    sensor, task_type, bands, res, kernel, dates, mean, std = _SPECS[slug]
    if slug == "flood-s1":
        mean, std = _FLOOD_MEAN, _FLOOD_STD
    elif mean is not None:
        mean, std = [mean], [std]
    dense = task_type in ("segmentation", "change_detection", "regression")
    metric = {"multiclass": "oa", "multilabel": "map-micro", "segmentation": "miou",
              "change_detection": "miou", "regression": "rmse"}[task_type]
    data: dict[str, Any] = {
        "slug": slug, "version": 1, "name": slug, "level": 1, "level_name": "test", "sensor": sensor,
        "product": "test", "task_type": task_type, "loader": "test", "archive_dir": slug,
        "bands": bands, "classes": [] if task_type == "regression" else ["a", "b", "c"],
        "ignore_index": None, "metric": metric, "higher_is_better": metric != "rmse",
        "normalization": {"mean": mean, "std": std},
        "target_stats": {"mean": 0.0, "std": 1.0} if task_type == "regression" else None,
        "native_size": res, "loader_size": None, "resolution": res, "kernel_size": kernel, "gsd_m": 10.0,
        "patch_area_km2": 0.0256, "metadata": ["lon", "lat"],
        "input_mode": "variable" if sensor == "s5p" else "spectral", "num_dates": dates,
        "probe": {"head": "upernet" if dense else "linear", "batch_size": 16, "lr": 1e-3, "epochs": 50,
                  "optimizer": "adamw" if dense else "sgd", "weight_decay": 0.0},
        "split_sizes": {"train": 1, "val": 1, "test": 1}, "paper": {}, "source": "test", "license": "test",
    }
    return card_from_dict(data, f"<synthetic {slug}>")


def real_card(slug: str) -> TaskCard | None:
    try:
        from copernicus_bench.tasks import get_card  # type: ignore[attr-defined]

        return get_card(slug)
    except Exception:  # noqa: BLE001 - cards not landed yet
        return None


def card(slug: str) -> TaskCard:
    """The real card when available, else the synthetic stand-in."""
    return real_card(slug) or synthetic_card(slug)


@pytest.mark.parametrize("slug", sorted(_SPECS))
def test_real_cards_match_baseline_assumptions(slug: str) -> None:
    """The baselines place bands by name: the real cards must use names the S1/S2 layouts recognise."""
    from copernicus_bench.baselines.common import canonical_band

    real = real_card(slug)
    if real is None:
        pytest.skip(f"no real card '{slug}' (synthetic-only, or the cards have not landed)")
    syn = synthetic_card(slug)
    assert (real.sensor, real.num_dates, real.input_mode) == (syn.sensor, syn.num_dates, syn.input_mode)
    assert (real.resolution, real.kernel_size) == (syn.resolution, syn.kernel_size)
    if real.sensor in ("s1", "s2"):
        assert [canonical_band(b) for b in real.band_names] == [canonical_band(b) for b in syn.band_names]
    else:
        assert real.num_bands == syn.num_bands
