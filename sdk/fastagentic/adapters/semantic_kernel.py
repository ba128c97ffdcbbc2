"""Semantic Kernel: a ``ChatCompletionAgent`` or a kernel function as an agent endpoint (extra
``fastagentic[semantic-kernel]``, installed in the worker's own environment: semantic-kernel's pins cannot sit
beside the gateway's, see docs/adapters/semantic-kernel.md).

A ``ChatCompletionAgent`` runs once with ``agent.invoke_stream(prompt, thread=<a new ChatHistoryAgentThread>)``
(or ``agent.invoke`` with ``stream=False``); its input is ``{"prompt": str}`` and its output the reply's text.
A ``KernelFunction`` (``kernel.add_function``, ``@kernel_function`` methods of a plugin, prompt functions) runs
once with ``kernel.invoke(function, KernelArguments(**input))``; its input is the function's parameters (their
own types where SK knows them), its output the function's value (a prompt function's reply as text).

What happens inside is read at SK's own points. Each call to a chat completion service of the agent or
kernel (its ``_inner_get_chat_message_contents`` / ``_inner_get_streaming_chat_message_contents``, wrapped in
place once; outside a FastAgentic run the wrapper calls it as before) is ``llm_start``, ``token`` events for
its streamed text, ``message`` (the reply's text) and ``llm_end`` with the usage SK's ``ChatMessageContent``
reports (``metadata["usage"]``, a ``CompletionUsage``). Each function the model calls (auto invoked with
``FunctionChoiceBehavior.Auto()``) is a ``tool_call`` / ``tool_result`` pair named ``Plugin-function`` (SK's
fully qualified name, as the model sees it), with the id of the model's ``FunctionCallContent``.

Central tool checks: a ``FUNCTION_INVOCATION`` filter on the kernel (added once) runs each called function
through the run's ``check_tool_call`` and its result through ``check_tool_result`` before the model sees it
(an ``AUTO_FUNCTION_INVOCATION`` filter hands it the model's call id). A refused call never runs: it raises
``ToolRejected``, which SK shows the model as the function's error ("An error occurred while invoking the
function ...") and the run's ``tool_result`` carries; the model goes on. A kernel function served as the
endpoint is not itself checked (it is the run); the functions it calls are.

Cancellation: SK runs on the event loop, so cancelling the run cancels the agent's model call or the function
it awaits. No checkpoints: a new attempt runs the agent again from the prompt.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import msgspec
import pydantic
from semantic_kernel import Kernel
from semantic_kernel.agents import ChatCompletionAgent, ChatHistoryAgentThread
from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase
from semantic_kernel.filters.auto_function_invocation.auto_function_invocation_context import (
    AutoFunctionInvocationContext,
)
from semantic_kernel.filters.filter_types import FilterTypes
from semantic_kernel.filters.functions.function_invocation_context import FunctionInvocationContext
from semantic_kernel.functions import KernelArguments, KernelFunction
from semantic_kernel.functions.function_result import FunctionResult
from semantic_kernel.functions.kernel_function_from_prompt import KernelFunctionFromPrompt

from ..context import RunContext
from . import events
from .base import BaseAdapter, _current
from .guard import guarded

__all__ = ["Prompt", "SemanticKernelAdapter"]


class Prompt(msgspec.Struct, forbid_unknown_fields=True):
    """The input of a Semantic Kernel agent endpoint: the user prompt."""

    prompt: str


#: The kernel function a run serves as its endpoint, until its own invocation filter passes it through.
_endpoint: ContextVar[KernelFunction | None] = ContextVar("fastagentic_sk_endpoint", default=None)
#: The model's id of the function call SK is invoking (set by the auto function invocation filter).
_call_id: ContextVar[str | None] = ContextVar("fastagentic_sk_call_id", default=None)

_GUARDED = "__fastagentic_guarded__"


def _usage(message: Any) -> tuple[int | None, int | None]:
    usage = (getattr(message, "metadata", None) or {}).get("usage")
    if usage is None:
        return None, None
    if isinstance(usage, dict):
        return usage.get("prompt_tokens"), usage.get("completion_tokens")
    return getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None)


def _model(service: Any, message: Any = None) -> str:
    return str(getattr(message, "ai_model_id", None) or getattr(service, "ai_model_id", None) or "")


def _text(message: Any) -> str:
    """The text of a reply: its text items (SK's ``content`` joins them), none for a function call only."""
    return str(getattr(message, "content", None) or "")


def _observe(service: ChatCompletionClientBase) -> None:
    """Wrap the service's two model calls in place, once: each becomes llm_start ... llm_end in a run."""
    if getattr(service.__dict__.get("_inner_get_chat_message_contents"), _GUARDED, False):
        return
    plain = service._inner_get_chat_message_contents
    streaming = service._inner_get_streaming_chat_message_contents

    async def call(*args: Any, **kwargs: Any) -> Any:
        ctx = _current.get()
        if ctx is None:
            return await plain(*args, **kwargs)
        await events.llm_start(ctx, _model(service))
        try:
            replies = await plain(*args, **kwargs)
        except BaseException:
            await events.llm_end(ctx, _model(service))
            raise
        first = replies[0] if replies else None
        if first is not None and _text(first):
            await events.message(ctx, _text(first))
        await events.llm_end(ctx, _model(service, first), *_usage(first))
        return replies

    async def stream(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        ctx = _current.get()
        if ctx is None:
            async for chunks in streaming(*args, **kwargs):
                yield chunks
            return
        await events.llm_start(ctx, _model(service))
        text: list[str] = []
        usage: tuple[int | None, int | None] = (None, None)
        model = _model(service)
        try:
            async for chunks in streaming(*args, **kwargs):
                for chunk in chunks or []:
                    if chunk is None or getattr(chunk, "choice_index", 0) != 0:
                        continue
                    if _text(chunk):
                        text.append(_text(chunk))
                        await ctx.token(_text(chunk))
                    if _usage(chunk) != (None, None):
                        usage = _usage(chunk)
                    model = _model(service, chunk)
                yield chunks
        except BaseException:
            await events.llm_end(ctx, model)
            raise
        if text:
            await events.message(ctx, "".join(text))
        await events.llm_end(ctx, model, *usage)

    for wrapper in (call, stream):
        setattr(wrapper, _GUARDED, True)
    # An instance attribute shadows the class's method; pydantic would refuse an undeclared attribute.
    object.__setattr__(service, "_inner_get_chat_message_contents", call)
    object.__setattr__(service, "_inner_get_streaming_chat_message_contents", stream)


async def _auto_filter(
    context: AutoFunctionInvocationContext, next: Callable[[Any], Awaitable[None]]
) -> None:
    """Hands the function invocation filter the id of the model's function call."""
    call = context.function_call_content
    token = _call_id.set(str(call.id) if call is not None and call.id else None)
    try:
        await next(context)
    finally:
        _call_id.reset(token)


async def _function_filter(
    context: FunctionInvocationContext, next: Callable[[Any], Awaitable[None]]
) -> None:
    """Runs a called function under the run's tool checks, with its tool_call / tool_result events."""
    ctx = _current.get()
    if ctx is None:
        await next(context)
        return
    if _endpoint.get() is context.function:  # the run itself: not a tool; what it calls is
        _endpoint.set(None)
        await next(context)
        return
    name = context.function.fully_qualified_name
    call_id = _call_id.get() or ctx._next_tool_id()  # the model's id, else the run's own
    _call_id.set(None)  # a function this one calls is not the model's call
    arguments = dict(context.arguments.items())
    await events.tool_call(ctx, call_id, name, arguments)

    async def invoke(given: dict[str, Any]) -> Any:
        context.arguments = KernelArguments(settings=context.arguments.execution_settings, **given)
        await next(context)
        return context.result.value if context.result is not None else None

    try:
        result = await guarded(ctx, name, arguments, invoke, id=call_id)
    except Exception as exc:
        cause = exc.__cause__ if _wrapped(exc) else None
        await events.tool_result(ctx, call_id, name, error=cause if isinstance(cause, Exception) else exc)
        raise
    await events.tool_result(ctx, call_id, name, result)
    context.result = FunctionResult(function=context.function.metadata, value=result)


def _wrapped(error: Exception) -> bool:
    """SK wraps a native function's exception (``FunctionExecutionException``): the event shows the cause."""
    return type(error).__name__ == "FunctionExecutionException" and isinstance(error.__cause__, Exception)


def _guard(kernel: Kernel) -> None:
    """Add the adapter's filters to ``kernel``, once."""
    if any(getattr(f, _GUARDED, False) for _, f in kernel.function_invocation_filters):
        return
    kernel.add_filter(FilterTypes.AUTO_FUNCTION_INVOCATION, _auto_filter)
    kernel.add_filter(FilterTypes.FUNCTION_INVOCATION, _function_filter)


setattr(_function_filter, _GUARDED, True)


def _services(kernel: Kernel, *extra: Any) -> None:
    for service in [*kernel.services.values(), *extra]:
        if isinstance(service, ChatCompletionClientBase):
            _observe(service)


def _parameters_model(name: str, function: KernelFunction) -> type[pydantic.BaseModel]:
    fields: dict[str, Any] = {}
    for parameter in function.metadata.parameters:
        if not parameter.name:
            continue
        kind = parameter.type_object if isinstance(parameter.type_object, type) else Any
        if parameter.type_object is None and (parameter.type_ or "str") == "str":
            kind = str  # a prompt template's variable: text
        fields[parameter.name] = (kind, ... if parameter.is_required else parameter.default_value)
    return pydantic.create_model(name, __config__=pydantic.ConfigDict(extra="forbid"), **fields)


def _label(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"\W+|_", name) if part)


class SemanticKernelAdapter(BaseAdapter):
    """Runs a Semantic Kernel ``ChatCompletionAgent`` (input ``{"prompt": str}``, output the reply's text) or
    a ``KernelFunction`` on ``kernel`` (input the function's parameters, output its value).

    ``stream=False`` runs an agent with ``agent.invoke`` (no token events)."""

    def __init__(
        self,
        target: ChatCompletionAgent | KernelFunction,
        *,
        kernel: Kernel | None = None,
        name: str | None = None,
        description: str | None = None,
        stream: bool = True,
    ) -> None:
        self.stream = stream
        if isinstance(target, ChatCompletionAgent):
            if kernel is not None:
                raise TypeError("an agent runs on its own kernel (agent.kernel): do not pass kernel=")
            self.agent: ChatCompletionAgent | None = target
            self.function: KernelFunction | None = None
            self.kernel = target.kernel
            self.name = name or target.name
            self.description = description if description is not None else (target.description or "")
            self.input_type: Any = Prompt
            self.output_type: Any = str
        elif isinstance(target, KernelFunction):
            self.agent = None
            self.function = target
            self.kernel = kernel if kernel is not None else Kernel()
            self.name = name or target.name
            self.description = description if description is not None else (target.description or "")
            self.input_type = _parameters_model(f"{_label(target.name)}Input", target)
            returned = target.metadata.return_parameter
            kind = getattr(returned, "type_object", None) if returned is not None else None
            if isinstance(target, KernelFunctionFromPrompt):
                self.output_type = str
            else:
                self.output_type = kind if isinstance(kind, type) and kind is not type(None) else Any
        else:
            raise TypeError(
                "SemanticKernelAdapter runs a semantic_kernel ChatCompletionAgent or KernelFunction, "
                f"not {type(target).__name__}"
            )
        _guard(self.kernel)

    @classmethod
    def accepts(cls, obj: object) -> bool:
        return isinstance(obj, ChatCompletionAgent | KernelFunction)

    async def run(self, input: Any, ctx: RunContext) -> Any:
        _services(self.kernel, *([self.agent.service] if self.agent is not None else []))
        if self.agent is not None:
            return await self._agent(self.agent, input.prompt)
        assert self.function is not None
        return await self._function(self.function, input)

    async def _agent(self, agent: ChatCompletionAgent, prompt: str) -> str:
        thread = ChatHistoryAgentThread()
        if not self.stream:
            reply = await agent.get_response(messages=prompt, thread=thread)
            return _text(reply.message)
        parts = [_text(item.message) async for item in agent.invoke_stream(messages=prompt, thread=thread)]
        return "".join(parts)

    async def _function(self, function: KernelFunction, input: pydantic.BaseModel) -> Any:
        token = _endpoint.set(function)
        try:
            result = await self.kernel.invoke(function, KernelArguments(**input.model_dump()))
        finally:
            _endpoint.reset(token)
        value = result.value if result is not None else None
        if isinstance(function, KernelFunctionFromPrompt):
            return str(result) if result is not None else ""
        return value
