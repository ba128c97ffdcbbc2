"""The A2A SDK's task store and task event stream, over the gateway's runs.

A task is a run of an agent endpoint: its id is the run id, its state and artifacts are a projection of
the run and its event log (``mapping.project``), so nothing about a task is stored beside the run and a
task lives exactly as long as its run (across gateway restarts on the durable store). The SDK's writes
are ignored, except a write that cancels a task, which cancels the run. The event stream replays and
follows the run's log (``RunService.follow``), so a client that resubscribes gets every event after the
snapshot it was handed, exactly once, whichever process executed the task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator

from a2a.server.cluster.event_stream import TaskEventStream, VersionedEvent
from a2a.server.cluster.task_store import ConcurrentTaskModificationError, StoredTask, VersionedTaskStore
from a2a.server.cluster.version import TaskVersion
from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event as A2AEventAny
from a2a.types.a2a_pb2 import ListTasksRequest, ListTasksResponse, Task, TaskState
from a2a.utils.constants import DEFAULT_LIST_TASKS_PAGE_SIZE
from a2a.utils.errors import InvalidParamsError

from ...access.policy import may_see
from ...access.principal import ANONYMOUS, Principal
from ...errors import Conflict, NotFound, StoreUnavailable
from ...runs.model import TERMINAL, EndpointKind, Run, RunQuery, RunStatus
from ...runs.service import RunService
from ...store.base import RunStore
from .mapping import STATUSES_OF, EventMapper, bare_task, fold, project

log = logging.getLogger("fastagentic.a2a")

HOLD_SECONDS = 10.0  # how long a follow-up's hold on its task's view lasts at most (``hold_at``)


def principal_in(context: ServerCallContext | None) -> Principal:
    """Who is calling, as the access edge authenticated the request (``ContextBuilder`` keeps it)."""
    principal = context.state.get("principal") if context is not None else None
    return principal if isinstance(principal, Principal) else ANONYMOUS


def agent_of(context: ServerCallContext | None) -> str | None:
    """The agent endpoint the request addressed (``/a2a/{name}``), or None for the gateway's agent."""
    agent = context.state.get("agent") if context is not None else None
    return agent if isinstance(agent, str) else None


def version_of(last_seq: int) -> TaskVersion:
    return TaskVersion(last_seq + 1)  # never 0, which is TaskVersion.MISSING


def seq_of(version: TaskVersion) -> int:
    if version.is_missing:
        return 0
    return int(version._value) - 1


class RunTaskStore(VersionedTaskStore):
    def __init__(self, runs: RunService) -> None:
        self.runs = runs
        # Runs submitted for a new task whose Task the executor has not announced yet: the SDK creates a
        # task it does not find, so these are hidden from it until the executor's first event.
        self.creating: set[str] = set()
        # Runs just answered by a follow-up message, whose task the SDK is about to read as the start of
        # that request: shown as of the answer (the seq of its ``input`` event), with when it was held.
        # The run may go on (even finish) before the SDK reads it; the executor follows it from there.
        self.held: dict[str, tuple[int, float]] = {}

    def log_of(self, run: Run) -> RunStore:
        return self.runs.durable if run.durable else self.runs.ephemeral

    async def any_run(self, run_id: str) -> Run | None:
        """The run, whoever's it is (for paths the handler already scoped to the caller)."""
        return await self.runs.ephemeral.get(run_id) or await self.runs.durable.get(run_id)

    async def run_of(self, task_id: str, context: ServerCallContext | None) -> Run | None:
        """The run behind ``task_id`` if the caller may see it through the agent it addressed."""
        if not task_id or task_id in self.creating:
            return None
        run = await self.runs.get(task_id, principal_in(context))
        if run is None or run.kind is not EndpointKind.AGENT:
            return None
        agent = agent_of(context)
        if agent is not None and run.endpoint != agent:
            return None
        return run

    def hold_at(self, run_id: str, seq: int | None) -> None:
        """Show the task of ``run_id`` as of event ``seq`` (None: as it is) until the executor takes it
        from there; a hold nobody took (the request failed after the answer) lapses after ``HOLD_SECONDS``."""
        now = time.monotonic()
        for stale in [key for key, (_, since) in self.held.items() if now - since > HOLD_SECONDS]:
            del self.held[stale]
        if seq is None:
            self.held.pop(run_id, None)
        else:
            self.held[run_id] = (seq, now)

    async def snapshot(self, run: Run) -> StoredTask:
        held = self.held.get(run.id)
        if held is not None and time.monotonic() - held[1] <= HOLD_SECONDS:
            task, _ = fold(run, await self.log_of(run).events(run.id, limit=held[0]))
            return StoredTask(task, version_of(held[0]))
        events = await self.log_of(run).events(run.id)
        last = events[-1].seq if events else 0
        return StoredTask(project(run, events), version_of(last))

    async def get(self, task_id: str, context: ServerCallContext) -> StoredTask | None:
        run = await self.run_of(task_id, context)
        return None if run is None else await self.snapshot(run)

    async def save(
        self,
        task: Task,
        *,
        event: A2AEventAny | None,
        prev: Task | None,
        prev_version: TaskVersion,
        context: ServerCallContext,
    ) -> TaskVersion:
        """The run and its log are the record; the SDK's copy of the task is not stored. A task moved to
        CANCELED cancels its run (the worker is told); an already finished run refuses that."""
        self.creating.discard(task.id)
        if task.status.state == TaskState.TASK_STATE_CANCELED:
            run = await self.any_run(task.id)
            if run is None:
                raise ConcurrentTaskModificationError(task.id)
            if run.status in TERMINAL:
                if run.status is not RunStatus.CANCELLED:
                    raise ConcurrentTaskModificationError(task.id)
            else:
                try:
                    await self.runs.cancel(
                        task.id, principal_in(context), reason="cancelled by the A2A client", protocol="a2a"
                    )
                except (Conflict, NotFound) as exc:
                    raise ConcurrentTaskModificationError(task.id) from exc
        return TaskVersion.MISSING

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        """One page of the caller's agent tasks, newest first, every filter applied by the run stores
        (durable and ephemeral), which also count the matches for ``totalSize``."""
        page_size = params.page_size if params.HasField("page_size") else DEFAULT_LIST_TASKS_PAGE_SIZE
        statuses: frozenset[RunStatus] | None = None
        if params.status != TaskState.TASK_STATE_UNSPECIFIED:
            statuses = frozenset(STATUSES_OF.get(params.status, ()))
        after = (
            params.status_timestamp_after.ToDatetime().timestamp()
            if params.HasField("status_timestamp_after")
            else None
        )
        if "\x00" in params.context_id:
            raise InvalidParamsError(message="contextId must not contain NUL")
        cursor = params.page_token or None
        if cursor is not None and not (cursor.startswith("run_") and len(cursor) == 36):
            raise InvalidParamsError(message=f"pageToken {cursor!r} is not one this server handed out")
        query = RunQuery(
            tenant=principal_in(context).tenant,
            endpoint=agent_of(context),
            kind=EndpointKind.AGENT,
            context_id=params.context_id or None,
            statuses=statuses,
            updated_after=after,
            before=cursor,
            limit=page_size + 1,
        )
        stores = (self.runs.durable, self.runs.ephemeral)
        matched = [run for store in stores for run in await store.list(query)]
        matched.sort(key=lambda run: run.id, reverse=True)
        total = sum([await store.count(query) for store in stores])
        page = matched[:page_size]
        principal = principal_in(context)
        # On the gateway's agent, tasks of agents the caller may not use are left out (a page may be short).
        tasks = [await self._listed(run) for run in page if may_see(principal, run, self.runs.registry)]
        next_token = page[-1].id if len(matched) > page_size else ""
        return ListTasksResponse(
            tasks=tasks, next_page_token=next_token, page_size=page_size, total_size=total
        )

    async def _listed(self, run: Run) -> Task:
        """The task as listed; one that cannot be shown whole shows its id, context and state, so one
        task never fails the page of everyone who lists."""
        try:
            return (await self.snapshot(run)).task
        except StoreUnavailable:
            raise
        except Exception:
            log.warning(
                "A2A: task %s cannot be shown whole; listed with its state only", run.id, exc_info=True
            )
            return bare_task(run)

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        """Runs are deleted by retention, not by A2A."""


class RunEventStream(TaskEventStream):
    """Task events from the run's log, after a snapshot's version: what is stored, then live."""

    def __init__(self, store: RunTaskStore) -> None:
        self.store = store

    async def publish(self, task_id: str, event: VersionedEvent) -> None:
        """Nothing to do: every event already is in the run's log, and the bus carries it to followers."""

    async def subscribe(self, task_id: str, *, after: TaskVersion) -> AsyncGenerator[VersionedEvent, None]:
        runs = self.store.runs
        run = await self.store.any_run(task_id)
        if run is None:
            return
        after_seq = seq_of(after)
        # The mapper's state (has the token artifact started, which state was announced) as of the
        # snapshot, so the first event after it is rendered as the live stream rendered it.
        mapper = EventMapper(run)
        if after_seq:
            for _ in mapper.map(await self.store.log_of(run).events(run.id, limit=after_seq)):
                pass
        async for batch in runs.follow(run, after_seq):
            for item in batch:
                for event in mapper.map_one(item):
                    yield VersionedEvent(event=event, version=version_of(item.seq))

    async def destroy(self, task_id: str) -> None:
        """Nothing is held per task."""


__all__ = ["RunEventStream", "RunTaskStore", "agent_of", "principal_in"]
