"""MemoryRunStore: runs that live only as long as the process, for ephemeral endpoints.

It sits on the hot path of every request, so it is plain dicts and no locks: everything runs on one
asyncio loop and no method awaits, so each call is atomic. Stored runs are private; callers get copies.

The rule helpers at the top (``admits``, ``applied``, ``stamped``, ``checkpoints_of``) are shared with
``SQLiteRunStore`` so both stores apply one contract.

It is an ``AccessStore`` too (credentials and the audit log, for ``store_url=memory://`` and tests): the
audit log keeps at most ``max_audit`` records, dropping the oldest.
"""

from __future__ import annotations

import bisect
import builtins
import heapq
import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from ..access.model import AuditQuery, AuditRecord, CredentialKind, StoredCredential
from ..errors import Conflict
from ..runs.model import (
    ALLOWED,
    TERMINAL,
    Checkpoint,
    Event,
    NewEvent,
    PushConfig,
    Run,
    RunQuery,
    RunStatus,
    RunUpdate,
    SequenceGap,
)
from ..usage.model import (
    GROUP_FIELDS,
    ModelUsage,
    Totals,
    UsageQuery,
    UsageReport,
    UsageRow,
    group_by,
    usage_limit,
)
from .base import MAX_AUDIT_LIMIT, RunTimes

_OPTIONAL_UPDATE_FIELDS = (
    "input",
    "attempt",
    "max_attempts",
    "worker_id",
    "lease_expires_at",
    "output",
    "error",
    "started_at",
    "finished_at",
)


def admits(run: Run, expect: frozenset[RunStatus], attempt: int | None, update: RunUpdate) -> bool:
    """Whether ``transition`` may apply ``update`` to ``run``: expected status, same attempt, allowed move."""
    return (
        run.status in expect
        and (attempt is None or run.attempt == attempt)
        and update.status in ALLOWED[run.status]
    )


def applied(run: Run, update: RunUpdate, now: float) -> Run:
    """A new Run: ``run`` with ``update`` applied at time ``now``."""
    changes: dict[str, Any] = {"status": update.status, "updated_at": now}
    for name in _OPTIONAL_UPDATE_FIELDS:
        value = getattr(update, name)
        if value is not None:
            changes[name] = value
    # Clearing runs last so that it wins over a worker or lease given in the same update.
    if update.clear_worker:
        changes["worker_id"] = None
        changes["lease_expires_at"] = None
    if update.status in TERMINAL and update.finished_at is None:
        changes["finished_at"] = now
    return msgspec.structs.replace(run, **changes)


def stamped(run_id: str, last_seq: int, events: Sequence[NewEvent], now: float) -> builtins.list[Event]:
    """``events`` placed in the log after ``last_seq``; an event without a timestamp gets ``now``."""
    return [
        Event(run_id=run_id, seq=last_seq + i, ts=new.ts or now, kind=new.kind, data=new.data)
        for i, new in enumerate(events, start=1)
    ]


def checkpoints_of(
    placed: Sequence[Event], sent: Sequence[NewEvent], attempt: int, last_id: int
) -> builtins.list[Checkpoint]:
    """The checkpoints carried by ``sent`` (placed in the log as ``placed``), numbered after ``last_id``."""
    found: builtins.list[Checkpoint] = []
    for event, new in zip(placed, sent, strict=True):
        if new.kind == "checkpoint" and new.checkpoint is not None:
            found.append(
                Checkpoint(
                    run_id=event.run_id,
                    id=last_id + len(found) + 1,
                    seq=event.seq,
                    attempt=attempt,
                    ts=event.ts,
                    state=new.checkpoint,
                )
            )
    return found


def trimmed(run: Run, first_seq: int, events: Sequence[NewEvent]) -> Sequence[NewEvent]:
    """The part of a worker's batch not yet in the log; raises SequenceGap if the batch skips seqs."""
    if first_seq < 1:
        raise ValueError(f"run {run.id}: event seqs start at 1, got first_seq {first_seq}")
    if first_seq > run.last_seq + 1:
        raise SequenceGap(run.id, run.last_seq + 1, first_seq)
    return events[run.last_seq + 1 - first_seq :]


def matches(run: Run, query: RunQuery) -> bool:
    """Whether ``run`` passes the filters of ``query`` (all but ``before`` and ``limit``)."""
    return (
        run.caller.tenant == query.tenant
        and (query.status is None or run.status == query.status)
        and (query.statuses is None or run.status in query.statuses)
        and (query.endpoint is None or run.endpoint == query.endpoint)
        and (query.context_id is None or run.context_id == query.context_id)
        and (query.kind is None or run.kind == query.kind)
        and (query.updated_after is None or run.updated_at >= query.updated_after)
    )


def audit_matches(record: AuditRecord, query: AuditQuery) -> bool:
    """Whether ``record`` passes the filters of ``query`` (all but ``before_id`` and ``limit``)."""
    action = query.action
    return (
        (query.tenant is None or record.tenant == query.tenant)
        and (query.principal is None or record.principal == query.principal)
        and (
            action is None
            or (record.action.startswith(action) if action.endswith(".") else record.action == action)
        )
        and (query.outcome is None or record.outcome == query.outcome)
        and (query.since is None or record.ts >= query.since)
        and (query.until is None or record.ts < query.until)
    )


_AUDIT_TEXT_FIELDS = (
    "action",
    "outcome",
    "principal",
    "tenant",
    "protocol",
    "request_id",
    "target",
    "detail",
)


def audit_stored(record: AuditRecord, record_id: int) -> AuditRecord:
    """``record`` as the stores keep it: with its id, and NUL characters (which PostgreSQL text cannot hold)
    as U+FFFD, so that one odd value from a caller cannot lose a whole batch."""
    changes: dict[str, Any] = {"id": record_id}
    for name in _AUDIT_TEXT_FIELDS:
        value: str = getattr(record, name)
        if "\x00" in value:
            changes[name] = value.replace("\x00", "\ufffd")
    return msgspec.structs.replace(record, **changes)


def audit_limit(query: AuditQuery) -> int:
    """How many records ``AccessStore.audit`` returns at most for ``query``."""
    return min(max(query.limit, 0), MAX_AUDIT_LIMIT)


def _copy(run: Run) -> Run:
    return msgspec.structs.replace(run)


# The key of a usage aggregate, in the order of usage.model.GROUP_FIELDS.
UsageKey = tuple[str, str, str, str, str]  # day, tenant, principal, endpoint, model


def usage_matches(key: UsageKey, query: UsageQuery) -> bool:
    day, tenant, principal, endpoint, model = key
    return (
        (query.tenant is None or tenant == query.tenant)
        and (query.principal is None or principal == query.principal)
        and (query.endpoint is None or endpoint == query.endpoint)
        and (query.model is None or model == query.model)
        and (query.since is None or day >= query.since)
        and (query.until is None or day <= query.until)
    )


class MemoryRunStore:
    def __init__(self, max_finished: int = 10_000, max_audit: int = 100_000) -> None:
        if max_finished < 0:
            raise ValueError(f"max_finished must be >= 0, got {max_finished}")
        if max_audit < 0:
            raise ValueError(f"max_audit must be >= 0, got {max_audit}")
        self._max_finished = max_finished
        self._max_audit = max_audit
        self._runs: dict[str, Run] = {}
        self._events: dict[str, builtins.list[Event]] = {}
        self._checkpoints: dict[str, builtins.list[Checkpoint]] = {}
        self._by_tenant: dict[str, dict[str, None]] = {}
        self._idempotency: dict[tuple[str, str], str] = {}
        self._push_configs: dict[str, dict[str, PushConfig]] = {}  # run id -> config id -> config
        # Run ids as ordered sets: active ones by creation, terminal ones by the time they finished.
        self._active: dict[str, None] = {}
        self._finished: dict[str, None] = {}
        # Access: credentials by id (frozen structs, so shared as they are), audit records in id order.
        self._credentials: dict[str, StoredCredential] = {}
        self._audit: builtins.list[AuditRecord] = []
        self._last_audit_id = 0
        # Usage: per run (run id -> model -> totals, and the seq of the last report counted), and aggregates.
        self._run_usage: dict[str, dict[str, Totals]] = {}
        self._usage_seq: dict[str, int] = {}
        self._usage_daily: dict[UsageKey, Totals] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def create(self, run: Run, events: Sequence[NewEvent] = ()) -> tuple[Run, bool]:
        if run.idempotency_key is not None:
            existing = self._idempotency.get((run.caller.tenant, run.idempotency_key))
            if existing is not None:
                return _copy(self._runs[existing]), False
        if run.id in self._runs:
            raise ValueError(f"run {run.id} already exists")
        stored = _copy(run)
        stored.last_seq = len(events)
        self._runs[run.id] = stored
        self._events[run.id] = stamped(run.id, 0, events, time.time())
        self._checkpoints[run.id] = []
        self._by_tenant.setdefault(run.caller.tenant, {})[run.id] = None
        if run.idempotency_key is not None:
            self._idempotency[(run.caller.tenant, run.idempotency_key)] = run.id
        if run.status in TERMINAL:
            self._finish(run.id)
        else:
            self._active[run.id] = None
        return _copy(stored), True

    async def get(self, run_id: str, tenant: str | None = None) -> Run | None:
        run = self._runs.get(run_id)
        if run is None or (tenant is not None and run.caller.tenant != tenant):
            return None
        return _copy(run)

    async def transition(
        self,
        run_id: str,
        *,
        expect: frozenset[RunStatus],
        attempt: int | None,
        update: RunUpdate,
        events: Sequence[NewEvent] = (),
    ) -> tuple[Run, builtins.list[Event]] | None:
        run = self._runs.get(run_id)
        if run is None or not admits(run, expect, attempt, update):
            return None
        now = time.time()
        placed = stamped(run_id, run.last_seq, events, now)
        new = applied(run, update, now)
        new.last_seq = run.last_seq + len(placed)
        self._store_events(run, placed, events)
        self._runs[run_id] = new
        if new.status in TERMINAL:
            del self._active[run_id]
            self._finish(run_id)
        return _copy(new), placed

    async def append_events(
        self, run_id: str, attempt: int, first_seq: int, events: Sequence[NewEvent]
    ) -> builtins.list[Event] | None:
        run = self._runs.get(run_id)
        if run is None or run.status != RunStatus.RUNNING or run.attempt != attempt:
            return None
        fresh = trimmed(run, first_seq, events)
        placed = stamped(run_id, run.last_seq, fresh, time.time())
        self._store_events(run, placed, fresh)
        run.last_seq += len(placed)
        return placed

    async def events(self, run_id: str, after_seq: int = 0, limit: int | None = None) -> builtins.list[Event]:
        log = self._events.get(run_id, [])
        # seq n is at index n - 1, so the events after ``after_seq`` start at index ``after_seq``.
        start = max(after_seq, 0)
        return log[start:] if limit is None else log[start : start + max(limit, 0)]

    async def checkpoints(self, run_id: str) -> builtins.list[Checkpoint]:
        return builtins.list(self._checkpoints.get(run_id, ()))

    async def checkpoint(self, run_id: str, checkpoint_id: int) -> Checkpoint | None:
        found = self._checkpoints.get(run_id, ())
        # Ids run 1, 2, ... in order, so checkpoint n is at index n - 1.
        return found[checkpoint_id - 1] if 0 < checkpoint_id <= len(found) else None

    async def last_checkpoint(self, run_id: str) -> Checkpoint | None:
        found = self._checkpoints.get(run_id)
        return found[-1] if found else None

    async def renew_leases(self, worker_id: str, until: float) -> int:
        renewed = 0
        for run_id in self._active:
            run = self._runs[run_id]
            if run.status == RunStatus.RUNNING and run.worker_id == worker_id:
                run.lease_expires_at = until
                renewed += 1
        return renewed

    async def expired(self, now: float, limit: int = 100) -> builtins.list[Run]:
        found = [
            run
            for run in map(self._runs.__getitem__, self._active)
            if run.status == RunStatus.RUNNING
            and run.lease_expires_at is not None
            and run.lease_expires_at < now
        ]
        found.sort(key=lambda run: (run.lease_expires_at, run.id))
        return [_copy(run) for run in found[: max(limit, 0)]]

    async def overdue(self, now: float, limit: int = 100) -> builtins.list[Run]:
        found = [
            run
            for run in map(self._runs.__getitem__, self._active)
            if run.deadline_at is not None and run.deadline_at < now
        ]
        found.sort(key=lambda run: (run.deadline_at, run.id))
        return [_copy(run) for run in found[: max(limit, 0)]]

    async def queued(self, limit: int = 1000) -> builtins.list[Run]:
        found = sorted(
            (run for run in map(self._runs.__getitem__, self._active) if run.status == RunStatus.QUEUED),
            key=lambda run: run.id,
        )
        return [_copy(run) for run in found[: max(limit, 0)]]

    async def delete_finished(self, before: float, limit: int = 1000) -> int:
        old = [
            run
            for run in map(self._runs.__getitem__, self._finished)
            if run.finished_at is not None and run.finished_at < before
        ]
        doomed = heapq.nsmallest(max(limit, 0), old, key=lambda run: run.finished_at or 0.0)
        for run in doomed:
            self._remove(run.id)
        return len(doomed)

    async def count(self, query: RunQuery) -> int:
        ids = self._by_tenant.get(query.tenant, {})
        return sum(1 for run in map(self._runs.__getitem__, ids) if matches(run, query))

    async def run_times(self, tenant: str, since: float, limit: int) -> builtins.list[RunTimes]:
        ids = self._by_tenant.get(tenant, {})
        found = heapq.nlargest(
            max(limit, 0),
            (run for run in map(self._runs.__getitem__, ids) if run.created_at >= since),
            key=lambda run: run.id,
        )
        return [
            RunTimes(run.endpoint, run.status, run.created_at, run.started_at, run.finished_at)
            for run in found
        ]

    async def waiting(self, limit: int) -> builtins.list[Run]:
        found = [run for run in self._runs.values() if run.status is RunStatus.WAITING_INPUT]
        found.sort(key=lambda run: (run.updated_at, run.id))
        return [_copy(run) for run in found[: max(limit, 0)]]

    async def put_push_config(self, run_id: str, config_id: str, config: bytes) -> bool:
        run = self._runs.get(run_id)
        if run is None:
            return False
        configs = self._push_configs.setdefault(run_id, {})
        configs.pop(config_id, None)  # a replaced config becomes the most recently stored
        configs[config_id] = PushConfig(run_id, config_id, run.caller.tenant, config, time.time())
        return True

    async def push_configs(self, run_id: str) -> builtins.list[PushConfig]:
        return builtins.list(self._push_configs.get(run_id, {}).values())

    async def delete_push_config(self, run_id: str, config_id: str | None = None) -> int:
        configs = self._push_configs.get(run_id)
        if not configs:
            return 0
        if config_id is None:
            deleted = len(configs)
            configs.clear()
        else:
            deleted = 1 if configs.pop(config_id, None) is not None else 0
        if not configs:
            del self._push_configs[run_id]
        return deleted

    async def pushing(self, limit: int = 1000) -> builtins.list[Run]:
        found = sorted(
            (run for run in map(self._runs.__getitem__, self._push_configs) if run.status not in TERMINAL),
            key=lambda run: run.id,
        )
        return [_copy(run) for run in found[: max(limit, 0)]]

    # usage

    async def add_usage(self, report: UsageReport, *, run: bool = True, aggregate: bool = True) -> bool:
        if run:
            if report.run_id not in self._runs or report.seq <= self._usage_seq.get(report.run_id, 0):
                return False
            self._usage_seq[report.run_id] = report.seq
            totals = self._run_usage.setdefault(report.run_id, {})
            for entry in report.models:
                totals[entry.model] = totals.get(entry.model, Totals()) + entry.totals
        if aggregate:
            day = report.day
            for entry in report.models:
                key = (day, report.tenant, report.principal, report.endpoint, entry.model)
                self._usage_daily[key] = self._usage_daily.get(key, Totals()) + entry.totals
        return True

    async def run_usage(self, run_id: str) -> builtins.list[ModelUsage]:
        totals = self._run_usage.get(run_id, {})
        return [ModelUsage(model=model, totals=totals[model]) for model in sorted(totals)]

    async def usage(self, query: UsageQuery) -> builtins.list[UsageRow]:
        fields = group_by(query)
        positions = [i for i, name in enumerate(GROUP_FIELDS) if name in fields]
        groups: dict[tuple[str, ...], Totals] = {}
        for key, totals in self._usage_daily.items():
            if usage_matches(key, query):
                group = tuple(key[i] for i in positions)
                groups[group] = groups.get(group, Totals()) + totals
        if not fields:
            return [UsageRow(totals=groups.get((), Totals()))][: usage_limit(query)]
        return [
            UsageRow(**dict(zip(fields, group, strict=True)), totals=groups[group])
            for group in sorted(groups)[: usage_limit(query)]
        ]

    # access: credentials and the audit log

    async def put_credential(self, credential: StoredCredential) -> None:
        if credential.id in self._credentials:
            raise Conflict(f"credential {credential.id} already exists")
        self._credentials[credential.id] = credential

    async def credential(self, credential_id: str) -> StoredCredential | None:
        return self._credentials.get(credential_id)

    async def credentials(
        self, kind: CredentialKind | None = None, tenant: str | None = None
    ) -> builtins.list[StoredCredential]:
        found = [
            credential
            for credential in self._credentials.values()
            if (kind is None or credential.kind == kind) and (tenant is None or credential.tenant == tenant)
        ]
        found.sort(key=lambda credential: (credential.created_at, credential.id))
        return found

    async def revoke_credential(self, credential_id: str, at: float) -> StoredCredential | None:
        credential = self._credentials.get(credential_id)
        if credential is None or credential.revoked_at is not None:
            return credential
        revoked = msgspec.structs.replace(credential, revoked_at=at)
        self._credentials[credential_id] = revoked
        return revoked

    async def touch_credentials(self, used: Mapping[str, float]) -> None:
        for credential_id, at in used.items():
            credential = self._credentials.get(credential_id)
            if credential is not None and (credential.last_used_at is None or credential.last_used_at < at):
                self._credentials[credential_id] = msgspec.structs.replace(credential, last_used_at=at)

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        first = self._last_audit_id + 1
        self._audit.extend(audit_stored(record, first + i) for i, record in enumerate(records))
        self._last_audit_id += len(records)
        if len(self._audit) > self._max_audit:
            del self._audit[: len(self._audit) - self._max_audit]

    async def audit(self, query: AuditQuery) -> builtins.list[AuditRecord]:
        limit = audit_limit(query)
        end = len(self._audit)
        if query.before_id is not None:
            end = bisect.bisect_left(self._audit, query.before_id, key=lambda record: record.id)
        found: builtins.list[AuditRecord] = []
        for i in range(end - 1, -1, -1):
            if len(found) >= limit:
                break
            record = self._audit[i]
            if audit_matches(record, query):
                found.append(record)
        return found

    async def delete_audit(self, before: float, limit: int = 1000) -> int:
        old = (record for record in self._audit if record.ts < before)
        doomed = {
            record.id
            for record in heapq.nsmallest(max(limit, 0), old, key=lambda record: (record.ts, record.id))
        }
        if doomed:
            self._audit = [record for record in self._audit if record.id not in doomed]
        return len(doomed)

    # Defined last: inside the class body the name ``list`` is this method from here on.
    async def list(self, query: RunQuery) -> builtins.list[Run]:
        ids = self._by_tenant.get(query.tenant, {})
        found = [
            run
            for run in map(self._runs.__getitem__, ids)
            if matches(run, query) and (query.before is None or run.id < query.before)
        ]
        found.sort(key=lambda run: run.id, reverse=True)
        return [_copy(run) for run in found[: max(query.limit, 0)]]

    def _store_events(self, run: Run, placed: builtins.list[Event], sent: Sequence[NewEvent]) -> None:
        if not placed:
            return
        self._events[run.id].extend(placed)
        stored = self._checkpoints[run.id]
        stored.extend(checkpoints_of(placed, sent, run.attempt, len(stored)))

    def _finish(self, run_id: str) -> None:
        self._finished[run_id] = None
        while len(self._finished) > self._max_finished:
            self._remove(next(iter(self._finished)))

    def _remove(self, run_id: str) -> None:
        run = self._runs.pop(run_id)
        del self._events[run_id]
        del self._checkpoints[run_id]
        self._push_configs.pop(run_id, None)
        self._run_usage.pop(run_id, None)
        self._usage_seq.pop(run_id, None)
        self._active.pop(run_id, None)
        self._finished.pop(run_id, None)
        tenant_ids = self._by_tenant[run.caller.tenant]
        del tenant_ids[run_id]
        if not tenant_ids:
            del self._by_tenant[run.caller.tenant]
        if run.idempotency_key is not None:
            key = (run.caller.tenant, run.idempotency_key)
            if self._idempotency.get(key) == run_id:
                del self._idempotency[key]
