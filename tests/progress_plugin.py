"""pytest shows progress from the start: a line before the (slow: torch, torchgeo) collection, a line with the
count after it, and tests marked ``slow`` run last, so the fast tests' progress appears within seconds.

Loaded by ``tests/conftest.py``; with ``console_output_style = "count"`` (pyproject) every line of dots ends
in ``[done/total]``.
"""

from __future__ import annotations

import time

import pytest

_T0 = time.perf_counter()


def _say(config: pytest.Config, text: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(text)


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    _say(session.config, "collecting tests (importing torch and the test modules) ...")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow = [it for it in items if it.get_closest_marker("slow") is not None]
    if slow:
        items[:] = [it for it in items if it.get_closest_marker("slow") is None] + slow  # stable: fast first
    _say(config, f"{len(items)} tests collected in {time.perf_counter() - _T0:.0f} s "
                 f"({len(slow)} marked slow, run last)")
