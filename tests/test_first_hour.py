"""A new user's first hour (issue 16): the missing-weights message, `cbench weights download`."""

from __future__ import annotations

import hashlib

import pytest

from copernicus_bench import weights
from copernicus_bench.cli import main
from copernicus_bench.errors import WeightsNotFoundError
from copernicus_bench.models.copernicusfm import adapter as cfm_adapter
from copernicus_bench.models.copernicusfm import checkpoint, varembed
from copernicus_bench.tasks import get_card


def test_offline_message_names_both_files_and_both_ways_forward(tmp_path, monkeypatch):
    monkeypatch.setenv("CBENCH_OFFLINE", "1")
    adapter = cfm_adapter.build_adapter(weights_dir=tmp_path, config="tiny")
    card = get_card("aq-o3-s5p")
    with pytest.raises(WeightsNotFoundError) as err:
        adapter.build(card, adapter.input_pipeline(card, "smoke"), seed=0)
    msg = str(err.value)
    assert "\n" not in msg
    for spec in (checkpoint.SPEC, varembed.SPEC):
        assert spec.primary in msg and spec.url in msg and spec.size in msg
    assert str(tmp_path) in msg
    assert "cbench weights download --model copernicus-fm" in msg and "--model-args random_init=true" in msg


def test_offline_cli_run_names_both_files_and_random_init_runs(tmp_path, monkeypatch, capsys):
    """The README's headline command, offline: one message, then the random-init path runs."""
    monkeypatch.setenv("CBENCH_OFFLINE", "1")
    monkeypatch.setenv("CBENCH_WEIGHTS_DIR", str(tmp_path / "w"))
    monkeypatch.setenv("CBENCH_CACHE_DIR", str(tmp_path / "cache"))
    base = ["run", "--model", "copernicus-fm", "--task", "aq-o3-s5p", "--sample", "--tier", "smoke",
            "--out", str(tmp_path / "r"), "--limit", "2", "--epochs", "1"]
    assert main(base) == 1
    err = capsys.readouterr().err
    assert checkpoint.SPEC.primary in err and varembed.SPEC.primary in err and "random_init=true" in err
    assert main([*base, "--model-args", "random_init=true,config=tiny"]) == 0
    assert len(list((tmp_path / "r").glob("copernicus-fm__*.json"))) == 1


def test_size_of_copernicus_fm_checkpoint_matches_the_architecture():
    """The size the message quotes is the fp32 parameter bytes of the ViT-B build, to 1 %."""
    from copernicus_bench.models.copernicusfm.model import build_model

    model = build_model("base")
    mb = sum(t.numel() * 4 for t in model.state_dict().values() if t.is_floating_point()) / 1e6
    quoted = float(checkpoint.SPEC.size.strip("≈ MB"))
    assert abs(quoted - mb) / mb < 0.01


class _FakeResponse:
    """requests.get stand-in serving ``blob``, honouring a Range header, failing after ``cut`` bytes."""

    def __init__(self, blob: bytes, headers: dict, cut: int | None) -> None:
        start = int(headers["Range"].split("=")[1].rstrip("-")) if "Range" in headers else 0
        self.status_code = 206 if start else 200
        self.body, self.cut = blob[start:], cut
        self.headers = {"content-length": str(len(self.body))}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def raise_for_status(self) -> None:
        pass

    def iter_content(self, chunk_size: int):
        for i in range(0, len(self.body), 4):
            if self.cut is not None and i >= self.cut:
                raise ConnectionError("connection dropped")
            yield self.body[i:i + 4]


def test_download_resumes_and_checks_the_sha256_in_the_name(tmp_path, monkeypatch):
    import requests

    blob = bytes(range(256)) * 8
    sha8 = hashlib.sha256(blob).hexdigest()[:8]
    spec = weights.WeightsSpec("toy", (f"toy-{sha8}.pth",), "https://example.invalid/toy.pth")
    calls: list[dict] = []
    cut = {"at": 1000}

    def fake_get(url, stream, timeout, headers):
        calls.append(dict(headers))
        return _FakeResponse(blob, headers, cut["at"])

    monkeypatch.setattr(requests, "get", fake_get)
    with pytest.raises(ConnectionError):
        weights.download_spec(spec, tmp_path)
    part = weights.part_path(tmp_path / spec.primary)
    assert part.stat().st_size == 1000 and not (tmp_path / spec.primary).exists()
    cut["at"] = None
    path = weights.download_spec(spec, tmp_path)
    assert calls[-1] == {"Range": "bytes=1000-"} and path.read_bytes() == blob and not part.exists()

    bad = weights.WeightsSpec("toy", ("toy-00000000.pth",), "https://example.invalid/toy.pth")
    with pytest.raises(Exception, match="sha256"):
        weights.download_spec(bad, tmp_path)
    assert not (tmp_path / "toy-00000000.pth").exists()


def test_weights_download_cli_offline_names_every_file(tmp_path, monkeypatch, capsys):
    import requests

    def offline(*a, **k):
        raise requests.ConnectionError("no network")

    monkeypatch.setattr(requests, "get", offline)
    assert main(["weights", "download", "--model", "copernicus-fm", "--weights-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("cbench: error: copernicus-fm: 2 weights files")
    assert checkpoint.SPEC.primary in err and varembed.SPEC.primary in err and "again to resume" in err
    assert main(["weights", "download", "--model", "random", "--weights-dir", str(tmp_path)]) == 0
    assert "needs no weights files" in capsys.readouterr().err


def test_smoke_caps_the_token_grid_only_where_it_is_large():
    from copernicus_bench.encoder import tier_resolution

    assert tier_resolution(56, "smoke", 4) == 32  # AQ: 8×8 tokens instead of 14×14
    assert tier_resolution(224, "smoke", 16) == 64 and tier_resolution(288, "smoke", 8) == 64
    assert tier_resolution(120, "smoke", 8) == 64 and tier_resolution(56, "full", 4) == 56


def test_sweep_progress_json_lines_and_eta_correction():
    import io
    import json
    from types import SimpleNamespace

    from copernicus_bench.progress import SweepProgress

    stream = io.StringIO()
    sweep = SweepProgress([10.0, 10.0, 20.0], mode="json", stream=stream)
    sweep.start()
    spec = SimpleNamespace(model="m", task="t", seed=0)
    sweep.finished(SimpleNamespace(spec=spec, status="done", metric=0.5, message="ok"))
    assert sweep.eta(5.0) == 15.0  # the first job took half its estimate: the rest (30 s) is halved
    sweep.close()
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["start", "job", "end"]
    assert events[0]["estimate_s"] == 40.0 and events[1]["index"] == 1 and events[1]["status"] == "done"
