"""Central tool checks on the framework adapters' tool paths.

Each adapter hooks into its framework's own interception point (a PydanticAI capability, wrapped LangChain
and OpenAI Agents tools, LlamaIndex and DSPy tool wrappers) and runs the tool through ``guarded``: the
run's ``check_tool_call`` before the tool runs (the worker-side ``on_tool_call`` hooks, then the gateway's),
and ``check_tool_result`` on what it returned before the model sees it. What a refusal looks like to the
model is the framework's own way of showing a failed tool (the adapter's part); the check itself is the
same for every framework, and costs no round trip when the gateway has no hook at the tool points.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from ..context import MAX_TOOL_RETRIES, RunContext
from ..hooks import ToolCall, ToolRejected

__all__ = [
    "GuardedError",
    "ToolRejected",
    "checked_in_thread",
    "guarded",
    "note_refusal",
    "refusals",
    "run_checked",
]

#: The run's refused tool calls (call id -> why), for adapters whose framework shows a refusal to the model
#: as an ordinary result: its ``tool_result`` event then says a hook refused it. Set by ``refusals()``;
#: the framework's tasks and threads started inside inherit it.
_refused: ContextVar[dict[str, ToolRejected] | None] = ContextVar("fastagentic_tool_refusals", default=None)


class GuardedError(Exception):
    """A tool failed and an ``on_tool_result`` hook replaced its error: ``str()`` is the replaced message
    (what the model sees), ``error`` the replaced ``{"type", "message"}``."""

    def __init__(self, name: str, error: Mapping[str, Any]) -> None:
        self.tool = name
        self.error = dict(error)
        super().__init__(str(error.get("message", "")))


async def guarded(
    ctx: RunContext,
    name: str,
    arguments: Mapping[str, Any],
    invoke: Callable[[dict[str, Any]], Awaitable[Any]],
    *,
    id: str | None = None,
    passthrough: tuple[type[BaseException], ...] = (),
) -> Any:
    """Run the tool ``name`` (``invoke(arguments)``) under the run's tool checks; returns what the model may
    see: the result (perhaps masked), or a skipped call's stand-in. Raises ``ToolRejected`` when the call is
    refused (``invoke`` never ran) or its result withheld; the tool's own exception when it failed and no
    hook changed its error; ``GuardedError`` when a hook replaced the error. Exceptions of ``passthrough``
    (a framework's control flow: a deferral, an interrupt) leave at once, unchecked."""
    call = await ctx.check_tool_call(name, arguments, id=id)
    return await run_checked(ctx, call, invoke, passthrough=passthrough)


async def run_checked(
    ctx: RunContext,
    call: ToolCall,
    invoke: Callable[[dict[str, Any]], Awaitable[Any]],
    *,
    passthrough: tuple[type[BaseException], ...] = (),
) -> Any:
    """The second half of ``guarded``, for a call ``check_tool_call`` let through: run it (unless
    skipped) and check its result, as ``guarded`` does."""
    if call.skipped:
        return call.result
    name = call.name
    for attempt in range(MAX_TOOL_RETRIES + 1):
        result: Any = None
        error: Exception | None = None
        try:
            result = await invoke(call.arguments)
        except passthrough:
            raise
        except Exception as exc:
            error = exc
        outcome = await ctx.check_tool_result(name, id=call.id, result=result, error=error)
        if not outcome.retry or attempt == MAX_TOOL_RETRIES:
            break
        await asyncio.sleep(outcome.retry_after)
    if outcome.error is not None:
        if error is not None and not outcome.modified:
            raise error
        raise GuardedError(name, outcome.error)
    return outcome.result


@contextmanager
def refusals() -> Iterator[dict[str, ToolRejected]]:
    """Collect the tool calls refused inside (``note_refusal``), for the run's ``tool_result`` events."""
    found: dict[str, ToolRejected] = {}
    token = _refused.set(found)
    try:
        yield found
    finally:
        _refused.reset(token)


def note_refusal(call_id: str, refusal: ToolRejected) -> None:
    found = _refused.get()
    if found is not None:
        found[call_id] = refusal


def checked_in_thread(
    ctx: RunContext,
    loop: asyncio.AbstractEventLoop | None,
    name: str,
    original: Callable[..., Any],
    arguments: dict[str, Any],
) -> Any:
    """``guarded`` for a tool a framework calls from a worker thread (CrewAI, a sync DSPy module): the
    checks run on the run's ``loop`` (bounded by the gateway's tool check timeout) while this thread waits,
    the tool here."""
    if loop is None:
        raise RuntimeError(
            f"tool {name!r}: called from a thread the run did not start; its checks cannot run"
        )

    def on_loop(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    call = on_loop(ctx.check_tool_call(name, arguments))
    if call.skipped:
        return call.result
    for attempt in range(MAX_TOOL_RETRIES + 1):
        result: Any = None
        error: Exception | None = None
        try:
            result = original(**call.arguments)
            if inspect.isawaitable(result):
                result = asyncio.run_coroutine_threadsafe(_awaited(result), loop).result()
        except Exception as exc:
            error = exc
        outcome = on_loop(ctx.check_tool_result(name, id=call.id, result=result, error=error))
        if not outcome.retry or attempt == MAX_TOOL_RETRIES:
            break
        threading.Event().wait(outcome.retry_after)
    if outcome.error is not None:
        if error is not None and not outcome.modified:
            raise error
        raise GuardedError(name, outcome.error)
    return outcome.result


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
