"""A client that leaves while its durable run is being stored (runs/service.py ``_store_run``): the write goes
on, and the run it stores is dispatched all the same: started on the worker whose slot it took (the worker is
told), or offered once a worker is free. Never a run stored as running on a worker that was never told (its
lease would be renewed by that worker's heartbeats for ever), nor a queued run nobody offers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio

from fastagentic.v1 import worker_pb2 as pb
from fastagentic_gateway.access.principal import Principal
from fastagentic_gateway.bus.inprocess import InProcessBus
from fastagentic_gateway.calls import make_call
from fastagentic_gateway.runs.model import NewEvent, Run, RunQuery, RunStatus
from fastagentic_gateway.runs.service import RunService
from fastagentic_gateway.settings import Settings
from fastagentic_gateway.store.memory import MemoryRunStore
from fastagentic_gateway.store.sqlite import SQLiteRunStore
from fastagentic_gateway.workers.connection import WorkerConnection
from fastagentic_gateway.workers.registry import EndpointRegistry

SPEC = pb.EndpointSpec(
    name="job",
    kind=pb.ENDPOINT_KIND_AGENT,
    input_schema=msgspec.json.encode({"type": "object"}),
    output_schema=b"{}",
    durable=True,
)


class SlowStore(SQLiteRunStore):
    """Creates only once the test opens the gate: the window in which the caller is cancelled."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.gate = asyncio.Event()

    async def create(self, run: Run, events: Sequence[NewEvent] = ()) -> tuple[Run, bool]:
        await self.gate.wait()
        return await super().create(run, events)


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SlowStore]:
    opened = SlowStore(str(tmp_path / "runs.db"))
    await opened.start()
    yield opened
    await opened.close()


def service_with(store: SlowStore, slots: int) -> tuple[RunService, WorkerConnection]:
    registry = EndpointRegistry()
    service = RunService(Settings(), registry, store, MemoryRunStore(), InProcessBus("r"))
    worker = WorkerConnection("w", "app", slots, ["job"])
    registry.register(worker, [SPEC])
    service.workers["w"] = worker
    return service, worker


async def submit_and_leave(service: RunService, store: SlowStore) -> None:
    endpoint = service.registry.get("job")
    assert endpoint is not None
    call = make_call(endpoint, {}, principal=Principal(subject="ada", tenant="acme"), protocol="rest")
    submitting = asyncio.ensure_future(service.submit(call))
    await asyncio.sleep(0.05)  # submit waits for the store
    submitting.cancel()  # the client left
    with pytest.raises(asyncio.CancelledError):
        await submitting
    store.gate.set()  # the write goes on
    for _ in range(50):
        await asyncio.sleep(0.01)


def assigned(worker: WorkerConnection) -> list[str]:
    runs = []
    while not worker.outbox.empty():
        message = worker.outbox.get_nowait()
        if message is not None and message.HasField("assign"):
            runs.append(message.assign.run_id)
    return runs


async def test_a_run_created_started_is_sent_to_its_worker_though_its_caller_left(store: SlowStore) -> None:
    service, worker = service_with(store, slots=4)
    await submit_and_leave(service, store)
    (run,) = await store.list(RunQuery(tenant="acme"))
    assert run.status is RunStatus.RUNNING and run.worker_id == "w"
    assert assigned(worker) == [run.id]  # the worker was told: it runs it
    assert run.id in worker.runs


async def test_a_run_created_queued_is_offered_though_its_caller_left(store: SlowStore) -> None:
    service, worker = service_with(store, slots=0)  # no slot free: the run is created queued
    await submit_and_leave(service, store)
    (run,) = await store.list(RunQuery(tenant="acme"))
    assert run.status is RunStatus.QUEUED
    worker.capacity = 1  # a slot frees up: the run waiting here takes it
    service._wake()
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert assigned(worker) == [run.id]
    current = await store.get(run.id)
    assert current is not None and current.status is RunStatus.RUNNING
