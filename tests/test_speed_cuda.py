"""CUDA checks (issue 13): bf16 encode, head autocast, channels-last + compile, cache round-trip on the GPU.

Skipped without CUDA; ``benchmarks/gpu_check.sh`` runs them (``pytest -m cuda``) on a GPU machine.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TINY = {"config": "tiny"}


def _encoder(card):
    from copernicus_bench.models_registry import create_model

    adapter = create_model("random", seed=0, **TINY)
    pipe = adapter.input_pipeline(card, "smoke")
    return adapter.build(card, pipe, 0).cuda().eval(), pipe


def test_bf16_encode_matches_fp32_on_the_gpu():
    from copernicus_bench.features import encode_batch
    from copernicus_bench.tasks import get_card

    card = get_card("dfc2020-s1")
    enc, pipe = _encoder(card)
    x = torch.randn(2, card.num_bands, 64, 64)
    meta = torch.zeros(2, 4)
    out = encode_batch(enc, pipe, card, x, meta, True, torch.device("cuda"))  # bf16 autocast on CUDA
    with torch.no_grad():
        ref = enc(pipe.apply(x.cuda()), meta.cuda(), want_maps=True)
    assert out.maps[0].dtype == torch.float32 and out.maps[0].is_cuda
    torch.testing.assert_close(out.maps[3], ref.maps[3].float(), rtol=0.05, atol=0.05)


@pytest.mark.parametrize("opts", [dict(precision="bf16"), dict(channels_last=True), dict(compile=True)])
def test_head_options_train_on_cuda(opts):
    from copernicus_bench.features import CachedSource
    from copernicus_bench.probes.upernet import UPerNetProbe
    from copernicus_bench.probing import HeadOptions, train_probe
    from copernicus_bench.tasks import get_card

    card = get_card("dfc2020-s1")
    rng = np.random.default_rng(0)
    arrays = {f"map{k}": rng.standard_normal((4, 8, 16, 4, 4)).astype(np.float16) for k in range(4)}
    arrays["target"] = rng.integers(0, card.num_classes, (8, 16, 16))
    dev = torch.device("cuda")
    src = CachedSource(arrays, card, dev)
    head = UPerNetProbe(16, card.num_classes, channels=32, aux_channels=16)
    fp32 = train_probe(card, UPerNetProbe(16, card.num_classes, channels=32, aux_channels=16), src, src, src,
                       epochs=2, batch_size=4, lr=1e-3, seed=0, device=dev)
    res = train_probe(card, head, src, src, src, epochs=2, batch_size=4, lr=1e-3, seed=0, device=dev,
                      head_options=HeadOptions(**opts))
    assert np.isfinite(res.history[-1]["train_loss"])
    assert res.history[0]["train_loss"] == pytest.approx(fp32.history[0]["train_loss"], rel=0.1)


def test_feature_cache_round_trip_from_the_gpu(tmp_path):
    from copernicus_bench.cache import ArrayWriter, FeatureCache
    from copernicus_bench.features import CachedSource, fill_cache
    from copernicus_bench.tasks import get_card

    card = get_card("dfc2020-s1")
    enc, pipe = _encoder(card)

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return {"image": torch.randn(card.num_bands, 64, 64, generator=g),
                    "target": torch.zeros(64, 64, dtype=torch.long), "meta": torch.zeros(4)}

    cache = FeatureCache(tmp_path)
    dev = torch.device("cuda")
    arrays, hit = cache.get_or_build("cd" * 32, {}, lambda w: fill_cache(w, enc, pipe, card, DS(), 2, dev, 2, 0,
                                                                         dtype="float32"))
    assert not hit and isinstance(ArrayWriter, type)
    again, hit = cache.get_or_build("cd" * 32, {}, lambda w: None)
    assert hit
    np.testing.assert_array_equal(arrays["map1"], again["map1"])
    batch = next(CachedSource(again, card, dev).eval_batches(3))
    assert batch.maps[0].is_cuda and batch.maps[0].shape[0] == 3
