"""Sweep launchers: local and Ray run every job, report failures and go on; bad launcher/address errors."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from copernicus_bench.errors import CbenchError
from copernicus_bench.launchers import launch
from copernicus_bench.runner import RunOutcome, RunSpec, expand_grid


def fake_run(spec: RunSpec) -> RunOutcome:
    """A lightweight stand-in for run_one: writes a file per job, fails for seed 1 of task 'bad'."""
    if spec.task == "bad" and spec.seed == 1:
        return RunOutcome(spec, "failed", None, "ValueError: broken on purpose", None, error_kind="internal")
    path = Path(spec.out_dir) / f"{spec.model}__{spec.task}__seed{spec.seed}.txt"
    if path.exists() and not spec.overwrite:
        return RunOutcome(spec, "skipped", str(path), "result exists", None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()}\n")
    return RunOutcome(spec, "done", str(path), "ok", 10.0 * spec.seed + len(spec.task))


def _grid(out):
    return expand_grid(["tiny"], ["good", "bad"], [0, 1], out_dir=str(out), tier="smoke")


def test_local_runs_all_jobs_in_order_and_goes_on_after_a_failure(tmp_path, capsys):
    specs = _grid(tmp_path / "res")
    outcomes = launch(specs, "local", run_fn=fake_run)
    assert [o.spec for o in outcomes] == specs
    assert [o.status for o in outcomes] == ["done", "done", "done", "failed"]
    assert outcomes[1].metric == 14.0
    err = capsys.readouterr().err
    assert "[4/4] tiny bad seed 1: FAILED: ValueError: broken on purpose" in err
    assert len(list((tmp_path / "res").iterdir())) == 3
    again = launch(specs, "local", run_fn=fake_run, progress=False)
    assert [o.status for o in again] == ["skipped", "skipped", "skipped", "failed"]


def test_local_turns_an_exception_into_a_failed_outcome(tmp_path):
    def explode(spec):
        raise RuntimeError("boom\nsecond line")

    (o,) = launch(_grid(tmp_path)[:1], "local", run_fn=explode, progress=False)
    assert (o.status, o.message) == ("failed", "RuntimeError: boom")


def test_local_missing_weights_fail_fast_for_that_model(tmp_path):
    calls = []

    def no_weights(spec):
        calls.append(spec)
        return RunOutcome(spec, "failed", None, "weights missing", None, error_kind="weights")

    outcomes = launch(_grid(tmp_path), "local", run_fn=no_weights, progress=False)
    assert len(calls) == 1 and [o.status for o in outcomes] == ["failed"] * 4


def test_unknown_launcher_is_a_one_line_error():
    with pytest.raises(CbenchError, match=r"--launcher 'slurm' is unknown; use one of local, ray"):
        launch([], "slurm")


def test_unknown_launcher_through_the_cli(capsys):
    from copernicus_bench.cli import main

    code = main(["run", "--model", "random", "--task", "eurosat-s1", "--sample", "--launcher", "slurm"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "slurm" in err and err.count("\n") == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_unreachable_address_is_one_sentence_naming_it(tmp_path):
    pytest.importorskip("ray")
    address = f"127.0.0.1:{_free_port()}"
    with pytest.raises(CbenchError) as info:
        launch(_grid(tmp_path), "ray", ray_address=address, run_fn=fake_run)
    msg = str(info.value)
    assert address in msg and "\n" not in msg


def test_ray_not_installed_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(CbenchError, match=r'pip install "copernicus-bench\[ray\]"'):
        launch(_grid(tmp_path), "ray", run_fn=fake_run)


def test_ray_local_cluster_runs_a_2x2_grid_on_cpu(tmp_path, capsys):
    ray = pytest.importorskip("ray")
    # this test module is not importable in Ray workers: ship fake_run by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    out = tmp_path / "res"
    specs = _grid(out)
    outcomes = launch(specs, "ray", run_fn=fake_run)
    assert [o.spec for o in outcomes] == specs  # in spec order, with the caller's specs
    assert [o.status for o in outcomes] == ["done", "done", "done", "failed"]
    assert all(o.extra["worker_pid"] != os.getpid() for o in outcomes)  # ran in Ray workers
    files = sorted(p.name for p in out.iterdir())
    assert files == ["tiny__bad__seed0.txt", "tiny__good__seed0.txt", "tiny__good__seed1.txt"]
    err = capsys.readouterr().err
    assert "FAILED: ValueError: broken on purpose" in err and "[4/4]" in err


def test_ray_with_the_real_runner_on_the_sample_writes_results_then_skips(tmp_path, builtin_sample):
    """2 tasks × 2 seeds of a tiny random ViT through run_one in Ray workers; a rerun is skipped (~20 s)."""
    pytest.importorskip("ray")
    from copernicus_bench.results import load_results

    specs = expand_grid(["random"], ["eurosat-s1", "cloud-s2"], [0, 1], tier="smoke", sample=True, limit=4,
                        out_dir=str(tmp_path / "res"), model_args=(("config", "tiny"),))
    outcomes = launch(specs, "ray", progress=False)
    assert [o.status for o in outcomes] == ["done"] * 4, [o.message for o in outcomes]
    results = load_results(tmp_path / "res")
    assert sorted((r["task"], r["seed"]) for r in results) == sorted((s.task, s.seed) for s in specs)
    again = launch(specs, "ray", progress=False)
    assert [o.status for o in again] == ["skipped"] * 4
