"""Request input checked before a run exists: first the limits every input obeys on every front
(``value_errors``), then the endpoint's input JSON Schema (``InputValidator``), with the JSON path of
each error.

A schema is checked by two implementations of JSON Schema 2020-12: ``jsonschema-rs`` decides whether
an input is valid (compiled once per schema, about a tenth of a microsecond for a typical agent input,
against 8 to 30 µs for the pure-Python validator on every request of every front), and
``jsonschema`` words the errors of an input it refused (its messages and paths, which the fronts
return). Both refuse remote ``$ref``s. Where they disagree, jsonschema-rs decides, and its answers
are the specification's where Python's differ; both ways:

- regular expressions are ECMA-262's, as the specification asks: ``\\d`` and ``\\w`` are ASCII, so
  ``^\\d+$`` refuses Arabic-Indic digits that Python's ``re`` takes, and ``^\\D+$`` accepts them;
- ``multipleOf`` with a decimal divisor is exact: 0.3 is a multiple of 0.1 (Python's float division
  says it is not);
- a schema whose ``$ref``s form a cycle is evaluated (Python's validator recurses without end and the
  input was refused as "nested too deeply").

When the Python validator finds nothing to say about an input jsonschema-rs refused, the errors are
jsonschema-rs's own; a schema jsonschema-rs cannot compile is checked by the Python validator alone."""

from __future__ import annotations

import re
from collections import deque
from typing import Any

import jsonschema_rs
import msgspec
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.exceptions import Unresolvable


class FieldError(msgspec.Struct, frozen=True):
    path: str
    message: str


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def json_path(parts: deque[str | int] | list[str | int]) -> str:
    """``$.items[2].name``; keys that are not identifiers are quoted: ``$["odd key"]`` (as the SDK does)."""
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            path += f".{part}"
        else:
            path += f"[{msgspec.json.encode(part).decode()}]"
    return path


def unresolvable_refs(schema: Any) -> list[str]:
    """The ``$ref``s of ``schema`` that do not resolve inside it (remote ones never do: nothing is fetched)."""
    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                refs.append(ref)
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    collect(schema)
    return [ref for ref in refs if not _resolves(schema, ref)]


def _resolves(schema: Any, ref: str) -> bool:
    if not ref.startswith("#"):
        return False
    node = schema
    for token in ref[1:].split("/")[1:] if ref.startswith("#/") else ([] if ref == "#" else [None]):
        if token is None:
            return False  # plain-name anchors are not supported in endpoint schemas
        key = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return False
    return True


# An empty registry: a worker's schema can never make the gateway fetch a remote $ref.
_NO_REMOTE_REFS: Registry[Any] = Registry()


def _field_error(error: ValidationError) -> FieldError:
    path = list(error.absolute_path)
    if (
        error.validator == "required"
        and isinstance(error.instance, dict)
        and isinstance(error.validator_value, list)
    ):
        # Point at the missing field itself, as the SDK does, not at the object that lacks it.
        missing = [name for name in error.validator_value if name not in error.instance]
        for name in missing:
            if error.message.startswith(repr(name)):
                path.append(name)
                break
    return FieldError(json_path(path), _short(error))


MAX_MESSAGE = 300


def _short_text(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "…"


def _short(error: ValidationError) -> str:
    """jsonschema's message, without echoing a long value whole (a 1 MB string would come back as is)."""
    message = error.message
    if len(message) <= MAX_MESSAGE:
        return message
    shown = repr(error.instance)
    if shown in message:
        message = message.replace(
            shown, shown[:60] + "…" + shown[-1:] if isinstance(error.instance, str) else shown[:60] + "…"
        )
    return _short_text(message)


#: How deep objects and arrays may nest in any input, on every front. Deep enough for any real agent
#: input; shallow enough that every projection of it (A2A's protobuf ``Value`` caps nesting near 30
#: levels once inside a task) and every recursive consumer (schema validation, workers' decoders) holds.
MAX_DEPTH = 32
#: Integers must fit 64 bits (signed or unsigned), as msgspec, protobuf and every worker language decode
#: them; a longer one is refused rather than rounded or overflowed somewhere downstream.
MIN_INT = -(2**63)
MAX_INT = 2**64 - 1
_LONG_NUMBER = re.compile(rb"[0-9]{19}")


def _nests_within(value: Any, depth: int) -> bool:
    """Whether ``value``'s objects and arrays nest at most ``depth`` levels (iteratively: any depth).
    Tuples count as arrays, as jsonschema-rs takes them (a hook's payload may hold some)."""
    stack: list[tuple[Any, int]] = [(value, 0)] if isinstance(value, dict | list | tuple) else []
    while stack:  # only objects and arrays are stacked
        node, level = stack.pop()
        items = node.values() if isinstance(node, dict) else node
        if level >= depth:
            return False
        stack.extend((item, level + 1) for item in items if isinstance(item, dict | list | tuple))
    return True


def value_errors(value: Any, raw: bytes | None = None, max_depth: int = MAX_DEPTH) -> list[FieldError]:
    """What breaks the limits every input obeys: nesting beyond ``max_depth``, an integer beyond 64
    bits, a string holding a lone surrogate (not Unicode text: it cannot be stored as UTF-8), a float
    that is not finite. ``raw``, the JSON the value was decoded from by msgspec (which refuses lone
    surrogates and non-finite numbers itself), lets the walk be skipped when the bytes cannot hold
    anything deep or long."""
    if raw is not None and raw.count(b"[") + raw.count(b"{") <= max_depth and not _LONG_NUMBER.search(raw):
        return []
    errors: list[FieldError] = []
    # Iterative, so a value nested thousands deep (from a lenient parser) cannot exhaust the stack.
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack and len(errors) < 10:
        node, path = stack.pop()
        if isinstance(node, dict):
            if len(path) >= max_depth:
                errors.append(FieldError(json_path(path), f"nested deeper than {max_depth} levels"))
                continue
            for key, item in node.items():
                if isinstance(key, str) and not _is_text(key):
                    errors.append(FieldError(json_path(path), "a key is not valid Unicode text"))
                    continue
                stack.append((item, [*path, key]))
        elif isinstance(node, list):
            if len(path) >= max_depth:
                errors.append(FieldError(json_path(path), f"nested deeper than {max_depth} levels"))
                continue
            stack.extend((item, [*path, index]) for index, item in enumerate(node))
        elif isinstance(node, bool):
            continue
        elif isinstance(node, int):
            if not MIN_INT <= node <= MAX_INT:
                errors.append(FieldError(json_path(path), "integer out of range: it must fit in 64 bits"))
        elif isinstance(node, float):
            if node != node or node in (float("inf"), float("-inf")):
                errors.append(FieldError(json_path(path), "number is not finite (NaN or Infinity)"))
        elif isinstance(node, str) and not _is_text(node):
            errors.append(FieldError(json_path(path), "string is not valid Unicode text (a lone surrogate)"))
    return sorted(errors, key=lambda e: e.path)


def _is_text(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _no_retrieval(uri: str) -> Any:
    raise ValueError(f"remote $ref {uri!r} is not fetched")


def _compiled(schema: dict[str, Any] | bool) -> Any:
    """The jsonschema-rs validator of ``schema``, or None when it cannot compile it (an unresolvable
    ``$ref``, a pattern its regex engine refuses): then the Python validator decides alone."""
    try:
        return jsonschema_rs.Draft202012Validator(schema, validate_formats=False, retriever=_no_retrieval)
    except (ValueError, TypeError, RecursionError):
        return None


class InputValidator:
    __slots__ = ("_fast", "_validator")

    def __init__(self, schema: dict[str, Any] | bool) -> None:
        self._validator = Draft202012Validator(schema, registry=_NO_REMOTE_REFS)
        self._fast = _compiled(schema)

    def errors(self, instance: Any, *, bounded: bool = False) -> list[FieldError]:
        """[] when ``instance`` is valid; otherwise every error, each with the path of its field.
        ``bounded``: ``value_errors`` found nothing in ``instance`` (so it nests at most ``MAX_DEPTH``
        levels), else that is checked here first: jsonschema-rs recurses on the native stack, and a
        recursive schema over a value nested a hundred thousand levels would overflow it (a crash, not
        an exception), where the Python validator stops with a RecursionError."""
        fast = self._fast
        verdict: bool | None = None
        if fast is not None and (bounded or _nests_within(instance, MAX_DEPTH)):
            try:
                verdict = fast.is_valid(instance)
            except (ValueError, TypeError, OverflowError, RecursionError):
                verdict = None  # not a JSON value jsonschema-rs takes (bytes, an int key): Python decides
            if verdict:
                return []
        try:
            if verdict is None and self._validator.is_valid(instance):
                return []
            found = [_field_error(error) for error in self._validator.iter_errors(instance)]
        except RecursionError:
            if verdict is None:
                return [FieldError("$", "input is nested too deeply to validate")]
            found = []  # a schema whose $refs form a cycle: jsonschema-rs's words below
        except Unresolvable as exc:
            # Registration refuses such schemas; this guards schemas that slipped past it.
            return [FieldError("$", f"the endpoint's input schema cannot be evaluated: {exc}")]
        if not found and verdict is False:
            # Refused by jsonschema-rs alone (an ECMA-262 pattern, a reference cycle): its own words.
            assert fast is not None
            found = list(  # each once (a cycle may report one error several times)
                dict.fromkeys(
                    FieldError(json_path(list(error.instance_path)), _short_text(error.message))
                    for error in fast.iter_errors(instance)
                )
            )
        return sorted(found, key=lambda e: e.path)[:50]
