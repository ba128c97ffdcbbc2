"""MCP tasks backed by the gateway's runs: the task id is the run id.

Both revisions, on the same runs:

- 2025-11-25 (experimental tasks): a ``tools/call`` with ``params.task`` answers ``{"task": ...}`` at once;
  ``tasks/get``, ``tasks/result`` (blocks until the run ends), ``tasks/list`` (the caller's tasks, newest
  first), ``tasks/cancel``; ``notifications/tasks/status`` on the session's stream when the task's status
  changes (``input_required`` and back to ``working``, then its end), and progress notifications for the
  progress token of the creating call.
- 2026-07-28 (the ``io.modelcontextprotocol/tasks`` extension): when a request declares the extension, a
  ``tools/call`` of an agent (or durable tool) answers ``resultType: "task"`` (an ``input_before_task``
  endpoint's first questions are ``InputRequiredResult`` rounds before it: front.py); ``tasks/get`` carries the
  final result inline; ``tasks/cancel`` and ``tasks/update`` acknowledge; ``tasks/result`` and
  ``tasks/list`` do not exist there (nor ``tasks/update`` in 2025-11-25): ``absent_method`` answers
  ``-32601`` for them, whatever their params, before the SDK reads those (the front's middleware).
  ``tasks/get``, ``tasks/update`` and ``tasks/cancel`` from a request that did not declare the extension
  answer ``-32021`` (``missing_tasks_extension``), as does a ``tools/call`` of a tool that requires a
  task; their ``Mcp-Name`` header must be the ``taskId`` (else ``-32020``, checked in ``asgi.py``).

Input (a run waiting on an interrupt, ``answering.py``): in 2025-11-25 the spec's way, a ``tasks/result``
from a client that declared form elicitation puts the interrupt to it (``elicitation/create`` on that
request's stream, with the related-task ``_meta``); in 2026-07-28 ``tasks/get`` lists the elicitation in
``inputRequests`` (keyed by the interrupt id, unique in a run) and ``tasks/update`` answers it: an answer
the schema refuses is a ``-32602`` error naming the problems (the question stays open, under the same
key), ``decline`` / ``cancel`` cancel the run, a key that is not outstanding is ignored. A task that asked
several questions at once (``ctx.ask_many``) lists one entry per key still open; a ``tasks/update`` with
some keys is kept (``_partial``) until every key has an answer, then the run is answered with all of them.
Those partial answers live in this gateway process only (``tasks/update`` carries no ``requestState`` to
put them in, and the run's log holds the interrupt as its last event while it waits): after a restart,
on another replica, or once ``MAX_PARTIAL`` waiting tasks pushed them out, the keys answered before are
listed again and must be answered again. Nothing else is lost: the run keeps waiting.

Statuses: queued/running -> working, waiting_input -> input_required, succeeded -> completed,
cancelled -> cancelled, failed/timed_out -> failed (2025-11-25). The 2026 extension reserves ``failed``
for JSON-RPC errors, so there a failed run is ``completed`` with an ``isError`` result, exactly what the
direct call would have answered.

Every run of an agent, and every durable run of a tool, is a task, whichever front started it. A durable
run outlives the session that created it and a gateway restart, and so does its task. Tasks are scoped to
the caller's tenant.

TTL: a task lives ``mcp_task_ttl`` from its creation (0: unlimited, ``ttl: null``). A 2025-11-25 client asking
for a shorter ``task.ttl`` gets it, remembered by this gateway process (after a restart, or on another
replica, the task reports the longest TTL instead: a TTL may only grow, never cut a task short). Past its
TTL a task has expired: ``tasks/*`` answer "Task has expired" and ``tasks/list`` leaves it out; the run
itself stays under ``retention``.

Status notifications: a 2025-11-25 session gets ``notifications/tasks/status`` when a task it created
changes status: it waits for input (``input_required``), it goes on after the answer (``working``), it ends;
a 2026-07-28 client names task ids in ``subscriptions/listen`` (``notifications.taskIds``) and gets
``notifications/tasks`` on that stream (``listen.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import anyio
import mcp_types as types
from mcp_types import INVALID_PARAMS, MISSING_REQUIRED_CLIENT_CAPABILITY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError

from ...access.policy import may_see
from ...access.principal import Principal
from ...errors import Conflict, GatewayError, NotFound
from ...runs.approval import GATE_ID
from ...runs.model import TERMINAL, TERMINAL_EVENT, EndpointKind, Run, RunQuery, RunStatus
from ...runs.service import RunService
from .answering import Asking, reply_of
from .catalogue import Catalogue
from .elicitation import Form, Interrupt, accepts_forms
from .envelope import TASK_METHODS
from .questions import accepts_roots, is_roots, listed, parts_of, roots_request, roots_result_of
from .results import Outcome, error_code, error_data, tool_result
from .running import answer, finish_answering, following, pending_interrupt
from .sampling import accepts_sampling, result_of, sampled, sampling_of, sampling_params, sampling_request
from .sessions import connection_of
from .streaming import Relay

log = logging.getLogger("fastagentic.mcp")

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
RELATED_TASK = "io.modelcontextprotocol/related-task"
#: What a 2025-11-25 request that ends without an answer (cancelled) gets: LSP's RequestCancelled.
REQUEST_CANCELLED = -32800
POLL_INTERVAL_MS = 1000
LIST_PAGE = 50
#: Requested task TTLs remembered (oldest forgotten first: those tasks fall back to the longest TTL).
MAX_REQUESTED_TTLS = 100_000
#: Waiting tasks whose partial answers (some of their questions asked at once) are kept, oldest forgotten.
MAX_PARTIAL = 10_000

_RUN_ID = re.compile(r"run_[0-9a-f]{32}")
_TERMINAL_KINDS = frozenset(TERMINAL_EVENT.values())
#: Events after which a task's status may have changed short of its end: it waits for input, or it got it.
_STATUS_EVENTS = frozenset({"interrupt", "input"})
_STATUS = {
    RunStatus.QUEUED: "working",
    RunStatus.RUNNING: "working",
    RunStatus.WAITING_INPUT: "input_required",
    RunStatus.SUCCEEDED: "completed",
    RunStatus.FAILED: "failed",
    RunStatus.TIMED_OUT: "failed",
    RunStatus.CANCELLED: "cancelled",
}


class UpdateTaskRequestParams(types.RequestParams):
    """``tasks/update`` (2026-07-28 extension): answers to a task's input requests."""

    task_id: str
    input_responses: dict[str, Any] | None = None
    request_state: str | None = None


#: Task methods absent from one revision: method -> (absent from 2026-07-28, else from 2025-11-25; the message).
_ABSENT: dict[str, tuple[bool, str]] = {
    "tasks/result": (True, "tasks/result is not part of the 2026-07-28 tasks extension"),
    "tasks/list": (True, "tasks/list is not part of the 2026-07-28 tasks extension"),
    "tasks/update": (False, "tasks/update belongs to the 2026-07-28 tasks extension"),
}


#: The extension's methods (2026-07-28), each addressing one task: ``Mcp-Name`` carries its ``taskId``.
EXTENSION_METHODS = TASK_METHODS


def missing_tasks_extension(why: str = "Missing required client capability") -> MCPError:
    """``-32021`` naming the tasks extension, for a 2026-07-28 request that did not declare it."""
    return MCPError(
        MISSING_REQUIRED_CLIENT_CAPABILITY,
        why,
        {"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}},
    )


def absent_method(ctx: ServerRequestContext[Any, Any]) -> str | None:
    """Why the request's method does not exist in its revision (``-32601``, before its params are read);
    None when it does."""
    absent = _ABSENT.get(ctx.method)
    if absent is None or absent[0] != is_modern(ctx):
        return None
    return absent[1]


def is_task(run: Run) -> bool:
    """Runs that are tasks: those of agents, and durable runs of tools (what ``taskSupport`` advertises)."""
    return run.kind is EndpointKind.AGENT or (run.kind is EndpointKind.TOOL and run.durable)


def is_modern(ctx: ServerRequestContext[Any, Any]) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def declares_tasks(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether a 2026-07-28 request declared the tasks extension in its client capabilities."""
    capabilities = ctx.session.client_capabilities
    extensions = capabilities.extensions if capabilities is not None else None
    return bool(extensions) and TASKS_EXTENSION in cast(dict[str, Any], extensions)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _status_message(run: Run) -> str | None:
    if run.status is RunStatus.QUEUED:
        return "queued" if run.attempt == 1 else f"queued for attempt {run.attempt}"
    if run.status is RunStatus.RUNNING:
        return "running" if run.attempt == 1 else f"running (attempt {run.attempt})"
    if run.status is RunStatus.WAITING_INPUT:
        return "waiting for input"
    if run.error is not None:
        return f"{run.error.type}: {run.error.message}"
    if run.status is RunStatus.CANCELLED:
        return "cancelled"
    return None


class Tasks:
    def __init__(
        self,
        runs: RunService,
        catalogue: Catalogue,
        principal_in: Callable[[ServerRequestContext[Any, Any]], Principal],
        asking: Asking,
        max_ttl: float = 0.0,
    ) -> None:
        self.runs = runs
        self.catalogue = catalogue
        self.principal_in = principal_in
        self.asking = asking
        self.max_ttl_ms: int | None = int(max_ttl * 1000) or None
        self._requested_ttls: OrderedDict[str, int] = OrderedDict()
        self._watchers: set[asyncio.Task[None]] = set()
        #: (run id, interrupt seq) -> the answers so far to a waiting task's questions asked at once
        self._partial: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()

    # ------------------------------------------------------------------ TTLs

    def request_ttl(self, run: Run, ttl_ms: int | None) -> None:
        """A 2025-11-25 client's ``task.ttl`` for the task it creates: kept when under the longest TTL."""
        if ttl_ms is None or ttl_ms < 1 or (self.max_ttl_ms is not None and ttl_ms >= self.max_ttl_ms):
            return
        self._requested_ttls[run.id] = ttl_ms
        if len(self._requested_ttls) > MAX_REQUESTED_TTLS:
            self._requested_ttls.popitem(last=False)

    def ttl_ms(self, run: Run) -> int | None:
        """The TTL the task has, in milliseconds from its creation; None: unlimited."""
        return self._requested_ttls.get(run.id, self.max_ttl_ms)

    def expired(self, run: Run) -> bool:
        ttl = self.ttl_ms(run)
        return ttl is not None and time.time() >= run.created_at + ttl / 1000

    # ------------------------------------------------------------------ task views

    def legacy_task(self, run: Run) -> dict[str, Any]:
        task: dict[str, Any] = {
            "taskId": run.id,
            "status": _STATUS[run.status],
            "createdAt": _iso(run.created_at),
            "lastUpdatedAt": _iso(run.updated_at),
            "ttl": self.ttl_ms(run),
            "pollInterval": POLL_INTERVAL_MS,
        }
        message = _status_message(run)
        if message is not None:
            task["statusMessage"] = message
        return task

    def modern_task(self, run: Run, *, detailed: bool = True) -> dict[str, Any]:
        status = _STATUS[run.status]
        if status == "failed":
            status = "completed"  # the extension's "failed" is for JSON-RPC errors; see the module docstring
        task: dict[str, Any] = {
            "taskId": run.id,
            "status": status,
            "createdAt": _iso(run.created_at),
            "lastUpdatedAt": _iso(run.updated_at),
            "ttlMs": self.ttl_ms(run),
            "pollIntervalMs": POLL_INTERVAL_MS,
        }
        message = _status_message(run)
        if message is not None:
            task["statusMessage"] = message
        if detailed and status == "completed":
            task["result"] = self._result(run)
        return task

    def created(self, ctx: ServerRequestContext[Any, Any], run: Run) -> dict[str, Any]:
        """The answer to a ``tools/call`` that made a task, in the request's revision."""
        if is_modern(ctx):
            return {"resultType": "task", **self.modern_task(run, detailed=False)}
        return {"task": self.legacy_task(run)}

    def _result(self, run: Run) -> dict[str, Any]:
        return tool_result(self.catalogue.tool(run.endpoint), Outcome(run.status, run.output, run.error))

    async def visible(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> Run | None:
        """The run of task ``task_id`` when the caller may see it and it has not expired."""
        if not _RUN_ID.fullmatch(task_id):
            return None
        run = await self.runs.get(task_id, self.principal_in(ctx))
        if run is None or not is_task(run) or self.expired(run):
            return None
        return run

    async def _task_run(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> Run:
        run = await self.runs.get(task_id, self.principal_in(ctx))
        if run is None or not is_task(run):
            shown = task_id if len(task_id) <= 64 else task_id[:64] + "…"  # never echo a huge id whole
            raise MCPError(INVALID_PARAMS, "Failed to retrieve task: Task not found", {"taskId": shown})
        if self.expired(run):
            raise MCPError(INVALID_PARAMS, "Failed to retrieve task: Task has expired", {"taskId": task_id})
        return run

    # ------------------------------------------------------------------ handlers

    async def get_task(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetTaskRequestParams
    ) -> dict[str, Any]:
        run = await self._task_run(ctx, params.task_id)
        if not is_modern(ctx):
            return self.legacy_task(run)
        task = self.modern_task(run)
        if run.status is RunStatus.WAITING_INPUT:
            # The spec's InputRequiredTask; a client that cannot answer forms is offered none.
            interrupt = await pending_interrupt(self.runs, run)
            if interrupt is not None and (parts := parts_of(interrupt)) is not None:
                answered = self._partial.get((run.id, interrupt.seq), {})
                task["inputRequests"] = {
                    key: request
                    for key, part in parts.items()
                    if key not in answered
                    for request in self._input_requests(ctx, part).values()
                }
            else:
                task["inputRequests"] = self._input_requests(ctx, interrupt)
        return task

    @staticmethod
    def _input_requests(ctx: ServerRequestContext[Any, Any], interrupt: Interrupt | None) -> dict[str, Any]:
        """What a waiting task asks this client: its form, its sampling request or ``roots/list``, when
        the client declared it can answer that; nothing for a call that waits for an approver
        (``approval_required``)."""
        capabilities = ctx.session.client_capabilities
        if interrupt is None or interrupt.id == GATE_ID:
            return {}
        if is_roots(interrupt):
            return {interrupt.id: roots_request()} if accepts_roots(capabilities) else {}
        sampling = sampling_of(interrupt)
        if sampling is None:
            return {interrupt.id: Form(interrupt).request()} if accepts_forms(capabilities) else {}
        if not accepts_sampling(capabilities):
            return {}
        try:
            return {interrupt.id: sampling_request(sampling_params(sampling, capabilities))}
        except ValueError:
            return {}  # not valid createMessage params: answered unavailable when a client is asked directly

    async def task_result(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetTaskPayloadRequestParams
    ) -> dict[str, Any]:
        run = await self._task_run(ctx, params.task_id)
        related = {RELATED_TASK: {"taskId": run.id}}
        if run.status not in TERMINAL:
            # The client giving up on this request leaves the task alone.
            capabilities = ctx.session.client_capabilities
            if accepts_forms(capabilities) or accepts_sampling(capabilities) or accepts_roots(capabilities):
                asker = self.asking.by_elicitation(ctx, run, meta=related)
                await finish_answering(self.runs, run, None, asker, cancel_on_abort=False)
            # At once when it ended; else until an answer comes from elsewhere (REST, another client).
            run = await self.runs.wait(run)
        if run.status is RunStatus.CANCELLED:
            raise MCPError(REQUEST_CANCELLED, "Task cancelled", {"taskId": run.id})
        result = self._result(run)
        result["_meta"] = related
        return result

    async def list_tasks(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams
    ) -> dict[str, Any]:
        cursor = params.cursor
        if cursor is not None and not _RUN_ID.fullmatch(cursor):
            raise MCPError(INVALID_PARAMS, "Invalid cursor")
        principal = self.principal_in(ctx)
        query = RunQuery(tenant=principal.tenant, limit=LIST_PAGE, before=cursor)
        found = await self.runs.list_runs(query)
        tasks = [
            self.legacy_task(r)
            for r in found
            if is_task(r) and not self.expired(r) and may_see(principal, r, self.runs.registry)
        ]
        listing: dict[str, Any] = {"tasks": tasks}
        if len(found) == LIST_PAGE:
            listing["nextCursor"] = found[-1].id
        return listing

    async def cancel_task(
        self, ctx: ServerRequestContext[Any, Any], params: types.CancelTaskRequestParams
    ) -> dict[str, Any]:
        who = self.principal_in(ctx)
        if is_modern(ctx):
            # Acknowledged whatever the task: cancellation is a signal, its outcome shows in tasks/get.
            with contextlib.suppress(Conflict, NotFound):
                await self.runs.cancel(params.task_id, who, "cancelled by the MCP client", protocol="mcp")
            return {}
        run = await self._task_run(ctx, params.task_id)
        if run.status in TERMINAL:
            raise MCPError(INVALID_PARAMS, f"Cannot cancel task: it already ended ({_STATUS[run.status]})")
        try:
            run = await self.runs.cancel(run.id, who, "cancelled by the MCP client", protocol="mcp")
        except Conflict as exc:
            raise MCPError(INVALID_PARAMS, f"Cannot cancel task: {exc.message}") from exc
        return self.legacy_task(run)

    async def update_task(
        self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskRequestParams
    ) -> dict[str, Any]:
        """Answers to a waiting task's ``inputRequests``; responses to keys not outstanding are ignored."""
        run = await self._task_run(ctx, params.task_id)
        interrupt = await pending_interrupt(self.runs, run)
        responses = params.input_responses or {}
        if interrupt is not None and (parts := parts_of(interrupt)) is not None:
            await self._update_parts(ctx, run, interrupt, parts, responses)
            return {}
        if interrupt is None or interrupt.id not in responses or interrupt.id == GATE_ID:
            return {}
        if is_roots(interrupt):
            roots = roots_result_of(responses[interrupt.id])
            if roots is None:
                raise MCPError(INVALID_PARAMS, f"inputResponses[{interrupt.id!r}] is not a ListRootsResult")
            await self.asking.give(ctx, run, interrupt, listed(roots))
            return {}
        if sampling_of(interrupt) is not None:
            result = result_of(responses[interrupt.id])
            if result is None:
                raise MCPError(
                    INVALID_PARAMS, f"inputResponses[{interrupt.id!r}] is not a CreateMessageResult"
                )
            await self.asking.give(ctx, run, interrupt, sampled(result))
            return {}
        reply = reply_of(responses[interrupt.id])
        if reply is None:
            raise MCPError(INVALID_PARAMS, f"inputResponses[{interrupt.id!r}] is not an elicitation result")
        try:
            taken = await self.asking.take(ctx, run, interrupt, reply)
        except Conflict:
            return {}  # answered meanwhile: no longer outstanding
        except GatewayError as exc:
            raise MCPError(error_code(exc), exc.message, error_data(exc)) from exc
        if isinstance(taken, list):
            raise MCPError(
                INVALID_PARAMS,
                f"the answer to {interrupt.id!r} was not accepted: " + "; ".join(taken),
                {"errors": taken},
            )
        return {}

    async def _update_parts(
        self,
        ctx: ServerRequestContext[Any, Any],
        run: Run,
        interrupt: Interrupt,
        parts: dict[str, Interrupt],
        responses: dict[str, Any],
    ) -> None:
        """Answers to some of a task's questions asked at once: kept (by this gateway process) until every
        question has one, then the run is answered with all of them; the others stay in ``inputRequests``."""
        key_of = (run.id, interrupt.seq)
        answered = self._partial.setdefault(key_of, {})
        self._partial.move_to_end(key_of)
        while len(self._partial) > MAX_PARTIAL:
            self._partial.popitem(last=False)
        refused: list[str] = []
        for key, part in parts.items():
            if key in answered or key not in responses:
                continue
            taken = await self.asking.part_answer(ctx, run, part, responses[key])
            if taken.kind == "ended":
                self._partial.pop(key_of, None)
                return
            if taken.kind == "missing":
                raise MCPError(INVALID_PARAMS, f"inputResponses[{key!r}] is not an answer to that request")
            if taken.kind == "refused":
                refused += [f"{key}: {problem}" for problem in taken.value]
            else:
                answered[key] = taken.value
        if refused:
            raise MCPError(
                INVALID_PARAMS, "answers were not accepted: " + "; ".join(refused), {"errors": refused}
            )
        if len(answered) < len(parts):
            return
        try:
            await answer(self.runs, run, interrupt, answered, self.principal_in(ctx))
        except (Conflict, NotFound):
            pass  # answered meanwhile: no longer outstanding
        except GatewayError as exc:
            raise MCPError(error_code(exc), exc.message, error_data(exc)) from exc
        finally:
            self._partial.pop(key_of, None)

    # ------------------------------------------------------------------ 2025-11-25 status notifications

    def watch(self, session: ServerSession, run: Run, relay: Relay) -> None:
        """Follow a task made in a 2025-11-25 session: relay its progress, announce its status changes
        (waiting for input, going on after the answer) and how it ended."""
        task = asyncio.ensure_future(self._watch(session, run, relay))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _watch(self, session: ServerSession, run: Run, relay: Relay) -> None:
        announced = _STATUS[run.status]  # what the session was told: the task as created
        try:
            async with following(self.runs, run, 0) as batches:
                async for batch in batches:
                    if not batch:
                        continue
                    if relay.wanted:
                        await relay.send(batch)
                    if batch[-1].kind in _TERMINAL_KINDS:
                        break
                    if not any(event.kind in _STATUS_EVENTS for event in batch):
                        continue
                    # The run's status is stored before its interrupt event is published, and with its
                    # input event: the stored run says where the task stands now.
                    current = await self.runs.get(run.id, run.caller.tenant)
                    if current is None or current.status in TERMINAL:
                        continue  # its end is announced below, once its terminal event is in
                    if _STATUS[current.status] != announced:
                        announced = _STATUS[current.status]
                        await self._announce(session, current)
            final = await self.runs.get(run.id, run.caller.tenant)
            if final is not None and final.status in TERMINAL:
                await self._announce(session, final)
        except Exception:
            log.debug("task status notifications for %s stopped", run.id, exc_info=True)

    async def _announce(self, session: ServerSession, run: Run) -> None:
        """``notifications/tasks/status`` with the task as ``tasks/get`` answers it, on the session's GET
        stream."""
        connection = connection_of(session)
        if connection is not None:
            # Raw: the SDK's typed notifications drop null fields, and a task's ttl must be there (null).
            await connection.notify("notifications/tasks/status", self.legacy_task(run))

    async def close(self) -> None:
        for task in list(self._watchers):
            task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.gather(*self._watchers, return_exceptions=True)
