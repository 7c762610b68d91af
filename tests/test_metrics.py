"""Metrics against independent references: scikit-learn, torchmetrics, numpy and hand-computed values."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, average_precision_score
from torchmetrics.functional.classification import multiclass_jaccard_index, multilabel_average_precision

from copernicus_bench.metrics import (
    METRICS,
    MaskedRMSE,
    MeanIoU,
    MicroAveragePrecision,
    OverallAccuracy,
    create_metric,
)


def onehot_logits(idx: torch.Tensor, k: int) -> torch.Tensor:
    """(B,H,W) class indices -> (B,K,H,W) logits whose argmax is idx."""
    return torch.nn.functional.one_hot(idx, k).permute(0, 3, 1, 2).float()


def logit(p: list[float]) -> torch.Tensor:
    t = torch.tensor(p, dtype=torch.float32)
    return torch.log(t / (1 - t))


# ----------------------------------------------------------------------------------- registry
def test_registry_has_builtins_and_create_metric_reads_card():
    assert {"oa", "map-micro", "miou", "rmse"} <= set(METRICS.names())
    card = SimpleNamespace(metric="miou", num_classes=4, ignore_index=255)
    m = create_metric(card)
    assert isinstance(m, MeanIoU) and m.num_classes == 4 and m.ignore_index == 255
    assert isinstance(create_metric(SimpleNamespace(metric="rmse")), MaskedRMSE)
    assert not create_metric(SimpleNamespace(metric="rmse")).higher_is_better
    assert create_metric(SimpleNamespace(metric="oa")).higher_is_better


def test_entry_points_point_at_the_same_classes():
    from importlib.metadata import entry_points

    eps = {ep.name: ep for ep in entry_points(group="copernicus_bench.metrics")}
    if not eps:
        pytest.skip("package not installed with entry points")
    expected = {"oa": OverallAccuracy, "map-micro": MicroAveragePrecision, "miou": MeanIoU, "rmse": MaskedRMSE}
    for name, cls in expected.items():
        assert eps[name].load() is cls


@pytest.mark.parametrize("cls", [OverallAccuracy, MicroAveragePrecision, MaskedRMSE])
def test_empty_split_is_nan(cls):
    out = cls().compute()
    assert math.isnan(out["global"]) and math.isnan(out["per_batch"])


def test_empty_split_is_nan_miou():
    out = MeanIoU(num_classes=3).compute()
    assert math.isnan(out["global"]) and math.isnan(out["per_batch"])


# ----------------------------------------------------------------------------------- OA
def test_oa_hand_computed():
    m = OverallAccuracy()
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0]])
    m.update(logits, torch.tensor([0, 1, 0]))  # 2 of 3 right
    out = m.compute()
    assert out["global"] == pytest.approx(200 / 3)
    assert out["per_batch"] == pytest.approx(200 / 3)


def test_oa_matches_sklearn_and_per_batch_equals_global():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(203, 7, generator=g)
    target = torch.randint(0, 7, (203,), generator=g)
    m = OverallAccuracy()
    for lo, t in zip(logits.split(64), target.split(64)):  # batches 64, 64, 64, 11
        m.update(lo, t)
    expected = 100 * accuracy_score(target.numpy(), logits.argmax(1).numpy())
    out = m.compute()
    assert out["global"] == pytest.approx(expected, abs=1e-9)
    assert out["per_batch"] == pytest.approx(expected, abs=1e-9)


# ----------------------------------------------------------------------------------- mAP
def test_map_hand_computed():
    # scores 0.9(+) 0.8(-) 0.7(+) 0.6(-): AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    m = MicroAveragePrecision()
    m.update(logit([0.9, 0.8, 0.7, 0.6]).reshape(2, 2), torch.tensor([[1, 0], [1, 0]]))
    out = m.compute()
    assert out["global"] == pytest.approx(100 * 5 / 6, abs=1e-4)
    assert out["per_batch"] == pytest.approx(100 * 5 / 6, abs=1e-4)


def test_map_matches_sklearn_micro_with_ties_and_per_batch_matches_torchmetrics():
    g = torch.Generator().manual_seed(1)
    k = 19
    logits = torch.randn(150, k, generator=g)
    logits[::7] = logits[::7].round()  # ties
    target = (torch.rand(150, k, generator=g) < 0.2).long()
    m = MicroAveragePrecision()
    ref_sum, ref_n = 0.0, 0
    for lo, t in zip(logits.split(64), target.split(64)):  # 64, 64, 22
        m.update(lo, t)
        ref_sum += float(multilabel_average_precision(torch.sigmoid(lo), t, num_labels=k,
                                                      average="micro")) * 100 * len(t)
        ref_n += len(t)
    out = m.compute()
    expected = 100 * average_precision_score(target.numpy(), torch.sigmoid(logits).numpy(), average="micro")
    assert out["global"] == pytest.approx(expected, abs=1e-4)
    assert out["per_batch"] == pytest.approx(ref_sum / ref_n, abs=1e-3)
    assert abs(out["per_batch"] - out["global"]) > 1e-3  # they are different numbers


def test_map_batch_without_positives_counts_as_zero_like_torchmetrics():
    lo = torch.randn(4, 2)
    t0 = torch.zeros(4, 2, dtype=torch.long)
    with pytest.warns(UserWarning):
        assert float(multilabel_average_precision(torch.sigmoid(lo), t0, num_labels=2, average="micro")) == 0
    m = MicroAveragePrecision()
    m.update(logit([0.9, 0.8, 0.7, 0.6]).reshape(2, 2), torch.tensor([[1, 0], [1, 0]]))  # AP 5/6, B=2
    m.update(lo, t0)  # AP 0, B=4
    assert m.compute()["per_batch"] == pytest.approx(100 * (5 / 6 * 2 + 0 * 4) / 6, abs=1e-4)


# ----------------------------------------------------------------------------------- mIoU
def test_miou_hand_computed_absent_class_ignore_only_batch_and_per_batch_vs_global():
    k, ign = 3, 255
    m = MeanIoU(num_classes=k, ignore_index=ign)
    # batch 1: class 0 IoU 1/2, class 1 IoU 1/2, class 2 absent from target and prediction -> excluded: 50
    t1 = torch.tensor([[[0, 0], [1, ign]]])
    p1 = torch.tensor([[[0, 1], [1, 1]]])
    # batch 2: class 2 IoU 3/4, class 0 only predicted -> IoU 0 but counted, class 1 absent: 37.5
    t2 = torch.tensor([[[2, 2], [2, 2]]])
    p2 = torch.tensor([[[2, 2], [2, 0]]])
    # batch 3: every pixel ignored -> torchmetrics gives NaN; skipped here
    t3 = torch.full((1, 2, 2), ign)
    p3 = torch.zeros(1, 2, 2, dtype=torch.long)
    for p, t in ((p1, t1), (p2, t2), (p3, t3)):
        m.update(onehot_logits(p, k), t)
    out = m.compute()
    # global confusion: class 0 = 1/(2+2-1), class 1 = 1/(1+2-1), class 2 = 3/(4+3-3)
    assert out["global"] == pytest.approx(100 * (1 / 3 + 1 / 2 + 3 / 4) / 3)  # 52.777...
    assert out["per_batch"] == pytest.approx((50.0 + 37.5) / 2)  # 43.75, batch 3 skipped
    assert out["global"] - out["per_batch"] == pytest.approx(100 * 19 / 36 - 43.75)
    # torchmetrics agrees batch by batch and on the concatenated split
    tm = [float(multiclass_jaccard_index(onehot_logits(p, k), t, num_classes=k, ignore_index=ign)) * 100
          for p, t in ((p1, t1), (p2, t2), (p3, t3))]
    assert tm[:2] == pytest.approx([50.0, 37.5])
    assert math.isnan(tm[2])
    cat = float(multiclass_jaccard_index(onehot_logits(torch.cat([p1, p2, p3]), k), torch.cat([t1, t2, t3]),
                                         num_classes=k, ignore_index=ign)) * 100
    assert out["global"] == pytest.approx(cat, abs=1e-4)


@pytest.mark.parametrize("ignore_index", [None, 255, 0, 3])
def test_miou_matches_torchmetrics_on_random_split(ignore_index):
    g = torch.Generator().manual_seed(2)
    k = 6
    target = torch.randint(0, k - 1, (37, 8, 8), generator=g)  # class k-1 never in target
    logits = torch.randn(37, k, 8, 8, generator=g)
    logits[:, k - 1] -= 100  # ... nor predicted: absent class
    if ignore_index is not None:
        target[torch.rand(target.shape, generator=g) < 0.2] = ignore_index
    m = MeanIoU(num_classes=k, ignore_index=ignore_index)
    ref_sum, ref_n = 0.0, 0
    for lo, t in zip(logits.split(16), target.split(16)):  # 16, 16, 5
        m.update(lo, t)
        ref_sum += float(multiclass_jaccard_index(lo, t, num_classes=k, ignore_index=ignore_index)) * 100 * len(t)
        ref_n += len(t)
    out = m.compute()
    expected = float(multiclass_jaccard_index(logits, target, num_classes=k, ignore_index=ignore_index)) * 100
    assert out["global"] == pytest.approx(expected, abs=1e-4)
    assert out["per_batch"] == pytest.approx(ref_sum / ref_n, abs=1e-4)


def test_miou_all_pixels_ignored_is_nan():
    m = MeanIoU(num_classes=2, ignore_index=255)
    m.update(torch.zeros(2, 2, 3, 3), torch.full((2, 3, 3), 255))
    out = m.compute()
    assert math.isnan(out["global"]) and math.isnan(out["per_batch"])


def test_miou_rejects_out_of_range_target():
    m = MeanIoU(num_classes=2, ignore_index=None)
    with pytest.raises(ValueError):
        m.update(torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2), 5))


# ----------------------------------------------------------------------------------- RMSE
def test_rmse_hand_computed_nan_mask_all_nan_batch_and_per_batch_vs_global():
    nan = float("nan")
    m = MaskedRMSE()
    # batch 1 (B=1): errors 0, -, 2, 0 -> sqrt(4/3)
    m.update(torch.tensor([[[1.0, 2.0], [3.0, 4.0]]]), torch.tensor([[[1.0, nan], [5.0, 4.0]]]))
    # batch 2 (B=1), with the (B,1,H,W) layout: one valid pixel, error 3 -> 3
    m.update(torch.zeros(1, 1, 2, 2), torch.tensor([[[[3.0, nan], [nan, nan]]]]))
    # batch 3: all targets NaN -> contributes nothing
    m.update(torch.ones(2, 2, 2), torch.full((2, 2, 2), nan))
    out = m.compute()
    assert out["per_batch"] == pytest.approx((math.sqrt(4 / 3) + 3.0) / 2)  # 2.07735
    assert out["global"] == pytest.approx(math.sqrt(13 / 4))  # 1.80278
    assert out["per_batch"] - out["global"] == pytest.approx((math.sqrt(4 / 3) + 3) / 2 - math.sqrt(13 / 4))


def test_rmse_matches_numpy_and_reference_formula_on_zscored_values():
    g = torch.Generator().manual_seed(3)
    mean, std = 92.3196, 117.8162
    target = torch.rand(20, 6, 6, generator=g) * 300
    target[torch.rand(target.shape, generator=g) < 0.3] = float("nan")
    pred = target.nan_to_num(100.0) + torch.randn(20, 6, 6, generator=g) * 20
    m = MaskedRMSE()
    ref_sum, ref_n = 0.0, 0
    for p, t in zip(pred.split(8), target.split(8)):  # 8, 8, 4
        m.update(p, t)
        # the reference: sqrt(nanmean((pred_z - t_z)^2)) * std on z-scored tensors
        pz, tz = (p - mean) / std, (t - mean) / std
        ref_sum += float(torch.sqrt(((pz - tz) ** 2).nanmean()) * std) * len(t)
        ref_n += len(t)
    out = m.compute()
    tn, pn = target.numpy().astype(np.float64), pred.numpy().astype(np.float64)
    valid = ~np.isnan(tn)
    assert out["global"] == pytest.approx(np.sqrt(np.mean((pn[valid] - tn[valid]) ** 2)), rel=1e-9)
    assert out["per_batch"] == pytest.approx(ref_sum / ref_n, rel=1e-5)


def test_rmse_all_nan_split_is_nan():
    m = MaskedRMSE()
    m.update(torch.zeros(2, 3, 3), torch.full((2, 3, 3), float("nan")))
    out = m.compute()
    assert math.isnan(out["global"]) and math.isnan(out["per_batch"])


def test_reset_forgets():
    m = OverallAccuracy()
    m.update(torch.tensor([[1.0, 0.0]]), torch.tensor([1]))
    m.reset()
    m.update(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    assert m.compute() == {"global": 100.0, "per_batch": 100.0}


def test_every_shipped_card_gets_its_metric():
    from importlib.resources import files

    from copernicus_bench.cards import load_card

    cards = sorted(Path(str(files("copernicus_bench.tasks") / "cards")).glob("*.yaml"))
    if not cards:
        pytest.skip("no task cards installed")
    for path in cards:
        card = load_card(path)
        m = create_metric(card)
        assert m.name == card.metric and m.higher_is_better == card.higher_is_better
        if isinstance(m, MeanIoU):
            assert (m.num_classes, m.ignore_index) == (card.num_classes, card.ignore_index)
