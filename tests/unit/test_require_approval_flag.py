"""``require_approval=True`` in the SDK: carried in the endpoint spec, and a worker relying on it refuses a
gateway that does not say it enforces it (an older gateway would run the calls unguarded)."""

from __future__ import annotations

import asyncio

import pytest

from fastagentic import App
from fastagentic.v1 import worker_pb2 as pb
from fastagentic.worker import Rejected, Worker


def _app(gated: bool) -> App:
    app = App("bank")

    @app.tool(require_approval=gated)
    def transfer(amount: int) -> int:
        return amount

    @app.agent_endpoint(require_approval=gated)
    async def plan(goal: str) -> str:
        return goal

    return app


def test_the_flag_travels_in_the_endpoint_spec() -> None:
    specs = {e.name: e.spec() for e in _app(True).endpoints.values()}
    assert specs["transfer"].require_approval and specs["plan"].require_approval
    assert not any(e.spec().require_approval for e in _app(False).endpoints.values())


async def test_a_worker_with_gated_endpoints_refuses_a_gateway_that_does_not_enforce_them() -> None:
    outbox: asyncio.Queue[object] = asyncio.Queue()
    gated = Worker(_app(True), gateway="127.0.0.1:1")
    with pytest.raises(
        Rejected, match="does not enforce require_approval, which endpoints plan, transfer rely on"
    ):
        gated._welcomed(pb.Welcome(), outbox)  # type: ignore[arg-type]
    gated._welcomed(pb.Welcome(features=["require_approval"]), outbox)  # type: ignore[arg-type]
    Worker(_app(False), gateway="127.0.0.1:1")._welcomed(pb.Welcome(), outbox)  # type: ignore[arg-type]
