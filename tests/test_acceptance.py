"""The issues' acceptance runs on the built-in sample, with full-size (ViT-B) architectures: slow."""

from __future__ import annotations

import pytest
from random_weights import write_released_names  # tests/ is on sys.path (pytest rootdir-less import)

from copernicus_bench.cli import main
from copernicus_bench.results import load_results
from copernicus_bench.tasks import TASK_SLUGS

pytestmark = pytest.mark.slow
PRETRAINED = ("softcon", "croma", "dofa")


def test_baselines_fail_fast_without_weights_then_run_every_applicable_pair(builtin_sample, tmp_path, capsys):
    empty = tmp_path / "no-weights"
    empty.mkdir()
    args = ["run", "--model", "random,softcon,croma,dofa", "--task", "all", "--sample", "--tier", "smoke",
            "--limit", "4"]
    code = main([*args, "--weights-dir", str(empty), "--out", str(tmp_path / "offline")])
    err = capsys.readouterr().err
    assert code != 0
    for model in PRETRAINED:
        assert f"{model} weights" in err or model in err
    assert err.count("could not be downloaded") >= len(PRETRAINED)
    offline = load_results(tmp_path / "offline")
    assert {r["model"] for r in offline} == {"random"} and len(offline) == 15

    weights = write_released_names(tmp_path / "weights", PRETRAINED)
    assert main([*args, "--weights-dir", str(weights), "--out", str(tmp_path / "r")]) == 0
    results = load_results(tmp_path / "r")
    by_model = {m: {r["task"] for r in results if r["model"] == m} for m in ("random", *PRETRAINED)}
    s1_s2 = {t for t in TASK_SLUGS if t.endswith(("-s1", "-s2"))}
    assert by_model["random"] == by_model["dofa"] == set(TASK_SLUGS)
    assert by_model["softcon"] == by_model["croma"] == s1_s2
    for r in results:
        if r["model"] in PRETRAINED:
            assert r["weights"]["source"] == "user" and r["weights"]["file"].startswith(str(weights))
    softcon_files = {r["weights"]["sha256"] for r in results if r["model"] == "softcon"}
    softcon_labels = {r["weights"]["label"] for r in results if r["model"] == "softcon"}
    assert len(softcon_files) == 2 and len(softcon_labels) == 1  # one column for the S1 + S2 file pair
    # measured columns only (the paper's reported SoftCon/CROMA columns show "-" on S5P as well)
    assert main(["leaderboard", "--results", str(tmp_path / "r"), "--out", str(tmp_path / "lb"), "--no-reported"]) == 0
    table = (tmp_path / "lb" / "README.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| AQ-O3-S5P"))
    assert row.count("| - ") == 2  # softcon and croma do not apply to S5P


def test_copernicus_fm_from_a_weights_folder_writes_fifteen_results(builtin_sample, tmp_path):
    weights = write_released_names(tmp_path / "weights", ("copernicus-fm",))
    assert main(["run", "--model", "copernicus-fm", "--task", "all", "--sample", "--tier", "smoke", "--limit", "4",
                 "--weights-dir", str(weights), "--out", str(tmp_path / "r")]) == 0
    results = load_results(tmp_path / "r")
    assert sorted(r["task"] for r in results) == sorted(TASK_SLUGS)
    aq = next(r for r in results if r["task"] == "aq-o3-s5p")
    assert any("s5p_o3" in a for a in aq["input_adaptation"])
