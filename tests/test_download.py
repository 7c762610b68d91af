"""``cbench download``: resumable, md5-verified, atomic; offline is one sentence with the manual fix."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from copernicus_bench.cli import main
from copernicus_bench.download import ReleasedFile, download_task, fetch, released_files
from copernicus_bench.errors import CbenchError
from copernicus_bench.tasks import get_card

PINNED = "9d252acd3aa0e3da3128e05c6f028647f0e48e5f"


def zip_bytes(folder: str = "cloud_s2") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{folder}/train.csv", "ROI_00001__20200115T101031_x\n")
        zf.writestr(f"{folder}/padding.bin", bytes(range(256)) * 200)
    return buf.getvalue()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class FakeResponse:
    def __init__(self, status: int, body: bytes, fail_after: int | None = None):
        self.status_code, self.body, self.fail_after = status, body, fail_after

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def iter_content(self, chunk: int):
        sent = 0
        for i in range(0, len(self.body), 1000):
            if self.fail_after is not None and sent >= self.fail_after:
                raise requests.exceptions.ConnectionError("connection reset")
            yield self.body[i:i + 1000]
            sent += 1000


class FakeSession:
    """Serves one payload; honours Range (206) unless told not to; may drop the connection midway."""

    def __init__(self, payload: bytes, ranges: bool = True, fail_after: int | None = None):
        self.payload, self.ranges, self.fail_after = payload, ranges, fail_after
        self.requests: list[dict] = []

    def get(self, url, headers=None, stream=True, timeout=None, allow_redirects=True):
        headers = headers or {}
        self.requests.append(dict(headers))
        if "Range" in headers and self.ranges:
            start = int(headers["Range"].split("=")[1].rstrip("-"))
            if start >= len(self.payload):
                return FakeResponse(416, b"")
            return FakeResponse(206, self.payload[start:], self.fail_after)
        return FakeResponse(200, self.payload, self.fail_after)


def fake_file(payload: bytes, relpath: str = "cloud_s2.zip", extract_to: str | None = "cloud_s2") -> ReleasedFile:
    return ReleasedFile("https://hf.co/datasets/x/resolve/r/l1_cloud_s2/cloud_s2.zip", md5(payload), relpath, extract_to)


# ------------------------------------------------------------------------------------- release facts
def test_released_files_use_torchgeo_pinned_urls_and_md5s():
    (cloud,) = released_files(get_card("cloud-s2"))
    assert cloud.url.endswith(f"Copernicus-Bench/resolve/{PINNED}/l1_cloud_s2/cloud_s2.zip")
    assert (cloud.md5, cloud.relpath, cloud.extract_to) == ("39a1f966e76455549a3e6c209ba751c1", "cloud_s2.zip", "cloud_s2")
    (ben,) = released_files(get_card("bigearthnet-s2"))
    assert (ben.relpath, ben.extract_to) == ("bigearthnetv2.zip", "bigearthnet_s1s2")
    lcz = released_files(get_card("lcz-s2"))
    assert [f.relpath for f in lcz] == ["lcz_s2/lcz_train.h5", "lcz_s2/lcz_val.h5", "lcz_s2/lcz_test.h5"]
    assert lcz[0].md5.startswith("e0b10cdb") and lcz[0].extract_to is None
    assert released_files(get_card("aq-no2-s5p")) == released_files(get_card("aq-o3-s5p"))


# ------------------------------------------------------------------------------------- offline
def test_offline_is_one_sentence_naming_file_and_folder(tmp_path, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Name or service not known")

    monkeypatch.setattr(requests.Session, "get", refuse)
    rc = main(["download", "--task", "dfc2020-s1", "--data-root", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0
    assert len(err) == 1 and err[0].startswith("cbench: error: could not reach the Hugging Face hub")
    assert "l2_dfc2020_s1s2/dfc2020.zip" in err[0] and f"place it in {tmp_path} " in err[0]
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_offline_lcz_names_all_three_files_and_the_lcz_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(requests.Session, "get",
                        lambda *a, **k: (_ for _ in ()).throw(requests.exceptions.Timeout("timed out")))
    assert main(["download", "--task", "lcz-s2", "--data-root", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    for split in ("train", "val", "test"):
        assert f"l3_lcz_s2/lcz_{split}.h5" in err
    assert str(tmp_path / "lcz_s2") in err
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_connection_lost_midway_keeps_part_then_resumes_with_range(tmp_path):
    payload = zip_bytes()
    file = fake_file(payload)
    with pytest.raises(CbenchError, match=r"could not reach .*cloud_s2.zip.part is kept and the next run resumes it"):
        download_task(get_card("cloud-s2"), tmp_path, session=FakeSession(payload, fail_after=3000), files=[file])
    part = tmp_path / "cloud_s2.zip.part"
    assert part.is_file() and 0 < part.stat().st_size < len(payload)
    assert not (tmp_path / "cloud_s2.zip").exists() and not (tmp_path / "cloud_s2").exists()
    have = part.stat().st_size
    session = FakeSession(payload)
    download_task(get_card("cloud-s2"), tmp_path, session=session, files=[file])
    assert session.requests == [{"Range": f"bytes={have}-"}]
    assert (tmp_path / "cloud_s2.zip").read_bytes() == payload and not part.exists()
    assert (tmp_path / "cloud_s2" / "train.csv").is_file()


def test_server_ignoring_range_restarts_from_scratch(tmp_path):
    payload = zip_bytes()
    (tmp_path / "cloud_s2.zip.part").write_bytes(b"stale bytes")
    fetch(fake_file(payload), tmp_path, FakeSession(payload, ranges=False), log=lambda m: None)
    assert (tmp_path / "cloud_s2.zip").read_bytes() == payload


def test_complete_part_answered_416_is_verified_and_renamed(tmp_path):
    payload = zip_bytes()
    (tmp_path / "cloud_s2.zip.part").write_bytes(payload)
    fetch(fake_file(payload), tmp_path, FakeSession(payload), log=lambda m: None)
    assert (tmp_path / "cloud_s2.zip").read_bytes() == payload


def test_md5_mismatch_leaves_no_final_file(tmp_path):
    payload = zip_bytes()
    bad = ReleasedFile("https://hf.co/x/cloud_s2.zip", md5(b"something else"), "cloud_s2.zip", "cloud_s2")
    with pytest.raises(CbenchError, match=r"cloud_s2.zip: downloaded file has md5 .* expected"):
        fetch(bad, tmp_path, FakeSession(payload), log=lambda m: None)
    assert list(tmp_path.iterdir()) == []


def test_existing_complete_file_is_not_downloaded_again(tmp_path):
    payload = zip_bytes()
    (tmp_path / "cloud_s2.zip").write_bytes(payload)
    session = FakeSession(payload)
    download_task(get_card("cloud-s2"), tmp_path, session=session, files=[fake_file(payload)], log=lambda m: None)
    assert session.requests == [] and (tmp_path / "cloud_s2" / "train.csv").is_file()


def test_http_error_is_reported(tmp_path):
    class NotFound(FakeSession):
        def get(self, *a, **k):
            return FakeResponse(404, b"")

    with pytest.raises(CbenchError, match="HTTP 404"):
        fetch(fake_file(b"x"), tmp_path, NotFound(b""), log=lambda m: None)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------- real HTTP
class RangeHandler(BaseHTTPRequestHandler):
    payload = b""
    seen: list[str | None] = []

    def do_GET(self):  # noqa: N802
        rng = self.headers.get("Range")
        type(self).seen.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        body = self.payload[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_resume_against_a_local_http_server(tmp_path):
    payload = zip_bytes("lc100_s3")
    RangeHandler.payload, RangeHandler.seen = payload, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/l2_lc100_s3/lc100_s3.zip"
        file = ReleasedFile(url, md5(payload), "lc100_s3.zip", "lc100_s3")
        (tmp_path / "lc100_s3.zip.part").write_bytes(payload[:5000])
        download_task(get_card("lc100cls-s3"), tmp_path, files=[file], log=lambda m: None)
    finally:
        server.shutdown()
    assert RangeHandler.seen == ["bytes=5000-"]
    assert (tmp_path / "lc100_s3.zip").read_bytes() == payload
    assert (tmp_path / "lc100_s3" / "train.csv").is_file()


def test_cli_downloads_a_shared_archive_once(tmp_path, monkeypatch):
    payload = zip_bytes("airquality_s5p")
    file = ReleasedFile("https://hf.co/x/airquality_s5p.zip", md5(payload), "airquality_s5p.zip", "airquality_s5p")
    session = FakeSession(payload)
    monkeypatch.setattr("copernicus_bench.download.released_files", lambda card: [file])
    monkeypatch.setattr(requests, "Session", lambda: session)
    assert main(["download", "--task", "aq-no2-s5p,aq-o3-s5p", "--data-root", str(tmp_path)]) == 0
    assert len(session.requests) == 1
    assert (tmp_path / "airquality_s5p" / "train.csv").is_file()
    assert Path(tmp_path / "airquality_s5p.zip").is_file()
