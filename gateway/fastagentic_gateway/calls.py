"""Call: one request for one endpoint, built the same way by every front (REST, MCP, A2A)."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from .access.policy import authorize
from .access.principal import Principal
from .errors import InvalidInput, MalformedRequest, NotFound, NoWorker
from .runs.model import Caller, EndpointKind
from .validation import FieldError, value_errors
from .workers.registry import Endpoint, EndpointRegistry

_decode = msgspec.json.decode
_encode = msgspec.json.encode


class Call(msgspec.Struct, kw_only=True):
    endpoint: Endpoint
    input: bytes  # JSON, valid against the endpoint's input schema
    principal: Principal  # who asks, as the access edge authenticated them
    caller: Caller  # what the run keeps of the principal
    protocol: str  # rest, mcp, a2a
    idempotency_key: str | None = None
    request_hash: str | None = None  # of the canonical input, set when there is an idempotency key
    context_id: str | None = None  # a conversation the run belongs to (A2A: the contextId)
    meta: bytes | None = None  # JSON the front keeps with the run (Run.protocol_meta)
    request_id: str = ""  # of the request that made the call (the audit log names it)


def find_endpoint(registry: EndpointRegistry, kind: EndpointKind, name: str, retry_after: int) -> Endpoint:
    """The endpoint named ``name`` of ``kind``: 404 when unknown, 503 when known but nobody serves it."""
    endpoint = registry.get(name)
    if endpoint is None and registry.warming():
        raise NoWorker(
            f"no {kind.value} endpoint named {name!r} yet: the gateway just started and workers are reconnecting",
            retry_after=retry_after,
        )
    if endpoint is None or endpoint.info.kind is not kind:
        raise NotFound(f"no {kind.value} endpoint named {name!r}")
    if not endpoint.served:
        raise NoWorker(f"no worker is serving {kind.value} {name!r} right now", retry_after=retry_after)
    return endpoint


def decode_body(body: bytes) -> Any:
    if not body.strip():
        body = b"{}"
    try:
        return _decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedRequest(f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise MalformedRequest("request body is nested too deeply") from exc


def make_call(
    endpoint: Endpoint,
    value: Any,
    *,
    principal: Principal,
    protocol: str,
    raw: bytes | None = None,
    idempotency_key: str | None = None,
    context_id: str | None = None,
    meta: bytes | None = None,
    request_id: str = "",
) -> Call:
    """The call of ``endpoint`` by ``principal``: authorized (the endpoint's scopes: 403), then ``value``
    validated against the input limits and the endpoint's input schema (422); ``raw`` is its JSON, as
    msgspec decoded it, when the front has it."""
    authorize(principal, endpoint.info)
    errors = value_errors(value, raw)
    if errors:
        raise InvalidInput("input is outside the limits every input obeys", errors=errors)
    errors = endpoint.validator.errors(value, bounded=True)
    if errors:
        raise InvalidInput(f"input does not match the schema of {endpoint.name!r}", errors=errors)
    payload = raw if raw is not None and raw.strip() else _encode(value)
    request_hash = None
    if idempotency_key is not None:
        # Canonical JSON: the same request with other whitespace or key order is the same request.
        canonical = msgspec.json.encode(value, order="sorted")
        request_hash = hashlib.sha256(endpoint.name.encode() + b"\0" + canonical).hexdigest()
    return Call(
        endpoint=endpoint,
        input=payload,
        principal=principal,
        caller=principal.caller,
        protocol=protocol,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        context_id=context_id,
        meta=meta,
        request_id=request_id,
    )


__all__ = ["Call", "FieldError", "decode_body", "find_endpoint", "make_call"]
