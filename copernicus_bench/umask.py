"""Give temporaries the permissions an ordinary ``open()`` / ``mkdir()`` would have had.

``tempfile.mkstemp`` creates files ``0600`` and ``mkdtemp`` folders ``0700`` whatever the umask; renamed into
place, a result file or cache entry would stay private to its writer, although the README suggests shared
result and cache folders. Every atomic write calls :func:`match_umask` on its temporary before the rename, so
the file ends up ``0666 & ~umask`` (a folder ``0777 & ~umask``) like any other file the user creates.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

_lock = threading.Lock()


def current_umask() -> int:
    """The process's umask: from ``/proc/self/status`` on Linux (no side effect), else by setting it and
    setting it back (under a lock)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def match_umask(path: str | os.PathLike) -> None:
    """chmod a temporary file to ``0666 & ~umask`` (a folder to ``0777 & ~umask``); best effort."""
    p = Path(path)
    try:
        base = 0o777 if stat.S_ISDIR(p.stat().st_mode) else 0o666
        os.chmod(p, base & ~current_umask())
    except OSError:  # e.g. a file system without permissions (some network mounts): leave it as it is
        pass
