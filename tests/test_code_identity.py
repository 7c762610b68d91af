"""The adapter code identity covers the adapter's module and the sibling modules it imports — read from the
source, so it is the same whatever else a process has imported, and an unrelated sibling's edit leaves it."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from copernicus_bench.code_identity import adapter_code


@pytest.fixture
def pkg(tmp_path, monkeypatch):
    """A package ``h13b_pkg``: adapter.py imports helper.py at top level and lazy.py inside a function;
    other.py is a sibling nobody imports; deep/ is a sub-package (another folder)."""
    root = tmp_path / "src" / "h13b_pkg"
    (root / "deep").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "deep" / "__init__.py").write_text("X = 1\n")
    (root / "helper.py").write_text("SCALE = 1.0\n")
    (root / "lazy.py").write_text("OFFSET = 0.0\n")
    (root / "other.py").write_text("UNUSED = 0\n")
    (root / "adapter.py").write_text(textwrap.dedent("""
        from .helper import SCALE
        from h13b_pkg.deep import X


        class Adapter:
            def forward(self, v):
                from . import lazy
                return SCALE * v + lazy.OFFSET + X
    """))
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    yield root
    for name in [m for m in sys.modules if m.startswith("h13b_pkg")]:
        sys.modules.pop(name, None)


def _hash(module: str = "h13b_pkg.adapter") -> dict:
    sys.modules.pop(module, None)
    importlib.invalidate_caches()
    return adapter_code(importlib.import_module(module).Adapter())


def test_hash_ignores_which_siblings_happen_to_be_loaded(pkg):
    before = _hash()
    importlib.import_module("h13b_pkg.other")  # loaded, but not imported by the adapter
    importlib.import_module("h13b_pkg.lazy")  # imported lazily by the adapter: counted before it ran too
    assert _hash()["hash"] == before["hash"]


def test_editing_an_imported_sibling_changes_the_hash_an_unrelated_one_does_not(pkg):
    before = _hash()["hash"]
    # each edit below changes the file size: hashes are cached by (size, mtime)
    (pkg / "other.py").write_text("UNUSED = 1  # edited\n")
    assert _hash()["hash"] == before
    (pkg / "deep" / "__init__.py").write_text("X = 22\n")  # another folder: not the adapter's code
    assert _hash()["hash"] == before
    (pkg / "lazy.py").write_text("OFFSET = 1.25\n")
    after_lazy = _hash()["hash"]
    assert after_lazy != before
    (pkg / "helper.py").write_text("SCALE = 2.25\n")
    assert _hash()["hash"] not in (before, after_lazy)
    (pkg / "adapter.py").write_text((pkg / "adapter.py").read_text() + "\n# a comment is an edit too\n")
    assert len({before, after_lazy, _hash()["hash"]}) == 3


def test_builtin_random_vit_is_stable_across_imports_of_other_baselines():
    from copernicus_bench.models_registry import create_model

    before = adapter_code(create_model("random", seed=0))
    import copernicus_bench.baselines.croma  # noqa: F401
    import copernicus_bench.baselines.supervised  # noqa: F401

    assert adapter_code(create_model("random", seed=0)) == before
    assert before["module"] == "copernicus_bench.baselines.random_vit" and len(before["source_sha256"]) == 64


def test_distribution_found_without_scanning_every_installed_one(monkeypatch):
    from importlib import metadata

    from copernicus_bench import code_identity as ci

    expected = metadata.packages_distributions()["copernicus_bench"][0], metadata.version("copernicus-bench")
    ci._distribution.cache_clear()
    monkeypatch.setattr(ci, "_packages_distributions", lambda: (_ for _ in ()).throw(AssertionError("full scan")))
    try:
        assert ci._distribution("copernicus_bench.baselines.random_vit") == expected
    finally:
        ci._distribution.cache_clear()
    monkeypatch.undo()
    assert ci._distribution("yaml") == ("PyYAML", metadata.version("PyYAML"))  # named unlike its package: scan
    assert ci._distribution("h13b_no_such_module") == ("unknown", "unknown")
