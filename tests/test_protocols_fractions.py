"""Label fractions: deterministic, stratified, nested subsets; bad fractions fail in one line."""

from __future__ import annotations

import numpy as np
import pytest

from copernicus_bench.errors import CbenchError
from copernicus_bench.fractions import class_counts, parse_fractions, select, split_checksum
from copernicus_bench.tasks import get_card

EUROSAT = get_card("eurosat-s2")
BEN = get_card("bigearthnet-s1")
DFC = get_card("dfc2020-s1")


def _labels(n_per_class: list[int], seed: int = 3) -> np.ndarray:
    y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    return np.random.default_rng(seed).permutation(y)


def test_same_fraction_seed_and_split_give_the_same_subset_and_another_seed_another():
    y = _labels([30] * 10)
    a = select(EUROSAT, y, len(y), 0.1, seed=0, checksum="abc")
    b = select(EUROSAT, y.copy(), len(y), 0.1, seed=0, checksum="abc")
    assert a.indices == b.indices and a.digest == b.digest
    assert select(EUROSAT, y, len(y), 0.1, seed=1, checksum="abc").indices != a.indices
    assert select(EUROSAT, y, len(y), 0.1, seed=0, checksum="abd").indices != a.indices  # split file changed


def test_multiclass_subset_keeps_each_class_share_and_is_nested():
    counts = [100, 50, 20, 10, 10, 10, 40, 60, 30, 70]
    y = _labels(counts)
    sub = select(EUROSAT, y, len(y), 0.1, seed=0, checksum="x")
    assert len(sub.indices) == round(0.1 * len(y)) == 40
    got = class_counts(EUROSAT, y, sub.indices)
    assert got == [c // 10 for c in counts]  # exact shares: f·n_c is whole for every class here
    large = select(EUROSAT, y, len(y), 0.5, seed=0, checksum="x")
    assert set(sub.indices) <= set(large.indices)  # 0.1 ⊂ 0.5
    assert class_counts(EUROSAT, y, large.indices) == [c // 2 for c in counts]
    full = select(EUROSAT, y, len(y), 1.0, seed=0, checksum="x")
    assert full.indices == tuple(range(len(y))) and full.method == "all"


def test_largest_remainders_fill_the_total():
    y = _labels([7, 7, 7, 9, 9, 9, 11, 11, 11, 13])
    sub = select(EUROSAT, y, len(y), 0.3, seed=0, checksum="x")
    got = np.array(class_counts(EUROSAT, y, sub.indices))
    exact = 0.3 * np.array([7, 7, 7, 9, 9, 9, 11, 11, 11, 13])
    assert len(sub.indices) == round(0.3 * len(y))
    assert np.all(np.abs(got - exact) < 1.0)


def test_a_fraction_that_empties_a_class_names_it_and_the_smallest_fraction():
    y = _labels([100] * 9 + [8])
    with pytest.raises(CbenchError, match=r"class 'SeaLake'.*8 training sample.*at least 0\.125 keeps"):
        select(EUROSAT, y, len(y), 0.05, seed=0, checksum="x")
    select(EUROSAT, y, len(y), 0.125, seed=0, checksum="x")  # the suggested fraction works


def test_multilabel_iterative_stratification_keeps_label_proportions():
    rng = np.random.default_rng(0)
    k = BEN.num_classes
    prior = np.linspace(0.05, 0.6, k)
    y = (rng.random((2000, k)) < prior).astype(np.float32)
    y[y.sum(1) == 0, 0] = 1
    sub = select(BEN, y, len(y), 0.1, seed=0, checksum="x")
    assert sub.method == "iterative-stratification"
    assert abs(len(sub.indices) - 200) <= 5
    got = np.array(class_counts(BEN, y, sub.indices))
    want = 0.1 * y.sum(0)
    assert np.all(np.abs(got - want) <= np.maximum(2, 0.1 * want)), (got, want)
    assert sub.indices == select(BEN, y, len(y), 0.1, seed=0, checksum="x").indices


def test_multilabel_rare_label_too_small_fraction_fails_naming_it():
    k = BEN.num_classes
    y = np.zeros((400, k), np.float32)
    y[:, 0] = 1
    y[:3, 5] = 1  # label 5 on only 3 samples
    with pytest.raises(CbenchError, match=rf"label '{BEN.classes[5]}'.*3 training sample.*at least 0\.3334"):
        select(BEN, y, len(y), 0.05, seed=0, checksum="x")


def test_dense_tasks_draw_whole_images():
    sub = select(DFC, None, 50, 0.1, seed=0, checksum="x")
    assert sub.method == "by-image" and len(sub.indices) == 5 and len(set(sub.indices)) == 5
    assert len(select(DFC, None, 50, 0.001, seed=0, checksum="x").indices) == 1  # at least one image


@pytest.mark.parametrize("bad", ["0", "-0.1", "1.5", "nan", "abc", "0.1,0.1", ""])
def test_bad_fractions_fail_in_one_line(bad):
    with pytest.raises(CbenchError) as err:
        parse_fractions(bad)
    assert "--train-fraction" in str(err.value) and "\n" not in str(err.value)


def test_parse_and_split_checksum():
    assert parse_fractions("0.01, 0.1,1.0") == [0.01, 0.1, 1.0]
    a = split_checksum({"a.csv": "1", "b.csv": "2"})
    assert a == split_checksum({"b.csv": "2", "a.csv": "1"}) != split_checksum({"a.csv": "1", "b.csv": "3"})
