"""Reliability of the results folder: unreadable files are skipped with a warning and redone (issue 10, 5)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest

from copernicus_bench.results import atomic_write_json, load_results, read_result


@pytest.mark.parametrize("name, content", [
    ("utf8.json", b"\xff\xfe\x00 not utf-8"),
    ("binary.json", bytes(range(256))),
    ("list.json", b"[1, 2]"),
    ("types.json", json.dumps({"schema": "copernicus-bench/result/v1", "model": 1, "weights": "x", "task": [],
                               "tier": "full", "protocol": "cached", "seed": "zero", "metric": {},
                               "applicable_tasks": 3}).encode()),
])
def test_unreadable_result_files_are_skipped_with_a_warning_naming_them(tmp_path: Path, name, content) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.warns(UserWarning, match=rf"skipping .*{name}"):
        assert load_results(tmp_path) == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert read_result(tmp_path / name) is None  # the runner treats it as absent: redone, never a hit


def test_a_folder_named_like_a_result_is_skipped_and_does_not_block_a_redo(tmp_path: Path) -> None:
    squatter = tmp_path / "random__abcd1234__eurosat-s1__smoke__cached__seed0.json"
    squatter.mkdir()
    (squatter / "keep.txt").write_text("user data")
    with pytest.warns(UserWarning, match="a folder .* named like a result"):
        assert load_results(tmp_path) == []
    with pytest.warns(UserWarning, match="was a folder, not a result file; moved it"):
        atomic_write_json(squatter, {"ok": 1})
    assert json.loads(squatter.read_text()) == {"ok": 1}
    aside = [p for p in tmp_path.iterdir() if ".unreadable-" in p.name]
    assert len(aside) == 1 and (aside[0] / "keep.txt").read_text() == "user data"  # nothing deleted


def test_a_corrupt_file_under_the_jobs_identity_is_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    target.write_bytes(b"\x00\x01 binary")
    atomic_write_json(target, {"redone": True})
    assert json.loads(target.read_text()) == {"redone": True}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary left
    assert os.stat(target).st_size > 0


def test_leaderboard_files_are_written_as_a_set(tmp_path: Path, monkeypatch) -> None:
    from copernicus_bench import leaderboard as lb_mod
    from copernicus_bench.atomicset import staged_files

    out = tmp_path / "lb"
    out.mkdir()
    (out / "README.md").write_text("old table")
    (out / "scores.png").write_bytes(b"old chart")

    def disk_full(*args):
        raise OSError(28, "No space left on device", str(out / "leaderboard.csv"))

    monkeypatch.setattr(lb_mod, "csv_rows", disk_full)  # the second file fails, after README.md was written
    board = lb_mod.Leaderboard.__new__(lb_mod.Leaderboard)
    monkeypatch.setattr(lb_mod, "render_markdown", lambda lb: "NEW table")
    with pytest.raises(OSError):
        lb_mod.write_leaderboard(board, out)
    assert (out / "README.md").read_text() == "old table"  # no new README beside a missing chart
    assert (out / "scores.png").read_bytes() == b"old chart"
    assert not [p for p in out.iterdir() if p.name.startswith(".staging-")]

    with staged_files(out) as stage:  # and a successful set replaces the old one
        (stage / "README.md").write_text("new")
        (stage / "sub").mkdir()
        (stage / "sub" / "x.csv").write_text("1")
    assert (out / "README.md").read_text() == "new" and (out / "sub" / "x.csv").read_text() == "1"
