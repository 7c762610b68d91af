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

COMMANDS = ("tasks", "sample", "download", "models", "run", "leaderboard", "demo",
            "pretrain", "pretrain_sample", "embed_variable")


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.filterwarnings("default", module="copernicus_bench")
    try:
        return int(args.func(args) or 0)
    except CbenchError as exc:
        print(f"cbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cbench: interrupted; finished results are kept, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
