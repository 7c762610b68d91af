"""Reliability of encoding and probing: NaN/inf inputs, features, losses and metrics; degenerate splits;
labels outside a task's classes (issue 10, item 2)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from copernicus_bench.encoder import EncoderOutput
from copernicus_bench.errors import CbenchError
from copernicus_bench.features import CachedSource, OnTheFlySource, encode_batch
from copernicus_bench.guards import NonFiniteError, check_labels, sanitize_input
from copernicus_bench.probing import build_head, train_probe
from copernicus_bench.tasks import get_card

CPU = torch.device("cpu")


class _Pipeline:
    adaptations: tuple = ()

    def apply(self, x, date=0):
        return x


class _Encoder(torch.nn.Module):
    """A tiny stand-in encoder: mean over pixels per channel → D features (NaN if ``poison``)."""

    embed_dim = 8

    def __init__(self, poison: bool = False) -> None:
        super().__init__()
        self.poison = poison
        self.seen: list[torch.Tensor] = []

    def forward(self, x, meta, want_maps=False):
        self.seen.append(x.clone())
        pooled = x.mean(dim=(2, 3)).repeat(1, 8)[:, :8]
        if self.poison:
            pooled = pooled * float("nan")
        return EncoderOutput(pooled, None)


class _Images(torch.utils.data.Dataset):
    def __init__(self, n: int, classes: int = 2, nan: bool = False) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 2, 8, 8, generator=g)
        if nan:
            self.x[0, 0, 0, 0] = float("nan")
            self.x[0, 1, 2, 3] = float("inf")
        self.y = torch.arange(n) % classes

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return {"image": self.x[i], "target": self.y[i], "meta": torch.full((4,), float("nan"))}


def _cls_source(card, n: int, d: int = 8, value: float | None = None, seed: int = 0) -> CachedSource:
    rng = np.random.default_rng(seed)
    pooled = rng.normal(size=(1, n, d)).astype(np.float32) if value is None else np.full((1, n, d), value, "f4")
    target = (np.arange(n) % card.num_classes).astype(np.int64)
    return CachedSource({"pooled": pooled, "target": target}, card, CPU)


def _train(card, train, val, test, epochs: int = 2, head=None):
    torch.manual_seed(0)
    head = head or build_head(card, 8, "ln-bn-linear")
    return train_probe(card, head, train, val, test, epochs=epochs, batch_size=4, lr=0.01, seed=0, device=CPU)


def test_nan_input_pixels_are_zeroed_and_counted(caplog) -> None:
    card = get_card("eurosat-s1")
    x = torch.ones(2, 2, 4, 4)
    x[0, 0, 0, 0], x[1, 1, 1, 1] = float("nan"), float("-inf")
    with caplog.at_level(logging.WARNING, logger="copernicus_bench.guards"):
        out = sanitize_input(card, x)
    assert torch.isfinite(out).all() and out[0, 0, 0, 0] == 0 and out[1, 1, 1, 1] == 0 and out.sum() == 62
    assert "eurosat-s1: 2 of 64 input values are NaN/inf" in caplog.text


def test_the_encoder_never_sees_nan_pixels() -> None:
    card = get_card("eurosat-s1")
    ds = _Images(2, nan=True)
    enc = _Encoder()
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    out = encode_batch(enc, _Pipeline(), card, batch["image"], batch["meta"], False, CPU)
    assert torch.isfinite(enc.seen[0]).all() and torch.isfinite(out.pooled).all()


def test_encoder_nan_is_one_line_naming_split_epoch_and_encoder() -> None:
    card = get_card("eurosat-s1")
    bad = OnTheFlySource(_Encoder(poison=True), _Pipeline(), card, _Images(8), CPU, augment="flips")
    good = OnTheFlySource(_Encoder(), _Pipeline(), card, _Images(8), CPU, augment="none")
    with pytest.raises(NonFiniteError) as err:
        _train(card, bad, good, good)
    msg = str(err.value)
    assert msg.startswith("task eurosat-s1, split train, first at epoch 0: the encoder produced NaN/inf")
    with pytest.raises(NonFiniteError, match="split val, first at epoch 0: the encoder"):
        _train(card, good, bad, good)


def test_nan_training_loss_is_one_line() -> None:
    card = get_card("eurosat-s1")
    head = build_head(card, 8, "linear")
    with torch.no_grad():
        next(p for p in head.parameters() if p.ndim == 2).fill_(float("inf"))
    with pytest.raises(NonFiniteError, match=r"task eurosat-s1, split train, first at epoch 0: the training loss "
                                             r"became nan"):
        _train(card, _cls_source(card, 8), _cls_source(card, 4), _cls_source(card, 4), head=head)


def test_nan_validation_metric_is_one_line() -> None:
    card = get_card("biomass-s3")  # regression: a validation split without one finite target has no RMSE
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(1, 4, 8, 4, 4)).astype(np.float32)
    arrays = {f"map{k}": maps for k in range(4)}
    train = CachedSource({**arrays, "target": rng.uniform(0, 100, size=(4, 16, 16)).astype("f4")}, card, CPU)
    val = CachedSource({**arrays, "target": np.full((4, 16, 16), np.nan, "f4")}, card, CPU)
    torch.manual_seed(0)
    head = build_head(card, 8, "linear")
    with pytest.raises(NonFiniteError, match=r"task biomass-s3, split val, first at epoch 0: the rmse became nan"):
        train_probe(card, head, train, val, train, epochs=1, batch_size=4, lr=1e-4, seed=0, device=CPU)


def test_one_training_sample_is_a_clear_line_not_a_batchnorm_error() -> None:
    card = get_card("eurosat-s1")
    with pytest.raises(CbenchError, match=r"task eurosat-s1, split train: 1 sample\(s\); the paper's probe "
                                          r"\(BatchNorm"):
        _train(card, _cls_source(card, 1), _cls_source(card, 1), _cls_source(card, 1))


def test_all_ignored_training_batch_is_skipped() -> None:
    card = get_card("dfc2020-s1")  # segmentation with an ignore index
    assert card.ignore_index is not None
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(4, 4, 8, 4, 4)).astype(np.float32)
    arrays = {f"map{k}": maps for k in range(4)}
    ignored = np.full((4, 16, 16), card.ignore_index, np.int64)
    labelled = rng.integers(0, card.num_classes, size=(4, 16, 16)).astype(np.int64)
    torch.manual_seed(0)
    head = build_head(card, 8, "linear")
    before = {k: v.clone() for k, v in head.state_dict().items()}
    result = train_probe(card, head, CachedSource({**arrays, "target": ignored}, card, CPU),
                         CachedSource({**arrays, "target": labelled}, card, CPU),
                         CachedSource({**arrays, "target": labelled}, card, CPU),
                         epochs=1, batch_size=4, lr=1e-3, seed=0, device=CPU)
    assert result.history[0]["train_loss"] == 0.0  # nothing to learn from: no step taken
    assert all(torch.equal(before[k], v) for k, v in head.state_dict().items() if "num_batches" not in k)
    assert np.isfinite(result.test["global"])


def test_a_class_never_seen_in_training_still_scores() -> None:
    card = get_card("eurosat-s1")
    train = _cls_source(card, 8)
    train.arrays["target"][:] = 0  # only class 0 in training
    result = _train(card, train, _cls_source(card, 8), _cls_source(card, 8))
    assert 0.0 <= result.test["global"] <= 100.0


def test_label_outside_the_classes_names_file_and_value() -> None:
    card = get_card("cloud-s3")
    mask = torch.tensor([[0, 1], [card.ignore_index, 254]])  # torchgeo's fixture: raw 255 − 1 = 254
    with pytest.raises(CbenchError, match=r"mask_7\.tif: label value\(s\) \[254\] are not classes of task cloud-s3 "
                                          r"\(0\.\.4 or 255 \(ignored\)\)"):
        check_labels(card, mask, "cloud_s3/cloud_multi/mask_7.tif")
    check_labels(card, torch.tensor([[0, 4], [255, 1]]), "ok.tif")  # classes and the ignore index pass
