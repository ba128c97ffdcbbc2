"""Finding the adapter for a framework object: the built-in adapters, then the ``fastagentic.adapters``
entry points of installed packages, then ``SimpleAdapter`` for a plain callable.

Only candidates named after a package the object's class comes from are imported, so registering a
PydanticAI agent never imports LangGraph, nor any community adapter for another framework. A built-in
candidate whose framework is not installed is skipped (the object cannot be one of its objects: a package of
the user's own may share the framework's name, ``agents`` say).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from .base import Adapter, is_adapter
from .simple import SimpleAdapter

__all__ = ["ENTRY_POINT_GROUP", "adapter_for"]

#: Entry point group of community adapters. Name each entry point after the top-level package of the
#: objects it wraps (``crewai = "fastagentic_crewai:CrewAIAdapter"``); its object is an adapter class with
#: ``accepts(obj)`` and ``wrap(obj)`` (``BaseAdapter`` provides both).
ENTRY_POINT_GROUP = "fastagentic.adapters"

# Top-level package of the object's class -> the built-in adapters to ask, in order. A create_agent agent is
# a LangGraph graph: the LangChain adapter accepts only those, the LangGraph adapter any other graph.
_LANGCHAIN = "fastagentic.adapters.langchain:LangChainAdapter"
_BUILTIN: dict[str, tuple[str, ...]] = {
    "pydantic_ai": ("fastagentic.adapters.pydantic_ai:PydanticAIAdapter",),
    "langgraph": (_LANGCHAIN, "fastagentic.adapters.langgraph:LangGraphAdapter"),
    "langchain": (_LANGCHAIN,),
    "langchain_core": (_LANGCHAIN,),
    "agents": ("fastagentic.adapters.openai_agents:OpenAIAgentsAdapter",),
    "llama_index": ("fastagentic.adapters.llamaindex:LlamaIndexAdapter",),
    "dspy": ("fastagentic.adapters.dspy:DSPyAdapter",),
    # Installed in a worker environment of their own (docs/adapters/crewai.md, semantic-kernel.md).
    "crewai": ("fastagentic.adapters.crewai:CrewAIAdapter",),
    "semantic_kernel": ("fastagentic.adapters.semantic_kernel:SemanticKernelAdapter",),
}


def _packages(obj: object) -> list[str]:
    """Top-level packages of the classes ``obj`` is an instance of, most derived first."""
    seen: dict[str, None] = {}
    for cls in type(obj).__mro__:
        package = cls.__module__.split(".")[0]
        if package not in sys.stdlib_module_names:
            seen.setdefault(package, None)
    return list(seen)


def _load(reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _builtin(package: str, failures: list[str]) -> list[Any]:
    """The built-in adapters for objects of ``package`` that can be imported; why the others cannot is
    added to ``failures``."""
    found = []
    for reference in _BUILTIN.get(package, ()):
        try:
            found.append(_load(reference))
        except ImportError as exc:  # the framework is not installed (or ``package`` is another of that name)
            failures.append(f"{reference.partition(':')[2]} ({exc})")
    return found


def _entry_points(name: str) -> list[Any]:
    from importlib.metadata import entry_points  # only when an object needs looking up: it is not free

    return list(entry_points(group=ENTRY_POINT_GROUP, name=name))


def adapter_for(obj: object) -> Adapter:
    """The adapter that runs ``obj``: ``obj`` itself when it is an adapter, else the first candidate that
    accepts it. TypeError when none does."""
    if is_adapter(obj):
        return obj  # type: ignore[return-value]
    failures: list[str] = []
    for package in _packages(obj):
        candidates = _builtin(package, failures)
        candidates += [entry.load() for entry in _entry_points(package)]
        for candidate in candidates:
            if candidate.accepts(obj):
                adapter: Adapter = candidate.wrap(obj)
                return adapter
    if SimpleAdapter.accepts(obj):
        return SimpleAdapter(obj)  # type: ignore[arg-type]
    unavailable = f" (cannot import {'; '.join(failures)})" if failures else ""
    raise TypeError(
        f"no adapter for {type(obj).__module__}.{type(obj).__qualname__}{unavailable}: built in are adapters "
        f"for objects of {', '.join(sorted(_BUILTIN))}; install a package providing one in the "
        f"{ENTRY_POINT_GROUP!r} entry point group, or pass an adapter (fastagentic.adapters.SimpleAdapter wraps "
        "any callable)"
    )
