"""Own tasks: a task folder + card made from the sample's files, its loader, `cbench check-task`, and
`cbench run --task-card` → result → leaderboard row (the predict half is in test_predict.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml

from copernicus_bench.cli import main
from copernicus_bench.errors import CbenchError

S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
CLOUD_CLASSES = ["clear", "thick cloud", "thin cloud", "shadow"]


def make_seg_task(sample: Path, dest: Path, per_split: int = 4) -> Path:
    """A user segmentation task from the sample's Cloud-S2 GeoTIFFs (13 bands, UTM, masks 0..3)."""
    src = sample / "cloud_s2"
    (dest / "images").mkdir(parents=True)
    (dest / "masks").mkdir()
    for split in ("train", "val", "test"):
        names = [n.strip() for n in (src / f"{split}.csv").read_text().splitlines() if n.strip()][:per_split]
        ids = []
        for k, name in enumerate(names):
            ident = f"{split}_{k}"
            shutil.copy(src / "s2_toa" / f"{name}.tif", dest / "images" / f"{ident}.tif")
            shutil.copy(src / "cloud" / f"{name}.tif", dest / "masks" / f"{ident}.tif")
            ids.append(ident)
        (dest / f"{split}.txt").write_text("\n".join(ids) + "\n")
    card = {"slug": "my-clouds", "name": "My clouds", "task_type": "segmentation", "sensor": "s2",
            "bands": S2_BANDS, "classes": CLOUD_CLASSES, "resolution": 64}
    path = dest / "my-clouds.yaml"
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    return path


def make_cls_task(sample: Path, dest: Path) -> Path:
    """A user classification task (labels.csv) from the sample's EuroSAT-S2 GeoTIFFs."""
    src = sample / "eurosat_s2" / "all_imgs"
    (dest / "images").mkdir(parents=True)
    rows = ["id,label"]
    classes = ["Forest", "River", "SeaLake"]
    for split, sl in (("train", slice(0, 3)), ("val", slice(3, 4)), ("test", slice(4, 5))):
        ids = []
        for cls in classes:
            for f in sorted((src / cls).glob("*.tif"))[sl]:
                shutil.copy(f, dest / "images" / f.name)
                ids.append(f.stem)
                rows.append(f"{f.stem},{cls}")
        (dest / f"{split}.txt").write_text("\n".join(ids) + "\n")
    (dest / "labels.csv").write_text("\n".join(rows) + "\n")
    file_order = S2_BANDS[:8] + S2_BANDS[9:] + ["B8A"]  # EuroSAT files store B8A last
    card = {"slug": "my-scenes", "task_type": "multiclass", "sensor": "s2", "bands": file_order,
            "classes": classes, "resolution": 64}
    path = dest / "my-scenes.yaml"
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def seg_card(builtin_sample, tmp_path_factory):
    return make_seg_task(Path(builtin_sample), tmp_path_factory.mktemp("own") / "my_clouds")


def test_user_card_gets_documented_defaults(seg_card):
    from copernicus_bench.tasks import get_card
    from copernicus_bench.tasks.custom import load_user_card

    card = load_user_card(seg_card)
    ref = get_card("eurosat-s2")
    assert card.loader == "custom" and card.level == 4 and card.metric == "miou" and card.probe.head == "upernet"
    assert card.probe == get_card("dfc2020-s2").probe  # the probe of the built-in segmentation task
    assert card.wavelengths_nm == tuple(ref.wavelengths_nm)  # band facts by name from the S2 card
    assert card.normalization.mean == ref.normalization.mean
    assert card.split_sizes == {"train": 4, "val": 4, "test": 4}
    assert card.native_size == 128  # the images' size
    assert card.patch_area_km2 == pytest.approx(0.0256)


def test_custom_loader_returns_image_target_meta(seg_card):
    from copernicus_bench.tasks import load_dataset
    from copernicus_bench.tasks.custom import card_folder, load_user_card

    card = load_user_card(seg_card)
    ds = load_dataset(card, "train", card_folder(seg_card))
    assert len(ds) == 4
    s = ds[0]
    with rasterio.open(seg_card.parent / "images" / "train_0.tif") as src:
        want = src.read().astype(np.float32)
    with rasterio.open(seg_card.parent / "masks" / "train_0.tif") as src:
        mask = src.read(1)
    assert torch.equal(s["image"], torch.from_numpy(want))
    assert torch.equal(s["target"], torch.from_numpy(mask.astype(np.int64)))
    assert torch.isfinite(s["meta"][[0, 1, 3]]).all() and s["meta"][3] == pytest.approx(0.0256)


def test_classification_task_with_labels_csv(builtin_sample, tmp_path):
    from copernicus_bench.tasks import load_dataset
    from copernicus_bench.tasks.custom import card_folder, load_user_card

    path = make_cls_task(Path(builtin_sample), tmp_path / "scenes")
    card = load_user_card(path)
    ds = load_dataset(card, "train", card_folder(path))
    assert sorted(int(ds[i]["target"]) for i in range(len(ds))) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert main(["check-task", str(path)]) == 0


def test_check_task_reports_every_problem_in_one_pass(seg_card, tmp_path, capsys):
    folder = tmp_path / "broken"
    shutil.copytree(seg_card.parent, folder)
    (folder / "val.txt").unlink()  # a missing split file
    (folder / "images" / "train_1.tif").unlink()  # a listed image that is missing
    with rasterio.open(folder / "masks" / "train_2.tif") as src:  # a mask of another size
        profile = src.profile
        profile.update(width=64, height=64)
        small = src.read()[:, :64, :64]
    with rasterio.open(folder / "masks" / "train_2.tif", "w", **profile) as dst:
        dst.write(small)
    assert main(["check-task", str(folder / "my-clouds.yaml")]) == 1
    err = capsys.readouterr().err
    assert "val.txt: split file is missing" in err
    assert "train_1.tif: image listed in train.txt is missing" in err
    assert "mask is 64×64 px but its image is 128×128" in err
    assert "3 problem(s)" in err and "Traceback" not in err


def test_bad_cards_are_one_line_errors(tmp_path):
    from copernicus_bench.tasks.custom import load_user_card

    def card(**kw):
        p = tmp_path / "c.yaml"
        base = {"slug": "mine", "task_type": "segmentation", "sensor": "s2", "bands": ["B02"], "classes": ["a", "b"]}
        p.write_text(yaml.safe_dump({**base, **kw}))
        return p

    with pytest.raises(CbenchError, match="built-in task"):
        load_user_card(card(slug="eurosat-s2"))
    with pytest.raises(CbenchError, match="'normalization' is missing"):
        load_user_card(card(bands=[{"name": "red", "wavelength_nm": 650.0, "bandwidth_nm": 30.0}]))
    with pytest.raises(CbenchError, match="task_type"):
        load_user_card(card(task_type="change_detection"))
    with pytest.raises(CbenchError, match="no such file"):
        load_user_card(tmp_path / "absent.yaml")
    assert json.dumps(load_user_card(card()).to_dict(), default=list)  # a valid minimal card


TINY_RUN = ["--model", "copernicus-fm", "--model-args", "config=tiny,random_init=true", "--tier", "smoke"]


def test_run_with_task_card_lands_in_the_leaderboard(seg_card, tmp_path, capsys):
    results, board = tmp_path / "results", tmp_path / "board"
    assert main(["run", "--task-card", str(seg_card), *TINY_RUN, "--out", str(results)]) == 0
    files = list(results.glob("*.json"))
    assert len(files) == 1
    record = json.loads(files[0].read_text())
    assert record["task"] == "my-clouds" and "my-clouds" in record["applicable_tasks"]
    assert record["task_card"]["slug"] == "my-clouds" and record["task_card"]["loader"] == "custom"
    assert 0.0 <= record["metric"]["global"] <= 100.0
    capsys.readouterr()
    assert main(["leaderboard", "--results", str(results), "--out", str(board)]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if "my-clouds" in line or "My clouds" in line)
    assert f"{record['metric']['global']:.1f}" in row
    assert "Your own tasks" in table
    rows = json.loads((board / "leaderboard.json").read_text())
    assert "my-clouds" in json.dumps(rows)


def test_run_task_card_option_errors(seg_card, tmp_path, capsys):
    assert main(["run", "--task-card", str(seg_card), "--task", "eurosat-s2", *TINY_RUN, "--out",
                 str(tmp_path)]) != 0
    assert "--task-card" in capsys.readouterr().err
    assert main(["run", "--task-card", str(tmp_path / "nope.yaml"), *TINY_RUN, "--out", str(tmp_path)]) != 0
    assert "no such file" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.json"))
