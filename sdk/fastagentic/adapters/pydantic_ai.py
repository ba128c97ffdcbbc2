"""PydanticAI: an ``Agent`` as an agent endpoint (extra ``fastagentic[pydantic-ai]``).

The run is driven node by node (``Agent.iter``): each model request streams its text as ``token`` events
between ``llm_start`` and ``llm_end`` (the response's usage, through ``ctx.usage``), each function tool call
is a ``tool_call`` / ``tool_result`` pair, and after each model response and each round of tool results
the message history is checkpointed, so a retried run continues from there instead of calling the model
(or the tools) again. The budget's model hint picks the model of each request (``models=`` maps hints to
models).

Deferred tools are the run's interrupts (through PydanticAI's ``HandleDeferredToolCalls`` capability, so the
run goes on in place): a call that needs approval (``requires_approval=True``, ``ApprovalRequired``) asks what
``ctx.approve(tool name, arguments)`` asks, an external call (``CallDeferred``, an external tool) asks for its
result, each interrupt named after the model's tool call id; the answers go back as ``DeferredToolResults``.
A new attempt (the run was handed back while it waited) continues from the checkpointed model response,
meets the same calls again and gets their answers at once.

Central tool checks: every function tool call goes through the run's ``check_tool_call`` /
``check_tool_result`` (the worker-side and the gateway's ``on_tool_call`` / ``on_tool_result`` hooks) in a
capability's ``wrap_tool_execute``, after PydanticAI validated the arguments. A refused call never runs: the
model sees the reason as a failed tool (``ToolFailed``) and the run goes on; the run's ``tool_result``
carries ``{"error": {"type": "ToolRejected", "message", "hook", "point"}}``. A modified call runs with the
new arguments, a skipped one returns its stand-in, and the model sees the result as the hooks left it.
"""

from __future__ import annotations

import contextlib
import hashlib
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

import msgspec
from pydantic import BaseModel, ConfigDict
from pydantic_ai import Agent
from pydantic_ai.capabilities import AbstractCapability, HandleDeferredToolCalls, SelectModel
from pydantic_ai.exceptions import (
    ApprovalRequired,
    CallDeferred,
    SkipToolExecution,
    ToolFailed,
)
from pydantic_ai.messages import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessagesTypeAdapter,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolReturn,
)
from pydantic_ai.models import Model
from pydantic_ai.output import NativeOutput, PromptedOutput, TextOutput, ToolOutput
from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults, ToolApproved, ToolDenied

from ..context import RunContext
from . import events
from .base import BaseAdapter, hinted_model
from .guard import GuardedError, ToolRejected, guarded
from .shape import output_schema

__all__ = ["ExternalError", "ExternalResult", "Prompt", "PydanticAIAdapter", "ToolDecision"]

#: Marks FastAgentic's checkpoints of a PydanticAI run (the message history so far).
CHECKPOINT_FORMAT = "pydantic_ai.messages/1"


class Prompt(msgspec.Struct, forbid_unknown_fields=True):
    """The input of a PydanticAI agent endpoint: the user prompt."""

    prompt: str


class ToolDecision(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The answer to a tool call's approval: ``ctx.approve``'s ``Decision``, with ``payload`` (for
    ``"edit"``) an object whose keys replace the call's arguments of the same name; ``"edit"`` without one
    approves the arguments as they are."""

    decision: Literal["approve", "edit", "reject"]
    payload: dict[str, Any] | None = None
    reason: str = ""


class ExternalResult(BaseModel):
    """The answer to an external tool call's interrupt: the tool's result (any JSON)."""

    model_config = ConfigDict(extra="forbid")

    result: Any


class ExternalError(BaseModel):
    """The answer to an external tool call's interrupt: the call failed, ``error`` says why (the model
    sees it, as PydanticAI's ``ToolFailed``)."""

    model_config = ConfigDict(extra="forbid")

    error: str


#: What an external tool call's interrupt takes: ``{"result": ...}`` or ``{"error": "..."}``.
ExternalAnswer = Union[ExternalResult, ExternalError]  # noqa: UP007 (a value, for ctx.interrupt)


def _output_annotation(spec: Any) -> Any:
    """A Python type for a PydanticAI output spec (a type, a function, a marker, or a list of them).
    ``DeferredToolRequests`` is left out: the adapter answers deferred calls, so a run never ends with it."""
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        kept = [item for item in spec if item is not DeferredToolRequests] or [str]
        members = tuple(dict.fromkeys(_output_annotation(item) for item in kept))
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


def _interrupt_id(kind: str, tool_call_id: str) -> str:
    """The run's interrupt id for a deferred tool call: stable across attempts (the tool call id is in the
    checkpointed model response), and within ``ctx.interrupt``'s 64 characters of ``[A-Za-z0-9_.:-]``."""
    prefix = f"pydantic-ai-{kind}-"
    cleaned = "".join(c if c.isalnum() or c in "_.:-" else "_" for c in tool_call_id)
    if cleaned != tool_call_id or len(prefix) + len(cleaned) > 64:
        cleaned = hashlib.sha256(tool_call_id.encode()).hexdigest()[: 64 - len(prefix)]
    return prefix + cleaned


class PydanticAIAdapter(BaseAdapter):
    """Runs a PydanticAI ``Agent``. Input ``{"prompt": str}``; output the agent's ``output_type``.

    ``deps``: the run's dependencies, a value or a callable ``deps(ctx) -> value``. ``models``: what a
    budget's model hint selects, a mapping from hint to a PydanticAI model (or model name), or a callable
    returning one (None: keep the current model); by default the hint itself is the model name.
    ``checkpoints``: save the message history after each step (default True).

    Deferred tool calls are answered through the run's interrupts: an approval as ``ctx.approve`` asks it
    (the tool name, its arguments; answered with a ``ToolDecision``), an external call with its
    ``{"tool_call": ...}``, answered ``{"result": ...}`` or ``{"error": "..."}``."""

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
        drive = _Drive(ctx)
        results: DeferredToolResults | None = None
        try:
            while True:
                output, messages = await self._drive(prompt, history, deps, results, drive)
                if not isinstance(output, DeferredToolRequests):
                    return output
                # Calls deferred again after their answer (an approved tool raising CallDeferred) end the
                # run when the agent's output types allow DeferredToolRequests: answer them and go on.
                await self._checkpoint(ctx, messages)
                results = await drive.answer(output)
                prompt, history = None, messages
        except BaseExceptionGroup as group:
            # PydanticAI runs tools in task groups: surface the one error a tool raised as itself.
            raise _single(group) from None

    async def _drive(
        self,
        prompt: str | None,
        history: Any,
        deps: Any,
        results: DeferredToolResults | None,
        drive: _Drive,
    ) -> tuple[Any, list[Any]]:
        ctx = drive.ctx
        capabilities = [self._select_model(ctx), HandleDeferredToolCalls(drive.handle), _ToolGuard(drive)]
        async with self.agent.iter(
            prompt,
            message_history=history,
            deferred_tool_results=results,
            deps=deps,
            capabilities=capabilities,
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
                    await self._call_tools(node, run, drive)
            result = run.result
            messages = run.all_messages()
        assert result is not None  # the run reached its End node
        return result.output, messages

    async def _call_tools(self, node: Any, run: Any, drive: _Drive) -> None:
        ctx = drive.ctx
        pending = drive.open_calls  # tool calls started and not answered: id -> name
        try:
            async with node.stream(run.ctx) as stream:
                async for event in stream:
                    if isinstance(event, FunctionToolCallEvent):
                        call = event.part
                        if call.tool_call_id in pending:
                            continue  # a deferred call, run once answered: its tool_call was shown
                        pending[call.tool_call_id] = call.tool_name
                        await events.tool_call(ctx, call.tool_call_id, call.tool_name, call.args_as_dict())
                    elif isinstance(event, FunctionToolResultEvent):
                        answer = event.part
                        pending.pop(answer.tool_call_id, None)
                        refused = drive.refused.pop(answer.tool_call_id, None)
                        if refused is not None:
                            await events.tool_result(
                                ctx, answer.tool_call_id, answer.tool_name, error=refused
                            )
                        elif answer.outcome == "success":
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
            pending.clear()
            raise

    async def _checkpoint(self, ctx: RunContext, messages: list[Any]) -> None:
        if self.checkpoints:
            dumped = ModelMessagesTypeAdapter.dump_python(messages, mode="json")
            await ctx.checkpoint({"format": CHECKPOINT_FORMAT, "messages": dumped})


class _Drive:
    """One attempt of a run: its context, the tool calls shown and not answered yet, and the deferred tool
    calls it asked about (PydanticAI's ``HandleDeferredToolCalls`` handler)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.open_calls: dict[str, str] = {}
        self.asked: set[str] = set()
        #: tool calls the guardrails refused (their model-facing result is a failed tool): id -> why
        self.refused: dict[str, ToolRejected] = {}

    async def handle(self, _: Any, requests: DeferredToolRequests) -> DeferredToolResults:
        return await self.answer(requests)

    async def answer(self, requests: DeferredToolRequests) -> DeferredToolResults:
        """Each deferred call's answer, asked in the order the model made the calls (approvals first)."""
        approvals: dict[str, ToolApproved | ToolDenied] = {}
        for call in requests.approvals:
            arguments = requests.validated_args.get(call.tool_call_id) or call.args_as_dict()
            # What ctx.approve asks (approval channels, MCP and A2A show it as an approval), with the edited
            # payload held to an object of arguments, so the gateway refuses any other edit.
            request = {"approval": {"action": call.tool_name, "details": events.jsonable(arguments)}}
            decision = await self.ctx.interrupt(request, schema=ToolDecision, id=self._id("approve", call))
            if decision.decision == "reject":
                approvals[call.tool_call_id] = ToolDenied(decision.reason or ToolDenied().message)
            elif decision.decision == "edit" and decision.payload is not None:
                # The edited payload's keys replace the call's arguments of the same name.
                edited = {**arguments, **decision.payload}
                approvals[call.tool_call_id] = ToolApproved(override_args=edited)
            else:
                approvals[call.tool_call_id] = ToolApproved()
        calls: dict[str, Any] = {}
        for call in requests.calls:
            request = {
                "tool_call": {
                    "id": call.tool_call_id,
                    "name": call.tool_name,
                    "arguments": events.jsonable(call.args_as_dict()),
                    "kind": requests.kind(call.tool_call_id),
                    "metadata": events.jsonable(requests.metadata.get(call.tool_call_id)),
                }
            }
            answer = await self.ctx.interrupt(request, schema=ExternalAnswer, id=self._id("call", call))
            calls[call.tool_call_id] = (
                ToolFailed(answer.error) if isinstance(answer, ExternalError) else ToolReturn(answer.result)
            )
        return requests.build_results(approvals=approvals, calls=calls)

    def _id(self, kind: str, call: Any) -> str:
        interrupt_id = _interrupt_id(kind, call.tool_call_id)
        if interrupt_id in self.asked:
            # Answered already in this attempt: asking again would return the same answer for ever.
            raise RuntimeError(
                f"tool {call.tool_name!r} deferred call {call.tool_call_id!r} again after it was answered "
                "(a tool that raises ApprovalRequired must check ctx.tool_call_approved)"
            )
        self.asked.add(interrupt_id)
        return interrupt_id


#: PydanticAI's control flow out of a tool: it leaves the checks as it came (no result to check).
_CONTROL_FLOW = (ApprovalRequired, CallDeferred, SkipToolExecution)


@dataclass
class _ToolGuard(AbstractCapability[Any]):
    """The run's central tool checks around each function tool's execution."""

    drive: _Drive

    async def wrap_tool_execute(self, ctx: Any, *, call: Any, tool_def: Any, args: Any, handler: Any) -> Any:
        run_ctx = self.drive.ctx
        arguments = dict(args) if isinstance(args, Mapping) else {"input": args}
        mapping = isinstance(args, Mapping)

        async def invoke(checked: dict[str, Any]) -> Any:
            return await handler(checked if mapping else checked.get("input", args))

        try:
            return await guarded(
                run_ctx, call.tool_name, arguments, invoke, id=call.tool_call_id, passthrough=_CONTROL_FLOW
            )
        except ToolRejected as exc:
            # The model sees why, as a failed tool; the run goes on (the log says a hook refused it).
            self.drive.refused[call.tool_call_id] = exc
            raise ToolFailed(str(exc)) from None
        except GuardedError as exc:
            raise ToolFailed(str(exc)) from None


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
