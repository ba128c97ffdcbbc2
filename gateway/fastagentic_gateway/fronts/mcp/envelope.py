"""The JSON-RPC envelope of a POST to ``/mcp``, checked before the SDK parses it.

The ``mcp`` package answers a malformed envelope with ``-32602`` and pydantic's text, echoing the input
(2025-11-25), and acknowledges a message whose ``id`` is not a string or an integer with ``202`` and no
answer, as if it were a notification. It also parses with three different parsers (pydantic's, the
standard library's), which disagree on lone surrogates, ``NaN`` and nesting. One msgspec pass settles it for
both revisions:

- not JSON text (not UTF-8, a lone surrogate escape, ``NaN``, nested too deep): ``-32700``;
- JSON that is not one JSON-RPC message (a batch, a string, a missing or wrong ``jsonrpc``, a ``method``
  that is not a string, an ``id`` that is not a string or an integer, ``params`` that is not an object):
  ``-32600``.

Only the envelope is typed: ``params`` and ``result`` keep their members as raw JSON, so the pass parses
the body but builds almost nothing.
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec
from mcp_types import INVALID_REQUEST, PARSE_ERROR
from msgspec import UNSET, Raw, UnsetType


class _ErrorObject(msgspec.Struct):
    code: int
    message: str


class _Envelope(msgspec.Struct):
    jsonrpc: Literal["2.0"]
    id: int | str | UnsetType | None = UNSET
    method: str | UnsetType = UNSET
    params: dict[str, Raw] | UnsetType | None = UNSET
    result: dict[str, Raw] | UnsetType = UNSET
    error: _ErrorObject | UnsetType = UNSET


_decode = msgspec.json.Decoder(_Envelope).decode

#: What each member must be, by the member msgspec names in its error.
_MEMBERS = {
    "jsonrpc": '"jsonrpc" must be "2.0"',
    "id": '"id" must be a string or an integer',
    "method": '"method" must be a string',
    "params": '"params" must be an object',
    "result": '"result" must be an object',
    "error": '"error" must be an object with an integer "code" and a string "message"',
}
_AT_MEMBER = re.compile(r"`\$\.([A-Za-z_]+)|missing required field `([A-Za-z_]+)`")
# A \uD800-\uDBFF escape not followed by a \uDC00-\uDFFF one, or one of those not preceded by the first.
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def problem(body: bytes) -> tuple[int, str] | None:
    """``(code, message)`` when ``body`` is not one well-formed JSON-RPC message, else None."""
    return check(body)[0]


#: The methods that address one endpoint, and the parameter naming it.
TARGETS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


def target(message: _Envelope) -> tuple[str, str] | None:
    """(method, the name or URI it addresses) of a request for one endpoint, else None."""
    member = TARGETS.get(message.method) if isinstance(message.method, str) else None
    if member is None or not isinstance(message.params, dict):
        return None
    raw = message.params.get(member)
    if raw is None:
        return None
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    return (message.method, value) if isinstance(value, str) else None  # type: ignore[return-value]


#: The tasks extension's methods addressing one task; ``Mcp-Name`` carries its ``params.taskId``.
TASK_METHODS = frozenset({"tasks/get", "tasks/update", "tasks/cancel"})


def task_id(message: _Envelope) -> str | None:
    """The ``params.taskId`` of a tasks-extension request, when it is a string; else None."""
    if message.method not in TASK_METHODS or not isinstance(message.params, dict):
        return None
    raw = message.params.get("taskId")
    if raw is None:
        return None
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, str) else None


def check(body: bytes) -> tuple[tuple[int, str] | None, _Envelope | None]:
    """``((code, message), None)`` when ``body`` is not one well-formed JSON-RPC message, else
    ``(None, the envelope)``."""
    try:
        message = _decode(body)
        # msgspec checks the UTF-8 of what it decodes, not of the members it keeps raw.
        if not body.isascii():
            body.decode()
    except msgspec.ValidationError as exc:
        return (INVALID_REQUEST, _invalid(str(exc), body)), None
    except msgspec.DecodeError as exc:
        return (PARSE_ERROR, _unparsable(str(exc), body)), None
    except UnicodeDecodeError:
        return (PARSE_ERROR, "Parse error: the body is not UTF-8 text"), None
    except RecursionError:
        return (PARSE_ERROR, "Parse error: the JSON is nested too deeply"), None
    if message.method is not UNSET:
        if message.id is None:
            return (INVALID_REQUEST, "Invalid Request: " + _MEMBERS["id"]), None
        return None, message  # a request, or a notification (no id)
    if message.result is not UNSET or message.error is not UNSET:
        # A response to a request of the server's; only an error may answer an id it could not read (null).
        if message.id is UNSET or (message.id is None and message.error is UNSET):
            return (
                INVALID_REQUEST,
                'Invalid Request: a response needs an "id" (a string or an integer)',
            ), None
        return None, message
    return (INVALID_REQUEST, 'Invalid Request: a JSON-RPC request needs a string "method"'), None


def _invalid(error: str, body: bytes) -> str:
    found = _AT_MEMBER.search(error)
    if found is not None:
        member = found.group(1) or found.group(2)
        return "Invalid Request: " + _MEMBERS.get(member, f'"{member}" is malformed')
    stripped = body.strip()
    if stripped.startswith(b"["):
        if stripped[1:].strip() == b"]":
            return "Invalid Request: an empty batch"
        return "Invalid Request: batches are not supported: one JSON-RPC message per POST"
    return "Invalid Request: the body must be one JSON-RPC message (a JSON object)"


def _unparsable(error: str, body: bytes) -> str:
    if _LONE_SURROGATE.search(body):
        return "Parse error: a string holds a lone surrogate (\\uD800-\\uDFFF unpaired): not Unicode text"
    return f"Parse error: {error}"
