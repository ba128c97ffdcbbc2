"""LlamaIndex: an agent workflow, a chat engine or a query engine as an agent endpoint (extra
``fastagentic[llama-index]``).

An agent (``FunctionAgent``, ``ReActAgent``, ``CodeActAgent``) or a multi-agent ``AgentWorkflow`` runs with
``agent.run(user_msg=prompt)``, its ``stream_events()`` mapped as they come: each model call (``AgentInput``
... ``AgentOutput``) is ``llm_start``, ``token`` events (``AgentStream`` deltas), ``message`` and ``llm_end``
with the usage the LLM reported (read from LlamaIndex's instrumentation, ``LLMChatEndEvent``); each tool call
is a ``tool_call`` / ``tool_result`` pair with the model's tool call id. The output is the final response's
text, or the ``structured_response`` of an agent with ``output_cls``. Human in the loop: an
``InputRequiredEvent`` (a tool's ``ctx.wait_for_event(HumanResponseEvent, waiter_event=InputRequiredEvent(...))``)
is the run's interrupt (``ctx.interrupt``), and the answer goes back as a ``HumanResponseEvent``.

A chat engine (``astream_chat``) or a query engine (``aquery``) runs once; its model calls are mapped from
LlamaIndex's instrumentation events (``LLMChat*`` / ``LLMCompletion*``: start, streamed deltas, end with
usage). The output is the response text.

Central tool checks: the adapter wraps each agent tool's ``acall`` (in place, once; a plain function in
``tools`` becomes the ``FunctionTool`` LlamaIndex would make of it; outside a FastAgentic run the wrapper
calls the tool as before), so each call goes through the run's ``check_tool_call`` and its output through
``check_tool_result`` before the agent shows it to the model. A refused call never runs: the agent shows
the model the reason as the tool's error, and the run's ``tool_result`` says which hook refused it. The
checks' call id is the run's own (``<run>:<attempt>:tool-<n>``): LlamaIndex does not hand a tool the
model's. Tools a ``tool_retriever`` retrieves are not wrapped.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import msgspec
from llama_index.core.agent.workflow import (
    AgentInput,
    AgentOutput,
    AgentStream,
    AgentWorkflow,
    BaseWorkflowAgent,
    ToolCall,
    ToolCallResult,
)
from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.response.schema import AsyncStreamingResponse, StreamingResponse
from llama_index.core.chat_engine.types import BaseChatEngine
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionInProgressEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.tools import AsyncBaseTool, BaseTool, FunctionTool, ToolOutput, adapt_to_async_tool
from llama_index.core.workflow import Event, HumanResponseEvent, InputRequiredEvent

from ..context import RunContext
from . import events
from .base import BaseAdapter, _current
from .guard import guarded
from .shape import output_schema

__all__ = ["LlamaIndexAdapter", "Prompt", "human_response", "usage_of"]

_END: Any = object()


class Prompt(msgspec.Struct, forbid_unknown_fields=True):
    """The input of a LlamaIndex endpoint: the user message (an agent's, a chat engine's) or the query."""

    prompt: str


def usage_of(response: Any) -> tuple[int | None, int | None]:
    """Token counts a LlamaIndex ``ChatResponse`` / ``CompletionResponse`` carries: the provider
    integrations put them in ``additional_kwargs`` (``prompt_tokens`` / ``completion_tokens``, as the OpenAI
    LLM does) or leave them in ``raw["usage"]``; (None, None) when neither has them."""
    extra = getattr(response, "additional_kwargs", None)
    found = _counts(extra)
    if found != (None, None):
        return found
    raw = getattr(response, "raw", None)
    usage = raw.get("usage") if isinstance(raw, Mapping) else getattr(raw, "usage", None)
    if usage is not None and not isinstance(usage, Mapping):
        dump = getattr(usage, "model_dump", None)
        usage = dump() if callable(dump) else vars(usage) if hasattr(usage, "__dict__") else None
    return _counts(usage)


def _counts(data: Any) -> tuple[int | None, int | None]:
    if not isinstance(data, Mapping):
        return None, None
    for given, taken in (("prompt_tokens", "completion_tokens"), ("input_tokens", "output_tokens")):
        a, b = data.get(given), data.get(taken)
        if isinstance(a, int) or isinstance(b, int):
            return (a if isinstance(a, int) else None), (b if isinstance(b, int) else None)
    return None, None


def _llm_name(llm: Any) -> str:
    metadata = getattr(llm, "metadata", None)
    name = str(getattr(metadata, "model_name", "") or "")
    if name and name != "unknown":
        return name
    class_name = getattr(llm, "class_name", None)
    return str(class_name() if callable(class_name) else type(llm).__name__)


def _model_of(model_dict: Any) -> str:
    if isinstance(model_dict, Mapping):
        for key in ("model", "model_name", "class_name"):
            value = model_dict.get(key)
            if isinstance(value, str) and value and value != "unknown":
                return value
    return ""


def human_response(asked: InputRequiredEvent, answer: Any) -> Event:
    """The event that answers ``asked`` (the default ``human_response`` of ``LlamaIndexAdapter``): a
    ``HumanResponseEvent`` with ``response`` the answer and the asking event's other fields (``prefix``
    left out), so a ``wait_for_event(..., requirements={"user_name": ...})`` matches it, as LlamaIndex's
    docs answer it."""
    fields = {key: value for key, value in _fields(asked).items() if key not in ("prefix", "response")}
    return HumanResponseEvent(**{**fields, "response": answer})


def _fields(event: Event) -> dict[str, Any]:
    """An event's fields: those a subclass declares and those given as keyword arguments (kept apart by
    LlamaIndex, in ``_data``)."""
    declared = {key: value for key, value in event.model_dump().items() if key != "_data"}
    return {**declared, **dict(event)}


def _question(asked: InputRequiredEvent) -> dict[str, Any]:
    """What the run asks for an ``InputRequiredEvent``: its ``prefix`` as the message, and all its fields."""
    fields = events.jsonable(_fields(asked))
    prefix = fields.get("prefix") if isinstance(fields, dict) else None
    return {"message": prefix if isinstance(prefix, str) else "", "input_required": fields}


# --------------------------------------------------------------------------------- instrumentation


class _Collector:
    """What LlamaIndex's instrumentation reports inside one run (the handler finds the run's collector
    through a context variable the run's tasks and threads inherit)."""

    def __init__(self, queued: bool) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()
        self.queue: asyncio.Queue[Any] | None = asyncio.Queue() if queued else None
        self.usages: deque[tuple[int | None, int | None]] = deque()  # ended model calls, oldest first
        self.open: dict[str, bool] = {}  # model calls started, not ended: span id -> another started inside

    def on(self, event: Any) -> None:
        if self.queue is None:
            span = str(getattr(event, "span_id", "") or "")
            if isinstance(event, LLMChatStartEvent | LLMCompletionStartEvent):
                for started in self.open:
                    self.open[started] = True
                self.open[span] = False
            elif isinstance(event, LLMChatEndEvent | LLMCompletionEndEvent) and not self.open.pop(
                span, False
            ):
                # A wrapper's call (a StructuredLLM around the real one) is counted by the call inside it.
                self.usages.append(usage_of(event.response))
            return
        if threading.get_ident() == self.thread:
            self.queue.put_nowait(event)
        else:  # a sync engine's model call in a worker thread
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)


_collector: ContextVar[_Collector | None] = ContextVar("fastagentic_llamaindex_collector", default=None)
_installed: list[BaseEventHandler] = []
_install_lock = threading.Lock()


class _RunEvents(BaseEventHandler):
    """Passes LlamaIndex's instrumentation events to the collector of the run they happen in."""

    @classmethod
    def class_name(cls) -> str:
        return "FastAgenticRunEvents"

    def handle(self, event: Any, **kwargs: Any) -> None:
        collector = _collector.get()
        if collector is not None:
            collector.on(event)


def _install() -> None:
    with _install_lock:
        if not _installed:
            handler = _RunEvents()
            get_dispatcher().add_event_handler(handler)  # the root dispatcher: every module's events
            _installed.append(handler)


# ---------------------------------------------------------------------------------------- adapter


@dataclass
class _Open:
    """What one run has opened and not yet closed."""

    model: str | None = None
    tools: dict[str, str] = field(default_factory=dict)  # tool call id -> tool name
    asked: dict[str, int] = field(default_factory=dict)  # questions asked: content digest -> how many times
    spans: dict[str, str] = field(default_factory=dict)  # engine model calls: span id -> model


class LlamaIndexAdapter(BaseAdapter):
    """Runs a LlamaIndex agent (``FunctionAgent``, ``ReActAgent``, ``CodeActAgent``), a multi-agent
    ``AgentWorkflow``, a chat engine or a query engine. Input ``{"prompt": str}``; output the response text,
    or for an agent with ``output_cls`` its structured response.

    ``run_kwargs``: extra keyword arguments of each agent run (``max_iterations``, ``chat_history``, ...).
    ``human_response(asked, answer)``: the event that answers an ``InputRequiredEvent`` (default: a
    ``HumanResponseEvent``, see ``human_response``); give your own when the workflow waits for another
    event type. The answer is any JSON (a text over MCP forms and A2A messages)."""

    input_type = Prompt

    def __init__(
        self,
        obj: Any,
        *,
        name: str | None = None,
        description: str | None = None,
        run_kwargs: Mapping[str, Any] | None = None,
        human_response: Callable[[InputRequiredEvent, Any], Event] = human_response,
    ) -> None:
        self.obj = obj
        self.run_kwargs = dict(run_kwargs or {})
        self.human_response = human_response
        own_name: str | None = None
        own_description = ""
        self.output_type: Any = str
        if isinstance(obj, BaseWorkflowAgent):
            self.kind = "agent"
            own_name, own_description = obj.name, obj.description or ""
            self.output_type = _structured_type(obj)
        elif isinstance(obj, AgentWorkflow):
            self.kind = "agent"
            root = obj.agents.get(obj.root_agent)
            own_description = getattr(root, "description", "") or ""
            self.output_type = _structured_type(obj)
        elif isinstance(obj, BaseChatEngine):
            self.kind = "chat"
        elif isinstance(obj, BaseQueryEngine):
            self.kind = "query"
        else:
            raise TypeError(
                "LlamaIndexAdapter runs a LlamaIndex agent (FunctionAgent, ReActAgent, AgentWorkflow), chat "
                f"engine or query engine, not {type(obj).__name__}"
            )
        self.name = name if name is not None else own_name
        self.description = description if description is not None else own_description
        if self.kind == "agent":
            _guard_tools(obj)
        _install()

    @classmethod
    def accepts(cls, obj: object) -> bool:
        return isinstance(obj, BaseWorkflowAgent | AgentWorkflow | BaseChatEngine | BaseQueryEngine)

    async def run(self, input: Prompt, ctx: RunContext) -> Any:
        collector = _Collector(queued=self.kind != "agent")
        token = _collector.set(collector)  # the framework's tasks and threads started from here inherit it
        try:
            if self.kind == "agent":
                return await self._run_agent(input.prompt, collector, ctx)
            return await self._run_engine(input.prompt, collector, ctx)
        finally:
            _collector.reset(token)

    # ------------------------------------------------------------------------------------ agents

    def _model(self, agent_name: str) -> str:
        if isinstance(self.obj, AgentWorkflow):
            agent = self.obj.agents.get(agent_name)
            return _llm_name(agent.llm) if agent is not None else agent_name
        return _llm_name(self.obj.llm)

    async def _run_agent(self, prompt: str, collector: _Collector, ctx: RunContext) -> Any:
        handler = self.obj.run(user_msg=prompt, **self.run_kwargs)
        seen = _Open()
        try:
            async for event in handler.stream_events():
                if isinstance(event, InputRequiredEvent):
                    await self._ask(event, handler, seen, ctx)
                else:
                    await self._translate(event, seen, collector, ctx)
            result = await handler
        except asyncio.CancelledError:
            # Stops the workflow's steps (the model call, a running tool) before the run ends.
            await handler.cancel_run()
            raise
        except Exception as exc:
            await _close_all(seen, ctx, exc)
            raise
        # Model calls the agent's stream did not show (the structured output call of output_cls).
        while collector.usages:
            model = self._model(getattr(result, "current_agent_name", ""))
            await events.llm_start(ctx, model)
            await events.llm_end(ctx, model, *collector.usages.popleft())
        if self.output_type is not str:
            structured = getattr(result, "structured_response", None)
            if structured is None:
                raise ValueError(
                    "the agent produced no structured response (LlamaIndex logs a warning when generating "
                    "it fails)"
                )
            return structured
        response = getattr(result, "response", None)
        return str(getattr(response, "content", None) or "")

    async def _translate(self, event: Any, seen: _Open, collector: _Collector, ctx: RunContext) -> None:
        if isinstance(event, AgentInput):
            await self._open_model(event.current_agent_name, seen, ctx)
        elif isinstance(event, AgentStream):
            await self._open_model(event.current_agent_name, seen, ctx)
            if event.delta:
                await ctx.token(event.delta)
        elif isinstance(event, AgentOutput):
            model = await self._open_model(event.current_agent_name, seen, ctx)
            text = event.response.content or ""
            if text:
                await events.message(ctx, text)
            usage = collector.usages.popleft() if collector.usages else (None, None)
            await events.llm_end(ctx, model, *usage)
            seen.model = None
        elif isinstance(event, ToolCall):
            if event.tool_id in seen.tools:
                return  # a tool that waited for an event runs again once it came: its call was shown
            seen.tools[event.tool_id] = event.tool_name
            await events.tool_call(ctx, event.tool_id, event.tool_name, event.tool_kwargs)
        elif isinstance(event, ToolCallResult):
            seen.tools.pop(event.tool_id, None)
            output = event.tool_output
            if output.is_error:
                # The agent caught the tool's exception and shows it to the model: the run goes on.
                error: BaseException | dict[str, str] = output.exception or {
                    "type": "ToolError",
                    "message": str(output.content),
                }
                await events.tool_result(ctx, event.tool_id, event.tool_name, error=error)
            else:
                result = output.raw_output if output.raw_output is not None else output.content
                await events.tool_result(ctx, event.tool_id, event.tool_name, result)

    async def _ask(self, asked: InputRequiredEvent, handler: Any, seen: _Open, ctx: RunContext) -> None:
        """The run waits for the answer, then the workflow gets it as the event its step waits for."""
        request = _question(asked)
        # Named after the question and how often it was asked, so a new attempt (which starts the run
        # over) that asks the same questions in the same order gets their answers at once.
        digest = hashlib.sha256(msgspec.json.encode(request["input_required"], order="sorted")).hexdigest()
        count = seen.asked[digest] = seen.asked.get(digest, 0) + 1
        answer = await ctx.interrupt(request, id=f"llamaindex-{digest[:16]}-{count}")
        handler.ctx.send_event(self.human_response(asked, answer))

    async def _open_model(self, agent_name: str, seen: _Open, ctx: RunContext) -> str:
        if seen.model is None:
            seen.model = self._model(agent_name)
            await events.llm_start(ctx, seen.model)
        return seen.model

    # ----------------------------------------------------------------------------------- engines

    async def _run_engine(self, prompt: str, collector: _Collector, ctx: RunContext) -> Any:
        queue = collector.queue
        assert queue is not None

        async def work() -> str:
            try:
                return await self._engine_text(prompt)
            finally:
                queue.put_nowait(_END)

        task = asyncio.ensure_future(work())  # copies the context: the collector goes along
        seen = _Open()
        try:
            while (event := await queue.get()) is not _END:
                await _engine_event(event, seen, ctx)
            while not queue.empty():  # reported from a thread just before the end
                await _engine_event(queue.get_nowait(), seen, ctx)
            return await task
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        except Exception as exc:
            await _close_all(seen, ctx, exc)
            raise

    async def _engine_text(self, prompt: str) -> str:
        if self.kind == "chat":
            chat = await self.obj.astream_chat(prompt)
            return "".join([piece async for piece in chat.async_response_gen()])
        response = await self.obj.aquery(prompt)
        if isinstance(response, AsyncStreamingResponse):
            return "".join([piece async for piece in response.async_response_gen()])
        if isinstance(response, StreamingResponse):
            if response.response_gen is None:
                return str(response.response_txt or "")
            return "".join(await asyncio.to_thread(list, _pieces(response.response_gen)))
        return str(getattr(response, "response", None) or "")


def _pieces(gen: Iterator[str]) -> Iterator[str]:
    yield from gen


def _structured_type(obj: Any) -> Any:
    """The type of an agent's structured output (``output_cls``), else ``str``."""
    agents = list(obj.agents.values()) if isinstance(obj, AgentWorkflow) else [obj]
    output_cls = getattr(obj, "output_cls", None) or next(
        (a.output_cls for a in agents if getattr(a, "output_cls", None) is not None), None
    )
    if output_cls is None:
        if getattr(obj, "structured_output_fn", None) is not None:
            return Any
        return str
    try:
        output_schema(output_cls)
    except TypeError:
        return Any
    return output_cls


async def _engine_event(event: Any, seen: _Open, ctx: RunContext) -> None:
    span = str(getattr(event, "span_id", "") or "")
    if isinstance(event, LLMChatStartEvent | LLMCompletionStartEvent):
        model = _model_of(event.model_dict) or "llm"
        seen.spans[span] = model
        await events.llm_start(ctx, model)
    elif isinstance(event, LLMChatInProgressEvent | LLMCompletionInProgressEvent):
        delta = getattr(event.response, "delta", None)
        if delta:
            await ctx.token(delta)
    elif isinstance(event, LLMChatEndEvent | LLMCompletionEndEvent):
        if span not in seen.spans:
            return
        model = seen.spans.pop(span)
        response: Any = event.response
        if isinstance(event, LLMChatEndEvent):
            text = str(getattr(getattr(response, "message", None), "content", None) or "")
        else:
            text = str(getattr(response, "text", None) or "")
        if text:
            await events.message(ctx, text)
        await events.llm_end(ctx, model, *usage_of(response))


def _waiting_exception() -> tuple[type[BaseException], ...]:
    """The exception a tool raises to wait for an event (workflows >= 2.9): control flow, not checked."""
    try:
        from workflows.runtime.types.results import WaitingForEvent
    except ImportError:
        return ()
    return (WaitingForEvent,)


def _guarded_acall(tool: AsyncBaseTool) -> Any:
    original = tool.acall
    name = tool.metadata.get_name()
    context_param = (
        getattr(tool, "ctx_param_name", None) if getattr(tool, "requires_context", False) else None
    )
    passthrough = _waiting_exception()

    async def acall(*args: Any, **kwargs: Any) -> Any:
        ctx = _current.get()
        if ctx is None or args:  # not in a FastAgentic run; a positional call is not the agent's
            return await original(*args, **kwargs)
        extra = {context_param: kwargs.pop(context_param)} if context_param in kwargs else {}
        raw: list[ToolOutput] = []

        async def invoke(arguments: dict[str, Any]) -> Any:
            output = await original(**arguments, **extra)
            raw[:] = [output]
            if isinstance(output, ToolOutput):
                return output.raw_output if output.raw_output is not None else output.content
            return output

        result = await guarded(ctx, name, kwargs, invoke, passthrough=passthrough)
        before = raw[0] if raw else None
        if isinstance(before, ToolOutput) and (
            result is before.raw_output or (before.raw_output is None and result is before.content)
        ):
            return before  # unchanged: the tool's own output, blocks and all
        return ToolOutput(
            content=result if isinstance(result, str) else str(result),
            tool_name=name,
            raw_input={"kwargs": kwargs},
            raw_output=result,
        )

    acall.__fastagentic_guarded__ = True  # type: ignore[attr-defined]
    return acall


def _guard_tools(obj: Any) -> None:
    """Wrap the tools of an agent (of every agent of an AgentWorkflow) in place, once."""
    agents = list(obj.agents.values()) if isinstance(obj, AgentWorkflow) else [obj]
    for agent in agents:
        tools = getattr(agent, "tools", None)
        if not isinstance(tools, list):
            continue
        for index, tool in enumerate(tools):
            if not isinstance(tool, BaseTool):
                if not callable(tool):
                    continue
                tool = tools[index] = FunctionTool.from_defaults(tool)
            if not isinstance(tool, AsyncBaseTool):
                tool = tools[index] = adapt_to_async_tool(tool)  # as the agent would make it
            if not getattr(tool.acall, "__fastagentic_guarded__", False):
                tool.acall = _guarded_acall(tool)  # type: ignore[method-assign]


async def _close_all(seen: _Open, ctx: RunContext, error: BaseException) -> None:
    """The run failed: the tool calls and model calls it left open end with the error."""
    for call_id, name in list(seen.tools.items()):
        await events.tool_result(ctx, call_id, name, error=error)
    seen.tools.clear()
    if seen.model is not None:
        await events.llm_end(ctx, seen.model)
        seen.model = None
    for model in list(seen.spans.values()):
        await events.llm_end(ctx, model)
    seen.spans.clear()
