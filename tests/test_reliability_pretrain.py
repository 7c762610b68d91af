"""Reliability: hostile, corrupt and incomplete Copernicus-Pretrain shards (issue 10, items 1, 4, 8)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from copernicus_bench.errors import CbenchError
from copernicus_bench.models.copernicusfm.pretrain_data import make_loader, scaled_modalities
from copernicus_bench.models.copernicusfm.pretrain_sample import make_grid_sample

REPO = Path(__file__).resolve().parents[1]


def _write_shard(path: Path, samples: list[dict]) -> Path:
    import webdataset as wds

    with wds.TarWriter(str(path)) as sink:
        for s in samples:
            sink.write(s)
    return path


def _grid(i: int) -> dict:
    import random

    return make_grid_sample(1_000_000 + i, torch.Generator().manual_seed(i), random.Random(i))


HOSTILE = textwrap.dedent("""
    import io, os, pathlib, pickle, sys, random, torch
    import webdataset as wds
    from copernicus_bench.errors import CbenchError
    from copernicus_bench.models.copernicusfm.pretrain_data import make_loader, scaled_modalities
    from copernicus_bench.models.copernicusfm.pretrain_sample import make_grid_sample

    out = pathlib.Path(sys.argv[1])
    assert "WDS_PYTORCH_WEIGHTS_ONLY" not in os.environ

    class Payload:  # unpickling it calls pathlib.Path.touch(marker): code execution
        def __init__(self, marker): self.marker = marker
        def __reduce__(self): return (pathlib.Path.touch, (pathlib.Path(self.marker),))

    def blob(marker):
        buf = io.BytesIO(); torch.save({"x": Payload(marker)}, buf); return buf.getvalue()

    # control: webdataset's own decoder runs the payload when the variable is unset (the hole we close)
    import webdataset.autodecode as ad
    try:
        ad.torch_loads(blob(str(out / "ran-webdataset-decoder")))
    except Exception:
        pass
    sample = make_grid_sample(1_000_001, torch.Generator().manual_seed(0), random.Random(0))
    sample["s1_grd.pth"] = blob(str(out / "ran-pth-member"))
    sample["evil.pyd"] = pickle.dumps(Payload(str(out / "ran-pyd-member")))
    with wds.TarWriter(str(out / "hostile-000000.tar")) as sink:
        sink.write(sample)
    try:
        next(iter(make_loader(str(out), 1, scaled_modalities(0.1), seed=0)))
        print("NO-ERROR")
    except CbenchError as exc:
        print("CBENCH:", exc)
""")


def test_hostile_shard_runs_no_code_with_env_unset(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WDS_PYTORCH_WEIGHTS_ONLY"}
    env["OMP_NUM_THREADS"] = "1"
    script = tmp_path / "hostile.py"
    script.write_text(HOSTILE)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    # the control shows the payload is live: webdataset's decoder executes it with the variable unset
    assert (tmp_path / "ran-webdataset-decoder").exists()
    # our pipeline executes nothing: neither the .pth member nor the extra pickle member
    assert not (tmp_path / "ran-pth-member").exists()
    assert not (tmp_path / "ran-pyd-member").exists()
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("CBENCH:") and "hostile-000000.tar" in line and "s1_grd.pth" in line


def test_plain_shard_still_trains_after_the_safety_changes(tmp_path: Path) -> None:
    _write_shard(tmp_path / "ok-000000.tar", [_grid(0), _grid(1)])
    batch = next(iter(make_loader(str(tmp_path), 2, scaled_modalities(0.1), seed=0)))
    assert batch["s2"].shape[0] == 2 and torch.isfinite(batch["s2"]).all()
    assert batch["meta_dem"].shape == (2, 4)


def test_truncated_shard_is_one_line_naming_it(tmp_path: Path) -> None:
    good = _write_shard(tmp_path / "full.tar", [_grid(0), _grid(1)])
    data = good.read_bytes()
    good.unlink()
    bad = tmp_path / "broken-000000.tar"
    bad.write_bytes(data[: len(data) // 3] + b"\x00garbage" * 100)
    with pytest.raises(CbenchError) as err:
        next(iter(make_loader(str(tmp_path), 1, scaled_modalities(0.1), seed=0)))
    msg = str(err.value)
    assert "broken-000000.tar" in msg and "\n" not in msg


def test_not_a_tensor_member_is_refused(tmp_path: Path) -> None:
    sample = _grid(0)
    buf = io.BytesIO()
    torch.save({"weights": torch.zeros(2)}, buf)  # weights-only-safe, but a dict, not the modality's tensor
    sample["dem.pth"] = buf.getvalue()
    _write_shard(tmp_path / "dict-000000.tar", [sample])
    with pytest.raises(CbenchError, match=r"dict-000000\.tar.*dem\.pth.*not a tensor"):
        next(iter(make_loader(str(tmp_path), 1, scaled_modalities(0.1), seed=0)))


def test_bad_json_ids_are_one_line(tmp_path: Path) -> None:
    sample = _grid(0)
    ids = json.loads(sample["json"])
    del ids["s3_olci"]
    sample["json"] = json.dumps(ids).encode()
    _write_shard(tmp_path / "ids-000000.tar", [sample])
    with pytest.raises(CbenchError, match=r"ids-000000\.tar.*s3_olci"):
        next(iter(make_loader(str(tmp_path), 1, scaled_modalities(0.1), seed=0)))


def test_shards_without_a_complete_sample_stop_instead_of_hanging(tmp_path: Path) -> None:
    for s in range(2):
        samples = []
        for g in range(3):
            sample = _grid(s * 3 + g)
            del sample["dem.pth"]
            if g == 0:
                del sample["s5p_co.pth"]
            samples.append(sample)
        _write_shard(tmp_path / f"part-{s:06d}.tar", samples)
    # resampled=True (an infinite stream) would spin forever without the guard
    with pytest.raises(CbenchError) as err:
        next(iter(make_loader(str(tmp_path), 1, scaled_modalities(0.1), seed=0)))
    msg = str(err.value)
    assert "dem in" in msg and "s5p_co in" in msg and "2 shard(s)" in msg


@pytest.mark.slow
def test_pretrain_cli_honours_sigterm(tmp_path: Path) -> None:
    import signal
    import time

    from copernicus_bench.models.copernicusfm.pretrain_sample import write_sample_shards

    write_sample_shards(tmp_path / "shards", shards=1, grids_per_shard=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CBENCH_WEIGHTS_DIR": str(tmp_path / "w")}
    cmd = [sys.executable, "-m", "copernicus_bench.cli", "pretrain", "--shards", str(tmp_path / "shards"),
           "--out", str(tmp_path / "run"), "--config", "tiny", "--size-scale", "0.1", "--batch-size", "1",
           "--max-steps", "100000", "--num-workers", "0", "--accelerator", "cpu", "--save-every", "100000",
           "--log-every", "1"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    deadline = time.time() + 90
    while time.time() < deadline and not (tmp_path / "run").exists():
        time.sleep(0.5)
    time.sleep(8)  # into the training loop
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("cbench pretrain ignored SIGTERM")
    assert proc.returncode == 143, err[-2000:]
    assert "terminated (SIGTERM)" in err.strip().splitlines()[-1]
    assert "Traceback" not in err
