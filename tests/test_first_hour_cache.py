"""--no-cache, --refresh-cache (and --overwrite alone reading the cache), cbench cache ls|clear|verify."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from copernicus_bench.cache import FeatureCache, cache_key
from copernicus_bench.cli import main
from copernicus_bench.runner import RunSpec, run_one


def _spec(tmp_path: Path, **kw) -> RunSpec:
    return RunSpec(model="random", task="eurosat-s1", tier="smoke", sample=True, limit=4, epochs=1,
                   model_args=(("config", "tiny"),), out_dir=str(tmp_path / "out"),
                   cache_dir=str(tmp_path / "cache"), **kw)


def _entries(cache: Path) -> dict[str, float]:
    """Feature entry folder → mtime of its entry.json (changes when the entry is rebuilt)."""
    return {p.parent.name: p.stat().st_mtime_ns for p in cache.glob("??/*/entry.json")}


def _record(outcome) -> dict:
    assert outcome.status == "done", outcome.message
    return json.loads(Path(outcome.path).read_text())


def test_overwrite_reads_the_cache_refresh_rebuilds_it_no_cache_never_touches_it(builtin_sample, tmp_path):
    first = _record(run_one(_spec(tmp_path), progress=False))
    cache = tmp_path / "cache"
    built = _entries(cache)
    assert len(built) == 3  # train (4 flip views), val, test
    assert not any(first["cache"]["hits"].values())

    again = _record(run_one(_spec(tmp_path, overwrite=True), progress=False))  # --overwrite alone
    assert all(again["cache"]["hits"].values())
    assert _entries(cache) == built

    fresh = _record(run_one(_spec(tmp_path, overwrite=True, cache_mode="refresh"), progress=False))
    assert not any(fresh["cache"]["hits"].values())
    rebuilt = _entries(cache)
    assert rebuilt.keys() == built.keys() and all(rebuilt[k] != built[k] for k in built)
    assert fresh["metric"]["global"] == pytest.approx(first["metric"]["global"])  # same numbers

    off_cache = tmp_path / "other-cache"
    off = _record(run_one(replace(_spec(tmp_path, overwrite=True, cache_mode="off"), cache_dir=str(off_cache)),
                          progress=False))
    assert not off_cache.exists()  # neither read nor written
    assert off["cache"]["cache"] == "not used (--no-cache)"
    assert off["metric"]["global"] == pytest.approx(first["metric"]["global"])


def test_unknown_cache_mode_is_one_line(tmp_path):
    from copernicus_bench.errors import CbenchError

    with pytest.raises(CbenchError, match="cache_mode"):
        _spec(tmp_path, cache_mode="sometimes").validate()


def test_run_flags_set_the_cache_mode_and_exclude_each_other(monkeypatch, tmp_path, capsys):
    import copernicus_bench.cli.run as run_cli

    seen = []
    monkeypatch.setattr(run_cli, "_launch", lambda specs, args: seen.extend(specs) or [])
    base = ["run", "--model", "random", "--task", "eurosat-s1", "--sample", "--tier", "smoke",
            "--out", str(tmp_path / "o")]
    for flags, mode in (([], "use"), (["--refresh-cache"], "refresh"), (["--no-cache"], "off"),
                        (["--overwrite"], "use")):
        seen.clear()
        assert main(base + flags) == 0
        assert [s.cache_mode for s in seen] == [mode]
    with pytest.raises(SystemExit) as exc:
        main(base + ["--no-cache", "--refresh-cache"])
    assert exc.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def _fake_entry(root: Path, model: str, task: str, split: str, n: int = 5) -> Path:
    parts = {"model": model, "task": task, "split": split}
    key = cache_key(parts)
    FeatureCache(root).get_or_build(key, parts, lambda w: w.create("pooled", (n, 8), np.float16).fill(1))
    return FeatureCache(root).entry_dir(key)


def test_cache_ls_lists_size_task_model_created(tmp_path, capsys):
    root = tmp_path / "c"
    _fake_entry(root, "random", "eurosat-s1", "train")
    _fake_entry(root, "dofa", "cloud-s2", "val")
    assert main(["cache", "ls", "--cache-dir", str(root)]) == 0
    out, err = capsys.readouterr()
    lines = [ln for ln in out.splitlines() if "eurosat-s1" in ln or "cloud-s2" in ln]
    assert len(lines) == 2
    assert any("random" in ln and "train" in ln for ln in lines) and any("dofa" in ln for ln in lines)
    assert all(" B " in ln or "KB" in ln for ln in lines) and all("20" in ln for ln in lines)  # size, created
    assert "2 entries" in err
    assert main(["cache", "ls", "--cache-dir", str(root), "--model", "dofa"]) == 0
    assert "1 entry" in capsys.readouterr().err


def test_cache_clear_by_model_task_and_all(tmp_path, capsys):
    root = tmp_path / "c"
    a = _fake_entry(root, "random", "eurosat-s1", "train")
    b = _fake_entry(root, "random", "cloud-s2", "train")
    c = _fake_entry(root, "dofa", "eurosat-s1", "train")
    assert main(["cache", "clear", "--cache-dir", str(root), "--model", "random", "--task", "cloud-s2"]) == 0
    assert a.exists() and not b.exists() and c.exists()
    assert main(["cache", "clear", "--cache-dir", str(root), "--task", "eurosat-s1"]) == 0
    assert not a.exists() and not c.exists()
    d = _fake_entry(root, "x", "y", "z")
    assert main(["cache", "clear", "--cache-dir", str(root)]) == 0
    assert not d.exists()
    assert "removed 1 entry" in capsys.readouterr().err


def test_cache_verify_rehashes_every_byte_and_names_bad_entries(tmp_path, capsys):
    root = tmp_path / "c"
    good = _fake_entry(root, "random", "eurosat-s1", "train", n=200_000)  # > 2 MiB: the middle is unchecked
    bad = _fake_entry(root, "random", "eurosat-s1", "val", n=200_000)      # by a run's cheap edge check
    arr = bad / "pooled.npy"
    with open(arr, "r+b") as f:  # flip one byte in the middle of the array
        f.seek(arr.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert FeatureCache(root, verify="cheap").load(bad.name) is not None  # a run would not notice
    assert main(["cache", "verify", "--cache-dir", str(root)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "does not match its digest" in err and str(good) not in err
    assert "1 sound, 1 bad" in err
    assert main(["cache", "verify", "--cache-dir", str(root), "--remove"]) == 1
    assert not bad.exists() and good.exists()
    assert main(["cache", "verify", "--cache-dir", str(root)]) == 0


def test_cache_commands_on_a_file_are_one_line(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["cache", "ls", "--cache-dir", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a folder" in err
