"""Submitting a call and seeing its run to the end, for every MCP request that runs an endpoint.

One path for all of them: ``RunService.submit``, then ``wait`` (nothing to stream) or ``follow`` (events
relayed as notifications). A request abandoned by its client (``notifications/cancelled``, or a 2026-07-28
client closing the stream) cancels its run, so the worker function sees ``CancelledError``.
"""

from __future__ import annotations

import contextlib

import anyio

from mcp.shared.exceptions import MCPError

from ...calls import Call
from ...errors import Conflict, GatewayError, NotFound
from ...runs.model import TERMINAL_EVENT, Run
from ...runs.service import RunService
from .results import Outcome, error_code, error_data, outcome_of_event
from .streaming import Relay

_TERMINAL_KINDS = frozenset(TERMINAL_EVENT.values())


async def submit(runs: RunService, call: Call) -> Run:
    """``runs.submit``, its refusals (a rate limit, the store down) as JSON-RPC errors."""
    try:
        run, _ = await runs.submit(call)
    except GatewayError as exc:
        raise MCPError(error_code(exc), exc.message, error_data(exc)) from exc
    return run


async def run_to_end(runs: RunService, call: Call, relay: Relay | None = None) -> tuple[Run, Outcome]:
    run = await submit(runs, call)
    return run, await finish(runs, run, relay)


async def finish(runs: RunService, run: Run, relay: Relay | None, *, cancel_on_abort: bool = True) -> Outcome:
    """How ``run`` ends; its events go to ``relay`` on the way when the client would receive any."""
    try:
        if relay is not None and relay.wanted:
            async for batch in runs.follow(run):
                if not batch:
                    continue
                await relay.send(batch)
                last = batch[-1]
                if last.kind in _TERMINAL_KINDS:
                    return outcome_of_event(last.kind, last.data)
            current = await runs.get(run.id, run.caller.tenant) or run
        else:
            current = await runs.wait(run)
        return Outcome(current.status, current.output, current.error)
    except anyio.get_cancelled_exc_class():
        if cancel_on_abort:
            with anyio.CancelScope(shield=True), contextlib.suppress(Conflict, NotFound):
                await runs.cancel(run.id, run.caller.tenant, "cancelled by the MCP client")
        raise
