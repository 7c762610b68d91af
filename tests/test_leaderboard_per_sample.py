"""Per-sample outputs: every metric is recomputed exactly from them (each task type), files are verified."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from copernicus_bench import per_sample as ps
from copernicus_bench.metrics import average_precision, create_metric
from copernicus_bench.tasks import get_card

# one shipped card per task type (multiclass, multilabel, segmentation with ignore, change detection, regression)
TASKS = ["eurosat-s1", "bigearthnet-s1", "dfc2020-s1", "flood-s1", "aq-no2-s5p", "cloud-s2"]


def batches(card, seed: int, sizes=(5, 5, 3)):
    g = torch.Generator().manual_seed(seed)
    k = card.num_classes
    for b in sizes:
        if card.metric == "oa":
            logits = torch.randn(b, k, generator=g)
            logits[0, 1] = logits[0, 0]  # a tie, resolved as the metric resolves it
            yield logits, torch.randint(0, k, (b,), generator=g)
        elif card.metric == "map-micro":
            yield torch.randn(b, k, generator=g) * 3, (torch.rand(b, k, generator=g) < 0.3).float()
        elif card.metric == "miou":
            target = torch.randint(0, k, (b, 8, 8), generator=g)
            if card.ignore_index is not None:
                target[:, :2] = card.ignore_index
            yield torch.randn(b, k, 8, 8, generator=g), target
        else:
            target = torch.randn(b, 8, 8, generator=g) * 5
            target[0, :3] = float("nan")
            if b == 3:
                target[1] = float("nan")  # one image without any valid pixel
            yield torch.randn(b, 8, 8, generator=g) * 5, target


@pytest.mark.parametrize("slug", TASKS)
def test_recompute_equals_the_metric_global_and_per_batch(slug):
    card = get_card(slug)
    metric = create_metric(card)
    rec = ps.PerSampleRecorder.for_card(card)
    for pred, target in batches(card, 0):
        metric.update(pred, target)
        rec.update(pred, target)
    want = metric.compute()
    got = ps.recompute(card.metric, rec.arrays(), card.ignore_index)
    assert got["global"] == pytest.approx(want["global"], rel=1e-9, abs=1e-9)
    assert got["per_batch"] == pytest.approx(want["per_batch"], rel=1e-9, abs=1e-9)
    assert ps.num_samples(rec.arrays()) == 13


def test_arrays_are_small_per_image_summaries():
    card = get_card("dfc2020-s1")
    rec = ps.PerSampleRecorder.for_card(card)
    for pred, target in batches(card, 1):
        rec.update(pred, target)
    a = rec.arrays()
    assert a["confmat"].shape == (13, card.num_classes, card.num_classes)
    # every non-ignored pixel is counted exactly once: 8*8 minus the 2 ignored rows of 8
    assert (a["confmat"].reshape(13, -1).sum(1) == 64 - 16).all()
    reg = ps.PerSampleRecorder.for_card(get_card("aq-no2-s5p"))
    for pred, target in batches(get_card("aq-no2-s5p"), 1):
        reg.update(pred, target)
    r = reg.arrays()
    assert set(r) == {"n", "sum_err", "sum_sq", "batch_sizes"} and r["n"][0] == 64 - 3 * 8 and r["n"][11] == 0


def _write(tmp_path, card):
    rec = ps.PerSampleRecorder.for_card(card)
    for pred, target in batches(card, 2):
        rec.update(pred, target)
    result_path = tmp_path / "m__abc__t__smoke__cached__seed0.json"
    info = ps.write_per_sample(result_path, card.metric, rec.arrays())
    result = {"per_sample": info, "_path": str(result_path)}
    result_path.write_text(json.dumps({"per_sample": info}))
    return result, rec.arrays()


def test_write_then_load_verifies_checksum_and_round_trips(tmp_path):
    card = get_card("eurosat-s1")
    result, arrays = _write(tmp_path, card)
    assert result["per_sample"]["file"] == "m__abc__t__smoke__cached__seed0.samples.npz"
    assert not list(tmp_path.glob(".*tmp"))  # nothing half-written left behind
    loaded = ps.load_per_sample(result)
    assert set(loaded) == set(arrays)
    for k in arrays:
        np.testing.assert_array_equal(loaded[k], arrays[k])


def test_tampered_missing_or_absent_per_sample_file_is_refused(tmp_path):
    card = get_card("eurosat-s1")
    result, _ = _write(tmp_path, card)
    path = tmp_path / result["per_sample"]["file"]
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ps.PerSampleError, match="does not match the sha256"):
        ps.load_per_sample(result)
    path.unlink()
    with pytest.raises(ps.PerSampleError, match="missing"):
        ps.load_per_sample(result)
    with pytest.raises(ps.PerSampleError, match="no per-sample outputs"):
        ps.load_per_sample({"_path": str(tmp_path / "x.json")})


def test_weighted_metric_with_bootstrap_counts_matches_explicit_resample():
    card = get_card("bigearthnet-s1")
    rec = ps.PerSampleRecorder.for_card(card)
    for pred, target in batches(card, 3):
        rec.update(pred, target)
    a = rec.arrays()
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 13, size=13)
    counts = np.bincount(idx, minlength=13)[None].astype(float)
    # the same resample spelled out: duplicate the drawn images and score them with metrics.py's AP
    want = 100 * average_precision(torch.from_numpy(a["scores"][idx]), torch.from_numpy(a["label"][idx]))
    assert ps.weighted_metric("map-micro", a, counts)[0] == pytest.approx(want, rel=1e-12)


# ----------------------------------------------------------------------------- through the runner
RUN_TASKS = ["eurosat-s1", "lc100cls-s3", "dfc2020-s1", "flood-s1", "aq-no2-s5p"]  # one per task type


@pytest.mark.slow  # five smoke runs through the CLI (~10 s each on an idle 2-core machine, shared fixtures)
@pytest.mark.parametrize("slug", RUN_TASKS)
def test_runner_stores_per_sample_outputs_that_reproduce_the_stored_metric(builtin_sample, smoke_results, slug):
    from copernicus_bench.cli import main
    from copernicus_bench.results import load_results

    assert main(["run", "--model", "random", "--task", slug, "--sample", "--tier", "smoke", "--model-args",
                 "config=tiny", "--out", str(smoke_results)]) == 0
    [r] = [r for r in load_results(smoke_results) if r["task"] == slug and r["model"] == "random"
           and r["overrides"].get("model_args") == {"config": "tiny"}]
    card = get_card(slug)
    arrays = ps.load_per_sample(r)  # verified against the sha256 in the result
    assert r["per_sample"]["n"] == ps.num_samples(arrays) == r["config"]["samples"]["test"]
    got = ps.recompute(card.metric, arrays, card.ignore_index)
    assert got["global"] == pytest.approx(r["metric"]["global"], rel=1e-9, abs=1e-9)
    assert got["per_batch"] == pytest.approx(r["metric"]["per_batch"], rel=1e-9, abs=1e-9)
    cost = r["cost"]
    assert cost["encoder_params"] > 0 and cost["encoder_gflops_per_image"] > 0 and cost["head_gflops_per_step"] > 0
    assert cost["encoder_images_per_s"] > 0 and cost["device"] and cost["train_s"] >= 0
    assert r["model_card"]["name"] == "random" and r["model_card"]["overlap"] == "none"
