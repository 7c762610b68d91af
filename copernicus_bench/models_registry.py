"""The model registry: one name → one adapter factory (timm's ``create_model`` door).

Built-in models and third-party plug-ins both come through the entry-point group
``copernicus_bench.models``; an entry point names a factory ``f(**kwargs) -> EncoderAdapter`` that the
runner calls with at least ``weights_dir`` and ``seed`` (plus any ``--model-args``).
"""

from __future__ import annotations

import inspect
from typing import Any

from .encoder import EncoderAdapter
from .errors import CbenchError
from .registry import Registry

MODELS: Registry = Registry("model", group="copernicus_bench.models")


def register_model(name: str):
    """Decorator registering an adapter factory under ``name`` (in-process, e.g. in tests)."""
    return MODELS.register(name)


def list_models() -> list[str]:
    return MODELS.names()


def create_model(name: str, **kwargs: Any) -> EncoderAdapter:
    """Build the adapter registered under ``name``; unknown keyword arguments fail with their names."""
    factory = MODELS.get(name)
    sig = inspect.signature(factory)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    if not accepts_any:
        unknown = sorted(set(kwargs) - set(sig.parameters))
        if unknown:
            raise CbenchError(f"model '{name}' does not take option(s) {unknown}; "
                              f"it takes {sorted(sig.parameters)} (fix --model-args)")
    adapter = factory(**kwargs)
    if not isinstance(adapter, EncoderAdapter):
        raise CbenchError(f"model '{name}' factory returned {type(adapter).__name__}, not an EncoderAdapter; "
                          "fix the plug-in's entry point")
    if not adapter.name:
        adapter.name = name
    return adapter
