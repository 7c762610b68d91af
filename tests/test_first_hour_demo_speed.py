"""The demo fits its promise: random-weight models run their tiny architecture, the head's FLOPs are counted
on two samples (exactly: linear in the batch), and the plan's estimate comes from measured per-job CPU seconds."""

from __future__ import annotations

import pytest
import torch

from copernicus_bench import demo as demo_mod
from copernicus_bench.cost import head_flops_per_batch, head_flops_per_step
from copernicus_bench.features import Batch
from copernicus_bench.models_registry import MODELS
from copernicus_bench.probing import build_head
from copernicus_bench.tasks import get_card, list_cards


def _batch(card, b: int, dim: int = 64) -> Batch:
    g = torch.Generator().manual_seed(0)
    if card.is_dense:
        maps = [torch.randn(b, dim, 8, 8, generator=g) for _ in range(4)]
        if card.task_type == "regression":
            target = torch.randn(b, 32, 32, generator=g)
            target[0, :2, :2] = float("nan")
        else:
            target = torch.randint(0, len(card.classes), (b, 32, 32), generator=g)
        return Batch(None, maps, target)
    if card.task_type == "multilabel":
        return Batch(torch.randn(b, dim, generator=g), None, torch.randint(0, 2, (b, len(card.classes))).float())
    return Batch(torch.randn(b, dim, generator=g), None, torch.randint(0, len(card.classes), (b,), generator=g))


@pytest.mark.parametrize("slug", ["dfc2020-s1", "aq-o3-s5p", "bigearthnet-s1", "eurosat-s1"])
def test_head_flops_counted_on_two_samples_equal_the_full_step(slug):
    card = get_card(slug)
    torch.manual_seed(0)
    head = build_head(card, 64, "upernet" if card.is_dense else "ln-bn-linear")
    full = head_flops_per_step(card, head, _batch(card, 6))
    assert full > 0
    assert head_flops_per_batch(card, head, _batch(card, 6), 6) == full
    assert head_flops_per_batch(card, head, _batch(card, 4), 6) == full  # a short test batch, scaled up


def _register(monkeypatch, name, factory):
    monkeypatch.setitem(MODELS._items, name, factory)


def test_random_weight_models_run_their_tiny_architecture_in_the_demo():
    from copernicus_bench import paths

    cards = list_cards()
    for name in ("random", "copernicus-fm", "dofa", "supervised-vit-s16", "supervised-vit-b16"):
        plan = demo_mod.plan_model(name, str(paths.weights_dir()), cards)  # no weights in the test folder
        assert ("config", "tiny") in plan.model_args, name
        assert "tiny architecture" in plan.note
    plan = demo_mod.plan_model("my-encoder", str(paths.weights_dir()), cards) if "my-encoder" in MODELS else None
    if plan is not None:  # the example plug-in has no config parameter: run as is
        assert plan.model_args == ()


def test_released_weights_keep_their_architecture(monkeypatch):
    from copernicus_bench.baselines.random_vit import RandomViTAdapter

    class Released(RandomViTAdapter):
        def weights_status(self) -> str:
            return "present: w.pth"

    _register(monkeypatch, "m-rel", lambda weights_dir=None, seed=0, random_init=False, config="base":
              Released(config="tiny"))
    plan = demo_mod.plan_model("m-rel", "w", list_cards())
    assert plan.weights == "released" and plan.model_args == ()


def test_a_kwargs_only_plugin_gets_no_config(monkeypatch):
    from copernicus_bench.baselines.random_vit import RandomViTAdapter

    class Missing(RandomViTAdapter):
        def weights_status(self) -> str:
            return "missing: w.pth"

    _register(monkeypatch, "m-kw", lambda **kw: Missing(config="tiny"))
    plan = demo_mod.plan_model("m-kw", "w", list_cards())
    assert plan.weights == "random-init" and plan.model_args == (("random_init", "true"),)


def test_plan_estimate_is_calibrated_on_measured_per_job_seconds():
    from copernicus_bench.progress import DEMO_CPU_SECONDS

    specs = demo_mod.demo_specs(["random"], "unused")[1]
    est = demo_mod.job_estimates(specs)
    assert len(est) == len(specs) == 15
    for s, e in zip(specs, est):
        assert e == DEMO_CPU_SECONDS["dense" if get_card(s.task).is_dense else "classification"]
    assert DEMO_CPU_SECONDS["dense"] > 5 * DEMO_CPU_SECONDS["classification"] > 0
    other = demo_mod.job_estimates(demo_mod.demo_specs(["random"], "unused", limit=16, epochs=2)[1])
    assert sum(other) > sum(est)  # not the demo's settings: the general smoke estimate, larger


def test_validation_is_not_rescored_when_the_last_epoch_is_the_best(monkeypatch):
    """The best state's validation is re-scored only when it is not the state the last epoch just scored."""
    from copernicus_bench import probing

    card = get_card("eurosat-s1")

    class Source:
        def __init__(self, n, seed):
            g = torch.Generator().manual_seed(seed)
            self.x = torch.randn(n, 64, generator=g)
            self.y = torch.randint(0, len(card.classes), (n,), generator=g)

        def __len__(self):
            return len(self.y)

        def train_batches(self, rng, batch_size, drop_last):
            yield Batch(self.x, None, self.y)

        def eval_batches(self, batch_size):
            yield Batch(self.x, None, self.y)

    calls = []
    real = probing.evaluate
    monkeypatch.setattr(probing, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.manual_seed(0)
    head = build_head(card, 64, "ln-bn-linear")
    val_src = Source(8, 2)
    result = probing.train_probe(card, head, Source(8, 1), val_src, Source(8, 3), epochs=1, batch_size=8, lr=0.1,
                                 seed=0, device=torch.device("cpu"))
    assert len(calls) == 2  # the epoch's validation and the test; no third pass over val
    again = real(card, probing.HeadRunner(head, probing.HeadOptions(), torch.device("cpu")),
                 val_src.eval_batches(8))
    assert result.val["global"] == again["global"] and result.val["per_batch"] == again["per_batch"]

    calls.clear()
    monkeypatch.setattr(probing, "better", lambda card, new, old: False)  # epoch 0 stays the best
    probing.train_probe(card, build_head(card, 64, "ln-bn-linear"), Source(8, 1), val_src, Source(8, 3), epochs=2,
                        batch_size=8, lr=0.1, seed=0, device=torch.device("cpu"))
    assert len(calls) == 4  # two epochs' validations, the best state's validation, the test
