"""ctx.tool and the worker-side hooks (``@app.hook``), in the worker alone: no gateway is asked when none
is connected (the gateway's side is tested end to end in tests/e2e/test_hooks.py)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fastagentic import App
from fastagentic.context import Caller, RunContext
from fastagentic.hooks import Modify, Reject, Retry, Skip, ToolRejected, WorkerHookContext


def make(app: App) -> tuple[RunContext, list[tuple[str, Any]]]:
    events: list[tuple[str, Any]] = []

    def sink(kind: str, data: bytes, checkpoint: bytes | None) -> None:
        events.append((kind, msgspec.json.decode(data)))

    ctx = RunContext(
        run_id="run_1", attempt=1, endpoint="e", caller=Caller("ada", "acme"), sink=sink, hooks=app.hooks
    )
    return ctx, events


async def test_a_tool_runs_and_its_call_and_result_are_emitted() -> None:
    ctx, events = make(App("t"))

    def add(a: int, b: int) -> int:
        return a + b

    assert await ctx.tool(add, a=2, b=3) == 5
    assert [kind for kind, _ in events] == ["tool_call", "tool_result"]
    assert events[0][1]["arguments"] == {"a": 2, "b": 3} and events[1][1]["result"] == 5


async def test_a_worker_hook_refuses_a_call_before_the_tool_runs() -> None:
    app = App("t")
    ran: list[str] = []

    @app.hook("on_tool_call")
    async def no_shell(call: WorkerHookContext) -> Reject | None:
        return Reject("no shell") if call.tool == "shell" else None

    async def shell(command: str) -> str:
        ran.append(command)
        return "ok"

    ctx, events = make(app)
    with pytest.raises(ToolRejected, match="call rejected by hook 'no_shell': no shell"):
        await ctx.tool(shell, command="rm -rf /")
    assert ran == []
    assert events == [
        (
            "tool_result",
            {
                "id": "run_1:1:tool-1",
                "name": "shell",
                "error": {
                    "type": "ToolRejected",
                    "message": "tool 'shell': call rejected by hook 'no_shell': no shell",
                    "hook": "no_shell",
                    "point": "on_tool_call",
                },
            },
        )
    ]


async def test_worker_hooks_modify_arguments_and_results_and_skip() -> None:
    app = App("t")

    @app.hook("on_tool_call")
    def upper(call: WorkerHookContext) -> Modify | Skip | None:
        if call.tool == "cached":
            return Skip("cached value")
        return Modify({**call.payload, "arguments": {"text": call.payload["arguments"]["text"].upper()}})

    @app.hook("on_tool_result")
    def mask(call: WorkerHookContext) -> Modify:
        return Modify({**call.payload, "result": call.payload["result"].replace("SECRET", "***")})

    def echo(text: str) -> str:
        return text

    def cached(text: str) -> str:
        raise AssertionError("a skipped tool never runs")

    ctx, events = make(app)
    assert await ctx.tool(echo, text="a secret") == "A ***"
    assert await ctx.tool(cached, text="x") == "cached value"
    assert events[-1][1] == {
        "id": "run_1:1:tool-2",
        "name": "cached",
        "result": "cached value",
        "skipped": "",
    }


async def test_a_retry_at_on_tool_result_runs_the_tool_again() -> None:
    app = App("t")
    runs: list[int] = []

    @app.hook("on_tool_result")
    def again(call: WorkerHookContext) -> Retry | None:
        return Retry() if call.payload["result"] < 2 else None

    def count() -> int:
        runs.append(1)
        return len(runs)

    ctx, _ = make(app)
    assert await ctx.tool(count) == 2


async def test_a_tool_error_reaches_the_caller_and_the_model_facing_result() -> None:
    ctx, events = make(App("t"))

    async def broken() -> None:
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        await ctx.tool(broken)
    assert events[-1][1]["error"] == {"type": "ValueError", "message": "nope"}


def test_hooks_register_only_at_worker_points() -> None:
    with pytest.raises(ValueError, match="worker-side hooks run at on_request, on_response, on_tool_call"):
        App("t").hook("on_llm_end")


async def test_a_tool_check_the_gateway_never_answers_refuses_the_call_in_time() -> None:
    import asyncio
    import time

    from fastagentic.v1 import worker_pb2 as pb
    from fastagentic.worker import HeldRun, Worker

    worker = Worker(App("t"), gateway="127.0.0.1:1")
    worker._tool_points = frozenset({"on_tool_call"})
    worker._tool_check_timeout = 0.2
    ctx, _ = make(App("t"))
    held = HeldRun(assign=pb.Assign(run_id="run_1", attempt=1), endpoint=None, context=ctx, base_seq=1)  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(ToolRejected, match=r"did not answer within 0\.2 s"):
        await worker._check_tool(held, "on_tool_call", "shell", b"{}")
    assert 0.15 < time.monotonic() - started < 2
    assert worker._checks == {}  # nothing left waiting

    # A verdict in time is the answer, and its timer goes with it.
    asking = asyncio.ensure_future(worker._check_tool(held, "on_tool_call", "shell", b"{}"))
    await asyncio.sleep(0.01)
    ((check_id, (_, future)),) = worker._checks.items()
    future.set_result(pb.ToolVerdict(check_id=check_id, action="proceed"))
    verdict = await asyncio.wait_for(asking, 1)
    assert verdict is not None and verdict.action == "proceed"
    await asyncio.sleep(0.3)  # past the timeout: nothing fires late
    assert worker._checks == {}
