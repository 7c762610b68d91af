"""``cbench demo``: every installed model on every task it applies to, on the built-in generated sample.

The point is to exercise each architecture's whole path (sample → loader → input pipeline → encoder →
cache → probe → result file → leaderboard) in minutes on a CPU, not to measure anything: the data are a
generated sample and the numbers mean nothing about the models. A model runs with its released weights
when they are already in the weights folder; otherwise with random weights (``random_init=True`` for
factories that accept it; a plug-in factory that does not is run as is) and its column says
"(random init)"; with random weights a model whose factory takes ``config`` runs its tiny architecture
(``config=tiny``: the same code at depth 2, width 64 — a ViT-B's size would only cost time). Nothing is
downloaded. Tier ``smoke``, seed 0, and only the first ``DEMO_LIMIT`` samples of each split (stamped
``[limit=2]`` in the columns) so that all models finish in minutes on a CPU.
"""

from __future__ import annotations

import inspect
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runner import RunOutcome, RunSpec

DEMO_LIMIT = 2  # samples per split: the fewest that run every step (BatchNorm needs > 1); dense heads cost ∝ it
DEMO_EPOCHS = 1  # one probe epoch runs every step (train, validate, select, test); a second one means nothing
DEMO_N_BOOT = 0  # no bootstrap CIs: 4 test samples make them meaningless, and they cost half a minute
BANNER = ("DEMO on a GENERATED SAMPLE of all 15 tasks: the numbers below mean nothing about the models; "
          "they only show that every model's whole path runs.")


@dataclass
class DemoPlan:
    model: str
    weights: str  # "released" | "random-init" | "as is"
    model_args: tuple[tuple[str, str], ...]
    tasks: list[str]
    note: str = ""


@dataclass
class DemoReport:
    out: Path
    results_dir: Path
    leaderboard_dir: Path
    plans: list[DemoPlan]
    outcomes: list[RunOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def _accepts(factory: object, name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def plan_model(name: str, weights_dir: str, cards: list) -> DemoPlan:
    """Released weights if present in the weights folder, else random init where the factory allows it."""
    from .errors import CbenchError
    from .models_registry import MODELS, create_model

    try:
        adapter = create_model(name, weights_dir=weights_dir, seed=0)
    except CbenchError as exc:
        return DemoPlan(name, "as is", (), [], note=f"cannot be created: {exc}")
    status = adapter.weights_status().lower()
    tasks = [c.slug for c in cards if adapter.applicability(c) is None]
    factory = MODELS.get(name)
    tiny = ((("config", "tiny"),) if _names_param(factory, "config") else ())
    if "random" in status:  # the model is random by design (e.g. `random`, or a plug-in like the example)
        return DemoPlan(name, "as is", tiny, tasks, note=adapter.weights_status() + _tiny_note(tiny))
    if "present" in status and "missing" not in status:
        return DemoPlan(name, "released", (), tasks, note=adapter.weights_status())
    if _accepts(factory, "random_init"):
        return DemoPlan(name, "random-init", (("random_init", "true"), *tiny), tasks,
                        note="weights not in the weights folder: random init" + _tiny_note(tiny))
    return DemoPlan(name, "as is", (), tasks, note=adapter.weights_status())


def _names_param(factory: object, name: str) -> bool:
    """The factory has a parameter ``name`` of its own (not only ``**kwargs``)."""
    try:
        return name in inspect.signature(factory).parameters  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _tiny_note(tiny: tuple) -> str:
    return ", tiny architecture (config=tiny: with random weights a ViT-B only costs time)" if tiny else ""


def run_demo(out: str | Path = "demo", models: list[str] | None = None, progress: bool = True,
             cache_dir: str | None = None, launcher: str = "local", limit: int | None = DEMO_LIMIT,
             epochs: int | None = DEMO_EPOCHS, progress_mode: str | None = None) -> DemoReport:
    """Generate the sample, run every (model, applicable task) on it, write results + leaderboard."""
    from . import paths
    from .errors import CbenchError
    from .leaderboard import build_leaderboard, markdown_table, summary_markdown, write_leaderboard
    from .models_registry import list_models
    from .results import ensure_writable, load_results
    from .tasks import list_cards
    from .tasks.sample import ensure_builtin_sample

    t0 = time.perf_counter()
    out = ensure_writable(out)
    results_dir, lb_dir = out / "results", out / "leaderboard"
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda msg: None)
    say(f"cbench demo: {BANNER}")
    say("cbench demo: generating the built-in sample (once; cached in "
        f"{paths.sample_dir()}) ...")
    ensure_builtin_sample()

    known = list_models()
    models = models or known
    unknown = [m for m in models if m not in known]
    if unknown:
        raise CbenchError(f"--models: unknown model(s) {unknown}; installed: {', '.join(known)}")
    plans, specs = demo_specs(models, results_dir, cache_dir=cache_dir, limit=limit, epochs=epochs, say=say)
    report = DemoReport(out=out, results_dir=results_dir, leaderboard_dir=lb_dir, plans=plans)
    report.outcomes = _launch_with_eta(specs, launcher, progress, progress_mode, say)

    lb = build_leaderboard(load_results(ensure_writable(results_dir)), list_cards(), n_boot=DEMO_N_BOOT)
    write_leaderboard(lb, lb_dir)
    report.seconds = time.perf_counter() - t0
    if progress:
        print(f"{BANNER}\n")
        print(markdown_table(lb))
        print()
        print(summary_markdown(lb))
        print(f"\n{BANNER}")
    say(f"cbench demo: {len(specs)} run(s) in {report.seconds:.0f} s, {len(report.failed)} failed; results in "
        f"{results_dir}, leaderboard in {lb_dir / 'README.md'} (chart {lb_dir / 'scores.png'})")
    for o in report.failed:
        say(f"cbench demo: FAILED {o.spec.model} {o.spec.task}: {o.message}")
    return report


def demo_specs(models: list[str], results_dir: str | Path, cache_dir: str | None = None,
               limit: int | None = DEMO_LIMIT, epochs: int | None = DEMO_EPOCHS,
               say=lambda msg: None) -> tuple[list[DemoPlan], list[RunSpec]]:
    """The demo's plan per model and its jobs (tier smoke, seed 0, on the built-in sample)."""
    from . import paths
    from .runner import RunSpec
    from .tasks import list_cards

    cards = list_cards()
    weights_dir = str(paths.weights_dir())
    plans = [plan_model(m, weights_dir, cards) for m in models]
    specs: list[RunSpec] = []
    for p in plans:
        say(f"cbench demo: {p.model}: {len(p.tasks)} task(s), weights {p.weights} ({p.note})")
        specs += [RunSpec(model=p.model, task=t, seed=0, tier="smoke", sample=True, out_dir=str(results_dir),
                          weights_dir=weights_dir, cache_dir=cache_dir, model_args=p.model_args, limit=limit,
                          epochs=epochs)
                  for t in p.tasks]
    return plans, specs


def job_estimates(specs: list[RunSpec]) -> list[float]:
    """Seconds per job: measured per-job CPU seconds at the demo's settings (``progress.DEMO_CPU_SECONDS``),
    else the rough :func:`copernicus_bench.progress.estimate_seconds`."""
    from .progress import DEMO_CPU_SECONDS, estimate_seconds
    from .tasks import get_card

    out = []
    for s in specs:
        card = get_card(s.task)
        kind = "dense" if card.is_dense else "classification"
        if s.tier == "smoke" and s.limit == DEMO_LIMIT and s.epochs == DEMO_EPOCHS:  # measured at these
            out.append(DEMO_CPU_SECONDS[kind])
            continue
        out.append(estimate_seconds("dense" if card.is_dense else "classification", s.tier, s.limit, s.epochs,
                                    num_dates=card.num_dates))
    return out


def _launch_with_eta(specs: list[RunSpec], launcher: str, progress: bool, mode: str | None, say) -> list[RunOutcome]:
    """The plan (jobs per model, estimated time) first, then an overall bar with an ETA after every job."""
    from collections import Counter

    from .launchers import launch
    from .progress import SweepProgress, default_mode, fmt_seconds
    from .runner import run_one

    estimates = job_estimates(specs)
    per_model = Counter(s.model for s in specs)
    say("cbench demo: plan: " + ", ".join(f"{m} {n} job(s)" for m, n in per_model.items())
        + f"; {len(specs)} job(s), estimated {fmt_seconds(sum(estimates))} on 2 CPU cores (the ETA corrects "
          "itself as jobs finish)")
    mode = mode or (default_mode() if progress else "quiet")
    if launcher != "local" or mode == "quiet":
        return launch(specs, launcher=launcher, progress=progress)
    sweep = SweepProgress(estimates, mode=mode, label="cbench demo")
    sweep.start()

    def run_fn(spec: RunSpec) -> RunOutcome:
        outcome = run_one(spec, progress=progress and mode == "bar")
        sweep.finished(outcome)
        return outcome

    try:
        return launch(specs, launcher="local", progress=False, run_fn=run_fn)
    finally:
        sweep.close()
