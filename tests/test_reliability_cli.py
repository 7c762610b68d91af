"""Reliability of the CLI: one error path, --model-args, hostile plug-ins, SIGTERM, devices (issue 10, 4 and 7)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from copernicus_bench import cli
from copernicus_bench.errors import CbenchError
from copernicus_bench.modelargs import check_pairs
from copernicus_bench.models_registry import create_model

REPO = Path(__file__).resolve().parents[1]


def _run_cli(args: list[str], env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    full = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "copernicus_bench.cli", *args], capture_output=True, text=True,
                          env=full, timeout=timeout, cwd=REPO)


# ----------------------------------------------------------------------------------------- --model-args
@pytest.mark.parametrize("pairs, expected", [
    ([("seed", "3")], "'seed' is set by the runner.*--seeds"),
    ([("weights_dir", "/x")], "'weights_dir' is set by the runner.*--weights-dir"),
    ([("config", "tiny"), ("config", "base")], "'config' is given twice"),
    ([("", "1")], "is not an option name"),
])
def test_model_args_keys_refused(pairs, expected) -> None:
    with pytest.raises(CbenchError, match=expected):
        check_pairs(pairs)


@pytest.mark.parametrize("model, kwargs, expected", [
    ("random", {"random_init": "maybe"}, r"random_init=maybe: model 'random' expects true or false"),
    ("random", {"config": [1]}, r"config=\[1\]: model 'random' expects a text value"),
    ("random", {"colour": "red"}, r"--model-args colour: model 'random' does not take this option; it takes "
                                  r"config, random_init"),
    ("copernicus-fm", {"meta_nan_mode": "never"}, r"expects sample or batch for 'meta_nan_mode'"),
    ("dofa", {"random_init": 1}, r"random_init=1: model 'dofa' expects true or false"),
])
def test_model_args_values_refused(tmp_path, model, kwargs, expected) -> None:
    with pytest.raises(CbenchError, match=expected):
        create_model(model, weights_dir=str(tmp_path), seed=0, **kwargs)


def test_model_args_values_accepted(tmp_path) -> None:
    adapter = create_model("random", weights_dir=str(tmp_path), seed=0, config="tiny", random_init=True)
    assert adapter.options() == {"config": "tiny"}


def test_cli_model_args_errors_are_one_line(tmp_path) -> None:
    for value, expected in [("seed=1", "'seed' is set by the runner"), ("random_init=maybe", "expects true or false")]:
        proc = _run_cli(["run", "--model", "random", "--task", "eurosat-s1", "--sample", "--tier", "smoke",
                         "--out", str(tmp_path / "r"), "--model-args", value])
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and "Traceback" not in proc.stderr
    assert not any((tmp_path / "r").glob("*.json"))


def test_device_cuda_without_cuda_is_one_line(tmp_path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = _run_cli(["run", "--model", "random", "--task", "eurosat-s1", "--sample", "--tier", "smoke",
                     "--out", str(tmp_path / "r"), "--device", "cuda"])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "--device cuda: CUDA is not available" in proc.stderr


# ------------------------------------------------------------------------------------------ plug-ins
PLUGIN = textwrap.dedent("""
    from copernicus_bench.baselines.random_vit import build_adapter as _random

    def shadow(weights_dir=None, seed=0, **kw):
        raise AssertionError("the shadowing plug-in must never be built")

    def factory_raises(weights_dir=None, seed=0):
        raise ZeroDivisionError("plug-in bug in the factory")

    def applicability_raises(weights_dir=None, seed=0):
        adapter = _random(config="tiny")
        def bad(card):
            raise KeyError("plug-in bug in applicability")
        type(adapter).applicability  # the class keeps its method; this instance breaks
        adapter.applicability = bad
        return adapter
""")


def _install_plugins(tmp_path: Path) -> dict:
    site = tmp_path / "site"
    site.mkdir()
    (site / "hostile_plugins.py").write_text(PLUGIN)
    dist = site / "hostile_plugins-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hostile-plugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""
        [copernicus_bench.models]
        random = hostile_plugins:shadow
        broken-factory = hostile_plugins:factory_raises
        broken-applicability = hostile_plugins:applicability_raises
        broken-import = hostile_plugins_missing_module:build
    """))
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)}


ROWS = textwrap.dedent("""
    import json, sys
    from copernicus_bench.cli.models import model_rows
    print(json.dumps(model_rows(sys.argv[1])))
""")


def test_plugins_in_process_builtin_wins_and_broken_ones_are_rows(tmp_path, monkeypatch) -> None:
    from importlib.metadata import EntryPoint, entry_points

    from copernicus_bench import registry
    from copernicus_bench.cli.models import model_rows
    from copernicus_bench.models_registry import MODELS

    (tmp_path / "hostile_plugins.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    fakes = [EntryPoint("random", "hostile_plugins:shadow", "copernicus_bench.models"),
             EntryPoint("broken-factory", "hostile_plugins:factory_raises", "copernicus_bench.models"),
             EntryPoint("broken-applicability", "hostile_plugins:applicability_raises", "copernicus_bench.models"),
             EntryPoint("broken-import", "no_such_plugin_module:build", "copernicus_bench.models")]
    # plug-ins listed first: the built-in must win whatever the discovery order
    monkeypatch.setattr(registry, "entry_points", lambda group: fakes + list(entry_points(group=group)))
    monkeypatch.setattr(MODELS, "_entry_points", None)
    monkeypatch.setattr(MODELS, "_items", {})
    with pytest.warns(UserWarning, match="plug-in 'random' .* has the name of a built-in model; the built-in"):
        rows = {r[0]: " ".join(r[1:]) for r in model_rows(str(tmp_path / "w"))}
    assert "unavailable" not in rows["random"] and "15/15" in rows["random"]
    assert rows["broken-factory"].startswith("unavailable") and "ZeroDivisionError" in rows["broken-factory"]
    assert rows["broken-applicability"].startswith("unavailable") and "KeyError" in rows["broken-applicability"]
    assert rows["broken-import"].startswith("unavailable") and "failed to import" in rows["broken-import"]


@pytest.mark.slow
def test_broken_and_shadowing_plugins_do_not_break_cbench_models(tmp_path) -> None:
    env = _install_plugins(tmp_path)
    proc = _run_cli(["models", "--weights-dir", str(tmp_path / "w")], env=env)
    assert proc.returncode == 0, proc.stderr
    warns = [ln for ln in proc.stderr.splitlines() if "warning" in ln]
    assert len(warns) == 1 and "'random'" in warns[0] and "built-in is used" in warns[0]
    assert "Traceback" not in proc.stderr
    rows_proc = subprocess.run([sys.executable, "-c", ROWS, str(tmp_path / "w")], capture_output=True, text=True,
                               env={**os.environ, **env}, timeout=120, cwd=REPO)
    rows = {r[0]: " ".join(r[1:]) for r in json.loads(rows_proc.stdout)}
    # every built-in is still listed with its tasks, the built-in `random` (not the plug-in) among them
    for name in ("random", "dofa", "copernicus-fm", "softcon", "croma"):
        assert "unavailable" not in rows[name], rows[name]
    assert "15/15" in rows["random"]
    assert rows["broken-factory"].startswith("unavailable") and "ZeroDivisionError" in rows["broken-factory"]
    assert rows["broken-applicability"].startswith("unavailable") and "KeyError" in rows["broken-applicability"]
    assert rows["broken-import"].startswith("unavailable") and "failed to import" in rows["broken-import"]


@pytest.mark.slow
def test_run_with_a_plugin_whose_applicability_raises_is_one_line(tmp_path) -> None:
    proc = _run_cli(["run", "--model", "broken-applicability", "--task", "eurosat-s1", "--sample", "--tier",
                     "smoke", "--out", str(tmp_path / "r")], env=_install_plugins(tmp_path))
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert "model 'broken-applicability': applicability(eurosat-s1) raised KeyError" in last
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------------ one error path
def _patched_command(monkeypatch, body) -> None:
    from copernicus_bench.cli import tasks as tasks_cmd

    monkeypatch.setattr(tasks_cmd, "run", body)


def test_internal_error_is_one_line_with_debug_hint(monkeypatch, capsys) -> None:
    def boom(args):
        raise ZeroDivisionError("a bug\nwith a second line")

    _patched_command(monkeypatch, boom)
    monkeypatch.delenv("CBENCH_DEBUG", raising=False)
    assert cli.main(["tasks"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["cbench: internal error: ZeroDivisionError: a bug (set CBENCH_DEBUG=1 for the traceback "
                   "and report it)"]
    monkeypatch.setenv("CBENCH_DEBUG", "1")
    assert cli.main(["tasks"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_disk_full_is_one_line_naming_the_file(monkeypatch, capsys) -> None:
    def full(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/out/leaderboard.csv")

    _patched_command(monkeypatch, full)
    assert cli.main(["tasks"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "/data/out/leaderboard.csv: no space left" in err[0]


def test_error_from_a_dataloader_worker_is_its_own_line(monkeypatch, capsys) -> None:
    wrapped = ("Caught CbenchError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               "  File \"x.py\", line 1, in f\ncopernicus_bench.errors.CbenchError: shard.tar: cannot read it")

    def worker(args):
        raise CbenchError(wrapped)

    _patched_command(monkeypatch, worker)
    assert cli.main(["tasks"]) == 2
    assert capsys.readouterr().err.strip() == "cbench: error: shard.tar: cannot read it"


def test_sigterm_unwinds_like_ctrl_c(monkeypatch, capsys, tmp_path) -> None:
    cleaned = tmp_path / "cleaned"

    def long_job(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        finally:
            cleaned.write_text("finally ran")

    _patched_command(monkeypatch, long_job)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["tasks"]) == 143
    assert cleaned.exists()
    assert "terminated (SIGTERM)" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before  # restored


def test_ctrl_c_still_exits_130(monkeypatch, capsys) -> None:
    def interrupted(args):
        raise KeyboardInterrupt

    _patched_command(monkeypatch, interrupted)
    assert cli.main(["tasks"]) == 130
    assert "interrupted" in capsys.readouterr().err
