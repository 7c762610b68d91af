"""The model registry: one name → one adapter factory (timm's ``create_model`` door).

Built-in models and third-party plug-ins both come through the entry-point group
``copernicus_bench.models``; an entry point names a factory ``f(**kwargs) -> EncoderAdapter`` that the
runner calls with at least ``weights_dir`` and ``seed`` (plus any ``--model-args``).
"""

from __future__ import annotations

import functools
from typing import Any

from .encoder import EncoderAdapter
from .errors import CbenchError
from .modelargs import check_values
from .registry import Registry

MODELS: Registry = Registry("model", group="copernicus_bench.models")


def list_models() -> list[str]:
    return MODELS.names()


def create_model(name: str, **kwargs: Any) -> EncoderAdapter:
    """Build the adapter registered under ``name``.

    Option names and value types are checked against the factory's signature
    (:mod:`~copernicus_bench.modelargs`); a factory or an ``applicability`` that raises is one line naming the
    model, so one broken plug-in never takes down the others.
    """
    factory = MODELS.get(name)
    kwargs = check_values(name, factory, kwargs)
    try:
        adapter = factory(**kwargs)
    except CbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plug-in's bug, reported as one line
        raise CbenchError(f"model '{name}': its factory raised {type(exc).__name__}: {_first_line(exc)}; fix the "
                          f"model's code or its options (CBENCH_DEBUG=1 for the traceback)") from exc
    if not isinstance(adapter, EncoderAdapter):
        raise CbenchError(f"model '{name}' factory returned {type(adapter).__name__}, not an EncoderAdapter; "
                          "fix the plug-in's entry point")
    if not adapter.name:
        adapter.name = name
    _guard_applicability(adapter, name)
    return adapter


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "(no message)"


def _guard_applicability(adapter: EncoderAdapter, name: str) -> None:
    """Make ``adapter.applicability`` report an exception as one line naming the model and the task."""
    inner = adapter.applicability

    @functools.wraps(inner)
    def applicability(card):  # type: ignore[no-untyped-def]
        try:
            return inner(card)
        except CbenchError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise CbenchError(f"model '{name}': applicability({getattr(card, 'slug', card)}) raised "
                              f"{type(exc).__name__}: {_first_line(exc)}; fix the model's code "
                              "(CBENCH_DEBUG=1 for the traceback)") from exc

    adapter.applicability = applicability  # type: ignore[method-assign]
