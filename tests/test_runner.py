"""`cbench run`: results, skipping, determinism, learnability, resume after a kill, cache, plug-ins, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from copernicus_bench.cli import main
from copernicus_bench.results import load_results, read_result

TINY = "config=tiny"


def run_cli(*args: str) -> int:
    return main(["run", *args])


def results_in(folder: Path) -> list[dict]:
    return [r for r in (read_result(p) for p in sorted(folder.glob("*.json"))) if r is not None]


def test_smoke_run_writes_a_valid_result_and_a_rerun_skips_it(builtin_sample, tmp_path, capsys):
    assert run_cli("--model", "random", "--task", "eurosat-s1", "--sample", "--tier", "smoke",
                   "--model-args", TINY, "--out", str(tmp_path)) == 0
    [result] = results_in(tmp_path)
    assert result["task"] == "eurosat-s1" and result["tier"] == "smoke" and result["sample_data"] is True
    assert 0.0 <= result["metric"]["global"] <= 100.0
    assert result["metric"]["name"] == "oa" and result["metric"]["higher_is_better"] is True
    assert result["weights"]["source"] == "random-init" and len(result["weights"]["sha256"]) == 64
    assert result["config"]["epochs"] == 2 and result["config"]["samples"]["train"] <= 16
    assert "eurosat_s1" in " ".join(result["split_checksums"])
    assert set(result["timings"]) == {"encode_s", "train_s", "total_s"}
    assert result["versions"]["torch"] and "aq-o3-s5p" in result["applicable_tasks"]
    # the cost split: reads are timed in-process (--num-workers auto is 0 workers for a few samples)
    cost = result["cost"]
    assert cost["read_s"] is not None and cost["read_s"] > 0 and cost["encode_s"] >= 0 and cost["train_s"] >= 0
    capsys.readouterr()
    assert run_cli("--model", "random", "--task", "eurosat-s1", "--sample", "--tier", "smoke",
                   "--model-args", TINY, "--out", str(tmp_path)) == 0
    assert "1 skipped" in capsys.readouterr().err
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_same_seed_gives_identical_metrics_and_another_seed_reuses_no_weights(builtin_sample, tmp_path):
    outs = []
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        assert run_cli("--model", "random", "--task", "bigearthnet-s1", "--sample", "--tier", "smoke",
                       "--model-args", TINY, "--seeds", seed, "--out", str(tmp_path / name)) == 0
        [r] = results_in(tmp_path / name)
        outs.append(r)
    a, b, c = outs
    assert a["metric"] == b["metric"] and a["history"] == b["history"]
    assert a["weights"]["sha256"] == b["weights"]["sha256"]
    assert c["weights"]["sha256"] != a["weights"]["sha256"]  # random init is drawn from the seed
    assert b["cache"]["hits"] == {"train": True, "val": True, "test": True}  # a's features were reused


@pytest.mark.parametrize("task", ["dfc2020-s1", "flood-s1", "aq-no2-s5p", "lc100cls-s3"])
def test_each_task_type_runs_in_the_smoke_tier(builtin_sample, smoke_results, task):
    assert run_cli("--model", "random", "--task", task, "--sample", "--tier", "smoke", "--model-args", TINY,
                   "--out", str(smoke_results)) == 0
    [r] = [r for r in results_in(smoke_results) if r["task"] == task and r["model"] == "random"]
    value = r["metric"]["global"]
    assert value == value  # not NaN
    if r["metric"]["name"] == "rmse":
        assert value > 0 and r["metric"]["higher_is_better"] is False
    else:
        assert 0 <= value <= 100


def test_a_learnable_sample_task_beats_chance_clearly(builtin_sample, tmp_path):
    assert run_cli("--model", "random", "--task", "eurosat-s2", "--sample", "--tier", "smoke", "--model-args",
                   TINY, "--limit", "200", "--epochs", "30", "--batch-size", "16", "--out", str(tmp_path)) == 0
    [r] = results_in(tmp_path)
    chance = 100.0 / 10
    assert r["metric"]["global"] >= 3 * chance, r["metric"]
    assert r["overrides"]["epochs"] == 30 and r["override_hash"]


def test_paper_protocol_re_encodes_and_is_stamped(builtin_sample, tmp_path):
    assert run_cli("--model", "random", "--task", "dfc2020-s2", "--sample", "--tier", "smoke", "--model-args",
                   TINY, "--protocol", "paper", "--out", str(tmp_path)) == 0
    [r] = results_in(tmp_path)
    assert r["protocol"] == "paper" and "paper-protocol" in r["cache"]["mode"]
    assert "__paper__" in Path(r["_path"]).name


def test_dense_maps_over_the_cache_budget_are_encoded_on_the_fly(builtin_sample, tmp_path):
    assert run_cli("--model", "random", "--task", "dfc2020-s1", "--sample", "--tier", "smoke", "--model-args",
                   TINY, "--cache-budget", "0", "--out", str(tmp_path)) == 0
    [r] = results_in(tmp_path)
    assert r["cache"]["mode"].startswith("on-the-fly")


def test_a_corrupt_cache_entry_is_detected_and_recomputed(builtin_sample, tmp_path):
    args = ["--model", "random", "--task", "eurosat-s1", "--sample", "--tier", "smoke", "--model-args", TINY,
            "--seeds", "7", "--cache-dir", str(tmp_path / "cache")]
    assert run_cli(*args, "--out", str(tmp_path / "a")) == 0
    [first] = results_in(tmp_path / "a")
    pooled = sorted((tmp_path / "cache").rglob("pooled.npy"))
    assert len(pooled) == 3
    for p in pooled:  # flip bytes in the middle of every entry
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))
    assert run_cli(*args, "--out", str(tmp_path / "b")) == 0
    [second] = results_in(tmp_path / "b")
    assert second["cache"]["hits"] == {"train": False, "val": False, "test": False}
    assert second["metric"] == first["metric"]


def test_a_killed_run_leaves_no_partial_file_and_the_rerun_completes(builtin_sample, tmp_path):
    out = tmp_path / "out"
    tasks = "eurosat-s1,bigearthnet-s1,lcz-s2,eurosat-s2"
    cmd = [sys.executable, "-m", "copernicus_bench.cli", "run", "--model", "random", "--task", tasks, "--sample",
           "--tier", "smoke", "--model-args", TINY, "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("*.json")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(out.glob("*.json")), "the run was killed before writing its first result"
    for p in out.glob("*.json"):  # whatever exists is complete
        assert read_result(p) is not None
    assert main(["run", *cmd[4:]]) == 0
    final = results_in(out)
    assert sorted(r["task"] for r in final) == sorted(tasks.split(","))
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_a_plugin_registered_through_the_entry_point_group_runs(builtin_sample, tmp_path, monkeypatch):
    pkg = tmp_path / "site"
    (pkg / "cbench_test_plugin").mkdir(parents=True)
    (pkg / "cbench_test_plugin" / "__init__.py").write_text(textwrap.dedent('''
        import torch
        from torch import nn
        from copernicus_bench.encoder import EncoderAdapter, EncoderOutput, TaskEncoder, WeightsInfo, state_dict_sha256

        class Pooler(TaskEncoder):
            embed_dim = 8
            def __init__(self, c):
                super().__init__()
                self.proj = nn.Conv2d(c, 8, 4, stride=4)
                self.weights = WeightsInfo("random-init", state_dict_sha256(self))
            def forward(self, x, meta, want_maps=False):
                f = self.proj(x)
                return EncoderOutput(f.mean((2, 3)), [f] * 4 if want_maps else None)

        class Adapter(EncoderAdapter):
            name = "test-plugin"
            description = "a test encoder"
            def applicability(self, card):
                return None if card.input_mode == "spectral" else "spectral inputs only"
            def build(self, card, pipeline, seed):
                torch.manual_seed(seed)
                return Pooler(pipeline.num_channels)

        def build_adapter(weights_dir=None, seed=0):
            return Adapter()
        '''))
    dist = pkg / "cbench_test_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cbench-test-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[copernicus_bench.models]\ntest-plugin = cbench_test_plugin:build_adapter\n")
    monkeypatch.syspath_prepend(str(pkg))
    from copernicus_bench.models_registry import MODELS

    monkeypatch.setattr(MODELS, "_entry_points", None)
    assert "test-plugin" in MODELS.names()
    assert run_cli("--model", "test-plugin", "--task", "eurosat-s1", "--sample", "--tier", "smoke",
                   "--out", str(tmp_path / "r")) == 0
    [r] = results_in(tmp_path / "r")
    assert r["model"] == "test-plugin" and "aq-no2-s5p" not in r["applicable_tasks"]
    assert len(load_results(tmp_path / "r")) == 1


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("args, expected", [
    (["--model", "randm", "--task", "eurosat-s1", "--sample"], "did you mean 'random'"),
    (["--model", "random", "--task", "eurosat-s3", "--sample"], "eurosat-s"),
    (["--model", "random", "--task", "eurosat-s1", "--data-root", "/nonexistent/cbench"], "--data-root"),
    (["--model", "random", "--task", "eurosat-s1", "--sample", "--launcher", "slurm"], "--launcher"),
])
def test_bad_input_is_one_line_and_non_zero(builtin_sample, tmp_path, capsys, args, expected):
    code = run_cli(*args, "--out", str(tmp_path))
    err = capsys.readouterr().err.strip()
    assert code != 0 and expected in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.glob("*.json"))


def test_malformed_seeds_are_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli("--model", "random", "--task", "eurosat-s1", "--sample", "--seeds", "0,x")
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "--seeds" in err and len(err.splitlines()) == 1


def test_a_results_folder_that_is_not_writable_is_refused(builtin_sample, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = run_cli("--model", "random", "--task", "eurosat-s1", "--sample", "--out", str(blocker / "sub"))
    err = capsys.readouterr().err
    assert code != 0 and "not writable" in err and "--out" in err


def test_a_model_that_does_not_apply_to_a_named_task_is_refused(builtin_sample, tmp_path, capsys, monkeypatch):
    from copernicus_bench.encoder import EncoderAdapter
    from copernicus_bench.models_registry import MODELS

    class OpticalOnly(EncoderAdapter):
        def applicability(self, card):
            return None if card.sensor == "s2" else f"no {card.sensor} support"

        def build(self, card, pipeline, seed):  # pragma: no cover - never reached
            raise AssertionError

    monkeypatch.setitem(MODELS._items, "optical-only", lambda weights_dir=None, seed=0: OpticalOnly())
    code = run_cli("--model", "optical-only", "--task", "aq-o3-s5p", "--sample", "--out", str(tmp_path))
    err = capsys.readouterr().err
    assert code != 0 and "does not apply" in err and "aq-o3-s5p" in err
    assert not list(tmp_path.glob("*.json"))


def test_results_carry_the_resolved_config_and_provenance(builtin_sample, smoke_results):
    assert run_cli("--model", "random", "--task", "eurosat-s1", "--sample", "--tier", "smoke", "--model-args",
                   TINY, "--out", str(smoke_results)) == 0
    [r] = [r for r in results_in(smoke_results) if r["task"] == "eurosat-s1" and r["model"] == "random"]
    raw = json.loads(Path(r["_path"]).read_text())
    for key in ("config", "pipeline", "split_checksums", "versions", "git_commit", "device", "peak_memory_mb",
                "task_version", "best_epoch", "input_adaptation"):
        assert key in raw
    assert raw["pipeline"]["resolution"] <= 64 and raw["overrides"]["model_args"] == {"config": "tiny"}


def test_state_dict_hash_covers_zero_dim_buffers_and_values():
    import torch

    from copernicus_bench.encoder import state_dict_sha256

    a = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))
    b = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))
    b.load_state_dict(a.state_dict())
    assert state_dict_sha256(a) == state_dict_sha256(b)
    b[1].num_batches_tracked += 1  # a 0-dim buffer
    assert state_dict_sha256(a) != state_dict_sha256(b)


def test_float32_cache_is_an_override_with_its_own_cache_entry(builtin_sample, tmp_path):
    import numpy as np

    cache = tmp_path / "cache"
    assert run_cli("--model", "random", "--task", "eurosat-s1", "--sample", "--tier", "smoke", "--model-args",
                   TINY, "--cache-dtype", "float32", "--cache-dir", str(cache), "--out", str(tmp_path / "r")) == 0
    [r] = results_in(tmp_path / "r")
    assert r["overrides"]["cache_dtype"] == "float32" and r["config"]["cache_dtype"] == "float32"
    dtypes = {str(np.load(p, mmap_mode="r").dtype) for p in cache.rglob("pooled.npy")}
    assert dtypes == {"float32"}
