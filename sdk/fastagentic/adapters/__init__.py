"""Framework adapters: run a framework's agent or graph as an agent endpoint.

    app.agent(pydantic_agent, name="support")          # the adapter is found for the object
    app.agent(LangGraphAdapter(graph), name="triage")  # or given, with its options

Importing this package imports no framework: ``PydanticAIAdapter``, ``LangGraphAdapter``,
``LangChainAdapter`` and ``OpenAIAgentsAdapter`` load their framework when first named, and need the
``fastagentic[pydantic-ai]``, ``[langgraph]``, ``[langchain]`` and ``[openai-agents]`` extras.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import events
from .base import Adapter, BaseAdapter, Interrupted, Schema, run_context
from .discovery import ENTRY_POINT_GROUP, adapter_for
from .simple import Event, Result, SimpleAdapter

if TYPE_CHECKING:
    from .crewai import CrewAIAdapter
    from .dspy import DSPyAdapter
    from .langchain import LangChainAdapter
    from .langgraph import LangGraphAdapter
    from .llamaindex import LlamaIndexAdapter
    from .openai_agents import OpenAIAgentsAdapter
    from .pydantic_ai import PydanticAIAdapter
    from .semantic_kernel import SemanticKernelAdapter

__all__ = [
    "ENTRY_POINT_GROUP",
    "Adapter",
    "BaseAdapter",
    "CrewAIAdapter",
    "DSPyAdapter",
    "Event",
    "Interrupted",
    "LangChainAdapter",
    "LangGraphAdapter",
    "LlamaIndexAdapter",
    "OpenAIAgentsAdapter",
    "PydanticAIAdapter",
    "Result",
    "Schema",
    "SemanticKernelAdapter",
    "SimpleAdapter",
    "adapter_for",
    "events",
    "run_context",
]

_LAZY = {
    "PydanticAIAdapter": ".pydantic_ai",
    "LangGraphAdapter": ".langgraph",
    "LangChainAdapter": ".langchain",
    "OpenAIAgentsAdapter": ".openai_agents",
    "LlamaIndexAdapter": ".llamaindex",
    "DSPyAdapter": ".dspy",
    "CrewAIAdapter": ".crewai",
    "SemanticKernelAdapter": ".semantic_kernel",
}


def __getattr__(name: str) -> Any:
    # The framework adapters import their framework: only when asked for.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
