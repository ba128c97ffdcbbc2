"""RunService: the run state machine in motion.

Fronts submit calls and follow runs; workers report events and results; a reaper requeues runs whose
lease expired. Durable runs live in the durable store (SQLite or PostgreSQL), ephemeral ones in memory.
Every change is a fenced store transition first and a bus publication second, so whatever a follower sees
is already stored.

In a cluster (a NATS bus), a run that no worker of this replica can take now is announced on the bus;
every replica with workers for its endpoint pulls announcements while it has free slots, and the store's
fenced transition decides who gets it. Cancels reach the holder's replica the same way. A run of a
non-durable endpoint that must leave this replica goes to the shared store, since it needs to be seen there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from fastagentic.events import EVENT_KIND_PATTERN, RESERVED_KINDS
from fastagentic.v1 import worker_pb2 as pb

from ..access.audit import AuditLog
from ..access.policy import may_see, require_scope
from ..access.principal import Principal
from ..bus.base import Bus, BusUnavailable, CancelNotice, Elsewhere, Ticket
from ..calls import Call, find_endpoint, make_call
from ..errors import (
    Conflict,
    HookFailed,
    HookRejected,
    InvalidInput,
    NotFound,
    NoWorker,
    StoreUnavailable,
    Unavailable,
)
from ..hooks import seam
from ..hooks.chain import Chain, HookFailure, Outcome, Validate
from ..hooks.model import HookContext, HookPoint, Modify, Proceed, Reject
from ..limits.budgets import Budgets
from ..limits.concurrency import ConcurrencyGate, FairQueue
from ..limits.counters import SharedCounters
from ..limits.limiter import Limiter
from ..limits.rules import ConcurrencyRule
from ..limits.slots import ClaimStore, ClusterSlots
from ..settings import Settings
from ..store.base import RunStore
from ..store.memory import stamped
from ..telemetry.logging import RUN_ID
from ..usage.accounting import InvalidUsage, UsageAccounting, run_totals
from ..usage.model import UsageReport
from ..validation import InputValidator, unresolvable_refs, value_errors
from ..workers.connection import Assignment, ProtocolViolation, WorkerConnection
from ..workers.registry import EndpointRegistry
from .approval import GATE_ID, approval_interrupt, decided, requires_approval
from .model import (
    ACTIVE,
    TERMINAL,
    TERMINAL_EVENT,
    Checkpoint,
    Event,
    NewEvent,
    Run,
    RunError,
    RunQuery,
    RunStatus,
    RunUpdate,
    SequenceGap,
    new_run_id,
)

if TYPE_CHECKING:
    from ..approvals.service import Approvals
    from ..hooks.stage import HookStage
    from ..telemetry.metrics import GatewayMetrics
    from ..telemetry.tracing import Tracing

log = logging.getLogger("fastagentic.runs")

_encode = msgspec.json.encode
_decode = msgspec.json.decode
T = TypeVar("T")
_QUEUED = frozenset({RunStatus.QUEUED})
_RUNNING = frozenset({RunStatus.RUNNING})
_WAITING = frozenset({RunStatus.WAITING_INPUT})
#: Most abandoned input requests whose wait is bounded at once (``bound_wait``); past it, interrupt_timeout.
MAX_WAIT_BOUNDS = 100_000
# Statuses in which a worker may hold the run: running, or waiting for input in place.
_HELD = frozenset({RunStatus.RUNNING, RunStatus.WAITING_INPUT})


class RunService:
    def __init__(
        self,
        settings: Settings,
        registry: EndpointRegistry,
        durable: RunStore,
        ephemeral: RunStore,
        bus: Bus,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.durable = durable
        self.ephemeral = ephemeral
        self.bus = bus
        self.workers: dict[str, WorkerConnection] = {}
        self._pending: dict[str, FairQueue] = {}  # endpoint -> runs queued here, fair across tenants
        #: concurrency limits (the ``concurrency`` setting): which queued runs may start now
        self.concurrency = ConcurrencyGate(settings.concurrency)
        self.concurrency.on_release = self._slot_freed
        #: in a cluster (shared limit counters): the concurrency slots this replica claimed (see ``start``)
        self.claims: ClusterSlots | None = None
        self._waking = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._pullers: dict[str, asyncio.Task[None]] = {}  # endpoint -> task claiming announced runs
        self._slots_freed = asyncio.Event()
        self._store_ok = True  # False while the durable store is unreachable
        #: where run creations, cancels and replays are recorded (set when callers authenticate)
        self.audit: AuditLog | None = None
        #: the limit stage every call passes before its run exists (set by the gateway)
        self.limiter: Limiter | None = None
        #: where the usage in workers' llm_end events is validated and counted (set by the gateway)
        self.usage: UsageAccounting | None = None
        #: day, month and run budgets (set by the gateway when the ``budgets`` setting has some)
        self.budgets: Budgets | None = None
        #: approval channels, told when a run starts waiting for input (set when some are configured)
        self.approvals: Approvals | None = None
        #: the gateway's hook chains (set when the ``hooks`` setting has some; None: no hook anywhere)
        self.hooks: HookStage | None = None
        #: Prometheus metrics (set by the gateway when ``metrics_port`` serves them; None: nothing counted)
        self.metrics: GatewayMetrics | None = None
        #: OpenTelemetry traces (set by the gateway when the ``tracing`` setting is on; None: no span)
        self.tracing: Tracing | None = None
        #: JSON logs: lines logged while a worker's message is handled carry its run id
        self.log_runs = settings.log_format == "json"
        #: endpoint name -> (its fingerprint, a validator of its output schema), for on_response
        self._output_validators: dict[str, tuple[bytes, InputValidator]] = {}
        self._grace_until = 0.0  # no requeue for expired leases before this (monotonic): see _reap_forever
        #: run id -> futures of ``wait`` calls here, given the run when it ends here (``_ended``)
        self._end_waiters: dict[str, list[asyncio.Future[Run]]] = {}
        #: (run id, interrupt seq) -> when an ephemeral run stops waiting on it in place (``bound_wait``)
        self._wait_bounds: dict[tuple[str, int], asyncio.TimerHandle] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        limiter = self.limiter
        if limiter is not None and isinstance(limiter.counters, SharedCounters):
            # Replicas count together: this one runs at most the concurrency slots it claimed in NATS.
            store = ClaimStore(limiter.counters, self.bus.replica, self.settings.lease_ttl)
            self.claims = ClusterSlots(
                store,
                self.concurrency,
                fail_open=limiter.fail_open,
                on_grant=self._slot_freed,
                capacity=self._free_slots,
            )
            self.concurrency.share(self.claims)
            await self.claims.start()
        if not self.bus.clustered:
            # Alone, this replica is the only one to run what is queued; in a cluster, the sweep offers them.
            for run in await self.durable.queued(limit=1_000_000):
                self._enqueue(run)
        # Leases that ran out while no gateway could hear heartbeats (this one was down) get one more
        # lease_ttl: the workers reconnect and renew them, instead of their runs starting over.
        self._grace_until = time.monotonic() + self.settings.lease_ttl
        # Runs left running or queued by the previous life of this gateway: their workers are expected back,
        # so until then an endpoint not registered yet answers 503 (retry), not 404 (no such endpoint).
        if await self._runs_in_flight():
            self.registry.warm_at = self._grace_until
        self._reaper = asyncio.create_task(self._reap_forever())

    async def _runs_in_flight(self) -> bool:
        return bool(await self.durable.expired(float("inf"), limit=1) or await self.durable.queued(limit=1))

    async def close(self) -> None:
        tasks = [task for task in (self._reaper, *self._pullers.values()) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._pullers.clear()
        for handle in self._wait_bounds.values():
            handle.cancel()
        self._wait_bounds.clear()
        if self.claims is not None:
            await self.claims.close()

    def _store(self, durable: bool) -> RunStore:
        return self.durable if durable else self.ephemeral

    def _spawn(self, coro: Coroutine[None, None, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished_task)

    def _finished_task(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("dispatch failed", exc_info=task.exception())

    # ------------------------------------------------------------------ fronts

    async def submit(
        self, call: Call, *, run_timeout: float | None = None, replay: Checkpoint | None = None
    ) -> tuple[Run, bool]:
        """Accept a run for ``call``. Returns ``(run, created)``; ``created`` is False when the
        idempotency key named an existing run (whose request must match, else Conflict).
        ``run_timeout``: seconds until the run's deadline (default: the ``run_timeout`` setting; 0 = none).
        ``replay``: the checkpoint (of another run) whose state the run's first attempt starts from."""
        info = call.endpoint.info
        bus = self.bus
        if not bus.connected:
            raise Unavailable("the cluster bus (NATS) is unreachable; retry shortly")
        if self.limiter is not None:
            await self.limiter.admit(call.principal, info)
        gate = self.concurrency
        if gate.by_principal:
            gate.note(call.principal)  # its runs record tenant and subject only: its roles decide its rules
        budget = await self.budgets.admit(call.principal, info) if self.budgets is not None else None
        hooks = self.hooks
        if hooks is not None and hooks.on_request is not None:
            call = await self._on_request(hooks.on_request, call)
        # A run that leaves this replica must be visible to the others: in the shared store.
        # (So must a run that waits for a concurrency slot: another replica may run it.)
        durable = info.durable or (
            bus.clustered
            and not (
                any(w.free > 0 for w in call.endpoint.workers) and gate.admits_call(call.principal, info.name)
            )
        )
        if durable and not self._store_ok:
            # Known to be down (the reaper probes it every lease_ttl / 3): answer now instead of waiting.
            raise StoreUnavailable("the run store is unreachable; retry shortly")
        now = time.time()
        timeout = run_timeout or self.settings.run_timeout
        meta, trace_ids = call.meta, (0, 0, 0)
        if self.tracing is not None:  # the run's trace ids, kept with it (telemetry/tracing.py)
            meta, trace_ids = self.tracing.with_trace(meta)
        run = Run(
            id=new_run_id(),
            endpoint=info.name,
            kind=info.kind,
            durable=durable,
            caller=call.caller,
            input=call.input,
            max_attempts=self.settings.max_attempts,
            idempotency_key=call.idempotency_key,
            request_hash=call.request_hash,
            deadline_at=now + timeout if timeout > 0 else None,
            created_at=now,
            updated_at=now,
            replay_of=replay.run_id if replay is not None else None,
            replay_checkpoint=replay.id if replay is not None else None,
            context_id=call.context_id,
            protocol_meta=meta,
            budget=budget,
            protocol=call.protocol,
        )
        gated = info.require_approval or (
            bool(self.settings.approval_required)
            and requires_approval(self.settings.approval_required, info.name)
        )
        if gated:
            # Waits for a person's decision before any worker sees it (runs/approval.py); in a cluster the
            # decision may reach another replica, which must find the run in the shared store.
            run.status = RunStatus.WAITING_INPUT
            run.durable = run.durable or bus.clustered
        # A refuse rule counts this call from here until its run is queued or running (then it counts
        # itself): concurrent calls cannot all pass the same last free slot.
        reserved = await gate.reserve_call(call.principal, info.name) if gate.refusing else None
        # With a worker free now (and nothing queued before it, no concurrency rule to consult), the run is
        # created started on it: one write, not a create and then a claim.
        worker = (
            None if gated or gate.active or self._pending.get(info.name) else self._free_worker(info.name)
        )
        first: list[NewEvent] = []
        if worker is not None:
            worker.take(run.id, run.attempt, run.durable)
            run.status, run.worker_id, run.started_at = RunStatus.RUNNING, worker.worker_id, now
            run.lease_expires_at = now + self.settings.lease_ttl
            first.append(
                NewEvent("run.started", _encode({"attempt": run.attempt, "worker": worker.worker_id}), now)
            )
        store = self._store(run.durable)
        try:
            stored, created = await self._store_run(store, run, first, worker, now)
            if created:
                if gated:
                    stored = await self._await_approval(stored)
                elif worker is None:
                    self._offer(stored)
        finally:
            if reserved is not None:
                reserved.release()
        if not created and worker is not None:
            worker.finish(run.id)  # an idempotency key named another run: the slot goes back
            self._pump(worker)
        if not created:
            if stored.request_hash != run.request_hash:
                raise Conflict(
                    f"Idempotency-Key {call.idempotency_key!r} was already used for a different request "
                    f"(run {stored.id})"
                )
            return stored, False
        if self.tracing is not None:
            self.tracing.run_created(stored, trace_ids)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("run %s accepted for %s", stored.id, info.name, extra={"run_id": stored.id})
        if self.metrics is not None:
            self.metrics.run_created(stored)
        if self.audit is not None:
            self.audit.record(
                "run.replay" if replay is not None else "run.create",
                principal=call.principal,
                protocol=call.protocol,
                request_id=call.request_id,
                target=stored.id,
                detail=info.name if replay is None else f"{info.name} from {replay.run_id}",
            )
        if worker is not None:
            # After run_created (tracing: the attempt's span continues the run's); nothing awaits for a first
            # attempt on a worker still connected.
            await self._started(worker, store, stored, stamped(stored.id, 0, first, now))
        return stored, True

    async def _store_run(
        self, store: RunStore, run: Run, first: list[NewEvent], worker: WorkerConnection | None, now: float
    ) -> tuple[Run, bool]:
        """``store.create(run, first)``; the slot taken on ``worker`` (the run created started on it) given
        back when it fails. A durable write goes on when the caller is cancelled (a client that leaves):
        the run it stores, if any, is accepted, and dispatched all the same (``_accepted_anyway``), never left
        queued with nobody to offer it, or running on a worker that was never told."""
        if not run.durable:  # the memory store does not wait: nothing can cancel it half-way
            try:
                return await store.create(run, first)
            except BaseException:
                self._give_back(worker, run.id)
                raise
        creating = asyncio.ensure_future(store.create(run, first))
        try:
            return await asyncio.shield(creating)
        except asyncio.CancelledError:
            # Whatever the write decides (stored, refused, failed), the continuation acts on it.
            self._spawn(self._accepted_anyway(creating, store, run.id, first, worker, now))
            raise
        except BaseException:
            self._give_back(worker, run.id)
            raise

    async def _accepted_anyway(
        self,
        creating: asyncio.Future[tuple[Run, bool]],
        store: RunStore,
        run_id: str,
        first: list[NewEvent],
        worker: WorkerConnection | None,
        now: float,
    ) -> None:
        try:
            stored, created = await creating
        except asyncio.CancelledError:
            if not creating.cancelled():
                raise  # this task is cancelled (the gateway stops), not the write
            created = False
        except Exception as exc:
            log.warning("a run whose caller left was not stored: %s", exc)
            created = False
        if not created:
            self._give_back(worker, run_id)
            return
        log.info("run %s accepted; its caller left before hearing so", stored.id)
        if worker is not None:
            await self._started(worker, store, stored, stamped(stored.id, 0, first, now))
        elif stored.status is RunStatus.QUEUED:
            self._offer(stored)

    def _give_back(self, worker: WorkerConnection | None, run_id: str) -> None:
        if worker is not None:
            worker.finish(run_id)
            self._pump(worker)

    async def _on_request(self, chain: Chain, call: Call) -> Call:
        """The on_request chain on ``call``: refused (HookRejected, HookFailed), or its input replaced by a
        modification that still matches the endpoint's input schema."""
        context = seam.request_context(call, _decode(call.input))
        try:
            outcome = await chain.run(context, seam.schema_check(call.endpoint.validator))
        except HookFailure as exc:
            self._audit_hook(call, exc.hook, exc.message)
            raise HookFailed(exc.message, hook=exc.hook, point=exc.point) from None
        action = outcome.action
        if isinstance(action, Reject):
            self._audit_hook(call, outcome.hook, action.reason)
            raise HookRejected(
                f"hook {outcome.hook!r} rejected the call: {action.reason}",
                hook=outcome.hook,
                point=HookPoint.ON_REQUEST.value,
                reason=action.reason,
            )
        if isinstance(action, Modify):
            return msgspec.structs.replace(call, input=_encode(action.payload))
        return call

    def _audit_hook(self, call: Call, hook: str, reason: str) -> None:
        if self.audit is not None:
            self.audit.record(
                "hook.reject",
                outcome="denied",
                principal=call.principal,
                protocol=call.protocol,
                request_id=call.request_id,
                target=call.endpoint.name,
                detail=f"{hook}: {reason}"[:1000],
            )

    async def _hook_context(self, held: Assignment, run_id: str) -> HookContext | None:
        """The context of a held run's points (read once per attempt, then kept with the assignment)."""
        base = held.hook_context
        if base is None:
            run = await self._run_of(run_id)
            if run is None:
                return None
            base = held.hook_context = seam.run_context(run, held.attempt)
        return (
            msgspec.structs.replace(base, usage=seam.usage_of(held.spent)) if held.spent is not None else base
        )

    def _output_check(self, endpoint_name: str) -> Validate:
        endpoint = self.registry.get(endpoint_name)
        if endpoint is None:
            return seam.schema_check(None)
        known = self._output_validators.get(endpoint_name)
        if known is None or known[0] != endpoint.fingerprint:
            known = self._output_validators[endpoint_name] = (
                endpoint.fingerprint,
                InputValidator(endpoint.info.output_schema or {}),
            )
        return seam.schema_check(known[1])

    async def _await_approval(self, run: Run) -> Run:
        """A run just accepted ``waiting_input``: it asks for approval (its first event)."""
        store = self._store(run.durable)
        event = approval_interrupt(run, self.settings.approver_scope)
        result = await store.transition(
            run.id,
            expect=_WAITING,
            attempt=run.attempt,
            update=RunUpdate(status=RunStatus.WAITING_INPUT),
            events=[event],
        )
        if result is None:  # cancelled at once, say: as it is now
            return await store.get(run.id) or run
        waiting, events = result
        self.bus.publish(run.id, events)
        if self.approvals is not None:
            self.approvals.waiting(waiting)  # notifies its approval channels, in the background
        return waiting

    @property
    def store_ok(self) -> bool:
        return self._store_ok

    def _ended(self, run: Run) -> None:
        """``run`` was just stored as it now is: counted when that is its end, and handed to whoever waits
        for that end here (``wait``), who need not read it back from the store."""
        if run.status in TERMINAL:
            for ended in self._end_waiters.pop(run.id, ()):
                if not ended.done():
                    ended.set_result(run)
        if self.tracing is not None and run.status in TERMINAL:
            self.tracing.run_ended(run)  # its attempt's and its own span
        if self.metrics is not None and run.status in TERMINAL:
            self.metrics.run_ended(run)

    def queue_depths(self) -> dict[str, int]:
        """Endpoint -> runs queued on this replica (read by the metrics collector, on its own thread)."""
        return {name: len(queue) for name, queue in list(self._pending.items())}

    async def get(self, run_id: str, who: Principal | str) -> Run | None:
        """The run, if ``who`` may see it: a principal sees the runs of its tenant whose endpoint it may use
        (``access.policy.may_see``); a bare tenant, every run of that tenant. Anything else is None, as for
        a run that does not exist: another tenant's run is never confirmed."""
        tenant = who if isinstance(who, str) else who.tenant
        run = await self.ephemeral.get(run_id, tenant)
        if run is None:
            run = await self.durable.get(run_id, tenant)
        if run is not None and not isinstance(who, str) and not may_see(who, run, self.registry):
            if self.registry.get(run.endpoint) is None and self.registry.warming():
                # Its endpoint's scopes are not known until its workers reconnect: ask to come back.
                raise NoWorker(
                    f"run {run_id} cannot be shown yet: the gateway just started and workers are reconnecting",
                    retry_after=self.settings.retry_after,
                )
            return None
        return run

    async def require(self, run_id: str, who: Principal | str) -> Run:
        run = await self.get(run_id, who)
        if run is None:
            raise NotFound(f"no run {run_id!r}")
        return run

    async def checkpoints(self, run_id: str, who: Principal | str) -> list[Checkpoint]:
        run = await self.require(run_id, who)
        return await self._store(run.durable).checkpoints(run.id)

    async def replay(
        self,
        run_id: str,
        principal: Principal,
        checkpoint_id: int | None,
        *,
        run_timeout: float | None = None,
    ) -> Run:
        """A new run of ``run_id``'s endpoint and input for ``principal`` (of the origin's tenant), starting
        from its checkpoint ``checkpoint_id`` (default: its last one). The origin may still be active."""
        origin = await self.require(run_id, principal)
        store = self._store(origin.durable)
        if checkpoint_id is None:
            checkpoint = await store.last_checkpoint(origin.id)
            if checkpoint is None:
                raise Conflict(f"run {run_id} has no checkpoint to replay from")
        else:
            checkpoint = await store.checkpoint(origin.id, checkpoint_id)
            if checkpoint is None:
                raise NotFound(f"run {run_id} has no checkpoint {checkpoint_id}")
        endpoint = find_endpoint(self.registry, origin.kind, origin.endpoint, self.settings.retry_after)
        # Validated again: the endpoint's schema may have changed since the origin was accepted.
        call = make_call(
            endpoint, _decode(origin.input), principal=principal, protocol="rest", raw=origin.input
        )
        run, _ = await self.submit(call, run_timeout=run_timeout, replay=checkpoint)
        return run

    async def list_runs(self, query: RunQuery) -> list[Run]:
        runs = await self.durable.list(query) + await self.ephemeral.list(query)
        runs.sort(key=lambda r: r.id, reverse=True)
        return runs[: query.limit]

    async def wait(self, run: Run, *, fresh: bool = False, asking: bool = False) -> Run:
        """Wait until ``run`` ends and return its final state: as this replica stored it when it ended here
        (``_ended``), else read from the store when the bus says it may have ended (or cannot tell).

        ``fresh``: ``run`` is what ``submit`` created just now, in the calling task, with nothing awaited
        since. On a single replica nothing can have happened to it yet, and whatever ends it later is
        seen here: it is not read again first (a store round trip less per invoke).

        ``asking``: return as well when the run waits for input (its state as stored then): for a caller
        that answers questions itself and follows the run's events only once one is asked."""
        store = self._store(run.durable)
        unread = fresh and not self.bus.clustered
        subscription = await self.bus.subscribe(run.id, elsewhere=self._elsewhere(run))
        ended: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        waiters = self._end_waiters.setdefault(run.id, [])
        waiters.append(ended)
        try:
            while True:
                current: Run | None = run
                if not unread:
                    current = ended.result() if ended.done() else await store.get(run.id)
                unread = False
                if current is None or current.status in TERMINAL:
                    return current or run
                if asking and current.status is RunStatus.WAITING_INPUT:
                    return current
                while True:
                    events = await subscription.next(within=self.settings.lease_ttl)
                    if ended.done():
                        return ended.result()
                    if not events or subscription.lagged or events[-1].kind in _TERMINAL_KINDS:
                        subscription.lagged = False
                        break
                    if asking and any(event.kind == "interrupt" for event in events):
                        break
        finally:
            subscription.close()
            if not ended.done():
                waiters.remove(ended)
                if not waiters and self._end_waiters.get(run.id) is waiters:
                    del self._end_waiters[run.id]

    def _elsewhere(self, run: Run) -> Elsewhere:
        """What following ``run`` needs of other replicas (``Bus.subscribe``): nothing for an ephemeral run
        (it only ever runs here), no round trip now for one a local worker holds (its events are published
        here; it may be requeued elsewhere later), a subscription made before reading otherwise."""
        if not run.durable or not self.bus.clustered:
            return "never"
        if any(run.id in worker.runs and not worker.closed for worker in self.workers.values()):
            return "later"
        return "wait"

    async def follow(self, run: Run, after_seq: int = 0) -> AsyncIterator[list[Event]]:
        """The run's events after ``after_seq`` in batches: what is stored, then live, until the terminal
        event; each event once and in order. Yields [] after ``sse_keepalive`` quiet seconds."""
        store = self._store(run.durable)
        subscription = await self.bus.subscribe(run.id, elsewhere=self._elsewhere(run))
        last = after_seq
        try:
            # Subscribed before reading the log, so nothing published in between is missed.
            current = await store.get(run.id)
            backlog = await store.events(run.id, after_seq=last)
            if not backlog and (current is None or (current.status in TERMINAL and current.last_seq <= last)):
                return
            while True:
                batch: list[Event] = []
                gap = ended = False
                for event in backlog:
                    if event.seq <= last:
                        continue
                    if event.seq > last + 1:
                        gap = True
                        break
                    last = event.seq
                    batch.append(event)
                    if event.kind in _TERMINAL_KINDS:
                        ended = True
                        break
                if batch:
                    yield batch
                if ended:
                    return
                if gap or subscription.lagged:
                    # Handed events past what we read: the store has every event, in order.
                    subscription.lagged = False
                    backlog = await store.events(run.id, after_seq=last)
                    if backlog:
                        continue
                backlog = await subscription.next(within=self.settings.sse_keepalive)
                if not backlog and not subscription.lagged:
                    yield []
                    # Quiet: the store may hold events whose live copy was lost (a replica's bus outage).
                    backlog = await store.events(run.id, after_seq=last)
        finally:
            subscription.close()

    async def cancel(
        self,
        run_id: str,
        who: Principal | str,
        reason: str = "cancelled by request",
        *,
        protocol: str = "",
        request_id: str = "",
    ) -> Run:
        run = await self.require(run_id, who)
        if self.audit is not None and isinstance(who, Principal):
            self.audit.record(
                "run.cancel",
                principal=who,
                protocol=protocol,
                request_id=request_id,
                target=run_id,
                detail=reason,
            )
        if run.status in TERMINAL:
            raise Conflict(f"run {run_id} already finished ({run.status.value})")
        result = await self._store(run.durable).transition(
            run.id,
            expect=ACTIVE,
            attempt=None,
            update=RunUpdate(status=RunStatus.CANCELLED, clear_worker=True),
            events=[NewEvent("run.cancelled", _encode({"reason": reason}))],
        )
        if result is None:
            current = await self.require(run_id, who)
            raise Conflict(f"run {run_id} already finished ({current.status.value})")
        cancelled, events = result
        self.bus.publish(run.id, events)
        self._ended(cancelled)
        self._unqueue(run)
        if run.status in _HELD and run.worker_id is not None:
            notice = CancelNotice(run.id, run.attempt, run.worker_id, reason)
            if not self.on_cancel(notice):
                self.bus.cancel(notice)  # held on another replica (if anywhere)
        return cancelled

    def on_cancel(self, notice: CancelNotice) -> bool:
        """Tell the worker holding the run to stop, if it is connected here."""
        worker = self.workers.get(notice.worker_id)
        if worker is None or not worker.holds(notice.run_id, notice.attempt):
            return False
        worker.fence(notice.run_id)
        worker.send(
            pb.GatewayMessage(
                cancel=pb.Cancel(run_id=notice.run_id, attempt=notice.attempt, reason=notice.reason)
            )
        )
        self._pump(worker)
        return True

    # ------------------------------------------------------------------ dispatch

    def _offer(self, run: Run) -> None:
        """Hand ``run`` (queued) to a worker with a free slot, or queue it until one frees up (or, with
        concurrency rules, until its slots have room)."""
        if self.concurrency.active and self._pending.get(run.endpoint):
            # Runs of this endpoint wait here (some for a concurrency slot): it takes its turn among them.
            self._enqueue(run)
            self._pump_endpoint(run.endpoint)
            queue = self._pending.get(run.endpoint)
            if self.bus.clustered and queue is not None and run.id in queue:
                self._spawn(self._announce(run))
            return
        best = self._free_worker(run.endpoint)
        if best is None or not self._take(best, run):  # the take reserves the slot; the claim awaits
            endpoint = self.registry.get(run.endpoint)
            if not self.bus.clustered or (endpoint is not None and endpoint.workers):
                self._enqueue(run)
            if self.bus.clustered:
                self._spawn(self._announce(run))
            return
        self._spawn(self._assign(run, best))

    def _take(self, worker: WorkerConnection, run: Run) -> bool:
        """Reserve a slot of ``worker`` for ``run``; with concurrency rules, only when the run's own slots
        have room (False: nothing taken)."""
        gate = self.concurrency
        if not gate.active:
            worker.take(run.id, run.attempt, run.durable)
            return True
        hold = gate.acquire(run)
        if hold is None:
            return False
        worker.take(run.id, run.attempt, run.durable, hold=hold)
        return True

    def _enqueue(self, run: Run, *, front: bool = False) -> None:
        queue = self._pending.get(run.endpoint)
        if queue is None:
            queue = self._pending[run.endpoint] = FairQueue(self.concurrency)
        queue.push(run, front=front)

    def _unqueue(self, run: Run) -> None:
        """``run`` was queued and ended (cancelled, timed out): it no longer waits here."""
        queue = self._pending.get(run.endpoint)
        if queue is not None:
            queue.remove(run.id)

    def _pump_endpoint(self, name: str) -> None:
        endpoint = self.registry.get(name)
        if endpoint is not None:
            for worker in endpoint.workers:
                if worker.free > 0:
                    self._pump(worker)

    def _slot_freed(self) -> None:
        """A run gave its concurrency slots back: queued runs that waited for them may start (soon: once
        per loop turn, however many runs ended in it)."""
        if not self._waking and any(self._pending.values()):
            self._waking = True
            with contextlib.suppress(RuntimeError):  # no loop: nothing can be waiting
                asyncio.get_running_loop().call_soon(self._wake)
                return
            self._waking = False

    def _wake(self) -> None:
        self._waking = False
        if not self._store_ok:
            return  # the reaper pumps every worker once the store is back
        for worker in list(self.workers.values()):
            if worker.free > 0:
                self._pump(worker)

    def reload_hooks(self, hooks: HookStage | None) -> HookStage | None:
        """New gateway hooks (SIGHUP), swapped in whole; answers the stage they replace (for the caller to
        retire). Every point reads the stage in force when it is reached: a run under way takes the new
        chains at its next point; a chain already running finishes on the old stage."""
        old, self.hooks = self.hooks, hooks
        before = old.tool_check_timeout if old is not None and old.tool_points else 0.0
        points = set(hooks.tool_points) if hooks is not None else set()
        added = sorted(points - set(old.tool_points if old is not None else ()))
        longer = hooks is not None and bool(points) and hooks.tool_check_timeout > before
        told = sum(1 for worker in self.workers.values() if "tool_checks" in worker.features)
        if told and (added or longer):
            # Workers learn the tool points (and how long to wait for a verdict) in their Welcome only.
            log.warning(
                "hooks reloaded: the %d worker(s) connected now keep the tool checks they were told when they "
                "connected (%s) until they reconnect; restart them to apply %s",
                told,
                ", ".join(old.tool_points) if old is not None and old.tool_points else "none",
                ", ".join(added) if added else "the longer tool check timeout",
            )
        return old

    def reload_concurrency(self, rules: Sequence[ConcurrencyRule]) -> None:
        """New concurrency rules (SIGHUP): the runs running and queued here are counted again under them."""
        gate = self.concurrency
        was_active = gate.active
        gate.reload(rules)
        for queue in self._pending.values():
            queue.rebuild()
        if self.claims is not None:
            self.claims.reloaded()  # claims of rules gone go back; the others follow their new max
        if gate.active and not was_active:
            # Runs started while no rule was configured hold nothing yet: count them once read.
            unheld = [
                (worker, run_id, held)
                for worker in self.workers.values()
                for run_id, held in worker.runs.items()
                if held.hold is None
            ]
            if unheld:
                self._spawn(self._hold_running(unheld))

    async def _hold_running(self, unheld: list[tuple[WorkerConnection, str, Assignment]]) -> None:
        gate = self.concurrency
        for worker, run_id, held in unheld:
            run = await self._run_of(run_id)
            if run is not None and gate.active and worker.runs.get(run_id) is held and not worker.closed:
                held.hold = gate.hold(run)

    async def _announce(self, run: Run) -> None:
        began = time.perf_counter()
        try:
            await self.bus.announce(run.endpoint, run.id, run.attempt)
        except BusUnavailable as exc:
            if self.metrics is not None:
                self.metrics.bus_errors.inc("announce")
            log.warning("run %s stays queued until the sweep announces it: %s", run.id, exc)
        else:
            if self.metrics is not None:
                self.metrics.bus_seconds.observe(time.perf_counter() - began, "announce")

    def _free_slots(self) -> int:
        """Free worker slots on this replica (what its concurrency claims could be used for now)."""
        return sum(worker.free for worker in self.workers.values())

    def _free_worker(self, endpoint_name: str) -> WorkerConnection | None:
        endpoint = self.registry.get(endpoint_name)
        best: WorkerConnection | None = None
        if endpoint is not None:
            for worker in endpoint.workers:
                if worker.free > 0 and (best is None or worker.free > best.free):
                    best = worker
        return best

    def _start_puller(self, name: str) -> None:
        if self.bus.clustered and name not in self._pullers:
            task = asyncio.create_task(self._pull(name))
            self._pullers[name] = task
            task.add_done_callback(lambda _: self._pullers.pop(name, None))

    async def _pull(self, name: str) -> None:
        """While this replica has workers for ``name``: claim runs other replicas announced, as slots free."""
        backoff = 0.5
        while True:
            endpoint = self.registry.get(name)
            if endpoint is None or not endpoint.workers:
                return
            free = sum(worker.free for worker in endpoint.workers)
            if free == 0:
                self._slots_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slots_freed.wait(), timeout=1.0)
                continue
            try:
                tickets = await self.bus.claim(name, min(free, 64), wait=1.0)
                backoff = 0.5
            except BusUnavailable as exc:
                if self.metrics is not None:
                    self.metrics.bus_errors.inc("claim")
                log.warning("cannot claim runs of %s: %s", name, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if len(tickets) == 1:
                await self._take_ticket(name, tickets[0])
            elif tickets:
                # Side by side: their reads and claims share the store's round trips (group commit)
                # instead of following one another; a worker slot is taken without an await, so two
                # tickets never take the same one.
                await asyncio.gather(*(self._take_ticket(name, ticket) for ticket in tickets))

    async def _take_ticket(self, name: str, ticket: Ticket) -> None:
        """A run another replica announced: started on a free worker here, queued here behind the runs
        waiting for concurrency slots, offered again later, or dropped when it moved on meanwhile."""
        try:
            run = await self.durable.get(ticket.run_id)
        except StoreUnavailable:
            await ticket.retry(1.0)
            return
        if run is None or run.status is not RunStatus.QUEUED or run.attempt != ticket.attempt:
            await ticket.ack()  # taken, finished or requeued (announced again) meanwhile
            return
        if self.concurrency.active:
            # In turn with the runs queued here, and only when its concurrency slots have room: it
            # waits here until then (the sweep announces it again if it is still queued later).
            self._enqueue(run)
            await ticket.ack()
            self._pump_endpoint(name)
            return
        worker = self._free_worker(name)
        if worker is None:
            await ticket.retry(0.2)
            return
        worker.take(run.id, run.attempt, run.durable)
        await self._assign(run, worker)
        await ticket.ack()

    def _pump(self, worker: WorkerConnection) -> None:
        """Give ``worker`` queued runs of its endpoints while it has free slots."""
        if self._pullers:
            self._slots_freed.set()
        taken: list[Run] = []

        def take(run: Run) -> bool:
            if run.id in worker.runs:
                return True  # queued twice and running here already: the copy goes
            if self._take(worker, run):
                taken.append(run)
                return True
            return False  # its concurrency slots are full: it keeps its place

        progressed = True
        while worker.free > 0 and progressed:
            progressed = False
            for name in worker.endpoints:
                queue = self._pending.get(name)
                if queue and worker.free > 0 and queue.pop(take) is not None:
                    progressed = True
                    if taken:
                        self._spawn(self._assign(taken.pop(), worker))

    async def _assign(self, run: Run, worker: WorkerConnection) -> None:
        store = self._store(run.durable)
        now = time.time()
        try:
            await self._assign_claimed(run, worker, store, now)
        except StoreUnavailable as exc:
            # The run stays queued (or, if the claim did commit, its lease expires and it is requeued).
            log.warning("run %s not started, the store is unreachable: %s", run.id, exc.message)
            worker.finish(run.id)
            if not self.bus.clustered or worker.endpoints:
                self._enqueue(run, front=True)
            self._store_ok = False

    async def _assign_claimed(self, run: Run, worker: WorkerConnection, store: RunStore, now: float) -> None:
        result = await store.transition(
            run.id,
            expect=_QUEUED,
            attempt=run.attempt,
            update=RunUpdate(
                status=RunStatus.RUNNING,
                worker_id=worker.worker_id,
                lease_expires_at=now + self.settings.lease_ttl,
                started_at=run.started_at or now,
            ),
            events=[NewEvent("run.started", _encode({"attempt": run.attempt, "worker": worker.worker_id}))],
        )
        if result is None:
            worker.finish(run.id)
            self._pump(worker)
            return
        await self._started(worker, store, *result)

    async def _started(
        self, worker: WorkerConnection, store: RunStore, running: Run, events: list[Event]
    ) -> None:
        """``running`` was just stored as started on ``worker`` (claimed, or created so): tell the worker."""
        if worker.closed:
            # The worker left while we claimed: put the run back for another one.
            worker.finish(running.id)
            await self._requeue(running, "worker disconnected before the run started", count=False)
            self._pump(worker)
            return
        self.bus.publish(running.id, events)
        held = worker.runs.get(running.id)
        if held is not None:
            held.last_seq = running.last_seq
            if self.metrics is not None and running.attempt == 1:
                held.first_event = (running.endpoint, running.created_at)  # timed in _on_events
        assign = pb.Assign(
            run_id=running.id,
            attempt=running.attempt,
            endpoint=running.endpoint,
            input=running.input,
            caller=pb.Caller(principal=running.caller.principal, tenant=running.caller.tenant),
            next_seq=running.last_seq + 1,
            deadline_unix_ms=int(running.deadline_at * 1000) if running.deadline_at else 0,
            protocol=running.protocol,
        )
        if self.tracing is not None:  # the worker's spans continue the attempt's
            trace_context = self.tracing.attempt_started(running, worker.worker_id)
            if trace_context is not None:
                assign.trace_context.update(trace_context)
        if running.budget is not None and running.budget.hint and held is not None:
            assign.model_hint = held.hint = running.budget.hint
        # A resumed attempt starts from the run's last checkpoint; a replay, until it has one of its own,
        # from the checkpoint of the run it replays.
        checkpoint = await store.last_checkpoint(running.id) if running.attempt > 1 else None
        if checkpoint is None and running.replay_of is not None and running.replay_checkpoint is not None:
            checkpoint = await self._replayed_checkpoint(running)
            if checkpoint is None:
                await self._fail_replay(running, worker)
                return
        if checkpoint is not None:
            assign.checkpoint = checkpoint.state
        if running.attempt > 1:
            answers = await self._answers(store, running)
            if answers is not None:
                assign.resume_input = answers
        worker.send(pb.GatewayMessage(assign=assign))

    async def _replayed_checkpoint(self, run: Run) -> Checkpoint | None:
        origin, checkpoint_id = run.replay_of or "", run.replay_checkpoint or 0
        return await self.ephemeral.checkpoint(origin, checkpoint_id) or await self.durable.checkpoint(
            origin, checkpoint_id
        )

    async def _fail_replay(self, run: Run, worker: WorkerConnection) -> None:
        """The checkpoint a replay starts from is gone (its run was deleted by retention, say)."""
        worker.finish(run.id)
        error = RunError(
            type="CheckpointNotFound",
            message=f"checkpoint {run.replay_checkpoint} of run {run.replay_of} no longer exists",
        )
        await self._fail_running(self._store(run.durable), run.id, run.attempt, error)
        self._pump(worker)

    async def _fail_running(self, store: RunStore, run_id: str, attempt: int, error: RunError) -> bool:
        """End the run ``failed`` with ``error`` if it is still running at ``attempt``; True when it was."""
        result = await store.transition(
            run_id,
            expect=_RUNNING,
            attempt=attempt,
            update=RunUpdate(status=RunStatus.FAILED, error=error, clear_worker=True),
            events=[NewEvent("run.failed", _encode({"error": error}))],
        )
        if result is not None:
            self.bus.publish(run_id, result[1])
            self._ended(result[0])
        return result is not None

    async def _requeue(self, run: Run, reason: str, *, count: bool = True) -> None:
        """Take a running run back: attempt + 1 fences the old holder; past max attempts it fails.
        ``count=False`` (handed back by a draining worker, or its worker left before it started): not a
        failure, so max_attempts goes up with the attempt and the run keeps all its retries."""
        store = self._store(run.durable)
        if count and run.attempt >= run.max_attempts:
            error = RunError(type="WorkerLost", message=f"{reason}; gave up after {run.attempt} attempt(s)")
            await self._fail_running(store, run.id, run.attempt, error)
            return
        hooks = self.hooks
        if (
            count
            and hooks is not None
            and hooks.on_retry is not None
            and await self._retry_refused(hooks.on_retry, store, run, reason)
        ):
            return
        result = await store.transition(
            run.id,
            expect=_RUNNING,
            attempt=run.attempt,
            update=RunUpdate(
                status=RunStatus.QUEUED,
                attempt=run.attempt + 1,
                max_attempts=None if count else run.max_attempts + 1,
                clear_worker=True,
            ),
        )
        if result is not None:
            log.info("run %s requeued (attempt %d): %s", run.id, run.attempt + 1, reason)
            if self.tracing is not None:
                self.tracing.attempt_ended(run.id, run.attempt, reason)
            self._offer(result[0])

    async def _retry_refused(self, chain: Chain, store: RunStore, run: Run, reason: str) -> bool:
        """The on_retry chain on a run about to be requeued; True when a hook refused (the run failed)."""
        payload = {"attempt": run.attempt + 1, "reason": reason}
        context = msgspec.structs.replace(
            seam.run_context(run, run.attempt), point=HookPoint.ON_RETRY, payload=payload
        )
        try:
            outcome = await chain.run(context)
        except HookFailure as exc:
            outcome, error = (
                Outcome(Reject(exc.message), exc.hook),
                RunError(type="HookFailed", message=exc.message),
            )
        else:
            if not isinstance(outcome.action, Reject):
                return False
            error = RunError(
                type="HookRejected",
                message=f"hook {outcome.hook!r} refused a retry ({reason}): {outcome.action.reason}",
            )
        assert isinstance(outcome.action, Reject)
        result = await store.transition(
            run.id,
            expect=_RUNNING,
            attempt=run.attempt,
            update=RunUpdate(status=RunStatus.FAILED, error=error, clear_worker=True),
            events=[
                seam.rejected_event(HookPoint.ON_RETRY, outcome, outcome.action.reason),
                NewEvent("run.failed", _encode({"error": error})),
            ],
        )
        if result is not None:
            self.bus.publish(run.id, result[1])
            self._ended(result[0])
            log.info("run %s not retried: %s", run.id, error.message)
        return True

    async def _reap_forever(self) -> None:
        """Every fraction of a lease: requeue runs whose lease expired, in a cluster offer runs queued too
        long (their notice may have been lost), now and then apply retention. While the durable store is
        unreachable no lease can be renewed; once it is back, expired leases get one more lease_ttl (the
        workers' heartbeats renew them) before anything is requeued."""
        interval = min(self.settings.lease_ttl / 3, 1.0)
        retention = self.settings.retention
        purge_every = min(max(retention / 10, interval), 60.0)
        sweep_every = max(self.settings.lease_ttl / 2, interval)
        last_purge = last_sweep = 0.0
        while True:
            await asyncio.sleep(interval)
            try:
                if not self._store_ok:
                    await self._renew_all_leases()  # still unreachable: raises again
                    self._store_ok = True
                    self._grace_until = time.monotonic() + self.settings.lease_ttl
                    log.warning("run store reachable again; resuming dispatch")
                    for worker in list(self.workers.values()):
                        self._pump(worker)
                await self.reap(leases=time.monotonic() >= self._grace_until)
                if self.bus.clustered and time.monotonic() - last_sweep >= sweep_every:
                    last_sweep = time.monotonic()
                    await self.sweep(time.time() - sweep_every)
                if retention and time.monotonic() - last_purge >= purge_every:
                    last_purge = time.monotonic()
                    await self.purge(time.time() - retention)
            except StoreUnavailable as exc:
                if self._store_ok:
                    self._store_ok = False
                    log.warning("run store unreachable; accepted runs wait for it: %s", exc.message)
            except Exception:
                log.exception("lease reaper failed; retrying")

    async def _renew_all_leases(self) -> None:
        until = time.time() + self.settings.lease_ttl
        for worker in list(self.workers.values()):
            if worker.runs:
                await self.durable.renew_leases(worker.worker_id, until)

    async def sweep(self, queued_before: float) -> None:
        """Offer runs queued since before ``queued_before`` whose endpoint is served somewhere: here when a
        worker is free, else announced again (the bus drops repeats within its duplicate window)."""
        for run in await self.durable.queued(limit=1000):
            if run.updated_at > queued_before:
                continue
            endpoint = self.registry.get(run.endpoint)
            if endpoint is None or not endpoint.served:
                continue
            if self.concurrency.active and endpoint.workers:
                # In turn with the runs queued here, within its concurrency slots; announced again as well
                # when it must wait, since another replica may have room for it first.
                self._enqueue(run)
                self._pump_endpoint(run.endpoint)
                queue = self._pending.get(run.endpoint)
                if queue is not None and run.id in queue:
                    await self._announce(run)
                continue
            worker = self._free_worker(run.endpoint)
            if worker is not None:
                worker.take(run.id, run.attempt, run.durable)
                await self._assign(run, worker)
            else:
                await self._announce(run)

    async def purge(self, finished_before: float) -> int:
        """Delete durable runs that finished before ``finished_before``, in bounded batches."""
        total = 0
        while (deleted := await self.durable.delete_finished(finished_before, limit=1000)) > 0:
            total += deleted
            if deleted < 1000:
                break
        if total:
            log.info("retention: deleted %d finished run(s)", total)
        return total

    async def reap(self, leases: bool = True) -> None:
        """End runs past their deadline; with ``leases``, requeue runs whose lease expired."""
        now = time.time()
        for store in (self.ephemeral, self.durable):
            for run in await store.expired(now) if leases else ():
                worker = self.workers.get(run.worker_id or "")
                if worker is not None and worker.holds(run.id, run.attempt):
                    worker.fence(run.id)
                    worker.send(
                        pb.GatewayMessage(
                            cancel=pb.Cancel(run_id=run.id, attempt=run.attempt, reason="lease expired")
                        )
                    )
                await self._requeue(run, "lease expired")
            for run in await store.overdue(now):
                await self._time_out(run)

    async def _time_out(self, run: Run) -> None:
        """End ``run`` (active, past its deadline) ``timed_out``, and stop the worker holding it if any."""
        error = RunError(
            type="Timeout",
            message=f"the run did not finish within its deadline ({run.deadline_at - run.created_at:g} s "
            "after it was created)"
            if run.deadline_at is not None
            else "the run passed its deadline",
        )
        result = await self._store(run.durable).transition(
            run.id,
            expect=frozenset({run.status}),
            attempt=run.attempt,
            update=RunUpdate(status=RunStatus.TIMED_OUT, error=error, clear_worker=True),
            events=[NewEvent(TERMINAL_EVENT[RunStatus.TIMED_OUT], _encode({"error": error}))],
        )
        if result is None:
            return  # it moved on meanwhile; the next sweep looks again
        log.info("run %s timed out", run.id)
        self.bus.publish(run.id, result[1])
        self._ended(result[0])
        self._unqueue(run)
        if run.status in _HELD and run.worker_id is not None:
            notice = CancelNotice(run.id, run.attempt, run.worker_id, "deadline passed")
            if not self.on_cancel(notice):
                self.bus.cancel(notice)  # held on another replica (if anywhere)

    # ------------------------------------------------------------------ workers

    async def attach(self, worker: WorkerConnection, held: Sequence[pb.HeldRun]) -> list[pb.HeldRunStatus]:
        """A worker (re)connected: it keeps the runs it still holds, if nothing moved them on."""
        previous = self.workers.get(worker.worker_id)
        if previous is not None:
            previous.close()
        self.workers[worker.worker_id] = worker
        statuses = []
        until = time.time() + self.settings.lease_ttl
        for item in held:
            run = await self.ephemeral.get(item.run_id) or await self.durable.get(item.run_id)
            keep = (
                run is not None
                and run.status in _HELD
                and run.attempt == item.attempt
                and run.worker_id == worker.worker_id
                and run.endpoint in worker.endpoints  # a worker keeps only runs it may serve
            )
            if keep and run is not None:
                # Running already: it holds its concurrency slots even past their max (nothing is stopped).
                hold = self.concurrency.hold(run) if self.concurrency.active else None
                worker.take(run.id, run.attempt, run.durable, run.last_seq, hold=hold)
                statuses.append(
                    pb.HeldRunStatus(run_id=run.id, attempt=run.attempt, keep=True, next_seq=run.last_seq + 1)
                )
            else:
                statuses.append(pb.HeldRunStatus(run_id=item.run_id, attempt=item.attempt, keep=False))
        if worker.runs:
            await self.durable.renew_leases(worker.worker_id, until)
            await self.ephemeral.renew_leases(worker.worker_id, until)
        return statuses

    def ready(self, worker: WorkerConnection) -> None:
        """The worker was welcomed: start giving it work."""
        for name in worker.endpoints:
            self._start_puller(name)
        self._pump(worker)

    def detach(self, worker: WorkerConnection) -> None:
        """The stream ended. Its runs keep their leases: the worker may come back in time to keep them."""
        worker.close()
        if self.workers.get(worker.worker_id) is worker:
            del self.workers[worker.worker_id]

    async def on_message(self, worker: WorkerConnection, message: pb.WorkerMessage) -> None:
        if not self.log_runs:
            await self._on_message(worker, message)
            return
        body = message.WhichOneof("body")  # JSON logs: what is logged meanwhile names the run
        run_id = message.events.run_id if body == "events" else message.done.run_id if body == "done" else ""
        token = RUN_ID.set(run_id)
        try:
            await self._on_message(worker, message)
        finally:
            RUN_ID.reset(token)

    async def _on_message(self, worker: WorkerConnection, message: pb.WorkerMessage) -> None:
        body = message.WhichOneof("body")
        if body == "events":
            await self._on_events(worker, message.events)
        elif body == "done":
            await self._on_done(worker, message.done)
        elif body == "heartbeat":
            await self._on_heartbeat(worker)
        elif body == "credit":
            worker.capacity = min(message.credit.slots, 10_000)
            self._pump(worker)
        elif body == "release":
            await self._on_release(worker, message.release)
        elif body == "completion":
            worker.resolve_completion(message.completion)
        elif body == "resource_changed":
            self.registry.resource_changed(worker, message.resource_changed.uri)
        elif body == "tool_check":
            self._on_tool_check(worker, message.tool_check)
        elif body == "hello":
            raise ProtocolViolation("Hello sent twice on one stream")
        else:
            raise ProtocolViolation("empty message")

    async def _run_of(self, run_id: str) -> Run | None:
        return await self.ephemeral.get(run_id) or await self.durable.get(run_id)

    async def _on_events(self, worker: WorkerConnection, message: pb.Events) -> None:
        held = worker.check(message.run_id, message.attempt)
        if held is None:
            return
        if message.first_seq < 1:
            raise ProtocolViolation(f"run {message.run_id}: event sequence numbers start at 1")
        if not message.events:
            raise ProtocolViolation(f"empty Events for run {message.run_id}")
        limit = self.settings.max_checkpoint_bytes
        for event in message.events:
            if event.HasField("checkpoint") and len(event.checkpoint) > limit:
                await self._checkpoint_too_large(worker, message, len(event.checkpoint))
                return
        batch = [_checked_event(message.run_id, event) for event in message.events]
        interrupt = _interrupt_of(message.run_id, batch)
        usage = self.usage
        reported = None
        if usage is not None:
            # Before anything is stored: invalid usage rejects the whole batch, as a bad event does.
            try:
                reported = usage.parse(message.run_id, int(message.first_seq), batch)
            except InvalidUsage as exc:
                raise ProtocolViolation(str(exc)) from None
        hooks = self.hooks
        if hooks is not None and hooks.observes:
            observed = await self._observe(worker, held, message, batch, hooks)
            if observed is None:
                return  # a hook rejected an event: the run failed
            batch = observed
        store = self._store(held.durable)
        try:
            stored = await self._until_stored(
                worker,
                lambda: store.append_events(message.run_id, message.attempt, int(message.first_seq), batch),
            )
        except SequenceGap as exc:
            raise ProtocolViolation(str(exc)) from exc
        if stored:
            held.last_seq = stored[-1].seq
            if held.first_event is not None and self.metrics is not None:
                self.metrics.first_event(held.first_event[0], time.time() - held.first_event[1])
                held.first_event = None
            if interrupt is not None and stored[-1].kind == "interrupt":
                # Waiting before anyone following the run sees the interrupt: an answer sent at once is taken.
                await self._until_stored(worker, lambda: self._wait_for_input(message.run_id, held))
            self.bus.publish(message.run_id, stored)
            if usage is not None and reported is not None:
                # Only what was stored now (a resent batch adds nothing); each report counts once per seq.
                counted = await self._until_stored(
                    worker, lambda: usage.count(message.run_id, held.durable, reported, stored)
                )
                if counted is not None:
                    if self.metrics is not None:
                        self.metrics.usage(counted[1])
                    await self._spent(worker, held, *counted)
        elif stored is None:
            # Fenced: cancelled or requeued elsewhere (a cancel notice that never arrived, say). Stop it here.
            self.on_cancel(CancelNotice(message.run_id, message.attempt, worker.worker_id, "run moved on"))

    async def _observe(
        self,
        worker: WorkerConnection,
        held: Assignment,
        message: pb.Events,
        batch: list[NewEvent],
        hooks: HookStage,
    ) -> list[NewEvent] | None:
        """The observing points' chains on a worker's batch before it is stored (so before any follower
        sees it): for each event, its kind's own point (``on_llm_end``, ``on_checkpoint``, ...) and then
        ``on_event``, each seeing the event's data (a checkpoint's state) as the hooks before it left it.
        The batch as is or modified; None when a hook rejected an event, and the run failed."""
        chains = hooks.by_kind
        if not any(event.kind in chains or hooks.every_event(event.kind) for event in batch):
            return batch
        run_id = message.run_id
        context = await self._hook_context(held, run_id)
        if context is None:
            return batch
        observed = list(batch)
        for index, event in enumerate(batch):
            own = chains.get(event.kind)
            every = hooks.every_event(event.kind)
            if own is None and every is None:
                continue
            state = event.checkpoint is not None
            payload = _decode(event.checkpoint if state and event.checkpoint is not None else event.data)
            check = seam.observed_check(event.kind, payload, state)
            changed = False
            for chain in (own, every):
                if chain is None:
                    continue
                point_context = msgspec.structs.replace(
                    context, point=chain.point, event=event.kind, payload=payload
                )
                try:
                    outcome = await chain.run(point_context, check)
                except HookFailure as exc:
                    await self._fail_by_hook(
                        worker,
                        held,
                        run_id,
                        Outcome(Reject(exc.message), exc.hook),
                        chain.point,
                        "HookFailed",
                        exc.message,
                    )
                    return None
                action = outcome.action
                if isinstance(action, Reject):
                    message_text = f"hook {outcome.hook!r} rejected a {event.kind} event: {action.reason}"
                    await self._fail_by_hook(
                        worker, held, run_id, outcome, chain.point, "HookRejected", message_text
                    )
                    return None
                if isinstance(action, Modify):
                    payload = action.payload
                    changed = True
            if changed:
                encoded = _encode(payload)
                observed[index] = (
                    msgspec.structs.replace(event, checkpoint=encoded)
                    if state
                    else msgspec.structs.replace(event, data=encoded)
                )
        return observed

    async def _fail_by_hook(
        self,
        worker: WorkerConnection,
        held: Assignment,
        run_id: str,
        outcome: Outcome,
        point: HookPoint,
        error_type: str,
        message: str,
    ) -> None:
        """Fail a running run because of a hook (after a ``hook.rejected`` event) and stop its worker's task."""
        error = RunError(type=error_type, message=message)
        reason = outcome.action.reason if isinstance(outcome.action, Reject) else message
        store = self._store(held.durable)
        result = await self._until_stored(
            worker,
            lambda: store.transition(
                run_id,
                expect=_HELD,
                attempt=held.attempt,
                update=RunUpdate(status=RunStatus.FAILED, error=error, clear_worker=True),
                events=[
                    seam.rejected_event(point, outcome, reason),
                    NewEvent("run.failed", _encode({"error": error})),
                ],
            ),
        )
        if result is not None:
            self.bus.publish(run_id, result[1])
            self._ended(result[0])
            log.info("run %s failed: %s", run_id, message)
        self.on_cancel(CancelNotice(run_id, held.attempt, worker.worker_id, f"{error_type}: {message}"))

    # ------------------------------------------------------------------ tool checks

    def _on_tool_check(self, worker: WorkerConnection, check: pb.ToolCheck) -> None:
        """A worker asks about a tool call (or its result) of a run it holds: answered by the chain of that
        point, in a task of its own (the worker's stream goes on meanwhile)."""
        held = worker.check(check.run_id, check.attempt)
        if held is None:
            return  # fenced: the run moved on, nobody waits for the answer
        point = seam.TOOL_POINTS.get(check.point)
        if point is None:
            raise ProtocolViolation(
                f"run {check.run_id}: ToolCheck point {check.point[:40]!r} is not a tool point"
            )
        if not 0 < len(check.check_id) <= seam.MAX_CHECK_ID or len(check.tool) > seam.MAX_TOOL_NAME:
            raise ProtocolViolation(f"run {check.run_id}: ToolCheck check_id or tool name out of bounds")
        _require_json(check.data, f"run {check.run_id}: ToolCheck data")
        hooks = self.hooks
        chain = hooks.chain(point) if hooks is not None else None
        if chain is None:
            worker.send(pb.GatewayMessage(tool_verdict=seam.verdict(check, Outcome(Proceed()))))
            return
        self._spawn(self._check_tool(worker, held, check, chain))

    async def _check_tool(
        self, worker: WorkerConnection, held: Assignment, check: pb.ToolCheck, chain: Chain
    ) -> None:
        payload = _decode(check.data)
        context = await self._hook_context(held, check.run_id)
        if context is None or not isinstance(payload, dict):
            outcome = Outcome(
                Reject(f"the gateway cannot check this tool call (run {check.run_id} or its data)")
            )
        else:
            context = msgspec.structs.replace(context, point=chain.point, tool=check.tool, payload=payload)
            try:
                outcome = await chain.run(context, seam.tool_check(chain.point, payload))
            except HookFailure as exc:
                outcome = Outcome(Reject(exc.message), exc.hook)
        if isinstance(outcome.action, Reject):
            log.info(
                "run %s: %s refused by hook %r: %s",
                check.run_id,
                check.point,
                outcome.hook,
                outcome.action.reason,
            )
        worker.send(pb.GatewayMessage(tool_verdict=seam.verdict(check, outcome)))

    async def _wait_for_input(self, run_id: str, held: Assignment) -> None:
        """The run's last event is an interrupt: it waits for input, held in place by its worker."""
        waiting = await self._store(held.durable).transition(
            run_id, expect=_RUNNING, attempt=held.attempt, update=RunUpdate(status=RunStatus.WAITING_INPUT)
        )
        if waiting is not None and self.approvals is not None:
            self.approvals.waiting(waiting[0])  # notifies its approval channels, in the background

    def bound_wait(self, run: Run, seq: int, until: float, why: str) -> None:
        """No answer can reach the interrupt of event ``seq`` after ``until`` (unix time): the only client
        that could answer it holds a ``requestState`` that expires then. An ephemeral run still waiting on
        it at that time fails ``InterruptTimeout`` (``why`` is the message) and its worker stops it, so the
        slot it held in place is free. Durable runs are not bounded: they are handed back and wait with no
        worker. Bounding the same interrupt again (asked again) moves the time."""
        if run.durable:
            return
        key = (run.id, seq)
        loop = asyncio.get_running_loop()
        previous = self._wait_bounds.pop(key, None)
        if previous is not None:
            previous.cancel()
        if len(self._wait_bounds) >= MAX_WAIT_BOUNDS:
            return  # unbounded then, as before: interrupt_timeout still ends the wait
        delay = max(0.0, until - time.time())
        self._wait_bounds[key] = loop.call_later(
            delay, lambda: self._spawn(self._end_abandoned_wait(key, why))
        )

    async def _end_abandoned_wait(self, key: tuple[str, int], why: str) -> None:
        self._wait_bounds.pop(key, None)
        run_id, seq = key
        run = await self.ephemeral.get(run_id)
        if run is None or run.status is not RunStatus.WAITING_INPUT or run.last_seq != seq:
            return  # answered (or ended) meanwhile
        error = RunError(type="InterruptTimeout", message=why)
        result = await self.ephemeral.transition(
            run.id,
            expect=_WAITING,
            attempt=run.attempt,
            update=RunUpdate(status=RunStatus.FAILED, error=error, clear_worker=True),
            events=[NewEvent("run.failed", _encode({"error": error}))],
        )
        if result is None:
            return  # it moved on meanwhile
        log.info("run %s failed: %s", run.id, why)
        self.bus.publish(run.id, result[1])
        self._ended(result[0])
        if run.worker_id is not None:
            notice = CancelNotice(run.id, run.attempt, run.worker_id, f"InterruptTimeout: {why}")
            if not self.on_cancel(notice):
                self.bus.cancel(notice)  # held on another replica

    async def resume(
        self,
        run_id: str,
        who: Principal,
        answer: Any,
        raw: bytes,
        *,
        interrupt_id: str | None = None,
        protocol: str = "",
        request_id: str = "",
    ) -> Run:
        """Answer the interrupt ``run_id`` waits on with ``answer`` (``raw``: its JSON), validated against
        the interrupt's schema. The answer is stored as the run's ``input`` event; the worker holding the run
        in place gets it at once, else the run is queued for a new attempt that receives every answer so
        far. Conflict when the run is not waiting (or ``interrupt_id`` names another interrupt)."""
        run = await self.require(run_id, who)
        if run.status is not RunStatus.WAITING_INPUT:
            raise Conflict(f"run {run_id} is not waiting for input ({run.status.value})")
        store = self._store(run.durable)
        pending = await self._pending_interrupt(store, run)
        if interrupt_id is not None and interrupt_id != pending.id:
            raise Conflict(f"run {run_id} waits on interrupt {pending.id!r}, not {interrupt_id!r}")
        if pending.id == GATE_ID:
            require_scope(who, self.settings.approver_scope, f"deciding whether run {run_id} may go on")
        errors = value_errors(answer, raw)
        if not errors and pending.schema is not None:
            errors = InputValidator(pending.schema).errors(answer)
        if errors:
            raise InvalidInput(
                f"the answer does not match the schema of interrupt {pending.id!r}", errors=errors
            )
        hooks = self.hooks
        if hooks is not None and hooks.on_resume is not None:
            answer, raw = await self._on_resume(hooks.on_resume, run, who, answer, raw, pending)
        if self.audit is not None:
            gate = pending.id == GATE_ID
            self.audit.record(
                f"run.{answer['decision']}" if gate else "run.resume",  # run.approve / run.edit / run.reject
                principal=who,
                protocol=protocol,
                request_id=request_id,
                target=run.id,
                detail=f"{run.endpoint}: {answer.get('reason', '')}" if gate else pending.id,
            )
        event = NewEvent("input", b'{"id":' + _encode(pending.id) + b',"answer":' + raw + b"}")
        if pending.id == GATE_ID:
            return await self._decide(store, run, answer, event)
        worker = self.workers.get(run.worker_id or "")
        held = worker.runs.get(run.id) if worker is not None and worker.holds(run.id, run.attempt) else None
        if worker is not None and held is not None and "interrupts" in worker.features:
            result = await store.transition(
                run.id,
                expect=_WAITING,
                attempt=run.attempt,
                update=RunUpdate(
                    status=RunStatus.RUNNING, lease_expires_at=time.time() + self.settings.lease_ttl
                ),
                events=[event],
            )
            if result is None:
                raise Conflict(f"run {run_id} is no longer waiting for input")
            resumed, stored = result
            held.last_seq = stored[-1].seq
            self.bus.publish(run.id, stored)
            worker.send(
                pb.GatewayMessage(
                    answer=pb.Answer(
                        run_id=run.id,
                        attempt=run.attempt,
                        interrupt_id=pending.id,
                        data=raw,
                        next_seq=stored[-1].seq + 1,
                    )
                )
            )
            return resumed
        # No worker holds it here: a new attempt, on any worker, gets the answers in Assign.resume_input. (A
        # parked run's attempt is already a new one; a run held elsewhere moves on to fence its holder.)
        moved = run.worker_id is not None
        result = await store.transition(
            run.id,
            expect=_WAITING,
            attempt=run.attempt,
            update=RunUpdate(
                status=RunStatus.QUEUED,
                attempt=run.attempt + 1 if moved else None,
                max_attempts=run.max_attempts + 1 if moved else None,
                clear_worker=True,
            ),
            events=[event],
        )
        if result is None:
            raise Conflict(f"run {run_id} is no longer waiting for input")
        queued, stored = result
        self.bus.publish(run.id, stored)
        if run.worker_id is not None:
            # Held in place on another replica (or by a worker that lacks interrupts): it stops waiting.
            notice = CancelNotice(run.id, run.attempt, run.worker_id, "answered: resumed as a new attempt")
            if not self.on_cancel(notice):
                self.bus.cancel(notice)
        self._offer(queued)
        return queued

    async def _on_resume(
        self, chain: Chain, run: Run, who: Principal, answer: Any, raw: bytes, pending: PendingInterrupt
    ) -> tuple[Any, bytes]:
        """The on_resume chain on an answer before it is stored: refused (the run keeps waiting), or replaced
        by one that still matches the interrupt's schema."""
        context = msgspec.structs.replace(
            seam.run_context(run, run.attempt),
            point=HookPoint.ON_RESUME,
            principal=who.subject,
            scopes=who.scopes,
            payload=answer,
        )
        validator = InputValidator(pending.schema) if pending.schema is not None else None
        try:
            outcome = await chain.run(context, seam.schema_check(validator))
        except HookFailure as exc:
            raise HookFailed(exc.message, hook=exc.hook, point=exc.point) from None
        action = outcome.action
        if isinstance(action, Reject):
            raise HookRejected(
                f"hook {outcome.hook!r} rejected the answer: {action.reason}",
                hook=outcome.hook,
                point=HookPoint.ON_RESUME.value,
                reason=action.reason,
            )
        if isinstance(action, Modify):
            return action.payload, _encode(action.payload)
        return answer, raw

    async def _decide(self, store: RunStore, run: Run, answer: Any, event: NewEvent) -> Run:
        """A person's decision on a run that required approval: it is queued as called or with its input
        edited, or it fails ``ApprovalRejected`` without any worker seeing it."""
        update, after = decided(run, answer, self.registry)
        result = await store.transition(
            run.id, expect=_WAITING, attempt=run.attempt, update=update, events=[event, *after]
        )
        if result is None:
            raise Conflict(f"run {run.id} is no longer waiting for approval")
        decided_run, stored = result
        self.bus.publish(run.id, stored)
        self._ended(decided_run)
        if decided_run.status is RunStatus.QUEUED:
            self._offer(decided_run)
        return decided_run

    async def _pending_interrupt(self, store: RunStore, run: Run) -> PendingInterrupt:
        """The interrupt a waiting run waits on: its last event."""
        last = await store.events(run.id, after_seq=run.last_seq - 1)
        if not last or last[-1].kind != "interrupt":
            raise Conflict(f"run {run.id} waits for input but its last event is not an interrupt")
        return msgspec.json.decode(last[-1].data, type=PendingInterrupt)

    async def _answers(self, store: RunStore, run: Run) -> bytes | None:
        """Every answer the run was given, as ``Assign.resume_input`` carries them (None: none)."""
        answers = [
            msgspec.json.decode(event.data, type=GivenAnswer)
            for event in await store.events(run.id)
            if event.kind == "input"
        ]
        if not answers:
            return None
        return _encode({answer.id: answer.answer for answer in answers})

    async def _spent(self, worker: WorkerConnection, held: Assignment, run: Run, report: UsageReport) -> None:
        """A run's counted usage meets the token limits and the budgets: a run past its own budget stops."""
        if self.limiter is not None:
            tokens = sum(m.totals.input_tokens + m.totals.output_tokens for m in report.models)
            await self.limiter.charge(report.tenant, report.principal, report.endpoint, tokens)
        budgets = self.budgets
        if budgets is None:
            return
        budgets.spent(report)
        if run.budget is None or not (run.budget.name or run.budget.downgrade_to):
            return
        if held.spent is None:
            # First report of this attempt here: what the run spent so far is in the store (this report too).
            usage = self.usage
            assert usage is not None
            held.spent = run_totals(await self._until_stored(worker, lambda: usage.run_usage(run)))
        else:
            held.spent = held.spent + run_totals(report.models)
        reason = budgets.over(run.budget, held.spent)
        if reason is not None:
            await self._stop_over_budget(worker, held, run, reason)
            return
        hint = budgets.hint(run.budget, held.spent)
        if hint != held.hint and "model_hint" in worker.features:
            held.hint = hint
            worker.send(pb.GatewayMessage(hint=pb.Hint(run_id=run.id, attempt=held.attempt, model_hint=hint)))

    async def _stop_over_budget(
        self, worker: WorkerConnection, held: Assignment, run: Run, reason: str
    ) -> None:
        """Fail the run ``BudgetExceeded`` after the events that crossed its budget, and cancel its worker's task."""
        error = RunError(type="BudgetExceeded", message=reason)
        store = self._store(held.durable)
        if await self._until_stored(worker, lambda: self._fail_running(store, run.id, held.attempt, error)):
            log.warning("run %s stopped: %s", run.id, reason)
            if self.budgets is not None and self.budgets.metrics is not None and run.budget is not None:
                self.budgets.metrics.runs_over_budget.inc(run.budget.name)
        self.on_cancel(CancelNotice(run.id, held.attempt, worker.worker_id, f"BudgetExceeded: {reason}"))

    def lacking(self, worker: WorkerConnection) -> str:
        """What this gateway would use that ``worker`` does not understand (its SDK is older), or ""."""
        lacks = []
        if self.budgets is not None and self.budgets.downgrades and "model_hint" not in worker.features:
            lacks.append("model hints (budgets' downgrade_to does not reach its runs)")
        if self.hooks is not None and self.hooks.tool_points and "tool_checks" not in worker.features:
            lacks.append(
                "tool checks (the gateway's on_tool_call / on_tool_result hooks do not reach the tool calls "
                "its runs make)"
            )
        return "; ".join(lacks)

    async def _checkpoint_too_large(self, worker: WorkerConnection, message: pb.Events, size: int) -> None:
        """Fail the run (not the worker's stream): its batch is not stored and the worker is told to stop."""
        held = worker.check(message.run_id, message.attempt)
        if held is None:
            return
        error = RunError(
            type="CheckpointTooLarge",
            message=f"checkpoint state of {size} bytes is over the limit of {self.settings.max_checkpoint_bytes} "
            "bytes (setting max_checkpoint_bytes)",
        )
        store = self._store(held.durable)
        failed = await self._until_stored(
            worker, lambda: self._fail_running(store, message.run_id, message.attempt, error)
        )
        if failed:
            log.warning("run %s failed: %s", message.run_id, error.message)
        self.on_cancel(CancelNotice(message.run_id, message.attempt, worker.worker_id, error.message))

    async def _until_stored(self, worker: WorkerConnection, write: Callable[[], Awaitable[T]]) -> T:
        """``write`` a worker's report, retrying while the store is unreachable: the worker's stream waits
        (gRPC flow control holds the worker back) and nothing it reported is lost. Safe to repeat: event
        appends drop what is already stored, transitions are conditional."""
        delay = 0.1
        while True:
            try:
                return await write()
            except StoreUnavailable as exc:
                if worker.closed:
                    raise
                if self._store_ok:
                    self._store_ok = False
                    log.warning("run store unreachable; holding worker reports: %s", exc.message)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _on_done(self, worker: WorkerConnection, done: pb.Done) -> None:
        held = worker.check(done.run_id, done.attempt)
        if held is None:
            return
        worker.finish(done.run_id)
        run_id = done.run_id
        try:
            if done.last_seq != held.last_seq:
                raise ProtocolViolation(
                    f"run {run_id}: Done says last event {done.last_seq}, gateway has {held.last_seq}"
                )
            result = done.WhichOneof("result")
            if result == "output":
                _require_json(done.output, f"run {run_id}: output")
            elif result not in ("error", "cancelled"):
                raise ProtocolViolation(f"run {run_id}: Done without a result")
            hooks = self.hooks
            if hooks is not None and (
                (result == "output" and hooks.on_response is not None)
                or (result == "error" and hooks.on_error is not None)
            ):
                # Hooks may take their time: the worker's stream goes on meanwhile (nothing of this run follows).
                self._spawn(self._end(worker, held, done, result))
            else:
                await self._end(worker, held, done, result)
        finally:
            self._pump(worker)

    async def _end(
        self, worker: WorkerConnection, held: Assignment, done: pb.Done, result: str | None
    ) -> None:
        """Store how the run ended (its Done), through the on_response / on_error chains when there are."""
        run_id = done.run_id
        before: list[NewEvent] = []
        if result == "output":
            output = done.output
            update = RunUpdate(status=RunStatus.SUCCEEDED, output=output, clear_worker=True)
            hooks = self.hooks
            if hooks is not None and hooks.on_response is not None:
                update, before = await self._on_response(hooks.on_response, held, run_id, output, update)
            if update.status is RunStatus.SUCCEEDED:
                data = b'{"output":' + (update.output or b"null") + b"}"
            else:
                data = _encode({"error": update.error})
        elif result == "error":
            error = RunError(type=done.error.type[:200] or "Error", message=done.error.message[:10_000])
            hooks = self.hooks
            if hooks is not None and hooks.on_error is not None:
                error = await self._on_error(hooks.on_error, held, run_id, error)
            update = RunUpdate(status=RunStatus.FAILED, error=error, clear_worker=True)
            data = _encode({"error": error})
        else:
            update = RunUpdate(status=RunStatus.CANCELLED, clear_worker=True)
            data = _encode({"reason": "cancelled by the worker"})
        # Conditional on running at this attempt: a cancel that won the race keeps the run cancelled.
        store = self._store(held.durable)
        finished = await self._until_stored(
            worker,
            lambda: store.transition(
                run_id,
                expect=_HELD,  # a run waiting for input in place may end too (its function stopped waiting)
                attempt=done.attempt,
                update=update,
                events=[*before, NewEvent(TERMINAL_EVENT[update.status], data)],
            ),
        )
        if finished is not None:
            self.bus.publish(run_id, finished[1])
            self._ended(finished[0])

    async def _on_response(
        self, chain: Chain, held: Assignment, run_id: str, output: bytes, update: RunUpdate
    ) -> tuple[RunUpdate, list[NewEvent]]:
        """The on_response chain on a run's output: replaced (valid against the endpoint's output schema), or
        the run fails ``HookRejected`` / ``HookFailed`` after a ``hook.rejected`` event."""
        context = await self._hook_context(held, run_id)
        if context is None:
            return update, []
        context = msgspec.structs.replace(context, point=HookPoint.ON_RESPONSE, payload=_decode(output))
        try:
            outcome = await chain.run(context, self._output_check(context.endpoint))
        except HookFailure as exc:
            return self._hook_failed_update(exc), [
                seam.rejected_event(
                    HookPoint.ON_RESPONSE, Outcome(Reject(exc.message), exc.hook), exc.message
                )
            ]
        action = outcome.action
        if isinstance(action, Reject):
            error = RunError(
                type="HookRejected", message=f"hook {outcome.hook!r} rejected the output: {action.reason}"
            )
            log.info("run %s: %s", run_id, error.message)
            failed = RunUpdate(status=RunStatus.FAILED, error=error, clear_worker=True)
            return failed, [seam.rejected_event(HookPoint.ON_RESPONSE, outcome, action.reason)]
        if isinstance(action, Modify):
            return RunUpdate(
                status=RunStatus.SUCCEEDED, output=_encode(action.payload), clear_worker=True
            ), []
        return update, []

    def _hook_failed_update(self, exc: HookFailure) -> RunUpdate:
        log.warning("%s", exc.message)
        error = RunError(type="HookFailed", message=exc.message)
        return RunUpdate(status=RunStatus.FAILED, error=error, clear_worker=True)

    async def _on_error(self, chain: Chain, held: Assignment, run_id: str, error: RunError) -> RunError:
        """The on_error chain on a run's failure: it sees ``{type, message}`` and may rewrite the message
        (what callers are shown); a failing hook leaves the error as it was (the run fails either way)."""
        context = await self._hook_context(held, run_id)
        if context is None:
            return error
        payload = {"type": error.type, "message": error.message}
        context = msgspec.structs.replace(context, point=HookPoint.ON_ERROR, payload=payload)
        try:
            outcome = await chain.run(context, _error_check)
        except HookFailure as exc:
            log.warning("run %s: %s; its error stays as the worker reported it", run_id, exc.message)
            return error
        if isinstance(outcome.action, Modify):
            changed = outcome.action.payload
            return RunError(
                type=str(changed.get("type", error.type))[:200], message=str(changed["message"])[:10_000]
            )
        return error

    async def _on_release(self, worker: WorkerConnection, release: pb.Release) -> None:
        if not worker.check(release.run_id, release.attempt):
            return
        worker.fence(release.run_id)
        run = await self._run_of(release.run_id)
        if run is not None and run.status is RunStatus.RUNNING and run.attempt == release.attempt:
            await self._requeue(run, f"released by worker: {release.reason[:200]}", count=False)
        elif run is not None and run.status is RunStatus.WAITING_INPUT and run.attempt == release.attempt:
            await self._park(run)
        self._pump(worker)

    async def _park(self, run: Run) -> None:
        """A run waiting for input no worker holds any more (handed back, or its worker gone): it keeps
        waiting, at the next attempt (which fences the old one), for an answer to start it anew."""
        result = await self._store(run.durable).transition(
            run.id,
            expect=_WAITING,
            attempt=run.attempt,
            update=RunUpdate(
                status=RunStatus.WAITING_INPUT,
                attempt=run.attempt + 1,
                max_attempts=run.max_attempts + 1,  # waiting is not a failure: the run keeps its retries
                clear_worker=True,
            ),
        )
        if result is not None:
            log.info("run %s waits for input with no worker (attempt %d next)", run.id, run.attempt + 1)

    async def _on_heartbeat(self, worker: WorkerConnection) -> None:
        if worker.runs:
            until = time.time() + self.settings.lease_ttl
            await self.ephemeral.renew_leases(worker.worker_id, until)
            with contextlib.suppress(StoreUnavailable):  # renewed when the store is back (_reap_forever)
                await self.durable.renew_leases(worker.worker_id, until)


_TERMINAL_KINDS = frozenset(TERMINAL_EVENT.values())


def _error_check(value: Any) -> str | None:
    if not isinstance(value, dict) or not isinstance(value.get("message"), str):
        return 'an error is {"type", "message"} with a string message'
    return None


# Kinds already checked against the pattern: the check is skipped on the hot path of token streams.
_ACCEPTED_KINDS: set[str] = set()


def _require_json(data: bytes, what: str) -> None:
    try:
        _decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise ProtocolViolation(f"{what} is not valid JSON (or is nested too deeply)") from exc


def _checked_event(run_id: str, event: pb.Event) -> NewEvent:
    """A worker's event as the store takes it; anything a client could trip on is a protocol error."""
    kind = event.kind
    if kind not in _ACCEPTED_KINDS:
        if not EVENT_KIND_PATTERN.fullmatch(kind) or kind in RESERVED_KINDS:
            raise ProtocolViolation(f"run {run_id}: event kind {kind[:80]!r} is not allowed from a worker")
        if len(_ACCEPTED_KINDS) < 1024:
            _ACCEPTED_KINDS.add(kind)
    data = event.data or b"{}"
    _require_json(data, f"run {run_id}: data of a {kind} event")
    if b"\n" in data or b"\r" in data:
        data = _encode(_decode(data))  # one SSE data line per event
    checkpoint: bytes | None = None
    if event.HasField("checkpoint"):
        if kind != "checkpoint":
            raise ProtocolViolation(f"run {run_id}: checkpoint state on a {kind} event")
        checkpoint = event.checkpoint
        _require_json(checkpoint, f"run {run_id}: checkpoint state")
    ts = event.ts_ms / 1000 if event.ts_ms > 0 else time.time()
    return NewEvent(kind=kind, data=data, ts=ts, checkpoint=checkpoint)


class PendingInterrupt(msgspec.Struct, frozen=True):
    """What a worker's ``interrupt`` event says: which interrupt, what it asks, the answer's JSON Schema."""

    id: str
    request: Any = None
    schema: dict[str, Any] | None = None


class GivenAnswer(msgspec.Struct, frozen=True):
    """An ``input`` event: the answer to interrupt ``id``."""

    id: str
    answer: Any = None


_INTERRUPT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _interrupt_of(run_id: str, batch: Sequence[NewEvent]) -> PendingInterrupt | None:
    """The interrupt a worker's batch ends with, checked; a malformed one, or one that is not the last
    event of its batch, is a protocol violation (the run waits after it: nothing may follow)."""
    found = None
    for index, event in enumerate(batch):
        if event.kind != "interrupt":
            continue
        if index != len(batch) - 1:
            raise ProtocolViolation(f"run {run_id}: events after an interrupt, in the same batch")
        try:
            found = msgspec.json.decode(event.data, type=PendingInterrupt)
        except msgspec.ValidationError as exc:
            raise ProtocolViolation(f"run {run_id}: interrupt event: {exc}") from None
        if not _INTERRUPT_ID.fullmatch(found.id):
            raise ProtocolViolation(f"run {run_id}: interrupt id must match {_INTERRUPT_ID.pattern}")
        if found.schema is not None:
            try:
                Draft202012Validator.check_schema(found.schema)
            except SchemaError as exc:
                raise ProtocolViolation(
                    f"run {run_id}: interrupt schema is not a JSON Schema: {exc.message}"
                ) from None
            if unresolvable_refs(found.schema):
                raise ProtocolViolation(f"run {run_id}: interrupt schema has references it cannot resolve")
    return found
