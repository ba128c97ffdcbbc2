"""The parts of a run's interrupt an MCP client is asked: several questions at once (``ctx.ask_many``),
and roots (``ctx.roots``, ``roots/list``).

An interrupt of ``ctx.ask_many`` asks ``{"questions": {key: request}}`` with the answer schema an object of
one property per key (``$defs`` at its root), every key required. Each key is a question of its own: a form,
a sampling request (``{"sampling": ...}``) or a roots request (``{"roots": {}}``), asked as one
``inputRequests`` entry under its key (2026-07-28) or one request after the other on the call's stream
(2025-11-25); the run is answered once, with every answer (``{key: answer}``), when the last one came in.
Each part's answer is checked against its own schema as it comes (the problems name its fields), so the
answer given to the run at the end is whole and valid.

A roots interrupt's answer is the client's ``ListRootsResult`` (``{"roots": [...]}``) or
``{"unavailable": why}`` (the SDK raises ``RootsUnavailable``): only the calling client knows its roots.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mcp_types as types
from pydantic import ValidationError

from ...validation import InputValidator
from .elicitation import Interrupt

#: Why a run's roots request is answered ``unavailable`` for a client that cannot list roots.
NO_ROOTS = "the MCP client did not declare the roots capability"
#: ``requiredCapabilities`` of the ``-32021`` a 2026-07-28 request without roots gets.
ROOTS_CAPABILITY: dict[str, Any] = {"roots": {}}


def parts_of(interrupt: Interrupt) -> dict[str, Interrupt] | None:
    """The questions of a ``ctx.ask_many`` interrupt by key, each as an interrupt of its own (id: the
    key; its schema the key's property, with the root's ``$defs``); None for any other interrupt."""
    request = interrupt.request
    schema = interrupt.schema
    if not isinstance(request, Mapping) or set(request) != {"questions"}:
        return None
    questions = request["questions"]
    if not isinstance(questions, Mapping) or not questions or not isinstance(schema, Mapping):
        return None
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or set(properties) != set(questions):
        return None
    defs = schema.get("$defs")
    parts: dict[str, Interrupt] = {}
    for key, asked in questions.items():
        prop = properties[key]
        if not isinstance(prop, Mapping):
            return None
        part_schema = dict(prop) if not defs else {**prop, "$defs": defs}
        parts[str(key)] = Interrupt(str(key), asked, part_schema, interrupt.seq)
    return parts


def is_roots(interrupt: Interrupt) -> bool:
    """Whether the interrupt asks the client's roots (``ctx.roots``)."""
    request = interrupt.request
    return isinstance(request, Mapping) and set(request) == {"roots"}


def accepts_roots(capabilities: types.ClientCapabilities | None) -> bool:
    """Whether the client declared the roots capability."""
    return capabilities is not None and capabilities.roots is not None


def roots_request() -> dict[str, Any]:
    """The ``roots/list`` request, as an ``inputRequests`` entry carries it."""
    return {"method": "roots/list", "params": {}}


def roots_result_of(response: Any) -> types.ListRootsResult | None:
    """An ``inputResponses`` entry (or a client's reply) as the ``ListRootsResult`` it must be, or None."""
    if isinstance(response, types.ListRootsResult):
        return response
    if isinstance(response, types.Result):
        response = response.model_dump(by_alias=True, exclude_none=True)
    try:
        return types.ListRootsResult.model_validate(response, by_name=False)
    except ValidationError:
        return None


def listed(result: types.ListRootsResult) -> dict[str, Any]:
    """The interrupt's answer from the client's roots."""
    return {
        "roots": [
            {"uri": str(root.uri), **({"name": root.name} if root.name is not None else {})}
            for root in result.roots
        ]
    }


def part_problems(part: Interrupt, value: Any) -> list[str]:
    """What is wrong with ``value`` as the answer to one question (``path: why``), checked against its own
    schema before the run is answered with every answer."""
    if part.schema is None:
        return []
    return [f"{error.path}: {error.message}" for error in InputValidator(part.schema).errors(value)]
