"""The built-in hook types a ``hooks`` table names with ``type = "..."``.

A module that provides a hook type registers its factory here, at import: ``register("pii", PiiHook)``.
A factory is called with the table's ``options`` (a dict) and returns a Hook. Modules whose types are
known are imported when a type is looked up (``KNOWN_MODULES``), so a configuration that names a type
works without importing anything by hand.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from .model import Hook

__all__ = ["KNOWN_MODULES", "Factory", "factory_of", "register", "registered"]

Factory = Callable[[dict[str, Any]], Hook]

_FACTORIES: dict[str, Factory] = {}

#: Modules of the gateway that register built-in hook types (imported on the first lookup; one that is
#: missing or fails to import, say for an optional dependency, leaves its types unknown).
KNOWN_MODULES = (
    "fastagentic_gateway.hooks.pii",
    "fastagentic_gateway.hooks.integrations",
)
_imported = False


def register(type_name: str, factory: Factory) -> None:
    """Make ``type = type_name`` build hooks with ``factory(options)``. A name is registered once."""
    known = _FACTORIES.get(type_name)
    if known is not None and known is not factory:
        raise ValueError(f"hook type {type_name!r} is registered already (by {known!r})")
    _FACTORIES[type_name] = factory


def _import_known() -> None:
    global _imported
    if _imported:
        return
    _imported = True
    for name in KNOWN_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            continue


def registered() -> list[str]:
    """The hook types known now, sorted."""
    _import_known()
    return sorted(_FACTORIES)


def factory_of(type_name: str) -> Factory:
    """The factory of ``type_name``; LookupError naming the known types when there is none."""
    _import_known()
    factory = _FACTORIES.get(type_name)
    if factory is None:
        known = ", ".join(sorted(_FACTORIES)) or "none"
        raise LookupError(f"no built-in hook type {type_name!r} (known: {known})")
    return factory
