"""Nothing stale (issue 16): an edited plug-in gives a new result and new features; --dry-run runs nothing."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path

import pytest

from copernicus_bench.models_registry import MODELS
from copernicus_bench.runner import RunSpec, run_one

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugin" / "cbench_example_plugin" / "__init__.py"


def _load(folder: Path, name: str):
    sys.modules.pop(name, None)
    importlib.invalidate_caches()
    return importlib.import_module(name)


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A copy of the example plug-in as an importable package of its own, registered as a model."""
    pkg = tmp_path / "src" / "h16_edit_plugin"
    pkg.mkdir(parents=True)
    shutil.copy(EXAMPLE, pkg / "__init__.py")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    mod = _load(pkg, "h16_edit_plugin")
    monkeypatch.setitem(MODELS._items, "h16-plugin", lambda **kw: mod.build_adapter(**kw))
    yield pkg
    sys.modules.pop("h16_edit_plugin", None)


def _spec(tmp_path: Path, **kw) -> RunSpec:
    return RunSpec(model="h16-plugin", task="eurosat-s1", tier="smoke", sample=True, limit=2, epochs=1,
                   out_dir=str(tmp_path / "results"), cache_dir=str(tmp_path / "cache"), **kw)


def test_editing_the_plugin_forward_gives_a_new_result_and_new_features(tmp_path, plugin, monkeypatch):
    first = run_one(_spec(tmp_path), progress=False)
    assert first.status == "done", first.message
    old_hash = json.loads(Path(first.path).read_text())["versions"]["adapter_code"]["hash"]
    again = run_one(_spec(tmp_path), progress=False)
    assert again.status == "skipped"  # unchanged code: the finished result stands

    src = plugin / "__init__.py"
    text = src.read_text()
    edited = text.replace("pooled = maps[-1].mean(dim=(2, 3))", "pooled = 2.0 * maps[-1].mean(dim=(2, 3))")
    assert edited != text
    src.write_text(edited)
    mod = _load(plugin, "h16_edit_plugin")
    monkeypatch.setitem(MODELS._items, "h16-plugin", lambda **kw: mod.build_adapter(**kw))

    second = run_one(_spec(tmp_path), progress=False)
    assert second.status == "done", second.message  # not 'skipped': the code changed
    record = json.loads(Path(second.path).read_text())
    new = record["versions"]["adapter_code"]
    assert new["module"] == "h16_edit_plugin" and new["hash"] != old_hash and len(new["source_sha256"]) == 64
    assert record["cache"]["hits"] == {"train": False, "val": False, "test": False}  # features re-encoded


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path, capsys, monkeypatch):
    from copernicus_bench.cli import main

    monkeypatch.setenv("CBENCH_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "results"
    args = ["run", "--model", "random", "--task", "eurosat-s1,dfc2020-s1", "--sample", "--tier", "smoke",
            "--model-args", "config=tiny", "--out", str(out), "--dry-run"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "eurosat-s1" in err and "dfc2020-s1" in err and "2 to run" in err and "nothing was run" in err
    assert not out.exists() and not (tmp_path / "cache").exists()  # no folder, no feature, no result


def test_refused_command_creates_no_folder(tmp_path):
    from copernicus_bench.cli import main

    out = tmp_path / "results"
    assert main(["run", "--model", "random", "--task", "eurosat-s1", "--data-root", str(tmp_path / "nope"),
                 "--out", str(out)]) != 0
    assert not out.exists()
