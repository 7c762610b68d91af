"""The Copernicus-Bench checksums under both torchgeo spellings: 0.8/0.9 ``md5``/``md5s``, 0.10
``sha256``/``sha256s`` (the download path verifies with whichever the installed torchgeo offers)."""

from __future__ import annotations

import hashlib

import pytest

from copernicus_bench.download import ReleasedFile, fetch, file_checksum, torchgeo_checksums
from copernicus_bench.errors import CbenchError


class TG08:
    md5 = "a" * 32


class TG08Splits:
    md5s = {"train": "1" * 32, "val": "2" * 32, "test": "3" * 32}


class TG010:
    sha256 = "b" * 64


class TG010Splits:
    sha256s = {"train": "4" * 64, "val": "5" * 64, "test": "6" * 64}


def test_both_attribute_spellings():
    assert torchgeo_checksums(TG08) == ("md5", "a" * 32)
    assert torchgeo_checksums(TG08Splits) == ("md5", TG08Splits.md5s)
    assert torchgeo_checksums(TG010) == ("sha256", "b" * 64)
    assert torchgeo_checksums(TG010Splits) == ("sha256", TG010Splits.sha256s)
    with pytest.raises(CbenchError, match="neither md5 nor sha256"):
        torchgeo_checksums(object)


def test_file_checksum_matches_hashlib(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"copernicus" * 100_000)
    assert file_checksum(f, "md5") == hashlib.md5(f.read_bytes()).hexdigest()
    assert file_checksum(f, "sha256") == hashlib.sha256(f.read_bytes()).hexdigest()


def test_an_existing_file_is_verified_with_sha256(tmp_path):
    payload = b"released bytes"
    (tmp_path / "cloud_s2.zip").write_bytes(payload)
    good = ReleasedFile("https://hf.co/x/cloud_s2.zip", hashlib.sha256(payload).hexdigest(), "cloud_s2.zip",
                        "cloud_s2", "sha256")
    assert fetch(good, tmp_path) == tmp_path / "cloud_s2.zip" and good.md5 is None
    bad = ReleasedFile("https://hf.co/x/cloud_s2.zip", "0" * 64, "cloud_s2.zip", "cloud_s2", "sha256")
    with pytest.raises(CbenchError, match="cloud_s2.zip: sha256 .* does not match the release"):
        fetch(bad, tmp_path)


def test_installed_torchgeo_gives_checksums_for_every_task():
    from copernicus_bench.download import released_files
    from copernicus_bench.tasks import list_cards

    for card in list_cards():
        for f in released_files(card):
            assert f.algorithm in ("md5", "sha256")
            assert len(f.checksum) == {"md5": 32, "sha256": 64}[f.algorithm]
