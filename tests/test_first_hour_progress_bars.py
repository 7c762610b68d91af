"""Training bars count epochs with the epoch's loss and the last validation metric; encoding bars count images."""

from __future__ import annotations

import io

from tqdm import tqdm

from copernicus_bench.progress_bar import epoch_callback
from copernicus_bench.runner import RunSpec, run_one


def test_epoch_callback_shows_loss_and_validation_metric():
    buf = io.StringIO()
    bar = tqdm(total=3, desc="m/t probe", unit="epoch", file=buf)
    cb = epoch_callback(bar, "miou")
    cb(0, {"train_loss": 1.25, "val_global": 12.5})
    assert "1/3" in buf.getvalue() and "loss=1.25" in buf.getvalue() and "val miou=12.5" in buf.getvalue()
    cb(1, {"train_loss": 0.75, "val_global": 20.0})
    text = buf.getvalue()
    assert "2/3" in text and "loss=0.75" in text and "val miou=20" in text and "epoch" in text
    bar.close()


def test_a_job_shows_image_counts_while_encoding_and_epochs_with_metrics_while_training(
        builtin_sample, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CBENCH_PROGRESS", "1")
    spec = RunSpec(model="random", task="eurosat-s1", tier="smoke", sample=True, limit=4, epochs=2,
                   model_args=(("config", "tiny"),), out_dir=str(tmp_path / "o"), cache_dir=str(tmp_path / "c"))
    assert run_one(spec, progress=True).status == "done"
    err = capsys.readouterr().err
    assert "random/eurosat-s1 encode train" in err and "/16 [" in err and "img/s" in err  # 4 samples x 4 views
    assert "random/eurosat-s1 probe" in err and "2/2" in err and "epoch" in err
    assert "loss=" in err and "val oa=" in err
