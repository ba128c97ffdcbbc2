"""LangChain's event stream (``astream_events``, version 2) as FastAgentic events: the machinery the LangGraph
and LangChain adapters share (extras ``fastagentic[langgraph]`` / ``fastagentic[langchain]``).

Any LangChain runnable (a compiled graph, a ``create_agent`` agent, a chain, a chat model) reports in one
ordered stream what is mapped here: each graph node's run as ``node_enter`` / ``node_exit``, each chat model
call as ``llm_start``, its streamed text as ``token`` events, its reply as ``message`` and its usage as
``llm_end``, each tool run as ``tool_call`` / ``tool_result``. The output is what the root run returned.

Central tool checks: ``guard_tools`` replaces the tools of a graph's ``ToolNode`` s with ``GuardedTool`` s,
which put each call through the run's ``check_tool_call`` before LangChain reports it started (the
``tool_call`` event carries the arguments the tool runs with) and its output through ``check_tool_result``
before LangChain reports it ended (the ``tool_result`` event, and the ``ToolMessage`` the model sees, carry
what the hooks left). A refused call never runs: its ``ToolMessage`` is an error whose content is the reason.
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool, ToolException
from langchain_core.tools.base import _get_runnable_config_param, _signature_parameters
from pydantic import ConfigDict

from ..context import RunContext
from ..hooks import ToolCall
from . import events
from .base import _current
from .guard import GuardedError, ToolRejected, note_refusal, refusals, run_checked

__all__ = [
    "GuardedTool",
    "Translation",
    "any_of",
    "guard_tools",
    "json_schema",
    "single",
    "stream",
    "text_of",
    "usage_of",
]


def json_schema(
    method: Callable[[], Any], fallback: dict[str, Any], what: str, log: logging.Logger
) -> dict[str, Any]:
    """The JSON Schema ``method`` (``get_input_jsonschema``, ...) gives, else ``fallback`` (logged)."""
    try:
        schema = method()
    except Exception as exc:  # a state type pydantic cannot describe (typing.TypedDict on Python 3.11)
        log.warning("the %s schema cannot be generated (%s); publishing %s", what, exc, fallback)
        return fallback
    return schema if isinstance(schema, dict) else fallback


def any_of(schema: Any) -> Any:
    """``schema`` with every ``oneOf`` an ``anyOf``. Pydantic writes discriminated unions (LangChain's
    messages among them) as ``oneOf``, but their discriminator is a function JSON Schema cannot express: an
    object that leaves the discriminator out (``{"role": "user", "content": ...}``, which LangChain coerces
    to a message) matches several branches and a strict validator would refuse it."""
    if isinstance(schema, dict):
        return {("anyOf" if key == "oneOf" else key): any_of(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [any_of(item) for item in schema]
    return schema


def text_of(content: Any) -> str:
    """The text of a message's content: a str, or a list of str and content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif (
                isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
            ):
                parts.append(block["text"])
        return "".join(parts)
    return ""


def usage_of(message: Any) -> tuple[int | None, int | None]:
    usage = getattr(message, "usage_metadata", None)
    if not usage:
        return None, None
    return usage.get("input_tokens"), usage.get("output_tokens")


def single(error: BaseException) -> BaseException:
    """The one error inside (nested) exception groups of one error; else ``error``."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


@dataclass
class _Tool:
    id: str
    name: str
    parents: list[str]


@dataclass
class Translation:
    """What one run's event stream has opened and not yet closed, and what it found."""

    nodes: dict[str, tuple[str, int | None]] = field(default_factory=dict)  # run id -> (node, step)
    models: dict[str, str] = field(default_factory=dict)  # run id -> model name
    tools: dict[str, _Tool] = field(default_factory=dict)  # run id -> tool call
    requested: list[dict[str, Any]] = field(default_factory=list)  # tool calls models asked for, not yet run
    interrupts: list[Any] = field(default_factory=list)
    refused: dict[str, ToolRejected] = field(default_factory=dict)  # tool calls the guardrails refused
    output: Any = None
    finished: bool = False


async def stream(
    runnable: Runnable[Any, Any], value: Any, config: RunnableConfig, ctx: RunContext, **options: Any
) -> Translation:
    """Run ``runnable`` on ``value`` under ``astream_events`` (version 2), emitting what it reports to
    ``ctx``. A failure closes what the run opened with the error, then raises it (an exception group of one
    error unwrapped)."""
    seen = Translation()
    try:
        with refusals() as seen.refused:
            async for event in runnable.astream_events(value, config, version="v2", **options):
                await translate(event, seen, ctx)
    except Exception as exc:
        error = single(exc)
        await close_all(seen, ctx, error)
        if error is not exc:
            raise error from None
        raise
    return seen


async def translate(event: Mapping[str, Any], seen: Translation, ctx: RunContext) -> None:
    kind: str = event["event"]
    run_id: str = str(event["run_id"])
    data: Mapping[str, Any] = event.get("data") or {}
    metadata: Mapping[str, Any] = event.get("metadata") or {}
    root = not event.get("parent_ids")
    if kind == "on_chain_start":
        if _is_node(event, metadata):
            _expect_tool_calls(seen, data.get("input"))
            step = metadata.get("langgraph_step")
            seen.nodes[run_id] = (str(event["name"]), step if isinstance(step, int) else None)
            await events.node_enter(ctx, *seen.nodes[run_id])
    elif kind == "on_chain_stream":
        chunk = data.get("chunk")
        if root and isinstance(chunk, dict) and "__interrupt__" in chunk:
            seen.interrupts.extend(chunk["__interrupt__"])
    elif kind == "on_chain_end":
        if run_id in seen.nodes:
            await _close_tools(seen, ctx, run_id, data.get("output"))
            await events.node_exit(ctx, *seen.nodes.pop(run_id))
    elif kind in ("on_chat_model_start", "on_llm_start"):
        model = str(metadata.get("ls_model_name") or event.get("name") or "")
        seen.models[run_id] = model
        await events.llm_start(ctx, model)
    elif kind in ("on_chat_model_stream", "on_llm_stream"):
        chunk = data.get("chunk")
        if kind == "on_chat_model_stream":
            text = text_of(getattr(chunk, "content", None))
        else:
            text = str(getattr(chunk, "text", None) or (chunk if isinstance(chunk, str) else "") or "")
        if text:
            await ctx.token(text)
    elif kind in ("on_chat_model_end", "on_llm_end"):
        output = data.get("output")
        model = seen.models.pop(run_id, str(event.get("name") or ""))
        if isinstance(output, BaseMessage):
            text = text_of(output.content)
            if text:
                await events.message(ctx, text)
            seen.requested.extend(getattr(output, "tool_calls", None) or [])
        await events.llm_end(ctx, model, *usage_of(output))
    elif kind == "on_tool_start":
        name = str(event.get("name") or "")
        arguments = data.get("input")
        own = metadata.get(CALL_ID_KEY)
        if isinstance(own, str) and own:
            call_id = own
            seen.requested = [call for call in seen.requested if call.get("id") != own]
        else:
            call_id = _requested_id(seen, name, arguments) or run_id
        seen.tools[run_id] = _Tool(call_id, name, [str(p) for p in event.get("parent_ids") or []])
        await events.tool_call(ctx, call_id, name, arguments)
    elif kind == "on_tool_end":
        tool = seen.tools.pop(run_id, None)
        if tool is not None:
            await _tool_result(ctx, tool, data.get("output"), seen)
    elif kind == "on_tool_error":
        tool = seen.tools.pop(run_id, None)
        error = data.get("error")
        if tool is not None:
            failure = (
                error if isinstance(error, BaseException) else {"type": "ToolError", "message": str(error)}
            )
            await events.tool_result(ctx, tool.id, tool.name, error=failure)
    if root and kind.endswith("_end"):
        # The root run ended (a graph, a chain, a chat model run on its own): its output is the run's.
        seen.output = data.get("output")
        seen.finished = True


def _is_node(event: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    """A node's own run (not a runnable inside it): named as the node, tagged with its graph step."""
    return event.get("name") == metadata.get("langgraph_node") and any(
        isinstance(tag, str) and tag.startswith("graph:step:") for tag in event.get("tags") or ()
    )


def _expect_tool_calls(seen: Translation, state: Any) -> None:
    """A node starts: the tool calls its input's last AI message asks for and no tool message answers yet are
    what its tool runs serve (a resumed run never saw the model ask for them)."""
    messages = state.get("messages") if isinstance(state, dict) else None
    if not isinstance(messages, list):
        return
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    asked = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
    known = {call.get("id") for call in seen.requested}
    for call in getattr(asked, "tool_calls", None) or []:
        if call.get("id") and call["id"] not in answered and call["id"] not in known:
            seen.requested.append(call)


def _requested_id(seen: Translation, name: str, arguments: Any) -> str | None:
    """The id of the tool call a model asked for that this tool run serves."""
    for index, call in enumerate(seen.requested):
        if call.get("name") == name and (not isinstance(arguments, dict) or call.get("args") == arguments):
            del seen.requested[index]
            return str(call.get("id") or "") or None
    return None


async def _tool_result(ctx: RunContext, tool: _Tool, output: Any, seen: Translation | None = None) -> None:
    refused = seen.refused.pop(tool.id, None) if seen is not None else None
    if refused is not None:
        await events.tool_result(ctx, tool.id, tool.name, error=refused)
        return
    if isinstance(output, ToolMessage):
        if output.status == "error":
            error = {"type": "ToolError", "message": text_of(output.content) or str(output.content)}
            await events.tool_result(ctx, tool.id, tool.name, error=error)
        else:
            await events.tool_result(ctx, tool.id, tool.name, output.content)
        return
    await events.tool_result(ctx, tool.id, tool.name, output)


async def _close_tools(seen: Translation, ctx: RunContext, node_run: str, output: Any) -> None:
    """Tool runs of a node that ended without reporting their end (a ToolNode turns a tool's exception into
    an error message): their result is the ToolMessage the node returned for them, if any."""
    answers: dict[str, ToolMessage] = {}
    messages = output.get("messages") if isinstance(output, dict) else None
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, ToolMessage):
            answers[message.tool_call_id] = message
    for run_id, tool in list(seen.tools.items()):
        if node_run in tool.parents:
            del seen.tools[run_id]
            answer = answers.get(tool.id)
            if answer is not None:
                await _tool_result(ctx, tool, answer, seen)
            else:
                await events.tool_result(
                    ctx, tool.id, tool.name, error={"type": "ToolError", "message": "the tool did not finish"}
                )


async def close_all(seen: Translation, ctx: RunContext, error: BaseException) -> None:
    """The run failed: what it opened ends with the error, innermost first, so the log stays balanced."""
    for tool in list(seen.tools.values()):
        await events.tool_result(ctx, tool.id, tool.name, error=error)
    seen.tools.clear()
    for model in list(seen.models.values()):
        await events.llm_end(ctx, model)
    seen.models.clear()
    for node, step in reversed(list(seen.nodes.values())):
        await events.node_exit(ctx, node, step, error=error)
    seen.nodes.clear()


# ------------------------------------------------------------------------------------ central tool checks


@dataclass(frozen=True)
class _Checked:
    """A tool call as the checks let it through (or refused), for the tool run that serves it."""

    call_id: str
    call: ToolCall | None
    refused: ToolRejected | None = None


#: The callback metadata key a GuardedTool's run carries its model tool call id under.
CALL_ID_KEY = "fastagentic_tool_call_id"

_checked: ContextVar[_Checked | None] = ContextVar("fastagentic_langchain_checked", default=None)


class GuardedTool(BaseTool):
    """A LangChain tool under the run's tool checks (outside a FastAgentic run, the tool itself): the same
    name, description, schema and error handling as ``inner``, whose own code runs inside."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseTool

    def __init__(self, inner: BaseTool) -> None:
        super().__init__(
            inner=inner,
            name=inner.name,
            description=inner.description,
            args_schema=inner.args_schema,
            return_direct=inner.return_direct,
            response_format=inner.response_format,
            handle_tool_error=inner.handle_tool_error,
            handle_validation_error=inner.handle_validation_error,
            metadata=inner.metadata,
            tags=inner.tags,
            extras=inner.extras,
        )

    @property
    def tool_call_schema(self) -> Any:
        return self.inner.tool_call_schema

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        ctx = _current.get()
        if ctx is None:
            return await self.inner.ainvoke(input, config, **kwargs)
        is_call = isinstance(input, dict) and input.get("type") == "tool_call" and "args" in input
        raw = input["args"] if is_call else input
        arguments = dict(raw) if isinstance(raw, dict) else {"input": raw}
        visible = self.inner._filter_injected_args(arguments)
        injected = {key: value for key, value in arguments.items() if key not in visible}
        call_id = (str(input.get("id") or "") or None) if is_call else None
        # The model's call id, for the run's tool_call event (the arguments may change below).
        if call_id is not None:
            metadata = {**dict((config or {}).get("metadata") or {}), CALL_ID_KEY: call_id}
            config = typing.cast(RunnableConfig, {**(config or {}), "metadata": metadata})
        try:
            call = await ctx.check_tool_call(self.name, visible, id=call_id)
        except ToolRejected as exc:
            # Reported as the tool's run (so the log pairs it with its call), answered with the reason.
            token = _checked.set(_Checked(call_id or "", None, exc))
            try:
                return await super().ainvoke(input, config, **kwargs)
            finally:
                _checked.reset(token)
        checked = {**call.arguments, **injected}
        if is_call:
            new_input: Any = {**input, "args": checked}
        elif isinstance(raw, dict):
            new_input = checked
        else:
            new_input = checked.get("input", raw)
        token = _checked.set(_Checked(call.id, call))
        try:
            return await super().ainvoke(new_input, config, **kwargs)
        finally:
            _checked.reset(token)

    async def _arun(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        checked = _checked.get()
        _checked.set(None)  # the inner tool's own tool runs (a tool calling tools) are checked anew
        ctx = _current.get()
        if ctx is None or checked is None:
            return await self._inner_arun(args, kwargs, config, run_manager)
        if checked.refused is not None:
            return self._refusal(checked.refused, checked.call_id)
        call = checked.call
        assert call is not None
        artifact: list[Any] = []

        async def invoke(arguments: dict[str, Any]) -> Any:
            result = await self._inner_arun(args, {**kwargs, **arguments}, config, run_manager)
            if (
                self.response_format == "content_and_artifact"
                and isinstance(result, tuple)
                and len(result) == 2
            ):
                artifact[:] = [result[1]]
                return result[0]
            return result

        try:
            result = await run_checked(ctx, call, invoke)
        except ToolRejected as exc:
            return self._refusal(exc, call.id)
        except GuardedError as exc:
            raise ToolException(str(exc)) from None
        if self.response_format == "content_and_artifact":
            return result, (artifact[0] if artifact else None)
        return result

    def _refusal(self, refusal: ToolRejected, call_id: str) -> Any:
        note_refusal(call_id, refusal)
        message = ToolMessage(content=str(refusal), name=self.name, tool_call_id=call_id, status="error")
        return (message, None) if self.response_format == "content_and_artifact" else message

    async def _inner_arun(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None,
    ) -> Any:
        inner = self.inner
        own = inner._run if type(inner)._arun is BaseTool._arun else inner._arun
        options = dict(kwargs)
        if _signature_parameters(own).get("run_manager"):
            options["run_manager"] = run_manager
        if config_param := _get_runnable_config_param(own):
            options[config_param] = config
        return await inner._arun(*args, **options)

    def _run(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        if _current.get() is not None:
            raise RuntimeError(
                f"tool {self.name!r} was called synchronously inside a FastAgentic run: its central checks "
                "need the async path (ainvoke)"
            )
        inner = self.inner
        options = dict(kwargs)
        if _signature_parameters(inner._run).get("run_manager"):
            options["run_manager"] = run_manager
        if config_param := _get_runnable_config_param(inner._run):
            options[config_param] = config
        return inner._run(*args, **options)


def guard_tools(graph: Any) -> int:
    """Replace the tools of every ``ToolNode`` of ``graph`` (and of its subgraphs) with ``GuardedTool`` s,
    in place and once; returns how many tools are guarded."""
    try:
        from langgraph.prebuilt import ToolNode
    except ImportError:  # pragma: no cover - langgraph is a dependency of both adapters
        return 0
    count = 0
    seen: set[int] = set()
    waiting = [graph]
    while waiting:
        one = waiting.pop()
        if id(one) in seen:
            continue
        seen.add(id(one))
        for node in (getattr(one, "nodes", None) or {}).values():
            bound = getattr(node, "bound", None)
            if isinstance(bound, ToolNode):
                tools = bound.tools_by_name
                for name, tool in list(tools.items()):
                    if not isinstance(tool, GuardedTool):
                        tools[name] = GuardedTool(tool)
                    count += 1
            elif bound is not None and hasattr(bound, "nodes") and hasattr(bound, "astream_events"):
                waiting.append(bound)  # a compiled subgraph as a node
    return count
