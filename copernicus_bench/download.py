"""``cbench download``: fetch the released Copernicus-Bench files into the data-root layout.

Source: the HF dataset ``wangyi111/Copernicus-Bench`` at the revision torchgeo 0.8.1 pins, through the
``url``/``md5`` (torchgeo 0.10: ``sha256``) attributes of torchgeo's ``CopernicusBench*`` classes (the facts live there once). Each file
is fetched into ``<name>.part`` (resumed with an HTTP Range request when a ``.part`` is already there),
checksum-verified, renamed into place only when complete, then extracted atomically
(:func:`copernicus_bench.tasks.base.extract_zip`). LCZ ships three h5 files, placed in ``<root>/lcz_s2/``.
Offline, one sentence says which file to place where by hand; nothing half-written is left under a final
name.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cards import SPLITS, TaskCard
from .errors import CbenchError

HF_DATASET = "wangyi111/Copernicus-Bench"
CHUNK = 1 << 20
TIMEOUT = (15, 60)  # connect, read (seconds)


@dataclass(frozen=True)
class ReleasedFile:
    """One released file: where it comes from and where it goes under the data root."""

    url: str
    checksum: str  # hex digest of the released file under ``algorithm``
    relpath: str  # destination relative to the data root (e.g. ``cloud_s2.zip``, ``lcz_s2/lcz_train.h5``)
    extract_to: str | None  # folder the zip unpacks to (``None``: not an archive)
    algorithm: str = "md5"  # torchgeo 0.8/0.9 pin md5, 0.10 sha256

    @property
    def md5(self) -> str | None:
        return self.checksum if self.algorithm == "md5" else None

    @property
    def name(self) -> str:
        return Path(self.relpath).name


def released_files(card: TaskCard) -> list[ReleasedFile]:
    """The released files a task needs, read from the torchgeo class its loader wraps."""
    from .tasks import _loader_class

    tg = _loader_class(card).tg_class
    algorithm, sums = torchgeo_checksums(tg)
    if isinstance(sums, dict):  # LCZ: three h5 files, no zip
        return [ReleasedFile(tg.url.format(s), sums[s], f"{card.archive_dir}/{tg.filename.format(s)}", None,
                             algorithm) for s in SPLITS]
    return [ReleasedFile(tg.url, sums, tg.zipfile, card.archive_dir, algorithm)]


def torchgeo_checksums(tg: Any) -> tuple[str, str | dict[str, str]]:
    """(algorithm, checksum or split → checksum) of a torchgeo ``CopernicusBench*`` class: torchgeo 0.8 and
    0.9 name them ``md5``/``md5s``, 0.10 ``sha256``/``sha256s``; whichever the installed torchgeo has."""
    for algorithm in ("sha256", "md5"):
        for attr in (f"{algorithm}s", algorithm):  # per-split files first (LCZ)
            value = getattr(tg, attr, None)
            if value:
                return algorithm, value
    raise CbenchError(f"torchgeo {getattr(tg, '__name__', tg)}: has neither md5 nor sha256 checksums; "
                      f"install torchgeo >=0.8.1,<0.11")


def file_checksum(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file (``hashlib.file_digest``: chunked reads in C)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


MAX_EXPANSION = 50  # released archives hold GeoTIFF/h5 data that deflate compresses a few times, never 50×


def check_zip_bounds(zf: Any, zip_path: Path, dest: Path, max_expansion: float = MAX_EXPANSION) -> int:
    """Refuse a zip bomb before extracting: the declared unpacked size must stay within ``max_expansion`` ×
    the archive's size on disk and fit the free space at ``dest``. Returns the declared size in bytes.

    ``zipfile`` stops reading a member at its declared size (and fails its CRC beyond), so the declared sizes
    bound what extraction writes."""
    import shutil

    infos = zf.infolist()
    total = sum(max(i.file_size, 0) for i in infos)
    packed = max(Path(zip_path).stat().st_size, 1)
    if total > max_expansion * packed:
        raise CbenchError(f"{zip_path}: would unpack to {total / 2**30:.2f} GiB from {packed / 2**20:.1f} MiB "
                          f"({total / packed:.0f}× its size; a released archive stays under {max_expansion:.0f}×): "
                          "refused as a zip bomb; delete it and re-run 'cbench download'")
    free = shutil.disk_usage(dest).free
    if total > free:
        raise CbenchError(f"{zip_path}: needs {total / 2**30:.2f} GiB to extract but {dest} has "
                          f"{free / 2**30:.2f} GiB free; free space or use another --data-root")
    return total


def extraction_error(zip_path: Path, dest: Path, exc: BaseException) -> CbenchError:
    """The right advice for a failed extraction: a full disk or a permission problem is not a corrupt zip."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return CbenchError(f"{zip_path}: the disk under {dest} filled up while extracting; nothing was left "
                           "half-extracted: free space or use another --data-root, then re-run")
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return CbenchError(f"{dest}: not writable ({exc.strerror}), so {zip_path.name} cannot be extracted there; "
                           "fix the permissions or extract it by hand")
    return CbenchError(f"{zip_path}: cannot be extracted ({exc}); the zip is truncated or corrupt, delete it and "
                       "re-run 'cbench download'")


class HubUnreachableError(CbenchError):
    """The hub could not be reached (no network, DNS, proxy, timeout)."""


def hub_path(file: ReleasedFile) -> str:
    """The file's path inside the HF dataset (e.g. ``l1_cloud_s2/cloud_s2.zip``)."""
    return "/".join(file.url.split("/")[-2:])


def offline_message(files: list[ReleasedFile], root: Path, exc: Exception) -> str:
    """One sentence: the hub is unreachable, and which file(s) to place in which folder by hand."""
    where = root / Path(files[0].relpath).parent
    names = ", ".join(hub_path(f) for f in files)
    parts = [f.name + ".part" for f in files if (root / (f.relpath + ".part")).exists()]
    kept = f"; the partial {', '.join(parts)} is kept and the next run resumes it" if parts else ""
    return (f"could not reach the Hugging Face hub ({type(exc).__name__}), so download {names} from "
            f"https://huggingface.co/datasets/{HF_DATASET} by hand and place "
            f"{'them' if len(files) > 1 else 'it'} in {where} under the same file name{'s' if len(files) > 1 else ''}, "
            f"then re-run this command to verify and extract{kept}")


def fetch(file: ReleasedFile, root: Path, session: Any = None, log=None) -> Path:
    """Download one released file to ``root/relpath`` (resumable, checksum-verified, atomic). Returns its path."""
    import requests

    log = log or (lambda msg: print(msg, file=sys.stderr))
    dest = root / file.relpath
    if dest.is_file():
        have_sum = file_checksum(dest, file.algorithm)
        if have_sum == file.checksum:
            return dest
        raise CbenchError(f"{dest}: {file.algorithm} {have_sum} does not match the release ({file.checksum}); "
                          f"delete it and re-run 'cbench download'")
    part = dest.with_name(dest.name + ".part")
    session = session or requests.Session()
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with session.get(file.url, headers=headers, stream=True, timeout=TIMEOUT, allow_redirects=True) as resp:
            if resp.status_code == 416 and have:  # the .part is already complete
                pass
            else:
                if resp.status_code not in (200, 206):
                    raise CbenchError(f"{file.url}: the hub answered HTTP {resp.status_code}; check the address "
                                      f"or place {file.name} in {dest.parent} by hand")
                dest.parent.mkdir(parents=True, exist_ok=True)
                mode = "ab" if (have and resp.status_code == 206) else "wb"
                if mode == "ab":
                    log(f"resuming {file.name} at {have} bytes")
                else:
                    log(f"downloading {file.name} from {file.url}")
                with open(part, mode) as out:
                    for block in resp.iter_content(CHUNK):
                        if block:
                            out.write(block)
    except requests.exceptions.RequestException as exc:
        raise HubUnreachableError(offline_message([file], root, exc)) from exc
    got = file_checksum(part, file.algorithm)
    if got != file.checksum:
        part.unlink()
        raise CbenchError(f"{dest}: downloaded file has {file.algorithm} {got}, expected {file.checksum}; the "
                          f"partial file was removed, re-run 'cbench download' to fetch it again")
    os.replace(part, dest)
    return dest


def download_task(card: TaskCard, root: Path, session: Any = None, files: Iterable[ReleasedFile] | None = None,
                  log=None) -> list[Path]:
    """Fetch and extract everything a task needs under ``root``; already-present data is kept."""
    from .tasks.base import extract_zip

    log = log or (lambda msg: print(msg, file=sys.stderr))
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    files = list(files if files is not None else released_files(card))
    done = []
    for i, file in enumerate(files):
        if file.extract_to and (root / file.extract_to).is_dir():
            log(f"{card.slug}: {root / file.extract_to} already present")
            done.append(root / file.extract_to)
            continue
        try:
            path = fetch(file, root, session, log)
        except HubUnreachableError as exc:
            missing = [f for f in files[i:] if not (root / f.relpath).is_file()]
            raise HubUnreachableError(offline_message(missing or [file], root, exc.__cause__ or exc)) from exc
        if file.extract_to:
            log(f"extracting {path.name} into {root / file.extract_to}")
            extract_zip(path, root, file.extract_to)
            done.append(root / file.extract_to)
        else:
            done.append(path)
    return done
