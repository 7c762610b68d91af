"""Weighted kNN (Wu et al. 2018 / DINO): the vote against an independent numpy computation, multilabel scores,
dense tasks refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from copernicus_bench.errors import CbenchError
from copernicus_bench.features import Batch
from copernicus_bench.knn import check_applicable, knn_scores, run_knn
from copernicus_bench.tasks import get_card


def _numpy_knn(train, labels, query, k, t, num_classes):
    tn = train / np.linalg.norm(train, axis=1, keepdims=True)
    qn = query / np.linalg.norm(query, axis=1, keepdims=True)
    out = np.zeros((len(query), num_classes))
    for i, q in enumerate(qn):
        sim = tn @ q
        nn = np.argsort(-sim, kind="stable")[:k]
        for j in nn:
            out[i, labels[j]] += np.exp(sim[j] / t)
    return out


def test_vote_matches_an_independent_computation():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 8)).astype(np.float32)
    labels = rng.integers(0, 4, size=50)
    query = rng.normal(size=(7, 8)).astype(np.float32)
    got = knn_scores(torch.from_numpy(train), torch.from_numpy(labels), torch.from_numpy(query), num_classes=4,
                     multilabel=False, k=5, temperature=0.07)
    want = _numpy_knn(train, labels, query, 5, 0.07, 4)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4)


def test_k_larger_than_the_training_set_uses_all_and_multilabel_scores_are_label_shares():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    y = torch.tensor([[1, 0], [1, 1], [0, 1]])
    s = knn_scores(train, y, torch.tensor([[1.0, 0.05]]), num_classes=2, multilabel=True, k=20, temperature=0.07)
    assert s.shape == (1, 2) and 0.99 < float(s[0, 0]) <= 1.0 + 1e-6  # both near neighbours carry label 0
    assert 0.3 < float(s[0, 1]) < 0.7  # label 1: the second neighbour, the far third weighs ~nothing


class _Source:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def eval_batches(self, batch_size):
        for i in range(0, len(self.x), batch_size):
            yield Batch(self.x[i:i + batch_size], None, self.y[i:i + batch_size])


def test_run_knn_on_separable_clusters_is_perfect_and_random_labels_are_near_chance():
    card = get_card("eurosat-s2")
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 16, generator=g) * 3
    y_train = torch.arange(200) % 10
    y_test = torch.arange(100) % 10
    x_train = centres[y_train] + 0.3 * torch.randn(200, 16, generator=g)
    x_test = centres[y_test] + 0.3 * torch.randn(100, 16, generator=g)
    r = run_knn(card, _Source(x_train, y_train), _Source(x_test, y_test), _Source(x_test, y_test), batch_size=32)
    assert r.test["global"] == 100.0 and r.best_epoch == -1 and r.history == []
    shuffled = y_train[torch.randperm(200, generator=g)]
    r2 = run_knn(card, _Source(torch.randn(200, 16, generator=g), shuffled), _Source(x_test, y_test),
                 _Source(x_test, y_test), batch_size=32)
    assert r2.test["global"] < 30.0


def test_dense_tasks_are_refused_in_one_line():
    with pytest.raises(CbenchError, match="--protocol knn: task dfc2020-s1 is segmentation"):
        check_applicable(get_card("dfc2020-s1"))
    check_applicable(get_card("bigearthnet-s1"))  # multilabel applies
