"""Default folders and their environment-variable overrides (docs/conventions.md)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_HOME = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "copernicus-bench"


def data_root(cli_value: str | os.PathLike | None = None) -> Path:
    """The data root: ``--data-root``, else ``$CBENCH_DATA_ROOT``, else ``./data``."""
    return Path(cli_value or os.environ.get("CBENCH_DATA_ROOT") or "data")


def weights_dir(cli_value: str | os.PathLike | None = None) -> Path:
    """The weights folder: ``--weights-dir``, else ``$CBENCH_WEIGHTS_DIR``, else the user cache."""
    return Path(cli_value or os.environ.get("CBENCH_WEIGHTS_DIR") or CACHE_HOME / "weights")


def sample_dir() -> Path:
    """Where the built-in sample is generated once: ``$CBENCH_SAMPLE_DIR`` or the user cache."""
    return Path(os.environ.get("CBENCH_SAMPLE_DIR") or CACHE_HOME / "sample")


def cache_dir(cli_value: str | os.PathLike | None = None) -> Path:
    """The feature cache: ``--cache-dir``, else ``$CBENCH_CACHE_DIR``, else the user cache."""
    return Path(cli_value or os.environ.get("CBENCH_CACHE_DIR") or CACHE_HOME / "features")
