"""OpenAI Agents SDK: an ``agents.Agent`` as an agent endpoint (extra ``fastagentic[openai-agents]``).

The run is ``Runner.run_streamed(...)``, its ``stream_events()`` mapped as they come: each model response is
``llm_start`` (``response.created``), ``token`` events (``response.output_text.delta``), ``message`` and
``llm_end`` with the response's usage through ``ctx.usage`` (``response.completed``); each tool call and its
output are a ``tool_call`` / ``tool_result`` pair with the model's call id; a handoff is a ``handoff`` event
``{"id", "from", "to"}``. The output is the run's ``final_output`` (the last agent's ``output_type``). The
budget's model hint picks the run's model (``RunConfig.model``) when the run starts.

Central tool checks: the adapter wraps the ``on_invoke_tool`` of every ``FunctionTool`` of the agents a run
can reach (in place, once; outside a FastAgentic run the wrapper calls the tool as before), so each call
goes through the run's ``check_tool_call`` and its output through ``check_tool_result``. A refused call
never runs: its output, what the model sees, is the reason, and the run's ``tool_result`` says which hook
refused it (``{"error": {"type": "ToolRejected", ...}}``). Hosted tools (web search, code interpreter) run
at OpenAI and are not checked.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import msgspec
from agents import Agent, Runner
from agents.agent_output import AgentOutputSchemaBase
from agents.exceptions import AgentsException
from agents.items import HandoffOutputItem, ToolCallItem, ToolCallOutputItem
from agents.models.interface import Model
from agents.run_config import RunConfig
from agents.stream_events import AgentUpdatedStreamEvent, RawResponsesStreamEvent, RunItemStreamEvent
from agents.tool import FunctionTool
from agents.tool_context import ToolContext

from ..context import RunContext
from . import events
from .base import BaseAdapter, Schema, _current, hinted_model
from .guard import GuardedError, ToolRejected, guarded, note_refusal, refusals
from .shape import output_schema

__all__ = ["OpenAIAgentsAdapter", "Prompt"]


class Prompt(msgspec.Struct, forbid_unknown_fields=True):
    """The input of an OpenAI Agents SDK agent endpoint: the user prompt."""

    prompt: str


def _describable(annotation: Any) -> Any:
    """``annotation`` when the SDK can describe it as JSON Schema, else Any (an open output schema)."""
    try:
        output_schema(annotation)
    except TypeError:
        return Any
    return annotation


def _agents(start: Agent[Any]) -> list[Agent[Any]] | None:
    """Every agent a run of ``start`` can reach through handoffs; None when a handoff's agent cannot be
    known before the run (a ``Handoff`` object resolves its agent only when invoked)."""
    found: dict[int, Agent[Any]] = {}
    waiting = [start]
    while waiting:
        agent = waiting.pop()
        if id(agent) in found:
            continue
        found[id(agent)] = agent
        for target in agent.handoffs:
            if isinstance(target, Agent):
                waiting.append(target)
            else:
                return None
    return list(found.values())


def _output_annotation(agent: Agent[Any]) -> Any:
    """The Python type (or ``Schema``) of what a run of ``agent`` returns: the ``output_type`` of the agent
    that answers last, any of those its handoffs reach."""
    reachable = _agents(agent)
    if reachable is None:
        return Any
    kinds: list[Any] = []
    for one in reachable:
        spec = one.output_type
        if spec is None:
            kind: Any = str
        elif isinstance(spec, AgentOutputSchemaBase):
            kind = str if spec.is_plain_text() else Schema(spec.json_schema())
        else:
            kind = spec
        if kind not in kinds:
            kinds.append(kind)
    if len(kinds) == 1:
        return kinds[0] if isinstance(kinds[0], Schema) else _describable(kinds[0])
    if any(isinstance(kind, Schema) for kind in kinds):
        return Any
    return _describable(Union[tuple(kinds)])  # noqa: UP007 (built at run time)


def _model_name(model: Any) -> str:
    if isinstance(model, str):
        return model
    return str(getattr(model, "model", "") or getattr(model, "model_name", "") or "")


def _arguments(raw: Any) -> Any:
    text = raw.get("arguments") if isinstance(raw, Mapping) else getattr(raw, "arguments", None)
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return text


def _text_of(response: Any) -> str:
    parts: list[str] = []
    for item in getattr(response, "output", None) or []:
        if getattr(item, "type", None) == "message":
            contents = getattr(item, "content", None) or []
            parts.extend(str(c.text) for c in contents if getattr(c, "type", None) == "output_text")
    return "".join(parts)


@dataclass
class _Stream:
    """What one run's stream has opened and not yet closed."""

    agent: str
    model: str | None = None  # the model response in flight
    tools: dict[str, str] = field(default_factory=dict)  # open tool calls: call id -> tool name
    refused: dict[str, ToolRejected] = field(default_factory=dict)  # calls the guardrails refused


class OpenAIAgentsAdapter(BaseAdapter):
    """Runs an OpenAI Agents SDK ``Agent``. Input ``{"prompt": str}``; output the ``output_type`` of the agent
    that answers (through handoffs, any of them).

    ``context``: the run's context object, a value or a callable ``context(ctx) -> value``. ``run_config``:
    the SDK's ``RunConfig`` for each run (tracing, model provider, guardrails, ...). ``max_turns``: the SDK's
    (None: its default). ``models``: what a budget's model hint selects for the run, a mapping from hint to
    an SDK ``Model`` (or model name), or a callable returning one (None: keep the agents' models); by default
    the hint itself is the model name."""

    input_type = Prompt

    def __init__(
        self,
        agent: Agent[Any],
        *,
        name: str | None = None,
        description: str | None = None,
        context: Any = None,
        run_config: RunConfig | None = None,
        max_turns: int | None = None,
        models: Mapping[str, Model | str] | Callable[[str], Model | str | None] | None = None,
    ) -> None:
        if not isinstance(agent, Agent):
            raise TypeError(f"OpenAIAgentsAdapter runs an agents.Agent, not {type(agent).__name__}")
        self.agent = agent
        self.name = name if name is not None else agent.name
        own = agent.handoff_description or ""
        self.description = description if description is not None else own
        self.output_type = _output_annotation(agent)
        self.context = context
        self.run_config = run_config
        self.max_turns = max_turns
        self.models = models
        _guard_tools(agent)

    @classmethod
    def accepts(cls, obj: object) -> bool:
        return isinstance(obj, Agent)

    def _hinted_model(self, hint: str) -> Model | str | None:
        return hinted_model(self.models, hint)

    def _config(self, ctx: RunContext) -> RunConfig | None:
        hinted = self._hinted_model(ctx.model_hint)
        if hinted is None:
            return self.run_config
        return dataclasses.replace(self.run_config or RunConfig(), model=hinted)

    async def run(self, input: Prompt, ctx: RunContext) -> Any:
        context = self.context(ctx) if callable(self.context) else self.context
        options: dict[str, Any] = {"context": context, "run_config": self._config(ctx)}
        if self.max_turns is not None:
            options["max_turns"] = self.max_turns
        with refusals() as refused:  # the run's tasks start here: they note refused calls in it
            result = Runner.run_streamed(self.agent, input.prompt, **options)
        seen = _Stream(agent=self.agent.name, refused=refused)
        stream: AsyncIterator[Any] = result.stream_events()
        try:
            async for event in stream:
                await _translate(event, seen, ctx)
        except BaseException as exc:
            if not result.is_complete:
                result.cancel()  # stops the run loop and the tool it runs, before the stream is closed
            if isinstance(exc, Exception):
                error = _cause(exc, seen)
                await _close_all(seen, ctx, error)
                if error is not exc:
                    raise error from exc
            raise
        finally:
            await typing.cast(Any, stream).aclose()
        return result.final_output


class _GuardedInvoker:
    """A ``FunctionTool``'s ``on_invoke_tool`` under the run's tool checks; everything else (the SDK's
    argument preparation, its markers) is the wrapped invoker's."""

    def __init__(self, inner: Any, name: str) -> None:
        self._inner = inner
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._inner, attribute)

    def __agents_bind_function_tool__(self, tool: FunctionTool) -> _GuardedInvoker:
        # A copied tool (Agent.clone, dataclasses.replace) keeps its checks.
        bind = getattr(self._inner, "__agents_bind_function_tool__", None)
        return _GuardedInvoker(bind(tool) if callable(bind) else self._inner, tool.name)

    async def __call__(self, tool_context: ToolContext[Any], input: str) -> Any:
        ctx = _current.get()
        if ctx is None:  # not in a FastAgentic run
            return await self._inner(tool_context, input)
        try:
            parsed = json.loads(input) if input else {}
        except ValueError:
            parsed = input
        wrapped = not isinstance(parsed, dict)
        arguments: dict[str, Any] = {"input": parsed} if wrapped else parsed

        async def invoke(checked: dict[str, Any]) -> Any:
            value = checked.get("input") if wrapped else checked
            text = value if isinstance(value, str) and wrapped else json.dumps(events.jsonable(value))
            return await self._inner(tool_context, text)

        call_id = str(getattr(tool_context, "tool_call_id", "") or "") or None
        try:
            return await guarded(ctx, self._name, arguments, invoke, id=call_id)
        except ToolRejected as exc:
            # What the model sees is why; the run's tool_result says a hook refused it.
            if call_id is not None:
                note_refusal(call_id, exc)
            return str(exc)
        except GuardedError as exc:
            return str(exc)


def _guard_tools(agent: Agent[Any]) -> None:
    """Wrap the function tools of ``agent`` and of the agents its handoffs name (once)."""
    seen: set[int] = set()
    waiting = [agent]
    while waiting:
        one = waiting.pop()
        if id(one) in seen:
            continue
        seen.add(id(one))
        for tool in one.tools:
            if isinstance(tool, FunctionTool) and not isinstance(tool.on_invoke_tool, _GuardedInvoker):
                tool.on_invoke_tool = _GuardedInvoker(tool.on_invoke_tool, tool.name)
        for target in one.handoffs:
            found = target if isinstance(target, Agent) else getattr(target, "agent", None)
            if isinstance(found, Agent):
                waiting.append(found)


def _cause(error: Exception, seen: _Stream) -> Exception:
    """A tool's own exception, when the SDK wrapped it (``UserError("Error running tool ...")``)."""
    cause = error.__cause__
    if seen.tools and isinstance(error, AgentsException) and isinstance(cause, Exception):
        return cause
    return error


async def _translate(event: Any, seen: _Stream, ctx: RunContext) -> None:
    if isinstance(event, RawResponsesStreamEvent):
        data: Any = event.data  # one of the Responses API's stream events
        kind = getattr(data, "type", "")
        if kind == "response.created":
            seen.model = _model_name(getattr(data.response, "model", None)) or seen.agent
            await events.llm_start(ctx, seen.model)
        elif kind == "response.output_text.delta":
            if data.delta:
                await ctx.token(data.delta)
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            response = data.response
            text = _text_of(response)
            if text:
                await events.message(ctx, text)
            usage = getattr(response, "usage", None)
            model = _model_name(getattr(response, "model", None)) or seen.model or seen.agent
            if usage is not None:
                await events.llm_end(ctx, model, usage.input_tokens, usage.output_tokens)
            else:
                await events.llm_end(ctx, model)
            seen.model = None
    elif isinstance(event, RunItemStreamEvent):
        item = event.item
        if event.name == "tool_called" and isinstance(item, ToolCallItem):
            call_id = str(item.call_id or getattr(item.raw_item, "id", "") or f"call_{len(seen.tools)}")
            name = str(item.tool_name or getattr(item.raw_item, "type", "") or "tool")
            seen.tools[call_id] = name
            await events.tool_call(ctx, call_id, name, _arguments(item.raw_item))
        elif event.name == "tool_output" and isinstance(item, ToolCallOutputItem):
            answered = str(item.call_id or "")
            if answered in seen.tools:
                refusal = seen.refused.pop(answered, None)
                if refusal is not None:
                    await events.tool_result(ctx, answered, seen.tools.pop(answered), error=refusal)
                else:
                    await events.tool_result(ctx, answered, seen.tools.pop(answered), item.output)
        elif event.name == "handoff_occured" and isinstance(item, HandoffOutputItem):
            raw: Any = item.raw_item
            handoff_id = raw.get("call_id") if isinstance(raw, Mapping) else getattr(raw, "call_id", None)
            await ctx.emit(
                "handoff",
                {"id": str(handoff_id or ""), "from": item.source_agent.name, "to": item.target_agent.name},
            )
    elif isinstance(event, AgentUpdatedStreamEvent):
        seen.agent = event.new_agent.name


async def _close_all(seen: _Stream, ctx: RunContext, error: BaseException) -> None:
    """The run failed: the tool calls and the model response it left open end with the error."""
    for call_id, name in list(seen.tools.items()):
        await events.tool_result(ctx, call_id, name, error=error)
    seen.tools.clear()
    if seen.model is not None:
        await events.llm_end(ctx, seen.model)
        seen.model = None
