"""Probe heads, losses and optimiser/schedule against hand-derived expectations."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from copernicus_bench.cards import ProbeSpec, TargetStats
from copernicus_bench.probes.linear import LinearProbe
from copernicus_bench.probes.train_utils import make_optimizer, probe_loss, unzscore, zscore_target
from copernicus_bench.probes.upernet import UPerNetProbe, count_flops, flops_per_sample


def make_card(task_type: str, ignore_index: int | None = None, aux_weight: float = 0.4):
    return SimpleNamespace(task_type=task_type, ignore_index=ignore_index, slug="t",
                           probe=SimpleNamespace(aux_weight=aux_weight),
                           target_stats=TargetStats(mean=92.3196, std=117.8162))


# ----------------------------------------------------------------------------------- linear
def test_linear_probe_ln_frozen_identity_bn_without_affine_and_init():
    torch.manual_seed(0)
    probe = LinearProbe(768, 1000)
    ln, bn, lin = probe.norm, probe.bn, probe.linear
    assert isinstance(ln, nn.LayerNorm) and ln.eps == 1e-6
    assert not ln.weight.requires_grad and not ln.bias.requires_grad
    assert torch.equal(ln.weight, torch.ones(768)) and torch.equal(ln.bias, torch.zeros(768))
    assert isinstance(bn, nn.BatchNorm1d) and bn.eps == 1e-6
    assert bn.weight is None and bn.bias is None and list(bn.parameters()) == []
    bound = 1 / 768 ** 0.5  # the reference keeps nn.Linear's default bias U(±1/√D) (parity item 6)
    assert lin.bias.abs().max().item() <= bound and lin.bias.std().item() == pytest.approx(bound / 3 ** 0.5, rel=0.1)
    assert lin.weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert lin.weight.abs().max().item() <= 2.0
    assert probe.trainable_parameters() == [lin.weight, lin.bias]


def test_linear_probe_forward_is_layernorm_then_batchnorm_then_linear_and_ln_stays_frozen():
    torch.manual_seed(0)
    probe = LinearProbe(16, 3)
    x = torch.randn(8, 16) * 5 + 2
    out = probe(x)
    z = F.layer_norm(x, (16,), eps=1e-6)
    z = (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-6)
    assert torch.allclose(out, z @ probe.linear.weight.T + probe.linear.bias, atol=1e-5)
    opt, _ = make_optimizer(ProbeSpec("linear", 8, 0.1, 1, "sgd", 1e-4), probe.parameters(), 1, 1)
    probe(x).sum().backward()
    opt.step()
    assert probe.norm.weight.grad is None
    assert torch.equal(probe.norm.weight, torch.ones(16)) and torch.equal(probe.norm.bias, torch.zeros(16))


def test_plain_linear_head():
    probe = LinearProbe(32, 5, head="linear")
    assert [type(m) for m in probe.modules() if not isinstance(m, (LinearProbe, nn.Identity))] == [nn.Linear]
    x = torch.randn(4, 32)
    assert torch.allclose(probe(x), x @ probe.linear.weight.T + probe.linear.bias)
    with pytest.raises(ValueError):
        LinearProbe(32, 5, head="mlp")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- UPerNet
@pytest.mark.parametrize("grid,out", [(4, 64), (7, 56), (14, 56), (14, 64)])
def test_upernet_output_shapes(grid, out):
    torch.manual_seed(0)
    probe = UPerNetProbe(32, 5, channels=16, aux_channels=8)
    maps = [torch.randn(2, 32, grid, grid) for _ in range(4)]
    main, aux = probe(maps, (out, out))
    assert main.shape == (2, 5, out, out) and aux.shape == (2, 5, out, out)
    feats = probe.neck(maps)
    assert [tuple(f.shape[2:]) for f in feats] == [(4 * grid,) * 2, (2 * grid,) * 2, (grid,) * 2,
                                                   (grid // 2,) * 2]


def test_upernet_parameter_count_matches_mmseg_structure():
    D, K, C, A = 768, 10, 512, 256
    with torch.device("meta"):
        probe = UPerNetProbe(D, K)
    n = sum(p.numel() for p in probe.parameters())
    convT = D * D * 2 * 2 + D  # ConvTranspose2d(D, D, 2, 2) with bias
    bn = lambda c: 2 * c  # noqa: E731  (BN weight + bias; running stats are buffers)
    neck = (convT + bn(D) + convT) + convT  # x4 branch, x2 branch; x1 identity, x0.5 max-pool
    ppm = 4 * (D * C + bn(C))  # 1x1 ConvModule (no bias) per pool scale
    bottleneck = (D + 4 * C) * C * 9 + bn(C)  # 3x3 on concat(last level, 4 PPM outputs)
    laterals = 3 * (D * C + bn(C))
    fpn_convs = 3 * (C * C * 9 + bn(C))
    fpn_bottleneck = 4 * C * C * 9 + bn(C)
    conv_seg = C * K + K
    aux = D * A * 9 + bn(A) + A * K + K
    expected = neck + ppm + bottleneck + laterals + fpn_convs + fpn_bottleneck + conv_seg + aux
    # = 7_081_728 + 1_576_960 + 12_977_152 + 1_182_720 + 7_080_960 + 9_438_208 + 5_130 + 1_772_554
    assert expected == 41_115_412
    assert n == expected


def test_upernet_convmodules_have_no_bias_and_are_followed_by_bn():
    probe = UPerNetProbe(32, 3, channels=16, aux_channels=8)
    convs = [m for m in probe.modules() if isinstance(m, nn.Conv2d)]
    heads = {id(probe.decode_head.conv_seg), id(probe.auxiliary_head.conv_seg)}
    assert all(c.bias is None for c in convs if id(c) not in heads)
    assert all(c.bias is not None for c in convs if id(c) in heads)
    assert len(convs) == 4 + 1 + 3 + 3 + 1 + 1 + 1 + 1  # PPM, bottleneck, lateral, fpn, fpn_bn, seg, aux conv+seg
    assert isinstance(probe.decode_head.dropout, nn.Dropout2d) and probe.decode_head.dropout.p == 0.1


def _hand_flops(D: int, h: int, w: int, K: int, C: int = 512, A: int = 256) -> int:
    l0, l1, l2, l3 = 16 * h * w, 4 * h * w, h * w, (h // 2) * (w // 2)
    macs = h * w * D * D * 4 + l1 * D * D * 4  # x4: two transposed convs (input pixels x D x D x 2x2)
    macs += h * w * D * D * 4  # x2
    macs += sum(s * s for s in (1, 2, 3, 6)) * D * C  # PPM 1x1 convs on pooled maps
    macs += l3 * (D + 4 * C) * C * 9  # PSP bottleneck
    macs += (l0 + l1 + l2) * D * C  # laterals
    macs += (l0 + l1 + l2) * C * C * 9  # fpn convs
    macs += l0 * 4 * C * C * 9  # fpn bottleneck
    macs += l0 * C * K  # conv_seg
    macs += l2 * D * A * 9 + l2 * A * K  # aux head
    return 2 * macs


@pytest.mark.parametrize("grid", [7, 14])
def test_flops_per_sample_matches_hand_count(grid):
    assert flops_per_sample(768, grid, grid, 10) == _hand_flops(768, grid, grid, 10)


def test_count_flops_on_real_tensors_counts_per_batch():
    probe = UPerNetProbe(32, 4, channels=16, aux_channels=8).eval()
    maps = [torch.randn(3, 32, 6, 6) for _ in range(4)]
    assert count_flops(probe, maps, (96, 96)) == 3 * _hand_flops(32, 6, 6, 4, C=16, A=8)
    assert count_flops(nn.Linear(10, 4), torch.randn(5, 10)) == 2 * 5 * 10 * 4


# ----------------------------------------------------------------------------------- losses
def test_classification_losses():
    logits = torch.randn(6, 4)
    t = torch.randint(0, 4, (6,))
    assert torch.allclose(probe_loss(make_card("multiclass"), logits, None, t), F.cross_entropy(logits, t))
    mt = (torch.rand(6, 4) > 0.5).float()
    assert torch.allclose(probe_loss(make_card("multilabel"), logits, None, mt),
                          nn.MultiLabelSoftMarginLoss()(logits, mt))


@pytest.mark.parametrize("task", ["segmentation", "change_detection"])
def test_segmentation_loss_ignores_ignore_index_with_zero_gradient(task):
    torch.manual_seed(0)
    card = make_card(task, ignore_index=255)
    main = torch.randn(2, 3, 4, 4, requires_grad=True)
    aux = torch.randn(2, 3, 4, 4, requires_grad=True)
    t = torch.randint(0, 3, (2, 4, 4))
    t[0, :2] = 255
    loss = probe_loss(card, main, aux, t)
    valid = t != 255
    ce = lambda x: -(x.log_softmax(1).gather(1, t.clamp_max(2)[:, None])[:, 0])[valid].mean()  # noqa: E731
    assert torch.allclose(loss, ce(main) + 0.4 * ce(aux))
    loss.backward()
    ign = ~valid
    assert torch.count_nonzero(main.grad.permute(0, 2, 3, 1)[ign]) == 0
    assert torch.count_nonzero(aux.grad.permute(0, 2, 3, 1)[ign]) == 0
    assert torch.count_nonzero(main.grad.permute(0, 2, 3, 1)[valid]) > 0


def test_segmentation_loss_without_ignore_index_and_all_ignored_batch():
    main = torch.randn(1, 3, 2, 2, requires_grad=True)
    t = torch.randint(0, 3, (1, 2, 2))
    assert torch.allclose(probe_loss(make_card("segmentation", None), main, main, t),
                          1.4 * F.cross_entropy(main, t))
    zero = probe_loss(make_card("segmentation", 255), main, main, torch.full((1, 2, 2), 255))
    assert zero.item() == 0.0 and zero.grad_fn is not None
    zero.backward()
    assert torch.count_nonzero(main.grad) == 0


def test_regression_loss_is_reference_nanmean_l1_with_zero_gradient_at_nan():
    torch.manual_seed(0)
    card = make_card("regression")
    main = torch.randn(2, 1, 3, 3, requires_grad=True)
    aux = torch.randn(2, 1, 3, 3, requires_grad=True)
    t = torch.randn(2, 1, 3, 3)
    t[0, 0, 0] = float("nan")
    t[1, 0, :, 1] = float("nan")
    loss = probe_loss(card, main, aux, t)
    reference = (F.l1_loss(main, t, reduction="none") + 0.4 * F.l1_loss(aux, t, reduction="none")).nanmean()
    assert torch.allclose(loss, reference)
    assert torch.allclose(probe_loss(card, main, aux, t[:, 0]), reference)  # (B,H,W) target layout
    loss.backward()
    nan = torch.isnan(t)
    assert torch.all(main.grad[nan] == 0) and torch.all(aux.grad[nan] == 0)
    assert torch.isfinite(main.grad).all() and torch.count_nonzero(main.grad[~nan]) == (~nan).sum()


def test_regression_all_nan_batch_gives_zero_loss_with_grad_fn():
    main = torch.randn(2, 1, 3, 3, requires_grad=True)
    loss = probe_loss(make_card("regression"), main, main * 2, torch.full((2, 1, 3, 3), float("nan")))
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()
    assert torch.count_nonzero(main.grad) == 0


def test_zscore_roundtrip_keeps_nan():
    card = make_card("regression")
    t = torch.tensor([0.0, 92.3196, float("nan"), 210.1358])
    z = zscore_target(card, t)
    assert z[1].item() == pytest.approx(0.0, abs=1e-6) and z[3].item() == pytest.approx(1.0, abs=1e-6)
    assert torch.isnan(z[2]) and torch.allclose(unzscore(card, z), t, equal_nan=True)


# ----------------------------------------------------------------------------------- optimiser
def _trajectory(opt, sched, n, key="lr"):
    out = []
    for _ in range(n):
        g = opt.param_groups[0]
        out.append(g[key] if key != "beta1" else g["betas"][0])
        opt.step()
        sched.step()
    return out


def test_onecycle_lr_trajectory_with_the_papers_zero_warmup():
    spec = ProbeSpec("linear", 64, 0.1, 50, "sgd", 1e-4)
    p = nn.Parameter(torch.zeros(3))
    opt, sched = make_optimizer(spec, [p], steps_per_epoch=4, epochs=25)
    T, max_lr = 100, 0.1
    min_lr = max_lr / 25 / 1e4
    assert opt.param_groups[0]["initial_lr"] == pytest.approx(max_lr / 25)
    lrs = _trajectory(opt, sched, T)
    # pct_start = 0/T = 0.0: empty warm-up, cosine from max_lr (reached at virtual step -1) to min_lr
    expected = [min_lr + (max_lr - min_lr) * (1 + math.cos(math.pi * (k + 1) / T)) / 2 for k in range(T)]
    assert lrs == pytest.approx(expected, rel=1e-9)
    assert max(lrs) == lrs[0] == pytest.approx(max_lr, rel=3e-4)  # peak ~max_lr at the first step
    assert lrs[-1] == pytest.approx(min_lr, rel=1e-9)  # ends at max_lr/25/1e4
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


def test_onecycle_with_warmup_starts_at_max_lr_over_25_and_peaks_at_max_lr():
    spec = ProbeSpec("upernet", 16, 1e-3, 50, "adamw", 0.01)
    opt, sched = make_optimizer(spec, [nn.Parameter(torch.zeros(1))], steps_per_epoch=10, epochs=10,
                                warmup_epochs=1)
    lrs = _trajectory(opt, sched, 100)
    assert lrs[0] == pytest.approx(1e-3 / 25)
    assert max(lrs) == pytest.approx(1e-3) and lrs.index(max(lrs)) == 9
    assert lrs[-1] == pytest.approx(1e-3 / 25 / 1e4)


def test_sgd_momentum_is_cycled_and_actually_used():
    spec = ProbeSpec("linear", 64, 1.0, 50, "sgd", 1e-4)
    p = nn.Parameter(torch.ones(2))
    opt, sched = make_optimizer(spec, [p], steps_per_epoch=5, epochs=2)
    assert isinstance(opt, torch.optim.SGD)
    assert opt.defaults["momentum"] == 0 and opt.param_groups[0]["weight_decay"] == 1e-4
    moms = []
    for _ in range(10):
        moms.append(opt.param_groups[0]["momentum"])
        p.grad = torch.ones(2)
        opt.step()
        sched.step()
    T = 10
    expected = [0.85 + (0.95 - 0.85) * (1 - math.cos(math.pi * (k + 1) / T)) / 2 for k in range(T)]
    assert moms == pytest.approx(expected, rel=1e-9)  # 0.85 at the lr peak -> 0.95 at the end
    assert "momentum_buffer" in opt.state[p] and opt.state[p]["momentum_buffer"] is not None


def test_adamw_uses_spec_weight_decay_and_cycles_beta1_and_lr_override():
    spec = ProbeSpec("upernet", 16, 1e-4, 50, "adamw", 0.01)
    opt, sched = make_optimizer(spec, [nn.Parameter(torch.zeros(1))], 3, 2, lr=5e-4)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["weight_decay"] == 0.01
    assert opt.param_groups[0]["max_lr"] == 5e-4
    b1 = _trajectory(opt, sched, 6, key="beta1")
    assert b1[0] == pytest.approx(0.85 + 0.1 * (1 - math.cos(math.pi / 6)) / 2) and b1[-1] == pytest.approx(0.95)


def test_make_optimizer_rejects_zero_steps():
    with pytest.raises(ValueError):
        make_optimizer(ProbeSpec("linear", 1, 0.1, 1, "sgd", 0.0), [nn.Parameter(torch.zeros(1))], 0, 50)


def test_linear_probe_learns_a_separable_problem_with_the_reference_recipe():
    torch.manual_seed(0)
    x = torch.randn(64, 16)
    y = (x[:, 0] > 0).long()
    probe = LinearProbe(16, 2)
    opt, sched = make_optimizer(ProbeSpec("linear", 64, 0.1, 30, "sgd", 1e-4), probe.trainable_parameters(),
                                steps_per_epoch=1, epochs=30)
    card = make_card("multiclass")
    first = None
    for _ in range(30):
        loss = probe_loss(card, probe(x), None, y)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    probe.eval()
    assert loss.item() < 0.5 * first
    assert (probe(x).argmax(1) == y).float().mean() > 0.9
