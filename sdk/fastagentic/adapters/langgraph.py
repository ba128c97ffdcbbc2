"""LangGraph: a compiled graph as an agent endpoint (extra ``fastagentic[langgraph]``).

The graph runs under LangChain's event stream (``astream_events``, version 2), which reports in one ordered
stream what the adapter maps: each node's run as ``node_enter`` / ``node_exit``, each chat model call as
``llm_start``, its streamed text as ``token`` events, its reply as ``message`` and its usage as ``llm_end``,
each tool run as ``tool_call`` / ``tool_result``. The graph is compiled with a checkpointer backed by
FastAgentic's durable checkpoints (``RunCheckpointSaver``): after a lost worker, the next attempt resumes
at the superstep after the last checkpoint. An ``interrupt()`` in a node is the run's interrupt
(``ctx.interrupt``, id ``langgraph-<its id>``): the run waits for the answer, then the graph goes on with
``Command(resume=answer)``; handed back and answered, a new attempt resumes from the checkpoint and meets
the interrupt again, which returns the answer at once.

Central tool checks: the tools of the graph's ``ToolNode`` s (a ``create_agent`` agent's, a
``create_react_agent``'s, your own) are replaced, in place and once, with ``GuardedTool`` s that put each
call through the run's ``check_tool_call`` and its output through ``check_tool_result`` (outside a
FastAgentic run they call the tool as before). A refused call never runs: the model gets an error
``ToolMessage`` saying why, and the run's ``tool_result`` says which hook refused it. Tools a node calls
by itself are not in a ``ToolNode``: call them through ``run_context().tool(fn, **args)``.
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.types import Command

from ..context import RunContext
from . import events
from ._langchain_stream import Translation, any_of, close_all, guard_tools, json_schema, stream
from .base import BaseAdapter, Interrupted, Schema
from .langgraph_saver import RunCheckpointSaver

__all__ = ["LangGraphAdapter"]

log = logging.getLogger("fastagentic.adapters.langgraph")

DEFAULT_GRAPH_NAME = "LangGraph"  # what LangGraph names a graph compiled without a name


class LangGraphAdapter(BaseAdapter):
    """Runs a compiled LangGraph graph. Input and output schemas are the graph's own
    (``get_input_jsonschema`` / ``get_output_jsonschema``).

    ``config``: a RunnableConfig merged into each run's (``recursion_limit``, ``configurable`` values); the
    run's ``thread_id`` is its run id. ``checkpoints``: compile the graph with FastAgentic's checkpointer
    (default True; False keeps the graph's own checkpointer, if any). ``durability``: LangGraph's
    (``"sync"``, ``"async"``, ``"exit"``; None keeps LangGraph's default)."""

    def __init__(
        self,
        graph: Any,
        *,
        name: str | None = None,
        description: str | None = None,
        config: Mapping[str, Any] | None = None,
        checkpoints: bool = True,
        durability: str | None = None,
    ) -> None:
        if isinstance(graph, StateGraph):
            raise TypeError("LangGraphAdapter runs a compiled graph: pass graph.compile()")
        if not isinstance(graph, Pregel):
            raise TypeError(f"LangGraphAdapter runs a compiled LangGraph graph, not {type(graph).__name__}")
        own_name = graph.name if graph.name != DEFAULT_GRAPH_NAME else None
        self.name = name if name is not None else own_name
        self.description = description if description is not None else ""
        self.input_type = Schema(
            any_of(json_schema(graph.get_input_jsonschema, {"type": "object"}, "graph's input", log))
        )
        self.output_type = Schema(json_schema(graph.get_output_jsonschema, {}, "graph's output", log))
        self.config = dict(config or {})
        self.durability = durability
        guard_tools(graph)
        self.saver = RunCheckpointSaver() if checkpoints else None
        self.graph: Pregel[Any, Any, Any, Any] = (
            graph.copy(update={"checkpointer": self.saver}) if self.saver is not None else graph
        )

    @classmethod
    def accepts(cls, obj: object) -> bool:
        return isinstance(obj, Pregel | StateGraph)

    def _config(self, ctx: RunContext) -> RunnableConfig:
        config: dict[str, Any] = dict(self.config)
        config["configurable"] = {**dict(config.get("configurable") or {}), "thread_id": ctx.run_id}
        return typing.cast(RunnableConfig, config)

    async def run(self, input: Any, ctx: RunContext) -> Any:
        resumed = self.saver.open(ctx) if self.saver is not None else False
        try:
            # Resumed: continue from the checkpoint (a graph that waited for input meets its interrupt
            # again, and ctx.interrupt returns the answer the run was given at once).
            graph_input: Any = None if resumed else input
            config = self._config(ctx)
            seen = await self._stream(graph_input, config, ctx)
            while seen.interrupts:
                # The graph paused in interrupt(): the run waits for the answers, then the node runs again.
                await close_all(seen, ctx, Interrupted("waiting for input"))
                answers: dict[str, Any] = {}
                for index, pending in enumerate(seen.interrupts):
                    graph_id = str(getattr(pending, "id", "") or index)
                    answers[graph_id] = await ctx.interrupt(
                        events.jsonable(getattr(pending, "value", pending)), id=_interrupt_id(graph_id)
                    )
                resume = next(iter(answers.values())) if len(answers) == 1 else answers
                seen = await self._stream(Command(resume=resume), config, ctx)
            if not seen.finished:
                state = await self.graph.aget_state(config)
                return events.jsonable(state.values)
            return events.jsonable(seen.output)
        finally:
            if self.saver is not None:
                self.saver.close(ctx)

    async def _stream(self, graph_input: Any, config: RunnableConfig, ctx: RunContext) -> Translation:
        options: dict[str, Any] = {}
        if self.durability is not None:
            options["durability"] = self.durability
        return await stream(self.graph, graph_input, config, ctx, **options)


def _interrupt_id(graph_id: str) -> str:
    """The run's interrupt id for a LangGraph interrupt (its id is stable across resumes)."""
    cleaned = "".join(c if c.isalnum() or c in "_.:-" else "_" for c in graph_id)
    return f"langgraph-{cleaned}"[:64]
