"""`cbench demo`: weights choice per model, results + leaderboard in the demo folder, the sample disclaimer."""

from __future__ import annotations

import time

import pytest

from copernicus_bench import demo as demo_mod
from copernicus_bench.baselines.random_vit import RandomViTAdapter
from copernicus_bench.models_registry import MODELS

DEMO_TASKS = ("eurosat-s1", "cloud-s2")


class TinyDemoAdapter(RandomViTAdapter):
    """A tiny random ViT that pretends its released weights are missing and applies to two tasks."""

    name = "tiny-demo"

    def __init__(self, status: str) -> None:
        super().__init__(config="tiny")
        self.status = status

    def applicability(self, card):
        return None if card.slug in DEMO_TASKS else "demo test: two tasks only"

    def weights_status(self) -> str:
        return self.status


def _register(monkeypatch, name: str, status: str, accepts_random_init: bool, calls: list | None = None):
    if accepts_random_init:
        def factory(weights_dir=None, seed=0, random_init=False):
            if calls is not None:
                calls.append(random_init)
            return TinyDemoAdapter("random init per seed" if random_init else status)
    else:
        def factory(weights_dir=None, seed=0):
            return TinyDemoAdapter(status)
    monkeypatch.setitem(MODELS._items, name, factory)


def _cards():
    from copernicus_bench.tasks import list_cards

    return list_cards()


def test_plan_uses_released_weights_when_present(monkeypatch):
    _register(monkeypatch, "m-present", "present: weights-abc.pth", accepts_random_init=True)
    plan = demo_mod.plan_model("m-present", "w", _cards())
    assert (plan.weights, plan.model_args, sorted(plan.tasks)) == ("released", (), sorted(DEMO_TASKS))


def test_plan_falls_back_to_random_init_when_weights_are_missing(monkeypatch):
    _register(monkeypatch, "m-missing", "missing: weights-abc.pth (downloaded on first run)", accepts_random_init=True)
    plan = demo_mod.plan_model("m-missing", "w", _cards())
    assert (plan.weights, plan.model_args) == ("random-init", (("random_init", "true"),))


def test_plan_runs_a_factory_without_random_init_as_is(monkeypatch):
    _register(monkeypatch, "m-plugin", "missing: mine.pth", accepts_random_init=False)
    plan = demo_mod.plan_model("m-plugin", "w", _cards())
    assert (plan.weights, plan.model_args) == ("as is", ())


def test_unknown_model_is_a_one_line_error(tmp_path, builtin_sample):
    from copernicus_bench.errors import CbenchError

    with pytest.raises(CbenchError, match="no-such-model"):
        demo_mod.run_demo(tmp_path / "d", models=["no-such-model"], progress=False)


def test_demo_writes_results_and_a_leaderboard_that_says_it_is_a_sample(monkeypatch, tmp_path, capsys,
                                                                        builtin_sample):
    calls: list = []
    _register(monkeypatch, "tiny-demo", "missing: tiny.pth", accepts_random_init=True, calls=calls)
    from copernicus_bench.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--models", "tiny-demo"]) == 0
    captured = capsys.readouterr()
    assert "mean nothing" in captured.out and "mean nothing" in captured.err  # on screen
    assert str(out / "leaderboard" / "README.md") in captured.err  # says where
    assert True in calls  # the factory got random_init=True
    results = sorted(p.name for p in (out / "results").glob("*.json"))
    assert len(results) == 2 and all("__smoke__" in r for r in results)
    readme = (out / "leaderboard" / "README.md").read_text()
    head = readme.split("| Task |")[0]
    assert "GENERATED SAMPLE" in head and "mean nothing" in head
    assert "tiny-demo (random init)†§ [epochs=1,limit=2]" in readme
    assert (out / "leaderboard" / "scores.png").stat().st_size > 0


@pytest.mark.slow
def test_full_demo_every_installed_model_under_ten_minutes(tmp_path, capsys, builtin_sample):
    """The whole demo (all installed models × applicable tasks); the brief's budget is 10 min on 2 cores."""
    t0 = time.perf_counter()
    report = demo_mod.run_demo(tmp_path / "demo", progress=True)
    elapsed = time.perf_counter() - t0
    assert not report.failed, [f"{o.spec.model}/{o.spec.task}: {o.message}" for o in report.failed]
    assert elapsed < 600, f"demo took {elapsed:.0f} s"
    assert (tmp_path / "demo" / "leaderboard" / "README.md").exists()
