"""``cbench tasks``: one row per task in paper order, with the splits present under --data-root."""

from __future__ import annotations

from copernicus_bench.cli import main
from copernicus_bench.tasks import TASK_SLUGS


def rows(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines() if line.split() and line.split()[0] in TASK_SLUGS}


def test_lists_all_tasks_in_paper_order(tmp_path, capsys):
    assert main(["tasks", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0] in TASK_SLUGS]
    assert listed == list(TASK_SLUGS)
    r = rows(out)
    assert "miou ↑" in r["cloud-s2"] and "rmse ↓" in r["biomass-s3"] and "map-micro ↑" in r["bigearthnet-s2"]
    assert " S5P " in r["aq-o3-s5p"] and "1: O3" in r["aq-o3-s5p"]
    assert " 17 " in r["lcz-s2"] and "2: VV, VH" in r["flood-s1"]
    assert all(line.rstrip().endswith("-") for line in r.values())  # nothing present


def test_shows_present_splits_and_zips(tmp_path, capsys):
    (tmp_path / "cloud_s2").mkdir()
    (tmp_path / "cloud_s2" / "train.csv").write_text("x\n")
    (tmp_path / "cloud_s2" / "test.csv").write_text("x\n")
    (tmp_path / "dfc2020.zip").write_bytes(b"PK")
    (tmp_path / "lcz_s2").mkdir()
    (tmp_path / "lcz_s2" / "lcz_val.h5").write_bytes(b"")
    assert main(["tasks", "--data-root", str(tmp_path)]) == 0
    r = rows(capsys.readouterr().out)
    assert r["cloud-s2"].rstrip().endswith("train,test")
    assert r["dfc2020-s1"].rstrip().endswith("train,val,test") and r["dfc2020-s2"].rstrip().endswith("train,val,test")
    assert r["lcz-s2"].rstrip().endswith("val")
    assert r["eurosat-s1"].rstrip().endswith("-")


def test_data_root_from_environment(tmp_path, monkeypatch, capsys):
    (tmp_path / "flood_s1").mkdir()
    (tmp_path / "flood_s1" / "grid_dict_val.json").write_text("{}")
    monkeypatch.setenv("CBENCH_DATA_ROOT", str(tmp_path))
    assert main(["tasks"]) == 0
    assert rows(capsys.readouterr().out)["flood-s1"].rstrip().endswith("val")
