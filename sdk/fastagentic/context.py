"""RunContext: what an endpoint function sees of the run it serves, and how it streams events."""

from __future__ import annotations

import asyncio
import inspect
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import msgspec

from .events import EVENT_KIND_PATTERN, RESERVED_KINDS
from .hooks import (
    Action,
    Checker,
    Modify,
    Proceed,
    Reject,
    Retry,
    Skip,
    ToolCall,
    ToolOutcome,
    ToolRejected,
    WorkerHook,
    WorkerHookContext,
    jsonable,
    run_worker_hook,
)
from .schema import AnswerType

_encode = msgspec.json.encode
_decode = msgspec.json.decode

# Events an endpoint may emit before the context yields to the event loop.
PACE_EVERY = 16

# Sink(kind, data_json, checkpoint_state_json | None): appends one event to the run's log.
Sink = Callable[[str, bytes, bytes | None], None]
# Asker(interrupt_id, interrupt_event_data_json): emits the interrupt and waits for its answer (JSON).
Asker = Callable[[str, bytes], Awaitable[bytes]]

INTERRUPT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_UNSET: Any = object()
#: Times a tool call is asked again (on_tool_call) or run again (on_tool_result) when a hook answers retry.
MAX_TOOL_RETRIES = 3


class InterruptTimeout(Exception):
    """An ephemeral run's interrupt was not answered within the gateway's ``interrupt_timeout``: the run
    fails with this error type (unless the function catches it)."""


class Decision(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A person's decision on an action (``ctx.approve``): approve it, approve an edited ``payload``, or
    reject it (``reason`` says why)."""

    decision: Literal["approve", "edit", "reject"]
    payload: Any = None
    reason: str = ""

    @property
    def approved(self) -> bool:
        return self.decision != "reject"


class SamplingUnavailable(Exception):
    """``ctx.sample`` could not ask the calling client's model: the run was not called over MCP, the MCP
    client did not declare the sampling capability, or it refused the request (the message says which)."""


class Sample(msgspec.Struct, frozen=True, rename={"stop_reason": "stopReason"}):
    """What the calling client's model answered (MCP ``CreateMessageResult``)."""

    role: Literal["user", "assistant"]
    #: one MCP content block (``{"type": "text", "text": ...}``, image, audio, ...) or a list of them
    content: Any
    model: str = ""
    stop_reason: str | None = None

    @property
    def text(self) -> str:
        """The text of the answer's text blocks, joined."""
        blocks = self.content if isinstance(self.content, list) else [self.content]
        return "".join(
            str(block.get("text", ""))
            for block in blocks
            if isinstance(block, dict) and block.get("type") == "text"
        )


#: The answer a sampling interrupt takes: the client's ``CreateMessageResult``, or why there is none.
SAMPLE_ANSWER_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "properties": {
                "role": {"enum": ["user", "assistant"]},
                "content": {"anyOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]},
                "model": {"type": "string"},
                "stopReason": {"type": ["string", "null"]},
            },
            "required": ["role", "content"],
        },
        {
            "type": "object",
            "properties": {"unavailable": {"type": "string"}},
            "required": ["unavailable"],
            "additionalProperties": False,
        },
    ]
}


def _sampling_message(message: Any) -> dict[str, Any]:
    """One MCP ``SamplingMessage`` from a string (a user turn) or ``{"role", "content"}`` (content a string,
    a content block or a list of blocks)."""
    if isinstance(message, str):
        return {"role": "user", "content": {"type": "text", "text": message}}
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise ValueError(
            f'each sampling message is a string or {{"role": "user" | "assistant", "content": ...}}, not {message!r}'
        )
    content = message.get("content")
    if isinstance(content, str):
        content = {"type": "text", "text": content}
    elif not isinstance(content, dict | list):
        raise ValueError(
            f"sampling message content must be a string, a content block or a list, not {content!r}"
        )
    return {"role": message["role"], "content": content}


class RootsUnavailable(Exception):
    """``ctx.roots`` could not ask the calling client for its roots: the run was not called over MCP, or the
    MCP client did not declare the roots capability or refused the request (the message says which)."""


class Root(msgspec.Struct, frozen=True):
    """One of the calling client's roots (MCP ``roots/list``): a ``file://`` URI and an optional name."""

    uri: str
    name: str | None = None


#: The answer a roots interrupt takes: the client's ``ListRootsResult``, or why there is none.
ROOTS_ANSWER_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "properties": {
                "roots": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"uri": {"type": "string"}, "name": {"type": "string"}},
                        "required": ["uri"],
                    },
                }
            },
            "required": ["roots"],
        },
        {
            "type": "object",
            "properties": {"unavailable": {"type": "string"}},
            "required": ["unavailable"],
            "additionalProperties": False,
        },
    ]
}


def _sampling_params(
    messages: Any,
    *,
    max_tokens: int,
    system_prompt: str | None,
    temperature: float | None,
    stop_sequences: list[str] | None,
    model_preferences: dict[str, Any] | None,
    include_context: str | None,
    metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    """MCP ``createMessage`` params from ``ctx.sample``'s arguments (checked)."""
    turns = [messages] if isinstance(messages, str | dict) else list(messages)
    if not turns:
        raise ValueError("sampling needs at least one message")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive integer, not {max_tokens!r}")
    params: dict[str, Any] = {"messages": [_sampling_message(m) for m in turns], "maxTokens": max_tokens}
    optional = {
        "systemPrompt": system_prompt,
        "temperature": temperature,
        "stopSequences": stop_sequences,
        "modelPreferences": model_preferences,
        "includeContext": include_context,
        "metadata": metadata,
    }
    params.update({key: value for key, value in optional.items() if value is not None})
    return params


def _not_over_mcp(protocol: str, what: str) -> str | None:
    """Why ``what`` (sampling, roots) cannot be asked of a run's caller, or None when it may be."""
    if protocol and protocol != "mcp":
        asked = "to sample" if what == "sampling" else f"for its {what}"
        return (
            f"the run was called over {protocol}: only an MCP client that declares the {what} capability "
            f"can be asked {asked}"
        )
    return None


def _sample_of(value: Any) -> Sample:
    if isinstance(value, dict) and "unavailable" in value:
        raise SamplingUnavailable(str(value["unavailable"]))
    return msgspec.convert(value, Sample)


def _roots_of(value: Any) -> list[Root]:
    if isinstance(value, dict) and "unavailable" in value:
        raise RootsUnavailable(str(value["unavailable"]))
    return msgspec.convert(value["roots"], list[Root])


class Question:
    """One question of ``ctx.ask_many``, made with ``Question.interrupt`` / ``elicit`` / ``approve`` /
    ``sample`` / ``roots``: what it asks (the request an ``interrupt`` of its own would carry), the JSON
    Schema of its answer, and what the answer becomes in the function."""

    __slots__ = ("_convert", "kind", "request", "schema")

    def __init__(
        self, kind: str, request: Any, schema: dict[str, Any] | None, convert: Callable[[Any], Any]
    ) -> None:
        self.kind = kind
        self.request = request
        self.schema = schema
        self._convert = convert

    @classmethod
    def interrupt(cls, request: Any, *, schema: Any = None) -> Question:
        """What ``ctx.interrupt(request, schema=schema)`` asks; answered as a ``schema`` (no schema: text)."""
        if schema is None:
            return cls("interrupt", request, {"type": "string"}, lambda value: value)
        answer_type = AnswerType(schema)
        return cls("interrupt", request, answer_type.schema, answer_type.convert)

    @classmethod
    def elicit(cls, message: str, *, schema: Any = None) -> Question:
        """What ``ctx.elicit(message, schema=schema)`` asks."""
        return cls.interrupt({"message": message}, schema=schema)

    @classmethod
    def approve(cls, action: str, details: Any = None) -> Question:
        """What ``ctx.approve(action, details)`` asks; answered as a ``Decision``."""
        return cls.interrupt({"approval": {"action": action, "details": details}}, schema=Decision)

    @classmethod
    def sample(
        cls,
        messages: Any,
        *,
        max_tokens: int = 1024,
        system_prompt: str | None = None,
        temperature: float | None = None,
        stop_sequences: list[str] | None = None,
        model_preferences: dict[str, Any] | None = None,
        include_context: Literal["none", "thisServer", "allServers"] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Question:
        """What ``ctx.sample(...)`` asks; answered as a ``Sample`` (reading it raises
        ``SamplingUnavailable`` when the client could not sample)."""
        params = _sampling_params(
            messages,
            max_tokens=max_tokens,
            system_prompt=system_prompt,
            temperature=temperature,
            stop_sequences=stop_sequences,
            model_preferences=model_preferences,
            include_context=include_context,
            metadata=metadata,
        )
        return cls("sampling", {"sampling": params}, SAMPLE_ANSWER_SCHEMA, _sample_of)

    @classmethod
    def roots(cls) -> Question:
        """What ``ctx.roots()`` asks; answered as a list of ``Root`` (reading it raises
        ``RootsUnavailable`` when the client could not say)."""
        return cls("roots", {"roots": {}}, ROOTS_ANSWER_SCHEMA, _roots_of)


class Answers(Mapping[str, Any]):
    """The answers of ``ctx.ask_many``, by the keys of its questions, each converted as its question says.
    Reading the answer of a ``Question.sample`` (``Question.roots``) the client could not give raises
    ``SamplingUnavailable`` (``RootsUnavailable``) there, the other answers stay readable."""

    __slots__ = ("_questions", "_raw")

    def __init__(self, questions: Mapping[str, Question], raw: Mapping[str, Any]) -> None:
        self._questions = dict(questions)
        self._raw = dict(raw)

    def __getitem__(self, key: str) -> Any:
        return self._questions[key]._convert(self._raw[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._questions)

    def __len__(self) -> int:
        return len(self._questions)

    @property
    def raw(self) -> dict[str, Any]:
        """The answers as JSON, as the run's ``input`` event holds them."""
        return dict(self._raw)


def _together(questions: Mapping[str, Question]) -> dict[str, Any]:
    """The JSON Schema of the answer to several questions: an object of every answer, by key (the
    questions' ``$defs`` gathered at its root, where their references point)."""
    defs: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for key, question in questions.items():
        schema = dict(question.schema or {"type": "string"})
        for name, definition in (schema.pop("$defs", None) or {}).items():
            if defs.setdefault(name, definition) != definition:
                raise ValueError(
                    f"two questions of ctx.ask_many define different types named {name!r}: rename one"
                )
        schema.pop("$schema", None)
        properties[key] = schema
    together: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if defs:
        together["$defs"] = defs
    return together


class Caller(msgspec.Struct, frozen=True):
    principal: str
    tenant: str


class RunContext:
    """Handed to an endpoint function that declares a parameter annotated ``RunContext``.

    The streaming methods are coroutines: each one appends to the run's ordered event log and gives the
    event loop a turn so the worker can ship events while the function keeps going.
    """

    __slots__ = (
        "_answers",
        "_asker",
        "_cancelled",
        "_checker",
        "_hooks",
        "_interrupts",
        "_sink",
        "_tool_calls",
        "_unpaced",
        "attempt",
        "caller",
        "checkpoint_state",
        "deadline",
        "endpoint",
        "model_hint",
        "protocol",
        "resume_input",
        "run_id",
    )

    def __init__(
        self,
        *,
        run_id: str,
        attempt: int,
        endpoint: str,
        caller: Caller,
        sink: Sink,
        checkpoint_state: Any = None,
        resume_input: Any = None,
        deadline: float | None = None,
        model_hint: str = "",
        protocol: str = "",
        answers: dict[str, Any] | None = None,
        asker: Asker | None = None,
        checker: Checker | None = None,
        hooks: Mapping[str, Sequence[WorkerHook]] | None = None,
    ) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self.endpoint = endpoint
        self.caller = caller
        #: The state saved by the last ``checkpoint`` of an earlier attempt, or None on a fresh run.
        self.checkpoint_state = checkpoint_state
        self.resume_input = resume_input
        #: Unix time by which the run must finish, or None.
        self.deadline = deadline
        #: The model a budget of the gateway wants this run to use from now on ("" : no preference). It
        #: changes while the run goes on when a run budget passes its ``downgrade_at``: read it before each
        #: LLM call (framework adapters do).
        self.model_hint = model_hint
        #: The protocol the run was called through: "rest", "mcp" or "a2a" ("" when the gateway predates it).
        self.protocol = protocol
        self._sink = sink
        self._cancelled = False
        self._unpaced = 0
        self._answers: dict[str, Any] = dict(answers or {})
        self._asker = asker
        self._interrupts = 0
        self._checker = checker
        self._hooks: Mapping[str, Sequence[WorkerHook]] = hooks or {}
        self._tool_calls = 0

    @property
    def cancelled(self) -> bool:
        """True once the gateway cancelled the run (the function also receives ``CancelledError``)."""
        return self._cancelled

    def step_key(self, step: str) -> str:
        """A key for an external side effect that stays the same across retries of this run."""
        return f"{self.run_id}:{step}"

    async def emit(self, kind: str, data: Any = None) -> None:
        """Append an event of any kind of the event model (``progress``, ``message``, ``tool_call``, ...)."""
        if kind in RESERVED_KINDS:
            raise ValueError(f"event kind {kind!r} is emitted by the gateway, not by endpoint code")
        if kind == "interrupt":
            raise ValueError(
                "an interrupt pauses the run: call ctx.interrupt(...), not ctx.emit('interrupt')"
            )
        if not EVENT_KIND_PATTERN.fullmatch(kind):
            raise ValueError(f"event kind {kind!r} must match {EVENT_KIND_PATTERN.pattern}")
        self._sink(kind, _encode({} if data is None else data), None)
        await self._pace()

    async def token(self, text: str) -> None:
        """Stream a text delta."""
        self._sink("token", _encode({"text": text}), None)
        await self._pace()

    async def _pace(self) -> None:
        # A producer that awaits nothing else between events still gets them shipped: every few events
        # it gives the loop a turn, so the worker sends them in batches rather than a frame per event.
        self._unpaced += 1
        if self._unpaced >= PACE_EVERY:
            self._unpaced = 0
            await asyncio.sleep(0)

    async def progress(self, current: float, total: float | None = None, message: str | None = None) -> None:
        data: dict[str, Any] = {"current": current}
        if total is not None:
            data["total"] = total
        if message is not None:
            data["message"] = message
        await self.emit("progress", data)

    async def usage(
        self, model: str, *, input_tokens: int = 0, output_tokens: int = 0, cost: float | None = None
    ) -> None:
        """Report one LLM call's usage: an ``llm_end`` event ``{"model", "input_tokens", "output_tokens"}``
        (and ``"cost"`` when given). The gateway adds it to the run's, the caller's and the tenant's totals,
        pricing the tokens from its price table when ``cost`` is None. Values the gateway would refuse
        (which would end this worker's connection) raise ValueError here instead."""
        if not isinstance(model, str) or not 0 < len(model) <= 200:
            raise ValueError("model must be a non-empty string of at most 200 characters")
        if any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in model):
            raise ValueError("model must not contain control characters or lone surrogates")
        for name, count in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
            if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 2**53:
                raise ValueError(f"{name} must be an integer from 0 to 2**53, not {count!r}")
        data: dict[str, Any] = {"model": model, "input_tokens": input_tokens, "output_tokens": output_tokens}
        if cost is not None:
            if not isinstance(cost, int | float) or isinstance(cost, bool) or not math.isfinite(cost):
                raise ValueError(f"cost must be a finite number, not {cost!r}")
            if not 0 <= cost <= 1e9:
                raise ValueError(f"cost must be from 0 to 1e9, not {cost!r}")
            data["cost"] = cost
        await self.emit("llm_end", data)

    async def log(self, message: str, level: str = "info") -> None:
        await self.emit("log", {"level": level, "message": message})

    async def checkpoint(self, state: Any) -> None:
        """Save durable state. A later attempt of this run (after a worker loss) starts with it in
        ``checkpoint_state``."""
        self._sink("checkpoint", _encode({"ts": time.time()}), _encode(state))
        await self._pace()

    async def interrupt(
        self, request: Any, *, schema: Any = None, id: str | None = None, checkpoint: Any = _UNSET
    ) -> Any:
        """Pause the run until someone answers ``request`` (any JSON value: a question, an action to
        approve); return the answer, converted to ``schema`` (any type an endpoint's input may have; the
        gateway validates answers against its JSON Schema first). The run shows ``waiting_input`` and an
        ``interrupt`` event; the answer arrives as an ``input`` event.

        ``id`` names the interrupt within the run (default ``interrupt-1``, ``interrupt-2``, ... in call
        order). ``checkpoint``: state to checkpoint just before pausing.

        A durable run does not hold its worker for long: after a short wait (the gateway's
        ``interrupt_hold``) the worker hands it back, and the answer starts a new attempt on any worker. That
        attempt runs the function again from the top with ``checkpoint_state``; calling ``interrupt`` again
        with the same ``id`` then returns the answer at once. So name interrupts, and checkpoint the work
        done before them."""
        answer_type = AnswerType(schema) if schema is not None else None
        value = await self._interrupt(request, answer_type.schema if answer_type else None, id, checkpoint)
        return answer_type.convert(value) if answer_type is not None else value

    async def _interrupt(
        self, request: Any, schema: dict[str, Any] | None, id: str | None, checkpoint: Any
    ) -> Any:
        """``interrupt`` with the answer's JSON Schema given as is: the answer, decoded JSON."""
        self._interrupts += 1
        interrupt_id = id if id is not None else f"interrupt-{self._interrupts}"
        if not INTERRUPT_ID.fullmatch(interrupt_id):
            raise ValueError(f"interrupt id {interrupt_id!r} must match {INTERRUPT_ID.pattern}")
        if interrupt_id in self._answers:
            value = self._answers[interrupt_id]
        else:
            if self._asker is None:
                raise RuntimeError("ctx.interrupt needs a gateway to answer it: this context has none")
            if checkpoint is not _UNSET:
                await self.checkpoint(checkpoint)
            data = _encode({"id": interrupt_id, "request": request, "schema": schema})
            value = _decode(await self._asker(interrupt_id, data))
            self._answers[interrupt_id] = value
        self.resume_input = value
        return value

    async def elicit(self, message: str, *, schema: Any = None, id: str | None = None) -> Any:
        """Ask the caller for information (MCP's elicitation): ``interrupt({"message": message}, ...)``."""
        return await self.interrupt({"message": message}, schema=schema, id=id)

    async def approve(self, action: str, details: Any = None, *, id: str | None = None) -> Decision:
        """Ask a person to approve ``action``: a ``Decision`` to approve it, approve an edited payload
        (``decision == "edit"``, ``payload``), or reject it (``reason``)."""
        request = {"approval": {"action": action, "details": details}}
        decision: Decision = await self.interrupt(request, schema=Decision, id=id)
        return decision

    async def sample(
        self,
        messages: Any,
        *,
        max_tokens: int = 1024,
        system_prompt: str | None = None,
        temperature: float | None = None,
        stop_sequences: list[str] | None = None,
        model_preferences: dict[str, Any] | None = None,
        include_context: Literal["none", "thisServer", "allServers"] | None = None,
        metadata: dict[str, Any] | None = None,
        id: str | None = None,
        checkpoint: Any = _UNSET,
    ) -> Sample:
        """Ask the *calling client's* model (MCP sampling, ``sampling/createMessage``): ``messages`` is a
        string (one user turn) or a list of strings and ``{"role", "content"}`` turns. The run waits for
        the answer like an ``interrupt`` (the request is ``{"sampling": <createMessage params>}``), and
        resumes the same way on a durable run (name it with ``id``).

        Raises ``SamplingUnavailable`` when no model can be asked: the run was called over REST or A2A
        (at once, without pausing), or the MCP client did not declare sampling or refused the request."""
        why = _not_over_mcp(self.protocol, "sampling")
        if why is not None:
            raise SamplingUnavailable(why)
        params = _sampling_params(
            messages,
            max_tokens=max_tokens,
            system_prompt=system_prompt,
            temperature=temperature,
            stop_sequences=stop_sequences,
            model_preferences=model_preferences,
            include_context=include_context,
            metadata=metadata,
        )
        value = await self._interrupt({"sampling": params}, SAMPLE_ANSWER_SCHEMA, id, checkpoint)
        return _sample_of(value)

    async def roots(self, *, id: str | None = None, checkpoint: Any = _UNSET) -> list[Root]:
        """Ask the *calling client* for its roots (MCP ``roots/list``): the directories or files it lets the
        agent work on, as ``Root(uri, name)``. The run waits for the answer like an ``interrupt`` (the
        request is ``{"roots": {}}``).

        Raises ``RootsUnavailable`` when no client can say: the run was called over REST or A2A (at once,
        without pausing), or the MCP client did not declare roots or refused the request."""
        why = _not_over_mcp(self.protocol, "roots")
        if why is not None:
            raise RootsUnavailable(why)
        return _roots_of(await self._interrupt({"roots": {}}, ROOTS_ANSWER_SCHEMA, id, checkpoint))

    async def ask_many(
        self, questions: Mapping[str, Question], *, id: str | None = None, checkpoint: Any = _UNSET
    ) -> Answers:
        """Ask several questions at once and wait until every one is answered: one interrupt (one
        ``interrupt`` event, one ``input`` event holding every answer), whose request is ``{"questions":
        {key: request}}`` and whose answer is ``{key: answer}``. ``questions`` maps keys (as interrupt ids:
        ``[A-Za-z0-9_.:-]``, 1 to 64) to ``Question.elicit`` / ``interrupt`` / ``approve`` / ``sample`` /
        ``roots``. Returns the answers by key, each converted as its question says.

        An MCP 2026-07-28 client gets every question in one input-required result (one ``inputRequests``
        entry each); a 2025-11-25 client is asked them one after the other on the call's stream; over REST
        one ``POST /v1/runs/{id}/resume`` answers all (``{"answer": {key: ...}}``). Over REST and A2A the
        ``sample`` and ``roots`` questions are not asked: reading their answers raises
        ``SamplingUnavailable`` / ``RootsUnavailable``. ``id`` and ``checkpoint`` as for ``interrupt``."""
        if not questions:
            raise ValueError("ctx.ask_many needs at least one question")
        asked: dict[str, Question] = {}
        given: dict[str, Any] = {}
        for key, question in questions.items():
            if not isinstance(key, str) or not INTERRUPT_ID.fullmatch(key):
                raise ValueError(f"question key {key!r} must match {INTERRUPT_ID.pattern}")
            if not isinstance(question, Question):
                raise TypeError(f"question {key!r} must be a Question (Question.elicit(...), ...)")
            why = _not_over_mcp(self.protocol, question.kind) if question.kind != "interrupt" else None
            if why is not None:
                given[key] = {"unavailable": why}
            else:
                asked[key] = question
        if asked:
            request = {"questions": {key: question.request for key, question in asked.items()}}
            value = await self._interrupt(request, _together(asked), id, checkpoint)
            given.update(value)
        return Answers(questions, given)

    # ------------------------------------------------------------------ tools and their guardrails

    async def tool(self, fn: Callable[..., Any], /, **arguments: Any) -> Any:
        """Call the tool ``fn`` with ``arguments`` under the guardrails: the worker-side ``on_tool_call``
        hooks and then the gateway's decide first (the call may be refused, its arguments modified, or it
        may be skipped with a stand-in result); ``fn`` runs (a sync function in a thread); the
        ``on_tool_result`` hooks decide what of its result the model may see. Returns that.

        Emits ``tool_call`` (the arguments as the tool gets them) and ``tool_result`` (what the model sees),
        after the guardrails, so refused or masked content never reaches the run's log. A refusal raises
        ``ToolRejected`` after a ``tool_result`` whose ``error`` says why (the function never ran, for a
        refused call). The tool's name is ``fn.__name__``."""
        name = getattr(fn, "__name__", None) or type(fn).__name__
        call_id = self._next_tool_id()
        try:
            call = await self.check_tool_call(name, arguments, id=call_id)
        except ToolRejected as exc:
            await self._tool_refused(call_id, name, exc)
            raise
        await self.emit("tool_call", {"id": call_id, "name": name, "arguments": jsonable(call.arguments)})
        if call.skipped:
            await self.emit(
                "tool_result",
                {"id": call_id, "name": name, "result": jsonable(call.result), "skipped": call.reason},
            )
            return call.result
        for attempt in range(MAX_TOOL_RETRIES + 1):
            result: Any = _UNSET
            error: Exception | None = None
            try:
                result = await _run_tool(fn, call.arguments)
            except Exception as exc:
                error = exc
            try:
                outcome = await self.check_tool_result(name, id=call_id, result=result, error=error)
            except ToolRejected as exc:
                await self._tool_refused(call_id, name, exc)
                raise
            if not outcome.retry or attempt == MAX_TOOL_RETRIES:
                break
            await asyncio.sleep(outcome.retry_after)
        if outcome.error is not None:
            await self.emit("tool_result", {"id": call_id, "name": name, "error": outcome.error})
            if error is not None and not outcome.modified:
                raise error
            raise ToolRejected(name, "on_tool_result", str(outcome.error.get("message", "")))
        await self.emit("tool_result", {"id": call_id, "name": name, "result": jsonable(outcome.result)})
        return outcome.result

    def _next_tool_id(self) -> str:
        self._tool_calls += 1
        return f"{self.run_id}:{self.attempt}:tool-{self._tool_calls}"

    async def _tool_refused(self, call_id: str, name: str, exc: ToolRejected) -> None:
        error = {"type": "ToolRejected", "message": str(exc), "hook": exc.hook, "point": exc.point}
        await self.emit("tool_result", {"id": call_id, "name": name, "error": error})

    async def check_tool_call(
        self, name: str, arguments: Mapping[str, Any], *, id: str | None = None
    ) -> ToolCall:
        """Ask the guardrails about a tool call before it runs: the worker-side ``on_tool_call`` hooks, then
        the gateway's (one round trip on the worker's stream, when the gateway has such hooks). Returns the
        call as it may run (``arguments`` perhaps modified; ``skipped`` with a stand-in ``result``); raises
        ``ToolRejected`` when it may not. Emits nothing: ``ctx.tool`` does, and so do the framework adapters,
        whose tool paths route through this (and ``check_tool_result``)."""
        call_id = id or self._next_tool_id()
        payload: dict[str, Any] = {"id": call_id, "name": name, "arguments": dict(arguments)}
        for _ in range(MAX_TOOL_RETRIES + 1):
            action, hook = await self._guard("on_tool_call", name, payload)
            if isinstance(action, Retry):
                await asyncio.sleep(max(action.after, 0.0))
                continue
            if isinstance(action, Reject):
                raise ToolRejected(name, "on_tool_call", action.reason, hook)
            if isinstance(action, Skip):
                return ToolCall(
                    call_id,
                    name,
                    dict(payload["arguments"]),
                    skipped=True,
                    result=action.result,
                    reason=action.reason,
                )
            arguments = action.payload["arguments"] if isinstance(action, Modify) else payload["arguments"]
            return ToolCall(call_id, name, dict(arguments))
        raise ToolRejected(
            name, "on_tool_call", f"still asked to retry after {MAX_TOOL_RETRIES} retries", hook
        )

    async def check_tool_result(
        self,
        name: str,
        *,
        id: str,
        result: Any = _UNSET,
        error: BaseException | Mapping[str, Any] | None = None,
    ) -> ToolOutcome:
        """Ask the guardrails about a tool's result (or its ``error``) before the model sees it: the
        worker-side ``on_tool_result`` hooks, then the gateway's. Returns what the model may see (the
        result, perhaps modified, or the error), or ``retry`` (run the tool again); raises ``ToolRejected``
        when the result must be withheld."""
        payload: dict[str, Any] = {"id": id, "name": name}
        if error is not None:
            payload["error"] = (
                dict(error)
                if isinstance(error, Mapping)
                else {"type": type(error).__name__, "message": str(error)}
            )
        else:
            payload["result"] = None if result is _UNSET else result
        action, hook = await self._guard("on_tool_result", name, payload)
        if isinstance(action, Reject):
            raise ToolRejected(name, "on_tool_result", action.reason, hook)
        if isinstance(action, Retry):
            return ToolOutcome(
                result=payload.get("result"),
                error=payload.get("error"),
                retry=True,
                retry_after=max(action.after, 0.0),
            )
        if isinstance(action, Modify):
            changed = action.payload
            return ToolOutcome(result=changed.get("result"), error=changed.get("error"), modified=True)
        return ToolOutcome(result=payload.get("result"), error=payload.get("error"))

    async def _guard(self, point: str, tool: str, payload: dict[str, Any]) -> tuple[Action, str]:
        """The worker-side hooks of ``point``, then the gateway's chain: the first action that is not proceed
        or modify, or Modify with the final payload (or Proceed), and the hook that decided."""
        modified = False
        for hook in self._hooks.get(point, ()):
            context = self._hook_context(point, payload, tool)
            action = await run_worker_hook(hook, context)
            name = getattr(hook, "__name__", "hook")
            if isinstance(action, Proceed):
                continue
            if isinstance(action, Modify):
                problem = _tool_shape(point, payload, action.payload)
                if problem:
                    raise ToolRejected(
                        tool, point, f"worker hook {name} modified the payload wrongly: {problem}", name
                    )
                payload, modified = action.payload, True
                continue
            return action, name
        checker = self._checker
        if checker is not None:
            verdict = await checker(point, tool, _encode(jsonable(payload)))
            if verdict is not None:
                if verdict.action == "modify":
                    return Modify(_decode(verdict.data)), verdict.hook
                if verdict.action == "skip":
                    return Skip(_decode(verdict.data) if verdict.data else None, verdict.reason), verdict.hook
                if verdict.action == "reject":
                    return Reject(verdict.reason), verdict.hook
                if verdict.action == "retry":
                    return Retry(verdict.retry_after, verdict.reason), verdict.hook
        return (Modify(payload) if modified else Proceed()), ""

    def _hook_context(self, point: str, payload: Any, tool: str = "") -> WorkerHookContext:
        return WorkerHookContext(
            point=point,
            run_id=self.run_id,
            attempt=self.attempt,
            endpoint=self.endpoint,
            protocol=self.protocol,
            principal=self.caller.principal,
            tenant=self.caller.tenant,
            tool=tool,
            payload=payload,
        )

    async def _run_hooks(self, point: str, payload: Any) -> Any:
        """The worker-side hooks of ``on_request`` / ``on_response`` on ``payload``: the payload as they
        leave it; ``HookRejected`` when one refuses."""
        for hook in self._hooks.get(point, ()):
            action = await run_worker_hook(hook, self._hook_context(point, payload))
            if isinstance(action, Modify):
                payload = action.payload
            elif isinstance(action, Reject):
                raise HookRejected(
                    f"worker hook {getattr(hook, '__name__', 'hook')} rejected the {point[3:]}: {action.reason}"
                )
        return payload

    def _cancel(self) -> None:
        self._cancelled = True


class HookRejected(Exception):
    """A worker-side ``on_request`` / ``on_response`` hook refused the run's input or output: the run fails
    with this error type."""


async def _run_tool(fn: Callable[..., Any], arguments: Mapping[str, Any]) -> Any:
    if inspect.iscoroutinefunction(fn):
        return await fn(**arguments)
    result = await asyncio.to_thread(fn, **arguments)
    if inspect.isawaitable(result):
        result = await result
    return result


def _tool_shape(point: str, original: Mapping[str, Any], changed: Any) -> str:
    if not isinstance(changed, dict):
        return "the payload must stay a dict"
    if changed.get("id") != original.get("id") or changed.get("name") != original.get("name"):
        return "the payload keeps its id and name"
    if point == "on_tool_call" and not isinstance(changed.get("arguments"), dict):
        return "arguments must stay a dict"
    if point == "on_tool_result" and "result" not in changed and not isinstance(changed.get("error"), dict):
        return 'a result holds "result" or "error"'
    return ""
