"""The event model's data as adapters emit it: one coroutine per kind, so every adapter writes the same
shapes (documented in docs/guides/adapters.md) and the contract kit can check them.

| kind | data |
|---|---|
| ``message`` | ``{"role", "text"}`` |
| ``tool_call`` | ``{"id", "name", "arguments"}`` |
| ``tool_result`` | ``{"id", "name", "result"}`` or ``{"id", "name", "error": {"type", "message"}}`` |
| ``llm_start`` | ``{"model"}`` |
| ``llm_end`` | ``{"model", "input_tokens", "output_tokens"}`` through ``ctx.usage``; ``{"model"}`` when the
  framework reports no usage |
| ``node_enter`` / ``node_exit`` | ``{"node", "step"?}``; ``node_exit`` adds ``"error"`` when the node raised |
| ``interrupt`` | ``{"id", "request", "schema"}``: emitted by ``ctx.interrupt``, never by hand |
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec

from ..context import RunContext
from ..hooks import ToolRejected
from .guard import GuardedError

__all__ = [
    "error_info",
    "jsonable",
    "llm_end",
    "llm_start",
    "message",
    "node_enter",
    "node_exit",
    "tool_call",
    "tool_result",
]

UNKNOWN_MODEL = "unknown"
_MISSING: Any = object()


def _fallback(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # pydantic models, LangChain messages
        try:
            return dump(mode="json")
        except Exception:  # a model_dump of another signature, or one that fails: show it as text
            return repr(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return repr(value)


def jsonable(value: Any) -> Any:
    """``value`` as JSON-compatible builtins: pydantic models dumped, anything unknown as its ``repr``.
    Tool arguments and results are whatever the framework holds; an event must never fail to encode."""
    try:
        return msgspec.to_builtins(value, enc_hook=_fallback, str_keys=True)
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
        return repr(value)


def error_info(error: BaseException) -> dict[str, str]:
    """``{"type", "message"}`` of an exception; a ``ToolRejected`` adds ``hook`` and ``point`` (the shape
    ``ctx.tool`` gives a refused call's ``tool_result``)."""
    if isinstance(error, ToolRejected):
        return {"type": "ToolRejected", "message": str(error), "hook": error.hook, "point": error.point}
    if isinstance(error, GuardedError):  # an error an on_tool_result hook replaced: as it left it
        return {"type": str(error.error.get("type") or "ToolError"), "message": str(error)}
    return {"type": type(error).__name__, "message": str(error)}


async def message(ctx: RunContext, text: str, role: str = "assistant") -> None:
    await ctx.emit("message", {"role": role, "text": text})


async def tool_call(ctx: RunContext, id: str, name: str, arguments: Any) -> None:
    await ctx.emit("tool_call", {"id": id, "name": name, "arguments": jsonable(arguments)})


async def tool_result(
    ctx: RunContext,
    id: str,
    name: str,
    result: Any = _MISSING,
    *,
    error: BaseException | dict[str, str] | None = None,
) -> None:
    """The result of the tool call ``id``, or its error (an exception, or ``{"type", "message"}``)."""
    data: dict[str, Any] = {"id": id, "name": name}
    if error is not None:
        data["error"] = error_info(error) if isinstance(error, BaseException) else dict(error)
    else:
        data["result"] = None if result is _MISSING else jsonable(result)
    await ctx.emit("tool_result", data)


async def llm_start(ctx: RunContext, model: str) -> None:
    await ctx.emit("llm_start", {"model": model or UNKNOWN_MODEL})


async def llm_end(
    ctx: RunContext, model: str, input_tokens: int | None = None, output_tokens: int | None = None
) -> None:
    """One model call ended. With token counts it is ``ctx.usage`` (the gateway counts it); without, an
    ``llm_end`` that counts nothing."""
    model = (model or UNKNOWN_MODEL)[:200]
    if input_tokens is None and output_tokens is None:
        await ctx.emit("llm_end", {"model": model})
        return
    await ctx.usage(
        model, input_tokens=max(int(input_tokens or 0), 0), output_tokens=max(int(output_tokens or 0), 0)
    )


async def node_enter(ctx: RunContext, node: str, step: int | None = None) -> None:
    data: dict[str, Any] = {"node": node}
    if step is not None:
        data["step"] = step
    await ctx.emit("node_enter", data)


async def node_exit(
    ctx: RunContext, node: str, step: int | None = None, *, error: BaseException | None = None
) -> None:
    data: dict[str, Any] = {"node": node}
    if step is not None:
        data["step"] = step
    if error is not None:
        data["error"] = error_info(error)
    await ctx.emit("node_exit", data)
