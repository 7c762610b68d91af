"""Issue 13: head efficiency options — fp32 default unchanged, channels-last is the same maths, bf16 autocast
is a bounded, recorded deviation. CPU only; the CUDA variants are in test_speed_cuda.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from copernicus_bench.features import CachedSource
from copernicus_bench.probes.upernet import UPerNetProbe
from copernicus_bench.probing import HeadOptions, HeadRunner, train_probe


def _dense_arrays(n: int = 8, d: int = 16, g: int = 4, classes: int = 3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    target = rng.integers(0, classes, size=(n, 4 * g, 4 * g)).astype(np.int64)
    signal = np.eye(classes, d)[target[:, ::4, ::4]].transpose(0, 3, 1, 2)  # (n, d, g, g) learnable cue
    maps = {f"map{k}": (signal + 0.1 * rng.standard_normal((n, d, g, g)))[None].repeat(4, 0).astype(np.float16)
            for k in range(4)}
    return {**maps, "target": target}


def _train(options: HeadOptions | None, epochs: int = 3):
    from copernicus_bench.tasks import get_card

    card = get_card("dfc2020-s1")
    arrays = _dense_arrays(classes=card.num_classes)
    torch.manual_seed(0)
    head = UPerNetProbe(16, card.num_classes, channels=32, aux_channels=16)
    src = CachedSource(arrays, card, torch.device("cpu"))
    res = train_probe(card, head, src, src, src, epochs=epochs, batch_size=4, lr=1e-3, seed=0,
                      device=torch.device("cpu"), head_options=options)
    return res, head


def test_default_options_are_fp32_without_compile():
    opts = HeadOptions()
    assert opts.precision == "fp32" and not opts.compile and opts.channels_last is None
    with pytest.raises(ValueError, match="precision"):
        HeadOptions(precision="fp8")
    runner = HeadRunner(torch.nn.Linear(3, 2), opts, torch.device("cpu"))
    assert not runner.channels_last  # layout change only on CUDA unless asked


def test_channels_last_gives_the_same_training_as_the_default_layout():
    a, head_a = _train(HeadOptions(channels_last=False))
    b, head_b = _train(HeadOptions(channels_last=True))
    assert head_b.neck.upsample_4x[0].weight.is_contiguous(memory_format=torch.channels_last) or \
        head_b.decode_head.fpn_bottleneck.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert a.best_epoch == b.best_epoch
    for ha, hb in zip(a.history, b.history):
        assert ha["train_loss"] == pytest.approx(hb["train_loss"], rel=1e-4, abs=1e-5)
    # the layouts sum in other orders (more so with 2 threads): losses agree to 1e-4, while a metric over argmax
    # decisions can flip a few near-tied pixels (seen: 4.738 vs 4.702), so it is compared at 2 %
    assert a.test["global"] == pytest.approx(b.test["global"], rel=0.02)


def test_bf16_autocast_runs_the_head_in_bf16_and_stays_close():
    seen = []
    opts = HeadOptions(precision="bf16", channels_last=False)
    runner = HeadRunner(torch.nn.Linear(4, 2), opts, torch.device("cpu"))
    runner.head.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    out = runner(torch.randn(3, 4))
    assert seen == [torch.bfloat16] and out.dtype == torch.float32  # computed in bf16, returned as fp32
    fp32, _ = _train(HeadOptions(channels_last=False), epochs=2)
    bf16, _ = _train(opts, epochs=2)
    losses = [h["train_loss"] for h in bf16.history]
    assert all(np.isfinite(losses))
    assert losses[0] == pytest.approx(fp32.history[0]["train_loss"], rel=0.05)
    assert losses != [h["train_loss"] for h in fp32.history]  # it really is another precision
