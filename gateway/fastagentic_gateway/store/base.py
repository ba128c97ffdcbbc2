"""RunStore: where runs, their event logs and checkpoints live.

Three implementations share one contract (tests/unit/test_store_contract.py):
``MemoryRunStore`` for ephemeral runs (nothing is written anywhere), ``SQLiteRunStore`` for durable
runs on one machine and ``PostgresRunStore`` for durable runs in a shared database. Every state change goes through ``transition``, which is conditional on the current
status and attempt (fencing): a worker that comes back late cannot overwrite a newer attempt, and a
terminal run never changes again.

The same three classes are also the ``AccessStore``: API keys and worker tokens (credentials) and the audit
log (tests/unit/test_access_store.py). Run retention (``delete_finished``) never touches them; the audit
log has its own (``delete_audit``), and credentials are only ever revoked, never deleted.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol

from ..access.model import AuditQuery, AuditRecord, CredentialKind, StoredCredential
from ..runs.model import Checkpoint, Event, NewEvent, PushConfig, Run, RunQuery, RunStatus, RunUpdate
from ..usage.model import ModelUsage, UsageQuery, UsageReport, UsageRow


class RunTimes(NamedTuple):
    """What the stats route (stats.py) reads of one run: ``RunStore.run_times``."""

    endpoint: str
    status: RunStatus
    created_at: float
    started_at: float | None
    finished_at: float | None


def run_id_floor(since: float) -> str:
    """A run id at or below the id of every run created at or after Unix time ``since``: run ids begin with
    their creation millisecond in hex (``runs.model.new_run_id``), taken just after ``created_at``. One
    second early, so float rounding can never leave a run out; ``created_at`` filters exactly."""
    return f"run_{max(int((since - 1.0) * 1000), 0):012x}"


class RunStore(Protocol):
    async def start(self) -> None:
        """Open connections, create or migrate the schema."""

    async def close(self) -> None: ...

    async def create(self, run: Run, events: Sequence[NewEvent] = ()) -> tuple[Run, bool]:
        """Insert ``run``. When ``run.idempotency_key`` is set and a run of the same tenant already has
        that key, insert nothing and return ``(existing, False)``; otherwise ``(run, True)``.
        ``events`` (each with its ``ts``; no checkpoints) are the run's first events, seq 1 on, stored with
        it in the same transaction; the stored run's ``last_seq`` is their number (a run that starts on a
        worker as it is created: ``run.started`` in the same write, not a second one)."""

    async def get(self, run_id: str, tenant: str | None = None) -> Run | None:
        """The run, or None. With ``tenant``, a run of another tenant is None too."""

    async def list(self, query: RunQuery) -> builtins.list[Run]:
        """The tenant's runs, newest first, filtered, at most ``query.limit``."""

    async def count(self, query: RunQuery) -> int:
        """How many runs ``list`` would find for ``query`` without its ``limit`` and ``before``."""

    async def run_times(self, tenant: str, since: float, limit: int) -> builtins.list[RunTimes]:
        """The endpoint, status and times of the tenant's runs created at or after ``since``, newest (highest
        id) first, at most ``limit``: one read on the runs' (tenant, id) index, from ``run_id_floor(since)``."""

    async def waiting(self, limit: int) -> builtins.list[Run]:
        """Runs waiting for input, of every tenant, the longest waiting first (least recently updated), at
        most ``limit``. For the gateway's own sweeps (approval timeouts), never for a caller."""

    async def transition(
        self,
        run_id: str,
        *,
        expect: frozenset[RunStatus],
        attempt: int | None,
        update: RunUpdate,
        events: Sequence[NewEvent] = (),
    ) -> tuple[Run, builtins.list[Event]] | None:
        """Atomically: if the run's status is in ``expect`` and (when given) its attempt equals ``attempt``,
        apply ``update``, append ``events`` after the run's last event (seq = last_seq + 1, ...), and return
        the updated run and the stored events. Otherwise change nothing and return None.
        ``update.status`` must be allowed from the current status by ``runs.model.ALLOWED``; a terminal
        status also sets ``finished_at`` when the update does not."""

    async def append_events(
        self, run_id: str, attempt: int, first_seq: int, events: Sequence[NewEvent]
    ) -> builtins.list[Event] | None:
        """Append a worker's events. Only while the run is ``running`` at ``attempt``; else None (fenced).
        ``first_seq`` is the seq of ``events[0]``: events at or below the run's ``last_seq`` were already
        accepted and are dropped; a ``first_seq`` above ``last_seq + 1`` raises ``SequenceGap``.
        An event of kind "checkpoint" with ``checkpoint`` state also stores a Checkpoint (id = previous
        count + 1, its seq = the event's seq). Returns the events actually appended."""

    async def events(self, run_id: str, after_seq: int = 0, limit: int | None = None) -> builtins.list[Event]:
        """The run's events with seq > ``after_seq``, in order."""

    async def checkpoints(self, run_id: str) -> builtins.list[Checkpoint]:
        """Every checkpoint of the run, oldest first."""

    async def checkpoint(self, run_id: str, checkpoint_id: int) -> Checkpoint | None:
        """The run's checkpoint with that id, or None."""

    async def last_checkpoint(self, run_id: str) -> Checkpoint | None: ...

    async def renew_leases(self, worker_id: str, until: float) -> int:
        """Extend the lease of every ``running`` run held by ``worker_id``; return how many."""

    async def expired(self, now: float, limit: int = 100) -> builtins.list[Run]:
        """``running`` runs whose lease expired before ``now``, oldest lease first."""

    async def overdue(self, now: float, limit: int = 100) -> builtins.list[Run]:
        """Active runs (queued, running, waiting_input) whose ``deadline_at`` is before ``now``, earliest
        deadline first."""

    async def queued(self, limit: int = 1000) -> builtins.list[Run]:
        """``queued`` runs, oldest first (to dispatch after a restart)."""

    async def delete_finished(self, before: float, limit: int = 1000) -> int:
        """Delete terminal runs finished before ``before`` with their events and checkpoints."""

    async def put_push_config(self, run_id: str, config_id: str, config: bytes) -> bool:
        """Store (or replace) the run's push config ``config_id``; it takes the run's tenant. False, and
        nothing stored, when there is no such run. A config goes when its run is deleted."""

    async def push_configs(self, run_id: str) -> builtins.list[PushConfig]:
        """The run's push configs, least recently stored first."""

    async def delete_push_config(self, run_id: str, config_id: str | None = None) -> int:
        """Delete the run's push config ``config_id`` (every one of them when None); return how many."""

    async def pushing(self, limit: int = 1000) -> builtins.list[Run]:
        """Active runs (queued, running, waiting_input) that have a push config, oldest first."""

    # usage (usage/): a run's totals per model, and aggregates per (tenant, principal, endpoint, model, day)

    async def add_usage(self, report: UsageReport, *, run: bool = True, aggregate: bool = True) -> bool:
        """In one transaction: add ``report`` to its run's totals per model (``run``) and to the aggregates
        of its UTC day (``aggregate``). With ``run``, a report is counted only when the run is in this store
        and ``report.seq`` is above the seq of every report counted for the run before (so a repeated report
        changes nothing); False, and nothing changed, otherwise. Token counts saturate at
        ``usage.model.TOKEN_CAP``. A run's totals go with the run (``delete_finished``); aggregates stay."""

    async def run_usage(self, run_id: str) -> builtins.list[ModelUsage]:
        """The run's usage per model, sorted by model; empty when it has none."""

    async def usage(self, query: UsageQuery) -> builtins.list[UsageRow]:
        """The aggregates matching ``query``'s filters, summed per group of ``query.group_by`` (in the
        order of ``usage.model.GROUP_FIELDS``; ValueError for another name), sorted by the grouped fields,
        at most ``min(query.limit, MAX_USAGE_ROWS)`` rows. Without ``group_by``, one row of totals (zeros when
        nothing matches)."""


# The most records one ``AccessStore.audit`` call returns, whatever ``AuditQuery.limit`` asks.
MAX_AUDIT_LIMIT = 1000


class AccessStore(Protocol):
    async def put_credential(self, credential: StoredCredential) -> None:
        """Insert ``credential``; raises ``errors.Conflict`` when one with its id exists."""

    async def credential(self, credential_id: str) -> StoredCredential | None:
        """The credential with that id, or None."""

    async def credentials(
        self, kind: CredentialKind | None = None, tenant: str | None = None
    ) -> builtins.list[StoredCredential]:
        """Every credential (of ``kind``, of ``tenant`` when given), revoked ones too, oldest first."""

    async def revoke_credential(self, credential_id: str, at: float) -> StoredCredential | None:
        """Set the credential's ``revoked_at`` to ``at`` unless it is revoked already (the first revocation
        stays); return the credential as it now is, or None when there is no such credential."""

    async def touch_credentials(self, used: Mapping[str, float]) -> None:
        """Record when credentials were last used (id -> time), in one transaction:
        ``last_used_at = max(last_used_at, time)``; unknown ids are ignored."""

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        """Append ``records`` in one transaction; the store assigns their ids, increasing in the order given
        (a record's own ``id`` is ignored)."""

    async def audit(self, query: AuditQuery) -> builtins.list[AuditRecord]:
        """The records matching ``query``, newest (highest id) first, at most ``min(query.limit,
        MAX_AUDIT_LIMIT)``."""

    async def delete_audit(self, before: float, limit: int = 1000) -> int:
        """Retention: delete at most ``limit`` records with ``ts < before``, oldest first; return how many."""
