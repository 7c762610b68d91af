"""Tasks are discovered, not listed: a 16th task is a card plus a loader module in a package of its own
(registered through the ``copernicus_bench.tasks`` entry-point group); nothing in this repository is edited,
and it runs through ``cbench tasks``, ``cbench sample``, ``cbench run`` and ``cbench leaderboard``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import yaml

from copernicus_bench import tasks
from copernicus_bench.cli import main
from copernicus_bench.errors import CbenchError

PKG = "cbench_toy_tasks"

LOADER = '''
"""A toy 3-class S2 task stored as .npy files: ``toy_s2/<split>.csv`` lists ``name,label``."""
import numpy as np
import torch

from copernicus_bench.tasks.base import BenchDataset, register
from copernicus_bench.tasks.sample import writer


@register("toy_s2")
class ToyS2(BenchDataset):
    tg_class = None  # not a torchgeo dataset

    def _torchgeo(self):
        return None

    def _index(self):
        lines = self.split_files()[0].read_text().split()
        return [(name, int(label)) for name, label in (line.split(",") for line in lines)]

    def _load(self, item):
        name, label = item
        image = np.load(self.task_dir / f"{name}.npy")
        return {"image": image, "target": torch.tensor(label), "meta": self.meta()}


@writer("toy_s2", per_split=6)
def write_toy(root, n, seed):
    from copernicus_bench.tasks import get_card

    card = get_card("toy-s2")
    rng = np.random.default_rng(seed)
    mean, std = (np.asarray(v[0], np.float32) for v in (card.normalization.mean, card.normalization.std))
    signature = rng.standard_normal((card.num_classes, card.num_bands)).astype(np.float32)
    (root / card.archive_dir).mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        rows = []
        for i in range(n):
            k = i % card.num_classes
            z = signature[k][:, None, None] + 0.3 * rng.standard_normal((card.num_bands, 16, 16))
            np.save(root / card.archive_dir / f"{split}_{i}.npy", (mean[:, None, None] + std[:, None, None] * z)
                    .astype(np.float32))
            rows.append(f"{split}_{i},{k}")
        (root / card.release.split_files[0].format(split=split)).write_text("\\n".join(rows) + "\\n")
'''


def toy_card() -> dict:
    card = yaml.safe_load((tasks.CARDS_DIR / "eurosat-s2.yaml").read_text())
    keep = ("B02", "B03", "B04", "B08")
    idx = [i for i, b in enumerate(card["bands"]) if b["name"] in keep]
    card.update(
        slug="toy-s2", name="Toy-S2", loader="toy_s2", archive_dir="toy_s2", classes=["a", "b", "c"],
        bands=[card["bands"][i] for i in idx], native_size=16, split_sizes={"train": 6, "val": 6, "test": 6},
        normalization={"mean": [[card["normalization"]["mean"][0][i] for i in idx]],
                       "std": [[card["normalization"]["std"][0][i] for i in idx]], "scale_factors": None},
        paper={"random": {"mean": 50.0, "std": 1.0}}, notes=[], source="test", license="MIT",
        release={"zip": "toy_s2.zip", "split_files": ["toy_s2/{split}.csv"]})
    card.pop("order")
    return card


@pytest.fixture
def toy_package(tmp_path, monkeypatch):
    """A task package outside the repository, 'installed' by a dist-info folder with an entry point."""
    site = tmp_path / "site"
    pkg = site / PKG
    (pkg / "cards").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "toy.py").write_text(textwrap.dedent(LOADER))
    (pkg / "cards" / "toy-s2.yaml").write_text(yaml.safe_dump(toy_card(), sort_keys=False))
    dist = site / f"{PKG}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PKG}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[copernicus_bench.tasks]\ntoy = {PKG}\n")
    monkeypatch.syspath_prepend(str(site))
    tasks.refresh()
    yield pkg
    monkeypatch.undo()
    sys.modules.pop(f"{PKG}.toy", None)
    sys.modules.pop(PKG, None)
    tasks.refresh()


def test_builtin_tasks_are_the_15_of_the_paper_in_order():
    slugs = [c.slug for c in tasks.list_cards()]
    assert len(slugs) == 15 and slugs == list(tasks.TASK_SLUGS)
    assert [c.order for c in tasks.list_cards()] == list(range(1, 16))
    assert slugs[:2] == ["cloud-s2", "cloud-s3"] and slugs[-1] == "aq-o3-s5p"


def test_a_16th_task_runs_through_tasks_sample_run_and_leaderboard(toy_package, tmp_path, capsys):
    assert tasks.TASK_SLUGS[-1] == "toy-s2" and len(tasks.TASK_SLUGS) == 16
    card = tasks.get_card("toy-s2")
    assert tasks.split_status(card, tmp_path) == {"train": False, "val": False, "test": False}

    root = tmp_path / "data"
    assert main(["sample", "--out", str(root), "--task", "toy-s2"]) == 0
    assert sorted(p.name for p in (root / "toy_s2").glob("*.csv")) == ["test.csv", "train.csv", "val.csv"]
    assert tasks.split_status(card, root) == {"train": True, "val": True, "test": True}
    capsys.readouterr()
    assert main(["tasks", "--data-root", str(root)]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("toy-s2")]
    assert row and row[0].rstrip().endswith("train,val,test") and "4: B02, B03, B04, B08" in row[0]

    out = tmp_path / "results"
    assert main(["run", "--model", "random", "--task", "toy-s2", "--data-root", str(root), "--tier", "smoke",
                 "--model-args", "config=tiny", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]) == 0
    (result_file,) = out.glob("*.json")
    result = json.loads(result_file.read_text())
    assert result["task"] == "toy-s2" and result["task_digest"] == card.digest()

    lb = tmp_path / "lb"
    assert main(["leaderboard", "--results", str(out), "--out", str(lb)]) == 0
    assert "| Toy-S2" in (lb / "README.md").read_text() or "toy-s2" in (lb / "README.md").read_text()
    assert any(t["slug"] == "toy-s2" for t in json.loads((lb / "leaderboard.json").read_text())["tasks"])


def test_the_sample_of_all_tasks_includes_a_discovered_one(toy_package):
    from copernicus_bench.tasks import sample

    assert "toy-s2" in sample.resolve_tasks("all") and sample.DEFAULT_PER_SPLIT["toy_s2"] == 6
    assert sample.archives_for(["toy-s2", "eurosat-s1"]) == ["eurosat_s1", "toy_s2"]


def test_a_card_defining_a_builtin_slug_again_is_one_clear_error(toy_package):
    (toy_package / "cards" / "eurosat-s1.yaml").write_text((tasks.CARDS_DIR / "eurosat-s1.yaml").read_text())
    tasks.refresh()
    with pytest.raises(CbenchError, match=r"eurosat-s1.yaml: task 'eurosat-s1' is already defined by .*; rename"):
        tasks.list_cards()


def test_a_card_naming_an_unknown_loader_is_one_clear_error(toy_package):
    data = toy_card() | {"slug": "toy2-s2", "loader": "no_such_loader"}
    (toy_package / "cards" / "toy2-s2.yaml").write_text(yaml.safe_dump(data))
    tasks.refresh()
    with pytest.raises(CbenchError, match="field 'loader' is 'no_such_loader'.*register a loader"):
        tasks.loader_class(tasks.get_card("toy2-s2"))


def test_cbench_tasks_imports_neither_torch_nor_torchgeo(tmp_path):
    """``cbench tasks`` reads the cards only (their ``release`` section gives the split files)."""
    code = ("import sys; from copernicus_bench.cli import main; main(['tasks']); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'torchgeo'}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "CBENCH_DATA_ROOT": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("argv", [["models"], ["models", "--card", "copernicus-fm"], ["models", "--card", "croma"],
                                  ["models", "--card", "dofa"]])
def test_cbench_models_imports_neither_torchgeo_nor_timm(tmp_path, argv):
    """Listing models (names, descriptions, applicability, weights status, cards) builds no network."""
    code = (f"import sys; from copernicus_bench.cli import main; main({argv!r}); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torchgeo', 'timm'}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "CBENCH_WEIGHTS_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(proc.stdout.strip().splitlines()) > 3  # the table or the card was printed
    assert proc.stdout.strip().splitlines()[-1] == "[]"
