"""CrewAI: a ``Crew`` as an agent endpoint (extra ``fastagentic[crewai]``, installed in the worker's own
environment: crewai's pins cannot sit beside the gateway's, see docs/adapters/crewai.md).

The crew runs once with ``crew.akickoff(inputs)``. What CrewAI emits on its event bus while it runs is read
through a stream sink scoped to the run (``crewai.events.stream_context``: called in the emitting thread,
in emission order, only for this run's events) and mapped as it comes: each task is a ``node_enter`` /
``node_exit`` pair (node ``task:<name>``, step its 1-based position in the crew) and, inside it, each agent
execution another (``agent:<role>``, same step); each LLM call is ``llm_start``, ``token`` events (when the
LLM streams), ``message`` (the LLM's reply, CrewAI's ReAct text included) and ``llm_end`` with the usage the
LLM reported on its ``LLMCallCompletedEvent``; each tool use is a ``tool_call`` / ``tool_result`` pair, a
tool's error its ``error`` (CrewAI shows it to the agent and goes on). The input is the crew's
interpolation placeholders (``{topic}`` in task descriptions and agents' role, goal and backstory), each a
string; the output is the final task's ``output_pydantic`` model when it has one, else the crew's raw text.

Central tool checks: the adapter wraps ``_run`` of every tool of the crew's agents and tasks (in place,
once; outside a FastAgentic run the wrapper calls the tool as before), so each call goes through the run's
``check_tool_call`` and its result through ``check_tool_result`` before CrewAI shows it to the agent.
CrewAI runs an agent (its LLM calls and tools) in a worker thread: the checks run on the run's event loop
while the thread waits. A refused call never runs: it raises ``ToolRejected``, which CrewAI shows the agent
as the tool's error (and the run's ``tool_result`` carries). The checks' call id is the run's own
(``<run>:<attempt>:tool-<n>``): CrewAI does not hand a tool an id.

Cancellation: the run's task is cancelled at once; CrewAI's worker thread cannot be interrupted, so the LLM
call or tool it is in finishes, and the next event the crew emits (an LLM call, a tool use, a task) raises
``CancelledError`` in that thread, which ends the crew. No checkpoints: a new attempt runs the crew again.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import pydantic
from crewai import Crew
from crewai.events.stream_context import add_stream_sink, reset_stream_sinks
from crewai.events.types.agent_events import (
    AgentExecutionCompletedEvent,
    AgentExecutionErrorEvent,
    AgentExecutionStartedEvent,
)
from crewai.events.types.llm_events import (
    LLMCallCompletedEvent,
    LLMCallFailedEvent,
    LLMCallStartedEvent,
    LLMStreamChunkEvent,
)
from crewai.events.types.task_events import TaskCompletedEvent, TaskFailedEvent, TaskStartedEvent
from crewai.events.types.tool_usage_events import (
    ToolUsageErrorEvent,
    ToolUsageFinishedEvent,
    ToolUsageStartedEvent,
)
from crewai.tools.base_tool import BaseTool

from ..context import RunContext
from . import events
from .base import BaseAdapter, _current
from .guard import checked_in_thread

__all__ = ["CrewAIAdapter", "placeholders"]

_END: Any = object()
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_\-]*)\}")


def placeholders(crew: Crew) -> list[str]:
    """The interpolation placeholders of ``crew`` (``{topic}``), in order of first appearance: those of each
    task's description and expected output, and of each agent's role, goal and backstory."""

    def written(obj: Any, key: str) -> str:  # as written: a kickoff interpolates in place, keeping these
        return str(getattr(obj, f"_original_{key}", None) or getattr(obj, key, "") or "")

    texts = [written(task, key) for task in crew.tasks for key in ("description", "expected_output")]
    texts += [written(agent, key) for agent in crew.agents for key in ("role", "goal", "backstory")]
    found: dict[str, None] = {}
    for text in texts:
        for name in _PLACEHOLDER.findall(text):
            found.setdefault(name, None)
    return list(found)


def _input_model(name: str, names: list[str]) -> type[pydantic.BaseModel]:
    fields: dict[str, Any] = {key: (str, ...) for key in names}
    return pydantic.create_model(name, __config__=pydantic.ConfigDict(extra="forbid"), **fields)


@dataclass
class _Run:
    """What one run's sink reported (``queue``, in emission order) and what is open."""

    loop: asyncio.AbstractEventLoop
    tasks: list[Any]
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    models: dict[str, str] = field(default_factory=dict)  # open LLM calls: call id -> model
    tools: dict[str, str] = field(default_factory=dict)  # open tool uses: started event id -> name
    nodes: list[tuple[str, int | None]] = field(default_factory=list)  # open tasks and agents, in order

    def put(self, item: Any) -> None:
        # Always through the loop's ready queue: events from the loop thread and from CrewAI's worker
        # threads then keep the order they were emitted in.
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def sink(self, source: Any, event: Any) -> None:
        if self.cancelled.is_set():  # the run was cancelled: end the crew's thread at its next event
            raise asyncio.CancelledError("the FastAgentic run was cancelled")
        self.put(event)

    def step(self, task: Any) -> int | None:
        for index, known in enumerate(self.tasks):
            if known is task:
                return index + 1
        return None


def _task_node(task: Any) -> str:
    name = getattr(task, "name", None) or (getattr(task, "description", "") or "task")[:60]
    return f"task:{name}"


def _agent_node(agent: Any) -> str:
    return f"agent:{getattr(agent, 'role', None) or type(agent).__name__}"


def _tokens(usage: Any) -> tuple[int | None, int | None]:
    if not isinstance(usage, dict):
        return None, None
    for given, taken in (("prompt_tokens", "completion_tokens"), ("input_tokens", "output_tokens")):
        a, b = usage.get(given), usage.get(taken)
        if isinstance(a, int) or isinstance(b, int):
            return (a if isinstance(a, int) else None), (b if isinstance(b, int) else None)
    return None, None


def _error(value: Any) -> dict[str, str] | BaseException:
    if isinstance(value, BaseException):
        return value
    return {"type": "ToolError", "message": str(value)}


async def _translate(event: Any, run: _Run, ctx: RunContext) -> None:
    if isinstance(event, TaskStartedEvent):
        node = (_task_node(event.task), run.step(event.task))
        run.nodes.append(node)
        await events.node_enter(ctx, *node)
    elif isinstance(event, TaskCompletedEvent | TaskFailedEvent):
        node = (_task_node(event.task), run.step(event.task))
        failed = None
        if isinstance(event, TaskFailedEvent):  # CrewAI reports the exception's class and message
            kind = getattr(event.error_type, "__name__", None) or "TaskFailed"
            failed = {"type": kind, "message": str(event.error)}
        await _close_node(run, ctx, node, failed)
    elif isinstance(event, AgentExecutionStartedEvent):
        node = (_agent_node(event.agent), run.step(event.task))
        run.nodes.append(node)
        await events.node_enter(ctx, *node)
    elif isinstance(event, AgentExecutionCompletedEvent | AgentExecutionErrorEvent):
        node = (_agent_node(event.agent), run.step(event.task))
        failed = None
        if isinstance(event, AgentExecutionErrorEvent):  # CrewAI reports the message only
            failed = {"type": "AgentExecutionError", "message": str(event.error)}
        await _close_node(run, ctx, node, failed)
    elif isinstance(event, LLMCallStartedEvent):
        model = str(event.model or "")
        run.models[event.call_id] = model
        await events.llm_start(ctx, model)
    elif isinstance(event, LLMStreamChunkEvent):
        if event.call_id in run.models and event.chunk and event.tool_call is None:
            await ctx.token(event.chunk)
    elif isinstance(event, LLMCallCompletedEvent):
        if event.call_id not in run.models:
            return
        model = run.models.pop(event.call_id)
        if isinstance(event.response, str) and event.response:
            await events.message(ctx, event.response)
        await events.llm_end(ctx, model, *_tokens(event.usage))
    elif isinstance(event, LLMCallFailedEvent):
        if event.call_id in run.models:
            await events.llm_end(ctx, run.models.pop(event.call_id))
    elif isinstance(event, ToolUsageStartedEvent):
        run.tools[event.event_id] = event.tool_name
        await events.tool_call(ctx, event.event_id, event.tool_name, _arguments(event.tool_args))
    elif isinstance(event, ToolUsageFinishedEvent | ToolUsageErrorEvent):
        call_id = _started(run, event)
        if call_id is None:
            return
        name = run.tools.pop(call_id)
        if isinstance(event, ToolUsageErrorEvent):
            await events.tool_result(ctx, call_id, name, error=_error(event.error))
        elif event.failure is not None:
            failure = event.failure
            message = str(getattr(failure, "message", "") or failure)
            await events.tool_result(ctx, call_id, name, error={"type": "ToolError", "message": message})
        else:
            await events.tool_result(ctx, call_id, name, event.output)


def _arguments(given: Any) -> Any:
    """A tool use's arguments: CrewAI gives the model's JSON text (ReAct) or a dict."""
    if isinstance(given, str):
        try:
            return json.loads(given)
        except ValueError:
            return given
    return given


def _started(run: _Run, event: Any) -> str | None:
    """The open tool use ``event`` ends: the one CrewAI paired it with, else the oldest of its tool."""
    if event.started_event_id in run.tools:
        return str(event.started_event_id)
    return next((key for key, name in run.tools.items() if name == event.tool_name), None)


async def _close_node(
    run: _Run, ctx: RunContext, node: tuple[str, int | None], error: dict[str, str] | None
) -> None:
    if node not in run.nodes:
        return
    run.nodes.remove(node)
    if error is None:
        await events.node_exit(ctx, *node)
        return
    name, step = node  # events.node_exit's shape, with the error CrewAI reported as data
    data: dict[str, Any] = {"node": name} if step is None else {"node": name, "step": step}
    await ctx.emit("node_exit", {**data, "error": error})


async def _close_all(run: _Run, ctx: RunContext, error: BaseException) -> None:
    """The run failed: what the sink reported before is mapped, and what is left open ends with the error."""
    while not run.queue.empty():
        item = run.queue.get_nowait()
        if item is not _END:
            await _translate(item, run, ctx)
    for call_id, name in list(run.tools.items()):
        await events.tool_result(ctx, call_id, name, error=error)
    run.tools.clear()
    for model in list(run.models.values()):
        await events.llm_end(ctx, model)
    run.models.clear()
    for node in reversed(run.nodes):
        await events.node_exit(ctx, *node, error=error)
    run.nodes.clear()


class CrewAIAdapter(BaseAdapter):
    """Runs a CrewAI ``Crew`` (``crew.akickoff``). Input: the crew's interpolation placeholders, strings;
    output: the final task's ``output_pydantic`` model, or the crew's raw text.

    Runs of one adapter are served one at a time (a ``Crew`` keeps its run's state on itself: task outputs,
    usage metrics); serve concurrent runs with more workers."""

    def __init__(self, crew: Crew, *, name: str | None = None, description: str | None = None) -> None:
        if not isinstance(crew, Crew):
            raise TypeError(f"CrewAIAdapter runs a crewai.Crew, not {type(crew).__name__}")
        self.crew = crew
        _guard_tools(crew)
        given = crew.name if crew.name and crew.name != "crew" else None
        self.name = name or given
        if description is not None:
            self.description = description
        else:
            self.description = "; ".join(task.description.strip() for task in crew.tasks if task.description)
        label = "".join(part.capitalize() for part in re.split(r"\W+", self.name or "crew") if part)
        self.input_type = _input_model(f"{label}Input", placeholders(crew))
        final = crew.tasks[-1] if crew.tasks else None
        output = getattr(final, "output_pydantic", None)
        self.output_type = output if isinstance(output, type) else str
        self._lock = asyncio.Lock()

    @classmethod
    def accepts(cls, obj: object) -> bool:
        return isinstance(obj, Crew)

    async def run(self, input: pydantic.BaseModel, ctx: RunContext) -> Any:
        inputs = input.model_dump()
        async with self._lock:
            return await self._run(inputs, ctx)

    async def _run(self, inputs: dict[str, Any], ctx: RunContext) -> Any:
        run = _Run(asyncio.get_running_loop(), list(self.crew.tasks))

        async def work() -> Any:
            try:
                return await self.crew.akickoff(inputs=inputs)
            finally:
                run.put(_END)

        token = add_stream_sink(run.sink)
        loop_token = _loop.set(run.loop)
        try:
            task = asyncio.ensure_future(work())  # the task copies the context: the sink goes along
        finally:
            _loop.reset(loop_token)
            reset_stream_sinks(token)
        try:
            while (item := await run.queue.get()) is not _END:
                await _translate(item, run, ctx)
            output = await task
        except asyncio.CancelledError:
            run.cancelled.set()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        except Exception as exc:
            await _close_all(run, ctx, exc)
            raise
        if self.output_type is not str and getattr(output, "pydantic", None) is not None:
            return output.pydantic
        return output.raw


#: The run's event loop, for the checks of a tool called from CrewAI's worker thread.
_loop: ContextVar[asyncio.AbstractEventLoop | None] = ContextVar("fastagentic_crewai_loop", default=None)


def _guard_tools(crew: Crew) -> None:
    """Wrap ``_run`` of every tool of the crew's agents and tasks, once."""
    tools: list[Any] = []
    for agent in crew.agents:
        tools += list(getattr(agent, "tools", None) or [])
    for task in crew.tasks:
        tools += list(getattr(task, "tools", None) or [])
    for tool in tools:
        original = getattr(tool, "_run", None)
        if (
            isinstance(tool, BaseTool)
            and callable(original)
            and not getattr(original, "__fastagentic_guarded__", False)
        ):
            # An instance attribute shadows the class's method; pydantic would refuse an undeclared private.
            object.__setattr__(tool, "_run", _guarded_run(tool.name, original))


def _guarded_run(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **arguments: Any) -> Any:
        ctx = _current.get()
        if ctx is None or args:  # not in a FastAgentic run (or a positional call the checks cannot name)
            return original(*args, **arguments)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            raise RuntimeError(
                f"tool {name!r}: CrewAI called it on the event loop; its checks cannot run there"
            )
        return checked_in_thread(ctx, _loop.get(), name, original, arguments)

    run.__fastagentic_guarded__ = True  # type: ignore[attr-defined]
    return run
