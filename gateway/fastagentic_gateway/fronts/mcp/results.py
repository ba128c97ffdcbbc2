"""Finished runs as MCP results: tool results, prompt messages, resource contents, and errors.

Results are built as wire dicts; the SDK validates them against the negotiated revision on the way out
and drops what that revision does not have (``resultType`` is required in 2026-07-28, unknown before).
A tool result always carries a text block (the value as JSON, or the string itself) as the spec
recommends, plus ``structuredContent`` when the tool advertises an ``outputSchema``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS

from ...errors import GatewayError, NoWorker
from ...runs.model import RunError, RunStatus
from .catalogue import ToolView

_decode = msgspec.json.decode
_CONTENT_TYPES = frozenset({"text", "image", "audio", "resource", "resource_link"})

#: 2025-11-25 "resource not found" (retired, never reused, in 2026-07-28, where it is invalid params).
RESOURCE_NOT_FOUND = -32002


class Outcome(msgspec.Struct, frozen=True):
    """How a run ended, as a front needs it: from the stored run or from its terminal event."""

    status: RunStatus
    output: bytes | None = None
    error: RunError | None = None


class _Completed(msgspec.Struct):
    output: msgspec.Raw


class _Failed(msgspec.Struct):
    error: RunError


def outcome_of_event(kind: str, data: bytes) -> Outcome:
    """The outcome a terminal event (``run.completed`` / ``run.failed`` / ``run.cancelled``) announces."""
    if kind == "run.completed":
        return Outcome(RunStatus.SUCCEEDED, output=bytes(msgspec.json.decode(data, type=_Completed).output))
    if kind == "run.failed":
        return Outcome(RunStatus.FAILED, error=msgspec.json.decode(data, type=_Failed).error)
    return Outcome(RunStatus.CANCELLED)


def tool_result(view: ToolView | None, outcome: Outcome) -> dict[str, Any]:
    """A finished run of a tool or agent as a ``CallToolResult``; failures are ``isError`` results."""
    if outcome.status is RunStatus.SUCCEEDED:
        return success(view, outcome.output or b"null")
    if outcome.status is RunStatus.CANCELLED:
        return error_result("cancelled", "the run was cancelled")
    error = outcome.error or RunError(type="Error", message=f"the run ended {outcome.status.value}")
    return error_result(error.type, error.message)


def success(view: ToolView | None, output: bytes) -> dict[str, Any]:
    if view is not None and view.content:
        value = _decode(output)
        blocks = value if isinstance(value, list) else [value]
        if blocks and all(isinstance(b, dict) and b.get("type") in _CONTENT_TYPES for b in blocks):
            return {"content": blocks, "resultType": "complete"}
    # A string result reads better as itself than as a JSON string.
    text = _decode(output) if output[:1] == b'"' else output.decode()
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "resultType": "complete"}
    if view is not None and view.structured:
        value = _decode(output)
        result["structuredContent"] = {"result": value} if view.wrapped else value
    return result


def error_result(kind: str, message: str, details: list[str] | None = None) -> dict[str, Any]:
    """An ``isError`` tool result: ``<type>: <message>``, then one line per detail (a field path and its problem)."""
    text = f"{kind}: {message}"
    if details:
        text += "\n" + "\n".join(details)
    return {"content": [{"type": "text", "text": text}], "isError": True, "resultType": "complete"}


def gateway_error_result(exc: GatewayError) -> dict[str, Any]:
    """A gateway error met while calling a tool (bad arguments, no worker, a hook's refusal) as an
    ``isError`` result."""
    details = [f"{e.path}: {e.message}" for e in exc.errors]
    if "hook" in exc.extra:
        details.append(f"hook: {exc.extra['hook']} at {exc.extra.get('point', '')}")
    if isinstance(exc, NoWorker):
        details.append(f"retry after {exc.headers.get('Retry-After', '?')} s")
    return error_result(exc.type, exc.message, details)


def error_data(exc: GatewayError) -> dict[str, Any]:
    """The ``data`` of a JSON-RPC error for a gateway error: its type, field errors, retry hint."""
    data: dict[str, Any] = {"type": exc.type}
    if exc.errors:
        data["errors"] = [{"path": e.path, "message": e.message} for e in exc.errors]
    if "Retry-After" in exc.headers:
        data["retryAfter"] = int(exc.headers["Retry-After"])
    for name in ("rule", "budget", "resets_at"):  # which limit or budget refused, and until when
        if name in exc.extra:
            data[name if name != "resets_at" else "resetsAt"] = exc.extra[name]
    for name in ("hook", "point", "reason"):  # which hook refused (HookRejected, HookFailed), and why
        if name in exc.extra:
            data[name] = exc.extra[name]
    return data


#: JSON-RPC code of a call refused by a rate limit (implementation-defined server error range; 429).
RATE_LIMITED = -32029


def error_code(exc: GatewayError) -> int:
    if exc.status == 429:
        return RATE_LIMITED
    return INVALID_PARAMS if exc.status in (400, 404, 422) else INTERNAL_ERROR


def prompt_result(description: str, output: bytes) -> dict[str, Any]:
    messages = _decode(output).get("messages", [])
    result: dict[str, Any] = {"messages": messages, "resultType": "complete"}
    if description:
        result["description"] = description
    return result


def resource_result(uri: str, output: bytes) -> dict[str, Any]:
    content = _decode(output)
    item: dict[str, Any] = {"uri": content.get("uri") or uri}
    if content.get("mime_type"):
        item["mimeType"] = content["mime_type"]
    if "blob" in content:
        item["blob"] = content["blob"]
    else:
        item["text"] = str(content.get("text", ""))
    return {"contents": [item], "resultType": "complete"}
