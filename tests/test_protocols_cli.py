"""`cbench run` with the supervised models, --protocol finetune / knn and --train-fraction (fast, tiny configs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from copernicus_bench.cli import main
from copernicus_bench.encoder import EncoderAdapter, EncoderOutput, TaskEncoder, WeightsInfo
from copernicus_bench.results import read_result

TINY = "config=tiny"
SMOKE = ("--sample", "--tier", "smoke")


def run_cli(*args: str) -> int:
    return main(["run", *args])


def results_in(folder: Path) -> list:
    return [r for r in (read_result(p) for p in sorted(folder.glob("*.json"))) if r is not None]


def test_supervised_model_trains_end_to_end_and_is_its_own_column(builtin_sample, tmp_path):
    assert run_cli("--model", "supervised-vit-s16", "--task", "eurosat-s1", *SMOKE, "--model-args", TINY,
                   "--out", str(tmp_path)) == 0
    [r] = results_in(tmp_path)
    assert r["protocol"] == "finetune" and r["model_display"] == "supervised-vit-s16"
    cfg = r["config"]
    assert cfg["protocol_config"]["training"] == "supervised from scratch"
    assert cfg["lr"] == cfg["protocol_config"]["lr"] == 0.01  # exp_config_vit_sup.py, EuroSAT-S1
    assert cfg["protocol_config"]["trained_encoder_sha256"] != r["weights"]["sha256"]  # the encoder moved
    assert len(r["history"]) == 2 and 0 <= r["metric"]["global"] <= 100
    assert "__finetune__" in Path(r["_path"]).name


def test_supervised_model_refuses_frozen_protocols_in_one_line(builtin_sample, tmp_path, capsys):
    code = run_cli("--model", "supervised-vit-b16", "--task", "eurosat-s1", *SMOKE, "--protocol", "paper",
                   "--out", str(tmp_path))
    err = capsys.readouterr().err.strip()
    assert code != 0 and "runs only under --protocol finetune" in err and len(err.splitlines()) == 1
    assert not list(tmp_path.glob("*.json"))


def test_finetune_protocol_for_random_and_copernicus_fm_writes_marked_results(builtin_sample, tmp_path):
    for model, args in (("random", TINY), ("copernicus-fm", f"{TINY},random_init=true")):
        assert run_cli("--model", model, "--task", "eurosat-s1", *SMOKE, "--model-args", args, "--protocol",
                       "finetune", "--out", str(tmp_path)) == 0
    rs = {r["model"]: r for r in results_in(tmp_path)}
    assert set(rs) == {"random", "copernicus-fm"}
    for r in rs.values():
        assert r["protocol"] == "finetune" and r["config"]["protocol_config"]["training"].startswith("fine-tune")
        assert r["cache"]["mode"].startswith("end-to-end")
    from copernicus_bench.leaderboard import leaderboard_from_dir

    lb = leaderboard_from_dir(tmp_path)
    labels = [c.label for c in lb.columns if c.kind == "measured"]
    assert labels and all("[finetune]" in label for label in labels)


def test_finetune_options_layer_decay_and_frozen_patch_embed(builtin_sample, tmp_path):
    assert run_cli("--model", "copernicus-fm", "--task", "eurosat-s1", *SMOKE, "--model-args",
                   f"{TINY},random_init=true", "--protocol", "finetune", "--layer-decay", "0.75",
                   "--freeze-patch-embed", "--out", str(tmp_path)) == 0
    [r] = results_in(tmp_path)
    assert r["overrides"]["layer_decay"] == 0.75 and r["overrides"]["freeze_patch_embed"] is True
    assert r["config"]["protocol_config"]["layer_decay"] == 0.75


def test_knn_beats_chance_and_reuses_the_cached_features(builtin_sample, tmp_path):
    common = ("--model", "random", "--task", "eurosat-s2", *SMOKE, "--model-args", TINY, "--limit", "40")
    assert run_cli(*common, "--out", str(tmp_path / "cached")) == 0
    assert run_cli(*common, "--protocol", "knn", "--out", str(tmp_path / "knn")) == 0
    [r] = results_in(tmp_path / "knn")
    assert r["protocol"] == "knn" and r["best_epoch"] == -1 and r["history"] == []
    assert r["config"]["protocol_config"]["k"] == 20 and r["config"]["protocol_config"]["temperature"] == 0.07
    assert r["metric"]["global"] >= 3 * 100.0 / 10, r["metric"]  # 10 classes: chance is 10 %
    assert r["cache"]["hits"] == {"train": True, "val": True, "test": True}  # the cached probe's features


def test_knn_on_a_dense_task_is_one_line_and_writes_nothing(builtin_sample, tmp_path, capsys):
    code = run_cli("--model", "random", "--task", "dfc2020-s1", *SMOKE, "--model-args", TINY, "--protocol", "knn",
                   "--out", str(tmp_path))
    err = capsys.readouterr().err.strip()
    assert code != 0 and "kNN applies to classification tasks only" in err and len(err.splitlines()) == 1
    assert not list(tmp_path.glob("*.json"))


def _subset(folder: Path) -> dict:
    [r] = results_in(folder)
    return r["config"]["train_subset"]


def test_the_same_train_fraction_gives_the_same_subset_for_two_models_and_two_runs(builtin_sample, tmp_path):
    base = ("--task", "eurosat-s2", *SMOKE, "--limit", "40", "--train-fraction", "0.5")
    assert run_cli("--model", "random", *base, "--model-args", TINY, "--out", str(tmp_path / "a")) == 0
    assert run_cli("--model", "random", *base, "--model-args", TINY, "--out", str(tmp_path / "b"),
                   "--overwrite") == 0
    assert run_cli("--model", "copernicus-fm", *base, "--model-args", f"{TINY},random_init=true",
                   "--out", str(tmp_path / "c")) == 0
    a, b, c = (_subset(tmp_path / x) for x in "abc")
    assert a == b == c
    assert a["n"] == 20 and a["n_full"] == 40 and a["method"] == "per-class" and a["fraction"] == 0.5
    [r] = results_in(tmp_path / "a")
    assert r["config"]["samples"]["train"] == 20 and r["overrides"]["train_fraction"] == 0.5
    # stratified: 4 training samples per class in the sample → 2 of each class selected
    from copernicus_bench.fractions import class_counts, dataset_labels, select, split_checksum
    from copernicus_bench.tasks import get_card, load_dataset

    card = get_card("eurosat-s2")
    ds = load_dataset(card, "train", builtin_sample, limit=40)
    labels = dataset_labels(card, ds)
    sums = {k: v for k, v in r["split_checksums"].items() if "train" in k}
    sub = select(card, labels, len(ds), 0.5, 0, split_checksum(sums))
    assert sub.digest == a["digest"]  # the stored checksum and seed reproduce the subset
    assert class_counts(card, labels, sub.indices) == [2] * 10


def test_a_fraction_too_small_for_a_class_names_it_and_writes_nothing(builtin_sample, tmp_path, capsys):
    code = run_cli("--model", "random", "--task", "eurosat-s2", *SMOKE, "--model-args", TINY, "--limit", "40",
                   "--train-fraction", "0.1", "--out", str(tmp_path))
    err = capsys.readouterr().err
    assert code != 0 and "gets none; a fraction of at least 0.25 keeps every class" in err
    assert not list(tmp_path.glob("*.json"))


@pytest.mark.parametrize("value", ["0", "1.5", "x"])
def test_bad_fraction_values_are_one_line(builtin_sample, tmp_path, capsys, value):
    code = run_cli("--model", "random", "--task", "eurosat-s2", *SMOKE, "--train-fraction", value,
                   "--out", str(tmp_path))
    err = capsys.readouterr().err.strip()
    assert code != 0 and "--train-fraction" in err and len(err.splitlines()) == 1
    assert not list(tmp_path.glob("*.json"))


class _Parameterless(TaskEncoder):
    embed_dim = 4

    def __init__(self) -> None:
        super().__init__()
        self.weights = WeightsInfo("user", "ab" * 32)

    def forward(self, x, meta, want_maps=False):
        return EncoderOutput(pooled=x.mean(dim=(2, 3)).repeat(1, 2)[:, :4])


class _NoGrad(TaskEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(13, 8, 16, 16)
        self.embed_dim = 8
        self.weights = WeightsInfo("user", "cd" * 32)

    @torch.no_grad()
    def forward(self, x, meta, want_maps=False):
        return EncoderOutput(pooled=self.proj(x).mean(dim=(2, 3)))


@pytest.mark.parametrize("encoder, expected", [(_Parameterless, "exposes no trainable parameters"),
                                               (_NoGrad, "gave no gradient")])
def test_finetuning_a_plugin_that_cannot_be_trained_is_one_clear_message(builtin_sample, tmp_path, capsys,
                                                                         monkeypatch, encoder, expected):
    from copernicus_bench.models_registry import MODELS

    class Adapter(EncoderAdapter):
        def build(self, card, pipeline, seed):
            return encoder()

    monkeypatch.setitem(MODELS._items, "frozen-plugin", lambda weights_dir=None, seed=0: Adapter())
    code = run_cli("--model", "frozen-plugin", "--task", "eurosat-s2", *SMOKE, "--protocol", "finetune",
                   "--out", str(tmp_path))
    err = capsys.readouterr().err
    assert code != 0 and expected in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.json"))


def test_result_identity_separates_protocols_and_fractions(builtin_sample, tmp_path):
    common = ("--model", "random", "--task", "eurosat-s2", *SMOKE, "--model-args", TINY, "--limit", "40")
    assert run_cli(*common, "--train-fraction", "0.5,1.0", "--out", str(tmp_path)) == 0
    assert run_cli(*common, "--protocol", "knn", "--train-fraction", "0.5", "--out", str(tmp_path)) == 0
    names = sorted(p.name for p in tmp_path.glob("*.json"))
    assert len(names) == 3 and len({json.loads((tmp_path / n).read_text())["override_hash"] for n in names}) == 2


def test_leaderboard_draws_the_score_vs_fraction_chart_only_when_fractions_exist(builtin_sample, tmp_path):
    common = ("--model", "random", "--task", "eurosat-s2", *SMOKE, "--model-args", TINY, "--limit", "40")
    assert run_cli(*common, "--out", str(tmp_path / "plain")) == 0
    assert main(["leaderboard", "--results", str(tmp_path / "plain"), "--out", str(tmp_path / "lb0")]) == 0
    assert not (tmp_path / "lb0" / "fractions.png").exists()
    assert run_cli(*common, "--train-fraction", "0.5,1.0", "--out", str(tmp_path / "plain")) == 0
    assert main(["leaderboard", "--results", str(tmp_path / "plain"), "--out", str(tmp_path / "lb")]) == 0
    assert (tmp_path / "lb" / "fractions.png").stat().st_size > 1000
    import csv

    rows = list(csv.DictReader(open(tmp_path / "lb" / "fractions.csv")))
    assert sorted(float(r["train_fraction"]) for r in rows) == [0.5, 1.0]
    assert {r["task"] for r in rows} == {"eurosat-s2"} and len({r["series"] for r in rows}) == 1
    from copernicus_bench.leaderboard import leaderboard_from_dir

    cols = [c for c in leaderboard_from_dir(tmp_path / "plain").columns if c.kind == "measured"]
    assert len(cols) == 2 and len({c.label for c in cols}) == 2  # the fraction is its own marked column
