"""Answering a run's interrupts over MCP: the question goes to the client that called, its answer resumes
the run (``RunService.resume``, validated against the interrupt's schema).

The request may be a ``tools/call``, a ``prompts/get`` or a ``resources/read``: all three are answered the
same way. Where a ``tools/call`` ends with an ``isError`` result (declined, refused answers, a client that
cannot answer), the other two, which have no error results, end with a JSON-RPC error saying the same
(``request_error``).

- **2025-11-25**: ``elicitation/create`` on the stream of the request that follows the run (the
  ``tools/call``, or a task's ``tasks/result``), as a request related to it. ``accept`` resumes the run;
  an answer the schema refuses is asked again with the reasons in the message, ``MAX_ASKS`` times in all,
  then the run is cancelled and the call answers an ``isError`` result naming the problems. ``decline`` /
  ``cancel`` cancel the run and the call answers an ``isError`` result saying so. A client that did not
  declare form elicitation gets an ``isError`` result saying the tool needs input it cannot give, and the
  run keeps waiting for an answer from elsewhere (REST, a task's ``tasks/result``).
- **2026-07-28**: the request answers an ``InputRequiredResult``: one elicitation, keyed by the
  interrupt's id, and a signed ``requestState`` (``request_state.py``) bound to the request (method, tool or
  prompt name or resource URI, arguments). The client's retry carries the
  answer and the state; the run resumes and the retry follows it on (to its result, or to the next
  interrupt: another ``InputRequiredResult``). The same rules for refused, declined, and too many answers.
  A client that did not declare form elicitation gets ``-32021``; the run keeps waiting. A first call
  may carry ``inputResponses`` without a state: they answer the run's first question if they name it.
  A task-capable call of an ``input_before_task`` endpoint has these rounds before its task (``GoOn``).
- **Tasks** (2026-07-28 extension): ``tasks/get`` of a waiting task carries the elicitation in
  ``inputRequests``; ``tasks/update`` answers it (``take``).
- **Sampling** (``ctx.sample``: ``sampling.py``): the same two paths with ``sampling/createMessage``
  instead of ``elicitation/create``. A 2025-11-25 client without the sampling capability, or one that
  refuses the request, gets no error: the run is answered ``unavailable`` (the agent raises
  ``SamplingUnavailable`` and decides) and the request follows it on. A 2026-07-28 request that did not
  declare sampling gets ``-32021`` (SEP-2575) and, since nobody else could answer, the run is answered
  ``unavailable`` and goes on.
- **Roots** (``ctx.roots``: ``questions.py``): as sampling, with ``roots/list``; its answer is the
  client's ``ListRootsResult`` or ``unavailable`` (the agent raises ``RootsUnavailable``).
- **Several questions at once** (``ctx.ask_many``: ``questions.py``): one interrupt, one question per key
  (a form, a sampling request or ``roots/list``). 2025-11-25: each put to the client in turn on the
  request's stream, then the run answered once with every answer. 2026-07-28: one ``InputRequiredResult``
  with one ``inputRequests`` entry per key; a retry answering some keys gets another with the rest, and
  the answers so far, each checked against its own question's schema, ride in the signed ``requestState``
  (``got``: the state grows with them and is refused past ``MAX_STATE``, 256 KB); the run is answered
  when the last key comes in. A refused answer asks that key again (``MAX_ASKS`` rounds with a refusal in
  all); a declined form cancels the run. Sampling or roots questions this client cannot answer are answered
  ``unavailable`` at once and not asked; a form this client cannot answer is ``-32021`` for the whole
  interrupt. In the tasks extension, ``tasks/update`` with some keys is kept by ``tasks.py``.

An ephemeral run waiting in place on a 2026-07-28 round is bounded by its ``requestState``: each state
minted (each round) tells ``RunService.bound_wait`` that no answer can come through this client once it
expired (``mcp_state_ttl``, plus ``STATE_GRACE``), and the run then fails ``InterruptTimeout`` instead of
holding its worker slot until ``interrupt_timeout``. Durable runs are not bounded (they are handed back).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, NoReturn, TypeVar, cast

import anyio
import mcp_types as types
from mcp_types import INTERNAL_ERROR, MISSING_REQUIRED_CLIENT_CAPABILITY
from pydantic import BaseModel, ValidationError

from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata

from ...access.principal import Principal, request_id_of
from ...errors import Conflict, InvalidInput, NotFound
from ...runs.approval import GATE_ID
from ...runs.model import TERMINAL, Run
from ...runs.service import RunService
from .elicitation import FORM_CAPABILITY, Form, Interrupt, accepts_forms
from .questions import (
    NO_ROOTS,
    ROOTS_CAPABILITY,
    accepts_roots,
    is_roots,
    listed,
    part_problems,
    parts_of,
    roots_request,
    roots_result_of,
)
from .request_state import RequestStates, arguments_digest, invalid_state, who_of
from .results import Outcome, error_result
from .running import OnInterrupt, answer, finish_answering, pending_interrupt
from .sampling import (
    accepts_sampling,
    result_of,
    sampled,
    sampling_of,
    sampling_params,
    sampling_request,
    unavailable,
)
from .streaming import Relay

T = TypeVar("T", bound=BaseModel)

#: Times one interrupt is put to a client whose answers the schema refuses, before the run is cancelled.
MAX_ASKS = 3

#: Seconds past a ``requestState``'s expiry before an ephemeral run still waiting on it is ended (a retry
#: that opened the state just in time is still answering it).
STATE_GRACE = 1.0

#: Why a run's sampling request is answered ``unavailable`` for a client that cannot sample (2025-11-25).
NO_SAMPLING = "the MCP client did not declare the sampling capability"
#: ``requiredCapabilities`` of the ``-32021`` a 2026-07-28 request without sampling gets.
SAMPLING_CAPABILITY: dict[str, Any] = {"sampling": {}}

#: What ``take`` made of a client's reply: None (the run resumed), the ``isError`` result of a declined
#: question (the run cancelled), or why the answer was refused.
Taken = dict[str, Any] | list[str] | None

#: The requests whose run may ask its caller.
Answerable = types.CallToolRequestParams | types.GetPromptRequestParams | types.ReadResourceRequestParams

#: What a retried request makes of its run once answered (from after the interrupt's seq): by default it
#: follows the run to its result or next question; a task-capable call of an ``input_before_task`` endpoint
#: makes the task once the run goes past its questions (front.py).
GoOn = Callable[[Run, int], Awaitable[Outcome | dict[str, Any]]]

#: What the messages call the endpoint a request runs, by the request's method.
_WHAT = {"tools/call": "tool", "prompts/get": "prompt", "resources/read": "resource"}


def bound_to(params: Answerable) -> tuple[str, str, Any]:
    """What a ``requestState`` is bound to: the request's method, the tool's or prompt's name or the
    resource's URI, and the arguments."""
    if isinstance(params, types.ReadResourceRequestParams):
        return "resources/read", str(params.uri), None
    if isinstance(params, types.GetPromptRequestParams):
        return "prompts/get", params.name, params.arguments
    return "tools/call", params.name, params.arguments


def request_error(kind: str, message: str, details: list[str] | None = None) -> NoReturn:
    """What ``error_result`` says, as the JSON-RPC error of a request without error results
    (``prompts/get``, ``resources/read``): ``-32603``, ``<kind>: <message>``, ``data.type`` the kind and
    ``data.errors`` the details."""
    data: dict[str, Any] = {"type": kind}
    if details:
        data["errors"] = details
    raise MCPError(INTERNAL_ERROR, f"{kind}: {message}", data)


def ending(what: str) -> Callable[[str, str, list[str] | None], dict[str, Any]]:
    """How a request running a ``what`` (``tool``, ``prompt``, ``resource``) ends without its run's
    result: an ``isError`` tool result, else a JSON-RPC error."""
    return error_result if what == "tool" else request_error


def reply_of(response: Any) -> types.ElicitResult | None:
    """An ``inputResponses`` entry as the elicitation result it must be, or None."""
    if isinstance(response, types.ElicitResult):
        return response
    if isinstance(response, types.Result):
        response = response.model_dump(by_alias=True, exclude_none=True)
    try:
        return types.ElicitResult.model_validate(response, by_name=False)
    except ValidationError:
        return None


def asked_again(problems: list[str]) -> str:
    """What a question asked again says after its message."""
    return "The last answer was not accepted:\n" + "\n".join(f"- {problem}" for problem in problems)


async def _ask(ctx: ServerRequestContext[Any, Any], request: Any, answer: type[T]) -> T:
    """``request`` put to the client on the stream of the call ``ctx`` serves, its answer read as ``answer``
    (MCPError when the client refuses, ValidationError when it answers something else)."""
    return await ctx.session.send_request(
        request, answer, metadata=ServerMessageMetadata(related_request_id=ctx.request_id)
    )


class Asking:
    def __init__(
        self,
        runs: RunService,
        states: RequestStates,
        principal_in: Callable[[ServerRequestContext[Any, Any]], Principal],
    ) -> None:
        self.runs = runs
        self.states = states
        self.principal_in = principal_in

    # ------------------------------------------------------------------ either revision

    async def take(
        self,
        ctx: ServerRequestContext[Any, Any],
        run: Run,
        interrupt: Interrupt,
        reply: types.ElicitResult,
        what: str = "tool",
    ) -> Taken:
        """Act on the client's reply to ``interrupt``. ``Conflict`` when the run no longer waits on it."""
        who = self.principal_in(ctx)
        if reply.action != "accept":
            declined = "declined" if reply.action == "decline" else "cancelled"
            why = f"the MCP client {declined} the question of interrupt {interrupt.id!r}"
            await self._cancel(ctx, run, why)
            return ending(what)(declined, f"{why}; run {run.id} was cancelled", None)
        value, problems = Form(interrupt).answer(reply.content)
        if problems:
            return problems
        try:
            await answer(self.runs, run, interrupt, value, who, request_id_in(ctx))
        except InvalidInput as exc:
            return [f"{error.path}: {error.message}" for error in exc.errors] or [exc.message]
        except NotFound as exc:
            raise Conflict(exc.message) from exc
        return None

    async def give_up(
        self,
        ctx: ServerRequestContext[Any, Any],
        run: Run,
        interrupt: Interrupt,
        problems: list[str],
        what: str = "tool",
    ) -> dict[str, Any]:
        why = f"no acceptable answer to interrupt {interrupt.id!r} after {MAX_ASKS} tries"
        await self._cancel(ctx, run, why)
        return ending(what)("invalid_answer", f"{why}; run {run.id} was cancelled", problems)

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], run: Run, why: str) -> None:
        with anyio.CancelScope(shield=True), contextlib.suppress(Conflict, NotFound):
            await self.runs.cancel(
                run.id, self.principal_in(ctx), why, protocol="mcp", request_id=request_id_in(ctx)
            )

    # ------------------------------------------------------------------ 2025-11-25: elicitation/create

    def by_elicitation(
        self,
        ctx: ServerRequestContext[Any, Any],
        run: Run,
        *,
        meta: dict[str, Any] | None = None,
        what: str = "tool",
    ) -> OnInterrupt:
        """Put each interrupt of ``run`` to the client on ``ctx``'s stream (``meta``: the ``_meta`` of the
        request, e.g. naming the task it is made for; ``what`` the request runs: ``tool``, ``prompt``,
        ``resource``)."""

        async def elicit(interrupt: Interrupt) -> dict[str, Any] | None:
            if interrupt.id == GATE_ID:
                return None  # an approver decides, not the caller: the call waits for the decision
            parts = parts_of(interrupt)
            if parts is not None:
                return await self._ask_parts(ctx, run, interrupt, parts, meta, what)
            if sampling_of(interrupt) is not None:
                await self.sample(ctx, run, interrupt, meta)
                return None
            if is_roots(interrupt):
                await self.give(ctx, run, interrupt, await self._listed_roots(ctx, meta))
                return None
            if not accepts_forms(ctx.session.client_capabilities):
                return cannot_answer(run, interrupt, "it did not declare the elicitation capability", what)
            form = Form(interrupt)
            problems: list[str] = []
            for _ in range(MAX_ASKS):
                try:
                    reply = await self._elicit(ctx, form, problems, meta)
                except (MCPError, ValidationError) as exc:
                    return cannot_answer(run, interrupt, f"elicitation/create failed: {exc}", what)
                # A reply in hand is acted on whole, even if the run moves on meanwhile (its own doing).
                with anyio.CancelScope(shield=True):
                    try:
                        taken = await self.take(ctx, run, interrupt, reply, what)
                    except Conflict:
                        return None  # answered elsewhere, or ended: following the run shows how
                if not isinstance(taken, list):
                    return taken
                problems = taken
            return await self.give_up(ctx, run, interrupt, problems, what)

        return elicit

    async def sample(
        self,
        ctx: ServerRequestContext[Any, Any],
        run: Run,
        interrupt: Interrupt,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """2025-11-25: ``sampling/createMessage`` on ``ctx``'s stream; the result (or why there is none)
        answers the run's sampling interrupt."""
        await self.give(ctx, run, interrupt, await self._sampled(ctx, interrupt, meta))

    async def _sampled(
        self, ctx: ServerRequestContext[Any, Any], interrupt: Interrupt, meta: dict[str, Any] | None
    ) -> dict[str, Any]:
        """``sampling/createMessage`` on ``ctx``'s stream: the result as the answer, or why there is none."""
        capabilities = ctx.session.client_capabilities
        params = sampling_of(interrupt)
        assert params is not None
        if not accepts_sampling(capabilities):
            return unavailable(NO_SAMPLING)
        try:
            request = types.CreateMessageRequest(params=sampling_params(params, capabilities, meta))
        except ValueError as exc:
            return unavailable(str(exc))
        try:
            result = await _ask(ctx, request, types.CreateMessageResult)
        except MCPError as exc:
            return unavailable(f"the MCP client refused sampling/createMessage: {exc.message}")
        except ValidationError as exc:
            return unavailable(f"the MCP client's sampling result is not a CreateMessageResult: {exc}")
        value = sampled(result)
        problems = part_problems(interrupt, value)
        return (
            value if not problems else unavailable("the sampling result was refused: " + "; ".join(problems))
        )

    async def _elicit(
        self,
        ctx: ServerRequestContext[Any, Any],
        form: Form,
        problems: list[str],
        meta: dict[str, Any] | None,
    ) -> types.ElicitResult:
        """One ``elicitation/create`` of ``form`` on ``ctx``'s stream (asking again, saying why, when the
        last answer had ``problems``); MCPError or ValidationError when the client cannot be asked."""
        params = form.params(asked_again(problems) if problems else "")
        if meta is not None:
            params["_meta"] = meta
        request = types.ElicitRequest(
            params=types.ElicitRequestFormParams.model_validate(params, by_name=False)
        )
        return await _ask(ctx, request, types.ElicitResult)

    async def _listed_roots(
        self, ctx: ServerRequestContext[Any, Any], meta: dict[str, Any] | None
    ) -> dict[str, Any]:
        """``roots/list`` on ``ctx``'s stream: the client's roots as the answer, or why there are none."""
        if not accepts_roots(ctx.session.client_capabilities):
            return unavailable(NO_ROOTS)
        request = types.ListRootsRequest(
            params=types.RequestParams.model_validate({"_meta": meta}) if meta else None
        )
        try:
            result = await _ask(ctx, request, types.ListRootsResult)
        except MCPError as exc:
            return unavailable(f"the MCP client refused roots/list: {exc.message}")
        except ValidationError as exc:
            return unavailable(f"the MCP client's roots are not a ListRootsResult: {exc}")
        return listed(result)

    async def _ask_parts(
        self,
        ctx: ServerRequestContext[Any, Any],
        run: Run,
        interrupt: Interrupt,
        parts: dict[str, Interrupt],
        meta: dict[str, Any] | None,
        what: str,
    ) -> dict[str, Any] | None:
        """2025-11-25, several questions at once (``ctx.ask_many``): each put to the client in turn on
        ``ctx``'s stream, then the run answered with every answer."""
        if any(_is_form(part) for part in parts.values()) and not accepts_forms(
            ctx.session.client_capabilities
        ):
            return cannot_answer(run, interrupt, "it did not declare the elicitation capability", what)
        values: dict[str, Any] = {}
        for key, part in parts.items():
            if sampling_of(part) is not None:
                values[key] = await self._sampled(ctx, part, meta)
                continue
            if is_roots(part):
                values[key] = await self._listed_roots(ctx, meta)
                continue
            form = Form(part)
            problems: list[str] = []
            for _ in range(MAX_ASKS):
                try:
                    reply = await self._elicit(ctx, form, problems, meta)
                except (MCPError, ValidationError) as exc:
                    return cannot_answer(run, interrupt, f"elicitation/create failed: {exc}", what)
                if reply.action != "accept":
                    with anyio.CancelScope(shield=True):
                        return await self._declined(ctx, run, part, reply, what)
                value, problems = form.answer(reply.content)
                problems = problems or part_problems(part, value)
                if not problems:
                    values[key] = value
                    break
            else:
                with anyio.CancelScope(shield=True):
                    return await self.give_up(ctx, run, part, problems, what)
        with anyio.CancelScope(shield=True):
            try:
                await answer(self.runs, run, interrupt, values, self.principal_in(ctx), request_id_in(ctx))
            except InvalidInput as exc:
                problems = [f"{error.path}: {error.message}" for error in exc.errors] or [exc.message]
                return await self.give_up(ctx, run, interrupt, problems, what)
            except (Conflict, NotFound):
                return None  # answered elsewhere, or ended: following the run shows how
        return None

    async def _declined(
        self,
        ctx: ServerRequestContext[Any, Any],
        run: Run,
        part: Interrupt,
        reply: types.ElicitResult,
        what: str,
    ) -> dict[str, Any]:
        declined = "declined" if reply.action == "decline" else "cancelled"
        why = f"the MCP client {declined} the question of interrupt {part.id!r}"
        await self._cancel(ctx, run, why)
        return ending(what)(declined, f"{why}; run {run.id} was cancelled", None)

    async def give(
        self, ctx: ServerRequestContext[Any, Any], run: Run, interrupt: Interrupt, value: dict[str, Any]
    ) -> None:
        """Answer the run's sampling interrupt with ``value`` (a result the interrupt's schema refuses is
        answered ``unavailable``, saying why). Nothing when the run no longer waits on it."""
        with anyio.CancelScope(shield=True), contextlib.suppress(Conflict, NotFound):
            try:
                await answer(self.runs, run, interrupt, value, self.principal_in(ctx), request_id_in(ctx))
            except InvalidInput as exc:
                problems = "; ".join(f"{error.path}: {error.message}" for error in exc.errors) or exc.message
                why = f"the MCP client's sampling result was refused: {problems}"
                await answer(
                    self.runs, run, interrupt, unavailable(why), self.principal_in(ctx), request_id_in(ctx)
                )

    # ------------------------------------------------------------------ 2026-07-28: InputRequiredResult

    def by_input_required(
        self, ctx: ServerRequestContext[Any, Any], params: Answerable, run: Run
    ) -> OnInterrupt:
        """End the request (``tools/call``, ``prompts/get``, ``resources/read``) with an
        ``InputRequiredResult`` for each interrupt of ``run``."""
        what = _WHAT[bound_to(params)[0]]
        # Answers sent with the first call, before any question (SEP-2322 lets a client send what it
        # knows): they answer the run's first question when they name it, once; keys that name nothing
        # are ignored, as the spec asks. They are the caller's own answers to its own run's questions.
        ahead = params.input_responses if params.request_state is None else None

        async def input_required(interrupt: Interrupt) -> dict[str, Any] | None:
            nonlocal ahead
            if interrupt.id == GATE_ID:
                return None  # an approver decides, not the caller: the call waits for the decision
            if ahead and _names(interrupt, ahead) and _can_answer(interrupt, ctx.session.client_capabilities):
                responses, ahead = ahead, None
                parts = parts_of(interrupt)
                capabilities = ctx.session.client_capabilities
                cannot = (  # questions this client cannot answer are answered unavailable, as below
                    {key: why for key, part in parts.items() if (why := _cannot(part, capabilities))}
                    if parts is not None
                    else None
                )
                try:
                    return await self._answer_with(ctx, params, run, interrupt, responses, cannot or None, 1)
                except (Conflict, NotFound):
                    return None  # answered elsewhere, or ended: following the run shows how
            ahead = None
            parts = parts_of(interrupt)
            if parts is not None:
                capabilities = ctx.session.client_capabilities
                if any(_is_form(part) for part in parts.values()) and not accepts_forms(capabilities):
                    raise MCPError(
                        MISSING_REQUIRED_CLIENT_CAPABILITY,
                        f"Missing required client capability: the {what} asks for input (form "
                        f"elicitation); run {run.id} waits for an answer from elsewhere",
                        {"requiredCapabilities": FORM_CAPABILITY},
                    )
                # What only this client could answer and it cannot is answered unavailable at once; the
                # other questions are asked.
                got = {key: why for key, part in parts.items() if (why := _cannot(part, capabilities))}
                if len(got) == len(parts):
                    await self.give(ctx, run, interrupt, got)
                    return None
                return self.input_required(ctx, params, run, interrupt, asked=1, got=got)
            if is_roots(interrupt):
                if not accepts_roots(ctx.session.client_capabilities):
                    await self.give(ctx, run, interrupt, unavailable(NO_ROOTS))
                    raise MCPError(
                        MISSING_REQUIRED_CLIENT_CAPABILITY,
                        f"Missing required client capability: the {what} asks the client's roots; run "
                        f"{run.id} goes on without them",
                        {"requiredCapabilities": ROOTS_CAPABILITY},
                    )
                return self.input_required(ctx, params, run, interrupt, asked=1)
            sampling = sampling_of(interrupt)
            if sampling is not None:
                capabilities = ctx.session.client_capabilities
                if not accepts_sampling(capabilities):
                    # SEP-2575: a request needing a capability its client did not declare is -32021. Only
                    # the caller's model could answer, so the run is not left waiting (holding its worker):
                    # it is answered unavailable, and the agent goes on without (SamplingUnavailable).
                    await self.give(ctx, run, interrupt, unavailable(NO_SAMPLING))
                    raise MCPError(
                        MISSING_REQUIRED_CLIENT_CAPABILITY,
                        f"Missing required client capability: the {what} asks the client's model "
                        f"(sampling); run {run.id} goes on without it",
                        {"requiredCapabilities": SAMPLING_CAPABILITY},
                    )
                try:
                    sampling_params(sampling, capabilities)
                except ValueError as exc:
                    await self.give(ctx, run, interrupt, unavailable(str(exc)))
                    return None
                return self.input_required(ctx, params, run, interrupt, asked=1)
            if not accepts_forms(ctx.session.client_capabilities):
                raise MCPError(
                    MISSING_REQUIRED_CLIENT_CAPABILITY,
                    f"Missing required client capability: the {what} asks for input (form elicitation); run "
                    f"{run.id} waits for an answer from elsewhere",
                    {"requiredCapabilities": FORM_CAPABILITY},
                )
            return self.input_required(ctx, params, run, interrupt, asked=1)

        return input_required

    def input_required(
        self,
        ctx: ServerRequestContext[Any, Any],
        params: Answerable,
        run: Run,
        interrupt: Interrupt,
        *,
        asked: int,
        note: str = "",
        got: dict[str, Any] | None = None,
        notes: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The ``InputRequiredResult`` asking ``interrupt`` (of several questions: those not in ``got``,
        the answers so far, which the state carries; ``notes`` say why a question is asked again)."""
        method, name, arguments = bound_to(params)
        state = self.states.mint(
            run=run.id,
            interrupt=interrupt.id,
            seq=interrupt.seq,
            who=who_of(self.principal_in(ctx)),
            tool=name,
            args=arguments_digest(arguments),
            asked=asked,
            method=method,
            got=got,
        )
        # Past the state's expiry no answer can reach the run through this client: an ephemeral run, held
        # in place by its worker, is not left holding the slot until interrupt_timeout (RunService).
        ttl = self.states.ttl
        self.runs.bound_wait(
            run,
            interrupt.seq,
            time.time() + ttl + STATE_GRACE,
            f"no answer to interrupt {interrupt.id!r} came back: the MCP client's requestState expired "
            f"({ttl:g} s after the input-required result, mcp_state_ttl)",
        )
        parts = parts_of(interrupt)
        if parts is not None:
            given, said = got or {}, notes or {}
            requests = {
                key: _request_for(ctx, part, said.get(key, ""))
                for key, part in parts.items()
                if key not in given
            }
        else:
            requests = {interrupt.id: _request_for(ctx, interrupt, note)}
        return {"resultType": "input_required", "inputRequests": requests, "requestState": state}

    async def redeem(
        self,
        ctx: ServerRequestContext[Any, Any],
        params: Answerable,
        relay: Relay | None,
        go_on: GoOn | None = None,
    ) -> Outcome | dict[str, Any]:
        """A retried request (``tools/call``, ``prompts/get``, ``resources/read``): answer the interrupt
        its ``requestState`` names with its ``inputResponses``, then follow the run on (``go_on``: what the
        request makes of the run from the answer on, by default follow it to its result or next question)."""
        assert params.request_state is not None
        who = self.principal_in(ctx)
        method, name, arguments = bound_to(params)
        state = self.states.open(params.request_state, who, name, arguments, method)
        run = await self.runs.get(state.run, who)
        if run is None or run.status in TERMINAL or run.last_seq != state.seq:
            raise invalid_state("answered")
        interrupt = await pending_interrupt(self.runs, run)
        if interrupt is None or interrupt.id != state.interrupt:
            raise invalid_state("answered")
        try:
            ended = await self._answer_with(
                ctx, params, run, interrupt, params.input_responses or {}, state.got, state.asked
            )
        except (Conflict, NotFound):
            raise invalid_state("answered") from None
        if ended is not None:
            return ended
        if go_on is not None:
            return await go_on(run, interrupt.seq)
        on_interrupt = self.by_input_required(ctx, params, run)
        return await finish_answering(self.runs, run, relay, on_interrupt, after_seq=interrupt.seq)

    async def _answer_with(
        self,
        ctx: ServerRequestContext[Any, Any],
        params: Answerable,
        run: Run,
        interrupt: Interrupt,
        responses: dict[str, Any],
        got: dict[str, Any] | None,
        asked: int,
    ) -> dict[str, Any] | None:
        """Answer ``interrupt`` with the client's ``responses`` (keyed as its ``inputRequests`` were): the
        result to end the request with (the question asked again, or the ending of a declined or hopeless
        one), or None once the run was answered. ``Conflict`` / ``NotFound`` when it no longer waits."""
        parts = parts_of(interrupt)
        if parts is not None:
            return await self._answer_parts(ctx, params, run, interrupt, parts, responses, got, asked)
        response = responses.get(interrupt.id)
        if is_roots(interrupt):
            roots = roots_result_of(response)
            if roots is None:  # the spec: ask again for what is missing
                return self.input_required(ctx, params, run, interrupt, asked=asked)
            await answer(self.runs, run, interrupt, listed(roots), self.principal_in(ctx), request_id_in(ctx))
            return None
        if sampling_of(interrupt) is not None:
            result = result_of(response)
            if result is None:  # the spec: ask again for what is missing
                return self.input_required(ctx, params, run, interrupt, asked=asked)
            try:
                await answer(
                    self.runs, run, interrupt, sampled(result), self.principal_in(ctx), request_id_in(ctx)
                )
            except InvalidInput as exc:
                problems = "; ".join(f"{error.path}: {error.message}" for error in exc.errors) or exc.message
                await self.give(
                    ctx, run, interrupt, unavailable(f"the sampling result was refused: {problems}")
                )
            return None
        reply = reply_of(response)
        if reply is None:  # the spec: ask again for what is missing
            note = "No answer to this question came with the retried call."
            return self.input_required(ctx, params, run, interrupt, asked=asked, note=note)
        taken = await self.take(ctx, run, interrupt, reply, _WHAT[bound_to(params)[0]])
        if isinstance(taken, list):
            if asked >= MAX_ASKS:
                return await self.give_up(ctx, run, interrupt, taken, _WHAT[bound_to(params)[0]])
            return self.input_required(ctx, params, run, interrupt, asked=asked + 1, note=asked_again(taken))
        return taken

    async def part_answer(
        self,
        ctx: ServerRequestContext[Any, Any],
        run: Run,
        part: Interrupt,
        response: Any,
        what: str = "tool",
    ) -> Part:
        """One question's answer (of several asked at once) from the client's response to it."""
        if sampling_of(part) is not None:
            result = result_of(response)
            if result is None:
                return Part("missing")
            value = sampled(result)
            problems = part_problems(part, value)
            if problems:
                value = unavailable("the sampling result was refused: " + "; ".join(problems))
            return Part("value", value)
        if is_roots(part):
            roots = roots_result_of(response)
            return Part("missing") if roots is None else Part("value", listed(roots))
        reply = reply_of(response)
        if reply is None:
            return Part("missing")
        if reply.action != "accept":
            with anyio.CancelScope(shield=True):
                return Part("ended", await self._declined(ctx, run, part, reply, what))
        value, problems = Form(part).answer(reply.content)
        problems = problems or part_problems(part, value)
        return Part("refused", problems) if problems else Part("value", value)

    async def _answer_parts(
        self,
        ctx: ServerRequestContext[Any, Any],
        params: Answerable,
        run: Run,
        interrupt: Interrupt,
        parts: dict[str, Interrupt],
        responses: dict[str, Any],
        got: dict[str, Any] | None,
        asked: int,
    ) -> dict[str, Any] | None:
        """Answers to some or all of several questions: the answers so far (the state's and these) are
        kept in the next state until every question has one; then the run is answered (None)."""
        what = _WHAT[bound_to(params)[0]]
        given = dict(got or {})
        notes: dict[str, str] = {}
        problems: list[str] = []
        for key, part in parts.items():
            if key in given or key not in responses:
                continue
            taken = await self.part_answer(ctx, run, part, responses[key], what)
            if taken.kind == "ended":
                return cast(dict[str, Any], taken.value)
            if taken.kind == "refused":
                notes[key] = asked_again(taken.value)
                problems += [f"{key}: {problem}" for problem in taken.value]
            elif taken.kind == "value":
                given[key] = taken.value
        if len(given) < len(parts):
            if notes and asked >= MAX_ASKS:
                return await self.give_up(ctx, run, interrupt, problems, what)
            return self.input_required(
                ctx, params, run, interrupt, asked=asked + (1 if notes else 0), got=given, notes=notes
            )
        try:
            await answer(self.runs, run, interrupt, given, self.principal_in(ctx), request_id_in(ctx))
        except InvalidInput as exc:
            refused = [f"{error.path}: {error.message}" for error in exc.errors] or [exc.message]
            return await self.give_up(ctx, run, interrupt, refused, what)
        return None


class Part(NamedTuple):
    """What a client's response to one of several questions is: ``value`` (the answer), ``missing``
    (no usable response), ``refused`` (the problems), ``ended`` (declined: the request's ending result)."""

    kind: str
    value: Any = None


def _names(interrupt: Interrupt, responses: dict[str, Any]) -> bool:
    """Whether ``responses`` answer (some of) ``interrupt``: its key, or one of its questions' keys."""
    parts = parts_of(interrupt)
    return any(key in responses for key in parts) if parts is not None else interrupt.id in responses


def _can_answer(interrupt: Interrupt, capabilities: types.ClientCapabilities | None) -> bool:
    """Whether this client declared what it takes to be asked ``interrupt`` (forms, sampling, roots): answers
    it sent ahead are taken only then; otherwise the question goes the usual way (-32021, unavailable)."""
    parts = parts_of(interrupt)
    if parts is not None:
        return accepts_forms(capabilities) or not any(_is_form(part) for part in parts.values())
    if sampling_of(interrupt) is not None:
        return _cannot(interrupt, capabilities) is None
    if is_roots(interrupt):
        return accepts_roots(capabilities)
    return accepts_forms(capabilities)


def _is_form(part: Interrupt) -> bool:
    return sampling_of(part) is None and not is_roots(part)


def _cannot(part: Interrupt, capabilities: types.ClientCapabilities | None) -> dict[str, str] | None:
    """The ``unavailable`` answer of a sampling or roots question this client cannot answer, or None."""
    sampling = sampling_of(part)
    if sampling is not None:
        if not accepts_sampling(capabilities):
            return unavailable(NO_SAMPLING)
        try:
            sampling_params(sampling, capabilities)
        except ValueError as exc:
            return unavailable(str(exc))
        return None
    if is_roots(part) and not accepts_roots(capabilities):
        return unavailable(NO_ROOTS)
    return None


def _request_for(ctx: ServerRequestContext[Any, Any], interrupt: Interrupt, note: str = "") -> dict[str, Any]:
    """The ``inputRequests`` entry asking ``interrupt``: a form, a sampling request or ``roots/list``."""
    sampling = sampling_of(interrupt)
    if sampling is not None:
        return sampling_request(sampling_params(sampling, ctx.session.client_capabilities))
    if is_roots(interrupt):
        return roots_request()
    return Form(interrupt).request(note)


def cannot_answer(run: Run, interrupt: Interrupt, why: str, what: str = "tool") -> dict[str, Any]:
    """The ``isError`` result (a JSON-RPC error for a prompt or resource) of a request whose run waits for
    input its client cannot give."""
    also = ", or call the tool as a task" if what == "tool" else ""
    return ending(what)(
        "input_required",
        f"the {what} waits for input this client cannot give ({why}): {Form(interrupt).message}",
        [
            f"run {run.id} keeps waiting on interrupt {interrupt.id!r}: answer it with POST "
            f"/v1/runs/{run.id}/resume{also}"
        ],
    )


def request_id_in(ctx: ServerRequestContext[Any, Any]) -> str:
    """The gateway's id of the HTTP request carrying this message ("" outside one)."""
    request = ctx.request
    return request_id_of(request.scope) if request is not None else ""
