"""Parity item 1: ``metric.paper`` — the reference's epoch (best per-batch validation value, first best kept,
NaN worst as Lightning's ModelCheckpoint) and the reference's resolution (dense targets nearest-resized to the
encoder input, scored there, per-batch mean) — from the same training run as our ``global``."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import multiclass_jaccard_index

from copernicus_bench import probing
from copernicus_bench.features import Batch, CachedSource
from copernicus_bench.nearest import resize_nearest_cv2
from copernicus_bench.probes.upernet import UPerNetProbe
from copernicus_bench.tasks import get_card


class _Pooled:
    """A tiny classification source; ``tag`` tells the scripted evaluate which split it is."""

    def __init__(self, tag: str, n: int = 8, dim: int = 16, classes: int = 10) -> None:
        g = torch.Generator().manual_seed(0)
        self.tag, self.x = tag, torch.randn(n, dim, generator=g)
        self.y = torch.randint(0, classes, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.y)

    def train_batches(self, rng, batch_size, drop_last):
        for i in range(0, len(self), batch_size):
            yield Batch(self.x[i:i + batch_size], None, self.y[i:i + batch_size])

    def eval_batches(self, batch_size):
        return self.tag


def _scripted(monkeypatch, val_global, val_paper, card):
    """Replace ``probing.evaluate``: val calls return the script; test calls return the epoch whose weights
    the head holds (found among snapshots taken after each epoch)."""
    snapshots: list[torch.Tensor] = []
    calls = {"val": 0}

    def fake_evaluate(card_, head, batches, recorder=None):
        if batches == "val":
            e = calls["val"]
            calls["val"] += 1
            if e < len(val_global):
                return {"global": val_global[e], "per_batch": val_global[e], "paper": val_paper[e]}
            return {"global": 0.0, "per_batch": 0.0, "paper": 0.0}
        w = head.head.linear.weight.detach()
        epoch = next(i for i, s in enumerate(snapshots) if torch.equal(s, w))
        return {"global": float(epoch), "per_batch": float(epoch), "paper": float(epoch)}

    monkeypatch.setattr(probing, "evaluate", fake_evaluate)
    return snapshots


@pytest.mark.parametrize("slug, val_global, val_paper, want_global, want_paper", [
    # higher is better; ties keep the first; NaN is worst (Lightning replaces it by -inf)
    ("eurosat-s1", [1.0, 5.0, 3.0, 5.0], [math.nan, 1.0, 4.0, 4.0], 1, 2),
    # lower is better (RMSE-like ordering through the card)
    ("eurosat-s1-lower", [3.0, 1.0, 2.0, 1.0], [3.0, 2.0, 0.5, 0.7], 1, 2),
])
def test_scripted_history_gives_both_selections(monkeypatch, slug, val_global, val_paper, want_global, want_paper):
    card = get_card("eurosat-s1")
    if slug.endswith("lower"):  # the selection reads only higher_is_better
        card = dataclasses.replace(card, higher_is_better=False)
    snapshots = _scripted(monkeypatch, val_global, val_paper, card)
    torch.manual_seed(0)
    head = probing.build_head(card, 16, "linear")
    result = probing.train_probe(
        card, head, _Pooled("train"), _Pooled("val"), _Pooled("test"), epochs=len(val_global), batch_size=4,
        lr=0.5, seed=0, device=torch.device("cpu"),
        on_epoch=lambda e, r: snapshots.append(head.linear.weight.detach().clone()))
    assert len({s.sum().item() for s in snapshots}) == len(snapshots)  # every epoch changed the weights
    assert result.best_epoch == want_global and result.test["global"] == want_global
    assert result.paper_epoch == want_paper and result.test["paper"] == want_paper
    assert result.val["paper"] == val_paper[want_paper]
    assert [h["val_paper"] for h in result.history] == pytest.approx(val_paper, nan_ok=True)


def test_same_epoch_needs_no_second_test_pass(monkeypatch):
    card = get_card("eurosat-s1")
    snapshots = _scripted(monkeypatch, [1.0, 2.0], [1.0, 2.0], card)
    head = probing.build_head(card, 16, "linear")
    result = probing.train_probe(card, head, _Pooled("train"), _Pooled("val"), _Pooled("test"), epochs=2,
                                 batch_size=4, lr=0.5, seed=0, device=torch.device("cpu"),
                                 on_epoch=lambda e, r: snapshots.append(head.linear.weight.detach().clone()))
    assert result.best_epoch == result.paper_epoch == 1 and result.test["paper"] == 1.0


def _dense_batches(card, n_batches=3, b=2, native=8, paper=6, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        maps = [torch.randn(b, dim, 2, 2, generator=g) for _ in range(4)]
        t = torch.randint(0, card.num_classes, (b, native, native), generator=g)
        t[:, 0, :3] = card.ignore_index
        out.append(Batch(None, maps, t, resize_nearest_cv2(t, paper)))
    return out


def test_paper_value_is_per_batch_miou_at_the_input_resolution():
    """Hand computation: torchmetrics' macro mIoU (the reference's call) per batch at 6×6 targets, weighted
    by batch size (Lightning); ``global`` stays on the native 8×8 targets over the whole split."""
    card = get_card("cloud-s3")
    torch.manual_seed(0)
    head = UPerNetProbe(16, card.num_classes, channels=8, aux_channels=8).eval()
    batches = _dense_batches(card, b=2)
    batches[-1] = Batch(None, [m[:1] for m in batches[-1].maps], batches[-1].target[:1],
                        batches[-1].paper_target[:1])  # a smaller last batch: weights matter
    out = probing.evaluate(card, head, iter(batches))
    vals, weights, preds, targets = [], [], [], []
    with torch.no_grad():
        for bt in batches:
            small = head(bt.maps, (6, 6))[0].argmax(1)
            vals.append(float(multiclass_jaccard_index(small, bt.paper_target, card.num_classes,
                                                       ignore_index=card.ignore_index)) * 100)
            weights.append(bt.target.shape[0])
            preds.append(head(bt.maps, (8, 8))[0].argmax(1))
            targets.append(bt.target)
    hand = float(np.average(vals, weights=weights))
    assert out["paper"] == pytest.approx(hand, abs=1e-4)
    whole = float(multiclass_jaccard_index(torch.cat(preds), torch.cat(targets), card.num_classes,
                                           ignore_index=card.ignore_index)) * 100
    assert out["global"] == pytest.approx(whole, abs=1e-4)
    assert abs(out["paper"] - out["global"]) > 1e-3  # the two values are not the same number


def test_dense_probe_trains_on_the_resized_target(monkeypatch):
    card = get_card("cloud-s3")
    seen = []
    real = probing.probe_loss
    monkeypatch.setattr(probing, "probe_loss", lambda c, m, a, t: seen.append(tuple(t.shape)) or real(c, m, a, t))
    batches = _dense_batches(card)

    class Src:
        def __len__(self):
            return 6

        def train_batches(self, rng, batch_size, drop_last):
            yield from batches

        def eval_batches(self, batch_size):
            return iter(batches)

    head = UPerNetProbe(16, card.num_classes, channels=8, aux_channels=8)
    result = probing.train_probe(card, head, Src(), Src(), Src(), epochs=1, batch_size=2, lr=1e-3, seed=0,
                                 device=torch.device("cpu"))
    assert seen and set(seen) == {(2, 6, 6)}
    assert all(np.isfinite(result.test[k]) for k in ("global", "per_batch", "paper"))


def test_cached_source_resizes_then_flips_as_the_reference():
    """Cloud-S3: 256-px targets become 224-px paper targets (cv2 nearest), resized before the flip view."""
    card = get_card("cloud-s3")
    n = 3
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, size=(n, 256, 256)).astype(np.int64)
    arrays = {f"map{k}": np.zeros((4, n, 8, 2, 2), np.float16) for k in range(4)}
    arrays["target"] = target
    src = CachedSource(arrays, card, torch.device("cpu"), paper_size=card.resolution)
    assert card.resolution == 224
    views = np.array([0, 1, 3])
    batch = src._gather(views, np.arange(n))
    assert batch.target.shape == (n, 256, 256) and batch.paper_target.shape == (n, 224, 224)
    import cv2

    for i, v in enumerate(views):
        small = cv2.resize(target[i].astype(np.uint8), (224, 224), interpolation=cv2.INTER_NEAREST)
        small = {0: small, 1: small[:, ::-1], 3: small[::-1, ::-1]}[int(v)]
        assert np.array_equal(batch.paper_target[i].numpy(), small)
    # classification sources never carry one
    assert CachedSource({"pooled": np.zeros((1, 2, 4)), "target": np.zeros(2)}, get_card("eurosat-s1"),
                        torch.device("cpu"), paper_size=224).paper_size is None


@pytest.mark.slow  # a full-size UPerNet at 224 px on CPU (the fast tests above pin the same rules)
def test_cloud_s3_full_tier_trains_and_scores_at_224_on_the_sample(tmp_path, monkeypatch):
    """The whole run on the built-in sample (Cloud-S3 cropped to 128 px there): the probe trains on 224×224
    targets, ``metric.paper`` is scored at 224 and ``global`` at the loader's size; both land in the file."""
    import json

    from copernicus_bench.runner import RunSpec, run_one

    seen = []
    real = probing.probe_loss
    monkeypatch.setattr(probing, "probe_loss", lambda c, m, a, t: seen.append(tuple(t.shape[-2:])) or real(c, m, a, t))
    spec = RunSpec(model="random", task="cloud-s3", sample=True, tier="full", epochs=1, limit=2, batch_size=2,
                   model_args=(("config", "tiny"),), out_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "c"))
    outcome = run_one(spec, progress=False)
    assert outcome.status == "done", outcome.message
    assert seen and set(seen) == {(224, 224)}
    rec = json.loads(open(outcome.path).read())
    m = rec["metric"]
    assert m["paper_target_size"] == 224 and m["paper_epoch"] == 0 and rec["best_epoch"] == 0
    assert all(isinstance(m[k], float) and np.isfinite(m[k]) for k in ("global", "per_batch", "paper"))
