"""LangChain: a ``create_agent`` agent, a chain or a chat model as an agent endpoint (extra
``fastagentic[langchain]``).

A LangChain 1.x agent (``langchain.agents.create_agent``) is a compiled LangGraph graph, so it runs as the
LangGraph adapter runs graphs (``LangGraphAdapter``, the same event stream and the same durable
checkpointer): its ``model`` and ``tools`` nodes as ``node_enter`` / ``node_exit``, each model call as
``llm_start`` / ``token`` / ``message`` / ``llm_end`` (usage from ``usage_metadata``), each tool run as
``tool_call`` / ``tool_result`` with the model's tool call id, and a checkpoint after each step so a run
whose worker died resumes at its next step. Its output is the agent's final state, ``structured_response``
included (typed in the output schema by the agent's ``response_format``).

Any other runnable (an LCEL chain, a chat model) runs once under the same event stream
(``astream_events``, version 2); its input and output schemas are its own.
"""

from __future__ import annotations

import copy
import logging
import typing
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessageChunk, message_chunk_to_message
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from ..context import RunContext
from . import events
from ._langchain_stream import any_of, json_schema, stream
from .base import BaseAdapter, Schema
from .langgraph import LangGraphAdapter

__all__ = ["LangChainAdapter", "is_agent"]

log = logging.getLogger("fastagentic.adapters.langchain")

#: How ``create_agent`` marks the graphs it builds (in the compiled graph's config metadata).
AGENT_MARK = "langchain_create_agent"
_UNSET: Any = object()
_STRATEGIES = ("ToolStrategy", "ProviderStrategy", "AutoStrategy")


def is_agent(obj: object) -> bool:
    """True for a graph ``langchain.agents.create_agent`` built."""
    if not isinstance(obj, Pregel):
        return False
    metadata = (obj.config or {}).get("metadata") or {}
    return isinstance(metadata, Mapping) and metadata.get("ls_integration") == AGENT_MARK


def _response_format(agent: Pregel[Any, Any, Any, Any]) -> Any:
    """The schema of the ``response_format`` the agent was created with, or None. ``create_agent`` keeps it
    only in its model node's closure: this looks there (best effort; pass ``response_format=`` to be sure)."""
    node = getattr(agent, "nodes", {}).get("model")
    bound = getattr(node, "bound", None)
    for attribute in ("afunc", "func"):
        function = getattr(bound, attribute, None)
        for cell in getattr(function, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if type(value).__name__ in _STRATEGIES and hasattr(value, "schema"):
                return value.schema
    return None


def _typed_output(schema: dict[str, Any], response_format: Any) -> dict[str, Any]:
    """The agent's output schema with ``structured_response`` described by ``response_format`` (a type
    pydantic describes, or a JSON Schema dict); unchanged when that cannot be done."""
    properties = schema.get("properties")
    if response_format is None or not isinstance(properties, dict) or "structured_response" not in properties:
        return schema
    if isinstance(response_format, dict):
        described: dict[str, Any] = dict(response_format)
    else:
        try:
            from pydantic import TypeAdapter  # LangChain depends on pydantic

            described = TypeAdapter(response_format).json_schema()
        except Exception as exc:
            log.warning(
                "the agent's response_format cannot be described (%s): structured_response untyped", exc
            )
            return schema
    typed = copy.deepcopy(schema)
    definitions = typed.setdefault("$defs", {})
    for name, definition in (described.pop("$defs", None) or {}).items():
        if name in definitions and definitions[name] != definition:
            log.warning("the agent's response_format reuses the name %r: structured_response untyped", name)
            return schema
        definitions[name] = definition
    typed["properties"]["structured_response"] = described
    return typed


class LangChainAdapter(BaseAdapter):
    """Runs a LangChain agent (``create_agent``) or any other runnable (a chain, a chat model).

    An agent (any compiled graph, in fact) runs through ``LangGraphAdapter`` with ``config``, ``checkpoints``
    and ``durability`` as there; ``response_format`` (default: the agent's own, when it can be found) types
    ``structured_response`` in the output schema. Another runnable gets ``config`` merged into each run's
    RunnableConfig; it has no steps to checkpoint (a retried run runs it again)."""

    def __init__(
        self,
        runnable: Any,
        *,
        name: str | None = None,
        description: str | None = None,
        config: Mapping[str, Any] | None = None,
        checkpoints: bool = True,
        durability: str | None = None,
        response_format: Any = _UNSET,
    ) -> None:
        if isinstance(runnable, StateGraph):
            raise TypeError("LangChainAdapter runs a compiled graph: pass graph.compile()")
        if not isinstance(runnable, Runnable):
            raise TypeError(
                f"LangChainAdapter runs a LangChain agent or runnable, not {type(runnable).__name__}"
            )
        self.runnable = runnable
        self.config = dict(config or {})
        self.graph: LangGraphAdapter | None = None
        if isinstance(runnable, Pregel):
            self.graph = LangGraphAdapter(
                runnable,
                name=name,
                description=description,
                config=config,
                checkpoints=checkpoints,
                durability=durability,
            )
            self.name = self.graph.name
            self.description = self.graph.description
            self.input_type = self.graph.input_type
            fmt = _response_format(runnable) if response_format is _UNSET else response_format
            output = self.graph.output_type
            self.output_type = Schema(_typed_output(output.json_schema, fmt)) if fmt is not None else output
            return
        own_name = getattr(runnable, "name", None)  # set by the user (Runnable.name), else None
        self.name = name if name is not None else own_name
        self.description = description if description is not None else ""
        self.input_type = Schema(
            any_of(json_schema(runnable.get_input_jsonschema, {}, "runnable's input", log))
        )
        self.output_type = Schema(json_schema(runnable.get_output_jsonschema, {}, "runnable's output", log))

    @classmethod
    def accepts(cls, obj: object) -> bool:
        # A graph create_agent built; any other graph is LangGraphAdapter's. Any other runnable.
        if isinstance(obj, Pregel):
            return is_agent(obj)
        return isinstance(obj, Runnable)

    async def run(self, input: Any, ctx: RunContext) -> Any:
        if self.graph is not None:
            return await self.graph.run(input, ctx)
        config = typing.cast(RunnableConfig, dict(self.config))
        seen = await stream(self.runnable, input, config, ctx)
        output = seen.output
        if isinstance(output, BaseMessageChunk):  # a streamed chat model's reply: the message it adds up to
            output = message_chunk_to_message(output)
        return events.jsonable(output)
