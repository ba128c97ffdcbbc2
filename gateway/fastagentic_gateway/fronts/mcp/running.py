"""Submitting a call and seeing its run to the end, for every MCP request that runs an endpoint.

One path for all of them: ``RunService.submit``, then ``wait`` (nothing to stream, nobody to ask) or
``follow`` (events relayed as notifications; interrupts handed to the request's ``OnInterrupt``). A request
abandoned by its client (``notifications/cancelled``, or a 2026-07-28 client closing the stream) cancels its
run, so the worker function sees ``CancelledError``.

An interrupt is the last event of the run's log while the run waits on it. ``finish_answering`` hands it to
the request's ``OnInterrupt`` (ask the client: ``answering.py``) while it keeps following the run: when
something else moves the run on first (an answer over REST, a cancel, its deadline), the question is
withdrawn.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, cast

import anyio
import msgspec
from mcp_types import MISSING_REQUIRED_CLIENT_CAPABILITY

from mcp.shared.exceptions import MCPError

from ...access.principal import Principal
from ...calls import Call
from ...errors import Conflict, GatewayError, NotFound
from ...runs.approval import GATE_ID
from ...runs.model import TERMINAL, TERMINAL_EVENT, Event, Run, RunStatus
from ...runs.service import RunService
from .elicitation import Interrupt, interrupt_of
from .results import Outcome, error_code, error_data, outcome_of_event
from .streaming import Relay

_TERMINAL_KINDS = frozenset(TERMINAL_EVENT.values())
#: How long an answer waits for the run to show ``waiting_input`` after its interrupt event: the event is
#: stored one write before the status (``RunService._on_events``; it is published only after both), so a
#: client that read it from the store (the run's log, a task, another replica) can answer in between.
_SETTLING = 5.0

#: What a request makes of its run's pending interrupt: a result to end the request with, or None once it
#: answered (the request follows the run on). May raise ``MCPError`` to end the request with that error.
OnInterrupt = Callable[[Interrupt], Awaitable[dict[str, Any] | None]]


async def submit(runs: RunService, call: Call) -> Run:
    """``runs.submit``, its refusals (a rate limit, the store down) as JSON-RPC errors."""
    try:
        run, _ = await runs.submit(call)
    except GatewayError as exc:
        raise MCPError(error_code(exc), exc.message, error_data(exc)) from exc
    return run


async def finish(runs: RunService, run: Run, relay: Relay | None, *, cancel_on_abort: bool = True) -> Outcome:
    """How ``run`` ends; its events go to ``relay`` on the way when the client would receive any."""
    ended = await finish_answering(runs, run, relay, None, cancel_on_abort=cancel_on_abort)
    assert isinstance(ended, Outcome)  # nobody to ask: only the run's end ends it
    return ended


async def finish_answering(
    runs: RunService,
    run: Run,
    relay: Relay | None,
    on_interrupt: OnInterrupt | None,
    *,
    after_seq: int = 0,
    cancel_on_abort: bool = True,
    fresh: bool = False,
) -> Outcome | dict[str, Any]:
    """How ``run`` ends, or the result ``on_interrupt`` ended the request with. ``fresh``: ``run`` is
    what ``submit`` just created, nothing awaited since (``RunService.wait``)."""
    try:
        if relay is None or not relay.wanted:
            # Nothing to relay: wait for the end, or (when the request answers questions) for the run to
            # ask one, then follow its events from the start to hand the question over.
            current = await runs.wait(run, fresh=fresh, asking=on_interrupt is not None)
            if current.status in TERMINAL or on_interrupt is None:
                return Outcome(current.status, current.output, current.error)
        return await _follow(runs, run, relay, on_interrupt, after_seq)
    except anyio.get_cancelled_exc_class():
        if cancel_on_abort:
            with anyio.CancelScope(shield=True), contextlib.suppress(Conflict, NotFound):
                await runs.cancel(run.id, run.caller.tenant, "cancelled by the MCP client")
        raise


async def _follow(
    runs: RunService, run: Run, relay: Relay | None, on_interrupt: OnInterrupt | None, after_seq: int
) -> Outcome | dict[str, Any]:
    async with following(runs, run, after_seq) as batches:
        # Most runs never ask: no task group until one does.
        async for batch in batches:
            step = await _step(batch, relay, on_interrupt)
            if isinstance(step, Outcome):
                return step
            if step is not None:
                return await _asking(runs, run, batches, relay, on_interrupt, step)
    return await _stored_outcome(runs, run)


async def _asking(
    runs: RunService,
    run: Run,
    batches: AsyncGenerator[list[Event]],
    relay: Relay | None,
    on_interrupt: OnInterrupt | None,
    first: Interrupt,
) -> Outcome | dict[str, Any]:
    """Follow the run on while ``on_interrupt`` asks about its pending interrupt, from ``first`` on."""
    assert on_interrupt is not None
    outcome: Outcome | None = None
    ended: dict[str, Any] | None = None
    failed: MCPError | None = None
    async with anyio.create_task_group() as group:

        async def ask(interrupt: Interrupt, scope: anyio.CancelScope) -> None:
            nonlocal ended, failed
            with scope:
                try:
                    result = await on_interrupt(interrupt)
                except GatewayError as exc:
                    failed = MCPError(error_code(exc), exc.message, error_data(exc))
                except MCPError as exc:
                    failed = exc
                else:
                    if result is None:
                        return
                    ended = result
                group.cancel_scope.cancel()

        asking = anyio.CancelScope()
        group.start_soon(ask, first, asking)
        async for batch in batches:
            if batch:
                asking.cancel()  # the run moved on (answered, ended): whatever was asked is moot
            step = await _step(batch, relay, on_interrupt)
            if isinstance(step, Outcome):
                outcome = step
                break
            if step is not None:
                asking = anyio.CancelScope()
                group.start_soon(ask, step, asking)
        group.cancel_scope.cancel()
    if failed is not None:
        raise failed
    if ended is not None:
        return ended
    return outcome if outcome is not None else await _stored_outcome(runs, run)


async def _step(
    batch: list[Event], relay: Relay | None, on_interrupt: OnInterrupt | None
) -> Outcome | Interrupt | None:
    """A batch of the run's events relayed; the outcome it ends with, or the interrupt to ask about."""
    if not batch:
        return None
    if relay is not None and relay.wanted:
        await relay.send(batch)
    last = batch[-1]
    if last.kind in _TERMINAL_KINDS:
        return outcome_of_event(last.kind, last.data)
    if last.kind == "interrupt" and on_interrupt is not None:
        return interrupt_of(last.seq, last.data)
    return None


#: Events that do not take a run past the questions it asks first (``questions_first``).
_BEFORE_WORK = frozenset({"run.started", "interrupt", "input", "checkpoint"})


async def questions_first(
    runs: RunService,
    run: Run,
    on_interrupt: OnInterrupt,
    *,
    within: float,
    after_seq: int = 0,
) -> dict[str, Any] | None:
    """Follow ``run`` while it only asks (an ``input_before_task`` endpoint called as a task): the result
    ``on_interrupt`` ends the request with for a question, or None once the task is due: the run went past
    its questions (any event but its start, a question, an answer or a checkpoint; its end; an approval
    gate), asked what this client cannot answer (the question waits within the task), or asked nothing
    within ``within`` seconds (``mcp_questions_within``: it waits for a worker, or works long before it
    asks). A client that leaves meanwhile cancels the run: nobody was told of its task."""
    try:
        with anyio.move_on_after(within):
            async with following(runs, run, after_seq) as batches:
                async for batch in batches:
                    if not batch:
                        continue
                    *before, last = batch
                    if any(event.kind not in _BEFORE_WORK for event in before):
                        return None
                    if last.kind != "interrupt":
                        if last.kind not in _BEFORE_WORK:
                            return None
                        continue
                    interrupt = interrupt_of(last.seq, last.data)
                    if interrupt.id == GATE_ID:
                        return None  # an approver decides, not the caller: the task waits for the decision
                    try:
                        asked = await on_interrupt(interrupt)
                    except MCPError as exc:
                        if exc.code == MISSING_REQUIRED_CLIENT_CAPABILITY:
                            return None  # answered over REST, or by another client, within the task
                        raise
                    except GatewayError as exc:
                        raise MCPError(error_code(exc), exc.message, error_data(exc)) from exc
                    if asked is not None:
                        return asked
        return None
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True), contextlib.suppress(Conflict, NotFound):
            await runs.cancel(run.id, run.caller.tenant, "cancelled by the MCP client")
        raise


async def _stored_outcome(runs: RunService, run: Run) -> Outcome:
    current = await runs.get(run.id, run.caller.tenant) or run
    return Outcome(current.status, current.output, current.error)


async def pending_interrupt(runs: RunService, run: Run) -> Interrupt | None:
    """The interrupt ``run`` waits on (its last event), or None."""
    if run.status in TERMINAL or run.last_seq < 1:
        return None
    async with following(runs, run, run.last_seq - 1) as batches:
        async for batch in batches:
            last = batch[-1] if batch else None
            if last is None or last.kind != "interrupt" or last.seq != run.last_seq:
                return None
            try:
                return interrupt_of(last.seq, last.data)
            except msgspec.ValidationError:
                return None
    return None


def following(runs: RunService, run: Run, after_seq: int) -> contextlib.aclosing[AsyncGenerator[list[Event]]]:
    """``runs.follow`` from after ``after_seq``, closed (its bus subscription with it) when the caller
    stops reading."""
    return contextlib.aclosing(cast(AsyncGenerator[list[Event]], runs.follow(run, after_seq=after_seq)))


async def answer(
    runs: RunService, run: Run, interrupt: Interrupt, value: Any, who: Principal, request_id: str = ""
) -> None:
    """``runs.resume`` with ``value``: ``InvalidInput`` when it does not match the interrupt's schema,
    ``Conflict`` when the run no longer waits on it. The resume itself is never cut short."""
    raw = msgspec.json.encode(value)
    with anyio.CancelScope(shield=True):
        with anyio.move_on_after(_SETTLING):
            while True:
                try:
                    await runs.resume(
                        run.id,
                        who,
                        value,
                        raw,
                        interrupt_id=interrupt.id,
                        protocol="mcp",
                        request_id=request_id,
                    )
                    return
                except Conflict:
                    current = await runs.get(run.id, who)
                    settling = (
                        current is not None
                        and current.status is RunStatus.RUNNING
                        and current.last_seq == interrupt.seq
                    )
                    if not settling:
                        raise
                await anyio.sleep(0.02)
        raise Conflict(f"run {run.id} does not wait for input")
