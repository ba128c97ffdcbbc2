"""Request bodies checked against an endpoint's input JSON Schema, with the JSON path of each error."""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec
from jsonschema import Draft202012Validator
from referencing import Registry


class FieldError(msgspec.Struct, frozen=True):
    path: str
    message: str


def json_path(parts: deque[str | int] | list[str | int]) -> str:
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


# An empty registry: a worker's schema can never make the gateway fetch a remote $ref.
_NO_REMOTE_REFS: Registry[Any] = Registry()


class InputValidator:
    __slots__ = ("_validator",)

    def __init__(self, schema: dict[str, Any] | bool) -> None:
        self._validator = Draft202012Validator(schema, registry=_NO_REMOTE_REFS)

    def errors(self, instance: Any) -> list[FieldError]:
        """[] when ``instance`` is valid; otherwise every error, each with the path of its field."""
        if self._validator.is_valid(instance):
            return []
        found = [
            FieldError(json_path(error.absolute_path), error.message)
            for error in self._validator.iter_errors(instance)
        ]
        return sorted(found, key=lambda e: e.path)[:50]
