"""What a result records about where it was made: versions, git commit, device, peak memory."""

from __future__ import annotations

import platform
import resource
import subprocess
import sys
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

PACKAGES = ("copernicus-bench", "torch", "torchvision", "torchgeo", "timm", "torchmetrics", "numpy",
            "segmentation-models-pytorch", "rasterio")


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


PROJECT = "copernicus-bench"


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """This project's git commit, with ``-dirty`` when tracked files are modified; None unless the package's
    source folder is part of a checkout of copernicus-bench itself (a wheel installed inside a user's own
    repository gets None, not the user's commit; its version is in ``versions``)."""
    return project_commit(Path(__file__).resolve().parent)


def project_commit(package_dir: Path) -> str | None:
    """The commit of the git checkout holding ``package_dir``, if that checkout's ``pyproject.toml`` names
    this project and the folder is its ``copernicus_bench`` package; else None."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=package_dir, capture_output=True, text=True, timeout=5,
                              check=True).stdout.strip()

    try:
        top = Path(git("rev-parse", "--show-toplevel")).resolve()
        if package_dir.resolve() != top / "copernicus_bench" or not _names_project(top / "pyproject.toml"):
            return None
        sha = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")


def _names_project(pyproject: Path) -> bool:
    import tomllib

    try:
        name = tomllib.loads(pyproject.read_text()).get("project", {}).get("name", "")
    except (OSError, ValueError):
        return False
    return str(name).replace("_", "-").lower() == PROJECT


def resolve_device(requested: str | None) -> torch.device:
    if requested:
        from .errors import CbenchError

        try:
            device = torch.device(requested)
        except (RuntimeError, ValueError):
            raise CbenchError(f"--device {requested!r} is not a torch device; use cpu, cuda, cuda:N or mps") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise CbenchError(f"--device {requested}: CUDA is not available on this machine (torch "
                              f"{torch.__version__}); use --device cpu or leave --device out")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise CbenchError(f"--device {requested}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                              "use cuda:0 .. cuda:N-1")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise CbenchError(f"--device {requested}: MPS is not available here; use --device cpu")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory on CUDA, else the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20
