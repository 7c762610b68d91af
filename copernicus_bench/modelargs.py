"""``--model-args`` checking: keys, duplicates, keys the runner owns, and value types against the factory.

A model factory's signature is its option schema (as timm's ``create_model`` keyword arguments): a value is
accepted when it fits the parameter's annotation (``bool`` → ``true``/``false``, ``Literal[...]`` → one of
its values, ``int``/``float`` → a number, ``str``/``PathLike`` → a scalar) or, without an annotation, the
type of its default. Every refusal is one :class:`~copernicus_bench.errors.CbenchError` line naming the key
and the accepted values.
"""

from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Callable
from typing import Any

from .errors import CbenchError

#: set by the runner for every job; a user passes them through their own options, never --model-args
RESERVED = {"seed": "--seeds", "weights_dir": "--weights-dir"}


def check_pairs(pairs: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Refuse empty, duplicated and runner-owned keys in ``--model-args`` (before any value is parsed)."""
    seen: set[str] = set()
    for key, value in pairs:
        if not key or not key.isidentifier():
            raise CbenchError(f"--model-args {key}={value}: {key!r} is not an option name; use KEY=VALUE with "
                              "KEY a Python identifier, e.g. config=tiny")
        if key in RESERVED:
            raise CbenchError(f"--model-args {key}={value}: '{key}' is set by the runner for every job; use "
                              f"{RESERVED[key]} instead")
        if key in seen:
            raise CbenchError(f"--model-args {key}={value}: '{key}' is given twice; give each key once")
        seen.add(key)
    return tuple(pairs)


def _members(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    return [annotation]


def _describe(members: list[Any]) -> str:
    words = []
    for m in members:
        if typing.get_origin(m) is typing.Literal:
            words += [repr(v) if not isinstance(v, str) else v for v in typing.get_args(m)]
        elif m is bool:
            words.append("true or false")
        elif m is int:
            words.append("an integer")
        elif m is float:
            words.append("a number")
        elif m is str or m is os.PathLike:
            words.append("a text value")
        elif m is type(None):
            words.append("null")
        else:
            words.append(getattr(m, "__name__", str(m)))
    return " or ".join(dict.fromkeys(words))


def _fits(value: Any, members: list[Any]) -> tuple[bool, Any]:
    """Whether ``value`` fits one of the annotation's members, and the value to pass (scalars → str)."""
    for m in members:
        if typing.get_origin(m) is typing.Literal:
            if any(value == v and type(value) is type(v) for v in typing.get_args(m)):
                return True, value
        elif m is type(None):
            if value is None:
                return True, value
        elif m is bool:
            if isinstance(value, bool):
                return True, value
        elif m is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return True, value
        elif m is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return True, float(value)
        elif m is str or m is os.PathLike:
            if isinstance(value, str):
                return True, value
        elif m is Any or m is inspect.Parameter.empty:
            return True, value
        elif isinstance(m, type) and isinstance(value, m):
            return True, value
        elif not isinstance(m, type) and typing.get_origin(m) is None:
            return True, value  # an annotation we cannot check (a string, a TypeVar): accept
    # a number or a date typed where text is expected (YAML parsed ``name=1``): pass its text
    if any(m is str or m is os.PathLike for m in members) and isinstance(value, int | float) \
            and not isinstance(value, bool):
        return True, str(value)
    return False, value


def check_values(model: str, factory: Callable[..., Any], kwargs: dict[str, Any],
                 skip: tuple[str, ...] = tuple(RESERVED)) -> dict[str, Any]:
    """Check ``kwargs`` against ``factory``'s signature; returns them (scalars coerced for text options)."""
    try:
        sig = inspect.signature(factory, eval_str=True)
    except (NameError, TypeError, ValueError):  # annotations that do not evaluate: check names only
        sig = inspect.signature(factory)
    params = sig.parameters
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = sorted(k for k, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and k not in skip)
    unknown = sorted(set(kwargs) - set(params) - set(skip)) if not accepts_any else []
    if unknown:
        raise CbenchError(f"--model-args {', '.join(unknown)}: model '{model}' does not take "
                          f"{'this option' if len(unknown) == 1 else 'these options'}; it takes "
                          f"{', '.join(named) or 'none'}")
    out = dict(kwargs)
    for key, value in kwargs.items():
        if key in skip or key not in params:
            continue
        p = params[key]
        annotation = p.annotation
        if annotation is inspect.Parameter.empty:
            if p.default is inspect.Parameter.empty or p.default is None:
                continue
            annotation = type(p.default)
        members = _members(annotation)
        if isinstance(value, list | dict) and not any(typing.get_origin(m) in (list, dict) or m in (list, dict)
                                                     for m in members):
            ok = False
        else:
            ok, out[key] = _fits(value, members)
        if not ok:
            shown = value if not isinstance(value, bool) else str(value).lower()
            raise CbenchError(f"--model-args {key}={shown}: model '{model}' expects {_describe(members)} "
                              f"for '{key}'")
    return out
