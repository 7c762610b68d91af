"""``cbench``: the command-line interface. One module per sub-command in this package.

Each command module defines ``add_parser(subparsers)`` which registers its parser and sets
``func=<callable(args) -> int>``. Heavy imports (torch, torchgeo) happen inside the callables so that
``cbench --help`` stays fast. Errors a user can fix are :class:`~copernicus_bench.errors.CbenchError` and
print as one line on stderr with a non-zero exit code; logs and progress go to stderr, results to files.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from ..errors import CbenchError

COMMANDS = ("tasks", "sample", "download", "models", "weights", "run", "leaderboard", "demo", "cache",
            "pretrain", "pretrain_sample", "embed_variable", "embed", "predict", "check_task",
            "grid_embed")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the option and pointing at --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(prog="cbench", description="Score Earth-observation foundation models on Copernicus-Bench.")
    parser.add_argument("--version", action="version", version=f"copernicus-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue
            raise
        module.add_parser(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so it unwinds (and cleans up) exactly like Ctrl-C."""


_received: list[int] = []


def _on_signal(signum: int, frame: object) -> None:
    _received.append(signum)
    raise Terminated(signum)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"cbench: warning: {message}\n"


def _clean(text: str) -> str:
    """One line from a message; a DataLoader worker wraps the original error (and its traceback) in its own."""
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    if len(lines) > 1 and lines[0].startswith("Caught ") and "Original Traceback" in str(text):
        last = lines[-1]
        return last.split(": ", 1)[1] if last.split(": ", 1)[0].endswith(("Error", "Exception")) else last
    return lines[0]


def _os_error_line(exc: OSError) -> str | None:
    """A user-fixable OSError (disk full, permissions, read-only file system) as one line naming the path."""
    import errno

    where = exc.filename or "a file"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"{where}: no space left on the device (disk full or quota reached); free space or point "
                "--out / --cache-dir / --data-root at another disk, then re-run to resume")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}: not writable ({exc.strerror}); fix its permissions or choose another folder"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every failure ends here: one line on stderr and a non-zero exit code
    (``CBENCH_DEBUG=1`` adds the traceback); SIGTERM unwinds like Ctrl-C (exit 143, temporaries removed)."""
    import os
    import signal
    import traceback

    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.filterwarnings("default", module="copernicus_bench")
    warnings.formatwarning = _one_line_warning  # type: ignore[assignment]
    debug = os.environ.get("CBENCH_DEBUG", "") not in ("", "0")
    _received.clear()
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_signal)
    except ValueError:  # not the main thread (e.g. called from a test runner's worker thread)
        pass
    try:
        return int(args.func(args) or 0)
    except CbenchError as exc:
        if debug:
            traceback.print_exc()
        print(f"cbench: error: {_clean(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return _interrupted()
    except SystemExit as exc:  # Lightning turns Ctrl-C / SIGTERM into sys.exit(1) after its own clean-up
        if _received or isinstance(exc.__context__, KeyboardInterrupt):
            return _interrupted()
        raise
    except OSError as exc:
        line = _os_error_line(exc)
        if line is None:
            return _internal(exc, debug)
        if debug:
            traceback.print_exc()
        print(f"cbench: error: {line}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: one line, and how to see the traceback
        return _internal(exc, debug)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupted() -> int:
    if _received:
        print("cbench: terminated (SIGTERM); finished results are kept, temporaries removed, re-run to resume",
              file=sys.stderr)
        return 143
    print("cbench: interrupted; finished results are kept, re-run to resume", file=sys.stderr)
    return 130


def _internal(exc: BaseException, debug: bool) -> int:
    import traceback

    if debug:
        traceback.print_exc()
        print(f"cbench: internal error: {type(exc).__name__}: {_clean(str(exc))}", file=sys.stderr)
    else:
        print(f"cbench: internal error: {type(exc).__name__}: {_clean(str(exc))} (set CBENCH_DEBUG=1 for the "
              "traceback and report it)", file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
