"""PydanticAI: an ``Agent`` as an agent endpoint (extra ``fastagentic[pydantic-ai]``).

The run is driven node by node (``Agent.iter``): each model request streams its text as ``token`` events
between ``llm_start`` and ``llm_end`` (the response's usage, through ``ctx.usage``), each function tool call
is a ``tool_call`` / ``tool_result`` pair, and after each model response and each round of tool results
the message history is checkpointed, so a retried run continues from there instead of calling the model
(or the tools) again. The budget's model hint picks the model of each request (``models=`` maps hints to
models).
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

import msgspec
from pydantic_ai import Agent
from pydantic_ai.capabilities import SelectModel
from pydantic_ai.messages import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessagesTypeAdapter,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
)
from pydantic_ai.models import Model
from pydantic_ai.output import NativeOutput, PromptedOutput, TextOutput, ToolOutput

from ..context import RunContext
from . import events
from .base import BaseAdapter, hinted_model
from .shape import output_schema

__all__ = ["Prompt", "PydanticAIAdapter"]

#: Marks FastAgentic's checkpoints of a PydanticAI run (the message history so far).
CHECKPOINT_FORMAT = "pydantic_ai.messages/1"


class Prompt(msgspec.Struct, forbid_unknown_fields=True):
    """The input of a PydanticAI agent endpoint: the user prompt."""

    prompt: str


def _output_annotation(spec: Any) -> Any:
    """A Python type for a PydanticAI output spec (a type, a function, a marker, or a list of them)."""
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        members = tuple(dict.fromkeys(_output_annotation(item) for item in spec))
        return members[0] if len(members) == 1 else Union[members]  # noqa: UP007 (built at run time)
    if isinstance(spec, ToolOutput):
        return _output_annotation(spec.output)
    if isinstance(spec, NativeOutput | PromptedOutput):
        return _output_annotation(spec.outputs)
    if isinstance(spec, TextOutput):
        spec = spec.output_function
    if isinstance(spec, type):
        return spec
    if callable(spec):
        try:
            return typing.get_type_hints(spec).get("return", Any)
        except Exception:
            return Any
    return Any


def _describable(annotation: Any) -> Any:
    """``annotation`` when the SDK can describe it as JSON Schema, else Any (an open output schema)."""
    try:
        output_schema(annotation)
    except TypeError:
        return Any
    return annotation


def _text_of(response: ModelResponse) -> str:
    return "".join(part.content for part in response.parts if isinstance(part, TextPart))


def _model_name(model: Any) -> str:
    return str(getattr(model, "model_name", "") or "")


class PydanticAIAdapter(BaseAdapter):
    """Runs a PydanticAI ``Agent``. Input ``{"prompt": str}``; output the agent's ``output_type``.

    ``deps``: the run's dependencies, a value or a callable ``deps(ctx) -> value``. ``models``: what a
    budget's model hint selects, a mapping from hint to a PydanticAI model (or model name), or a callable
    returning one (None: keep the current model); by default the hint itself is the model name.
    ``checkpoints``: save the message history after each step (default True)."""

    input_type = Prompt

    def __init__(
        self,
        agent: Agent[Any, Any],
        *,
        name: str | None = None,
        description: str | None = None,
        deps: Any = None,
        models: Mapping[str, Model | str] | Callable[[str], Model | str | None] | None = None,
        checkpoints: bool = True,
    ) -> None:
        if not isinstance(agent, Agent):
            raise TypeError(f"PydanticAIAdapter runs a pydantic_ai.Agent, not {type(agent).__name__}")
        self.agent = agent
        self.name = name if name is not None else agent.name
        self.description = description if description is not None else str(agent.description or "")
        self.output_type = _describable(_output_annotation(agent.output_type))
        self.deps = deps
        self.models = models
        self.checkpoints = checkpoints

    @classmethod
    def accepts(cls, obj: object) -> bool:
        return isinstance(obj, Agent)

    def _hinted_model(self, hint: str) -> Model | str | None:
        return hinted_model(self.models, hint)

    def _select_model(self, ctx: RunContext) -> SelectModel[Any]:
        # Asked before every model request, so a hint that arrives mid-run takes effect at the next one.
        def select(selection: Any) -> Model | str:
            hinted = self._hinted_model(ctx.model_hint)
            if hinted is not None:
                return hinted
            if selection.model is None:
                raise ValueError(f"agent {self.name!r} has no model and the run has no model hint")
            chosen: Model = selection.model
            return chosen

        return SelectModel(select)

    async def run(self, input: Prompt, ctx: RunContext) -> Any:
        deps = self.deps(ctx) if callable(self.deps) else self.deps
        history = None
        prompt: str | None = input.prompt
        state = ctx.checkpoint_state
        if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
            # A retried run: the history holds the prompt and every step up to the last checkpoint.
            history = ModelMessagesTypeAdapter.validate_python(state["messages"])
            prompt = None
        try:
            return await self._drive(prompt, history, deps, ctx)
        except BaseExceptionGroup as group:
            # PydanticAI runs tools in task groups: surface the one error a tool raised as itself.
            raise _single(group) from None

    async def _drive(self, prompt: str | None, history: Any, deps: Any, ctx: RunContext) -> Any:
        async with self.agent.iter(
            prompt, message_history=history, deps=deps, capabilities=[self._select_model(ctx)]
        ) as run:
            after_tools = False
            async for node in run:
                if Agent.is_model_request_node(node):
                    if after_tools:
                        # The tool results are in this request, not yet in the history: save them with it.
                        await self._checkpoint(ctx, [*run.all_messages(), node.request])
                    async with node.stream(run.ctx) as stream:
                        await events.llm_start(ctx, _model_name(run.ctx.deps.model))
                        async for event in stream:
                            text = _text_delta(event)
                            if text:
                                await ctx.token(text)
                        response = stream.response
                    text = _text_of(response)
                    if text:
                        await events.message(ctx, text)
                    await events.llm_end(
                        ctx,
                        response.model_name or _model_name(run.ctx.deps.model),
                        response.usage.input_tokens,
                        response.usage.output_tokens,
                    )
                    await self._checkpoint(ctx, run.all_messages())
                after_tools = Agent.is_call_tools_node(node)
                if after_tools:
                    await self._call_tools(node, run, ctx)
            result = run.result
        assert result is not None  # the run reached its End node
        return result.output

    async def _call_tools(self, node: Any, run: Any, ctx: RunContext) -> None:
        pending: dict[str, str] = {}  # tool calls started and not answered: id -> name
        try:
            async with node.stream(run.ctx) as stream:
                async for event in stream:
                    if isinstance(event, FunctionToolCallEvent):
                        call = event.part
                        pending[call.tool_call_id] = call.tool_name
                        await events.tool_call(ctx, call.tool_call_id, call.tool_name, call.args_as_dict())
                    elif isinstance(event, FunctionToolResultEvent):
                        answer = event.part
                        pending.pop(answer.tool_call_id, None)
                        if answer.outcome == "success":
                            await events.tool_result(
                                ctx, answer.tool_call_id, answer.tool_name, answer.content
                            )
                        else:
                            # A retry (ModelRetry, arguments that failed validation), a denial: the model sees
                            # the message and the run goes on.
                            message = (
                                answer.content
                                if isinstance(answer.content, str)
                                else answer.model_response_str()
                            )
                            problem = {"type": answer.outcome, "message": message}
                            await events.tool_result(
                                ctx, answer.tool_call_id, answer.tool_name, error=problem
                            )
        except Exception as exc:
            # A tool raised: its call gets its error, then the run fails with it.
            failure = _single(exc) if isinstance(exc, BaseExceptionGroup) else exc
            for call_id, name in pending.items():
                with contextlib.suppress(Exception):
                    await events.tool_result(ctx, call_id, name, error=failure)
            raise

    async def _checkpoint(self, ctx: RunContext, messages: list[Any]) -> None:
        if self.checkpoints:
            dumped = ModelMessagesTypeAdapter.dump_python(messages, mode="json")
            await ctx.checkpoint({"format": CHECKPOINT_FORMAT, "messages": dumped})


def _text_delta(event: Any) -> str:
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return event.part.content
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return event.delta.content_delta
    return ""


def _single(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error
