"""One atomic file write: a temporary beside the target, renamed over it only when the write succeeded.

Every writer of a result, per-sample file, head, embedding raster or table goes through :func:`atomic_file`,
so a killed or failing write never leaves a half-written file under the final name, and the file gets the
permissions of any other file the user creates (``mkstemp`` alone would make it ``0600``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .umask import match_umask


@contextmanager
def atomic_file(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder (created if needed); on a clean exit it replaces ``path``,
    on an exception it is removed. ``suffix`` ends the temporary's name (e.g. ``.tif.tmp`` for a format that
    looks at it)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    match_umask(tmp)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
