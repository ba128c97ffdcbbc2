"""A run's interrupt as an MCP form elicitation, and the form's content back as the interrupt's answer.

MCP forms are flat: an object whose properties are strings (optionally ``date``, ``date-time``, ``email`` or
``uri``, with length limits), numbers or integers (with bounds), booleans, single-choice enums (``enum``, or
``oneOf`` of ``const`` / ``title``) and multiple-choice enums (an array of such strings). An interrupt's
answer schema is mapped onto one:

- an object schema with ``properties``: one field per property. A property MCP forms can express keeps
  its title, description, default and limits (``$ref`` to ``$defs`` resolved, ``X | None`` read as ``X``,
  an untyped string ``enum`` / ``const`` given ``type: "string"``); any other property (a nested object, a
  list of objects, a union, ``Any``) becomes a **JSON field**: a string whose description carries the
  property's JSON Schema, decoded on the way back;
- any other schema (``int``, ``Literal[...]``, ``list[str]``): one field, ``answer``, of that type when
  forms can express it, else a JSON field; the answer is that field's value;
- no schema (``ctx.interrupt(request)``): one text field, ``answer``; the answer is the text.

The gateway still validates the answer against the interrupt's full schema (``RunService.resume``): what a
form cannot express (``pattern``, nested constraints) is checked there, and a refused answer is asked
again with the reasons in the message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import mcp_types as types
import msgspec

#: Fields of a number, string, boolean or enum field an MCP form may carry (SEP-1034, SEP-1330).
_COMMON = ("title", "description")
_STRING_FORMATS = frozenset({"date", "date-time", "email", "uri"})
_JSON_FIELD_HINT = "JSON"
#: The form field of an answer that is not an object with properties.
ANSWER = "answer"


class Interrupt(msgspec.Struct, frozen=True):
    """A run's ``interrupt`` event: which interrupt, what it asks, the answer's JSON Schema; and its ``seq``."""

    id: str
    request: Any = None
    schema: dict[str, Any] | None = None
    seq: int = 0


class _InterruptData(msgspec.Struct):
    id: str
    request: Any = None
    schema: dict[str, Any] | None = None


def interrupt_of(seq: int, data: bytes) -> Interrupt:
    found = msgspec.json.decode(data, type=_InterruptData)
    return Interrupt(found.id, found.request, found.schema, seq)


def message_of(request: Any) -> str:
    """What the form says: the request's ``message`` or ``question``, the action an approval is for, the
    string itself, or else the request as JSON."""
    if isinstance(request, str):
        return request
    if isinstance(request, Mapping):
        for key in ("message", "question"):
            if isinstance(request.get(key), str):
                return str(request[key])
        approval = request.get("approval")
        if isinstance(approval, Mapping) and isinstance(approval.get("action"), str):
            details = approval.get("details")
            shown = "" if details is None else "\n" + json.dumps(details, ensure_ascii=False)
            return f"Approve {approval['action']}?{shown}"
    return json.dumps(request, ensure_ascii=False)


def accepts_forms(capabilities: types.ClientCapabilities | None) -> bool:
    """Whether the client declared form elicitation (a bare ``elicitation: {}`` counts, URL-only does not)."""
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


#: ``data.requiredCapabilities`` of ``-32021`` when a client must answer a form and did not declare it can.
FORM_CAPABILITY: dict[str, Any] = {"elicitation": {"form": {}}}


class Form:
    """The elicitation form of one interrupt, and how its content becomes the answer."""

    __slots__ = ("fields", "json_fields", "message", "required", "whole")

    def __init__(self, interrupt: Interrupt) -> None:
        self.message = message_of(interrupt.request)
        schema = interrupt.schema
        #: the field holding the whole answer, or None: the answer is the object of the fields
        self.whole: str | None = None
        self.json_fields: set[str] = set()
        self.fields: dict[str, dict[str, Any]] = {}
        self.required: list[str] = []
        root = _resolved(schema, schema) if schema is not None else None
        if root is None:
            self.whole = ANSWER
            self.fields[ANSWER] = {"type": "string", "title": "Answer"}
            self.required = [ANSWER]
            return
        properties = root.get("properties")
        if root.get("type") == "object" and isinstance(properties, Mapping) and properties:
            required = root.get("required")
            self.required = [name for name in required or () if name in properties]
            for name, prop in properties.items():
                self._add(str(name), prop, schema)
            return
        self.whole = ANSWER
        self._add(ANSWER, root, schema)
        self.fields[ANSWER].setdefault("title", "Answer")
        self.required = [ANSWER]

    def _add(self, name: str, prop: Any, root: Any) -> None:
        field = primitive(prop, root)
        if field is None:
            field = json_field(name, prop, root)
            self.json_fields.add(name)
        self.fields[name] = field

    def schema(self) -> dict[str, Any]:
        """The ``requestedSchema``."""
        requested: dict[str, Any] = {"type": "object", "properties": self.fields}
        if self.required:
            requested["required"] = self.required
        return requested

    def params(self, note: str = "") -> dict[str, Any]:
        """``elicitation/create`` params (form mode); ``note`` follows the message (why it is asked again)."""
        message = f"{self.message}\n\n{note}" if note else self.message
        return {"mode": "form", "message": message, "requestedSchema": self.schema()}

    def request(self, note: str = "") -> dict[str, Any]:
        """The ``elicitation/create`` request, as an ``inputRequests`` entry carries it."""
        return {"method": "elicitation/create", "params": self.params(note)}

    def answer(self, content: Mapping[str, Any] | None) -> tuple[Any, list[str]]:
        """The interrupt's answer from an accepted form's ``content``, or the problems (``field: why``)."""
        given = dict(content or {})
        problems: list[str] = []
        values: dict[str, Any] = {}
        for name, field in self.fields.items():
            if name not in given or given[name] is None:
                continue
            value = given[name]
            if name in self.json_fields:
                if not isinstance(value, str) or not value.strip():
                    continue  # an empty JSON field is a field left out
                try:
                    value = msgspec.json.decode(value)
                except msgspec.DecodeError as exc:
                    problems.append(f"{name}: not JSON ({exc})")
                    continue
            elif field.get("type") == "integer" and isinstance(value, float) and value.is_integer():
                value = int(value)  # some clients send every number as a float
            values[name] = value
        if self.whole is not None:
            if self.whole not in values and not problems:
                problems.append(f"{self.whole}: an answer is required")
            return values.get(self.whole), problems
        return values, problems


def primitive(prop: Any, root: Any) -> dict[str, Any] | None:
    """``prop`` as an MCP form field, or None when forms cannot express it."""
    prop = _resolved(prop, root)
    if prop is None:
        return None
    kind = prop.get("type")
    field: dict[str, Any] = {key: prop[key] for key in _COMMON if isinstance(prop.get(key), str)}
    default = prop.get("default")
    enum = _strings(prop.get("enum"))
    if "const" in prop and isinstance(prop["const"], str) and kind in (None, "string"):
        enum = [prop["const"]]
    choices = _titled(prop.get("oneOf"))
    if kind in (None, "string") and (enum is not None or choices is not None):
        field["type"] = "string"
        if choices is not None:
            field["oneOf"] = choices
            allowed = {choice["const"] for choice in choices}
        else:
            assert enum is not None
            field["enum"] = enum
            allowed = set(enum)
            names = _strings(prop.get("enumNames"))
            if names is not None and len(names) == len(enum):
                field["enumNames"] = names
        if isinstance(default, str) and default in allowed:
            field["default"] = default
        return field
    if kind == "string":
        field["type"] = "string"
        if prop.get("format") in _STRING_FORMATS:
            field["format"] = prop["format"]
        for key in ("minLength", "maxLength"):
            if isinstance(prop.get(key), int) and not isinstance(prop[key], bool):
                field[key] = prop[key]
        if isinstance(default, str):
            field["default"] = default
        return field
    if kind in ("integer", "number"):
        field["type"] = kind
        for key in ("minimum", "maximum"):
            if _is_number(prop.get(key)):
                field[key] = prop[key]
        if _is_number(default) and (kind == "number" or isinstance(default, int)):
            field["default"] = default
        return field
    if kind == "boolean":
        field["type"] = "boolean"
        if isinstance(default, bool):
            field["default"] = default
        return field
    if kind == "array":
        items = _resolved(prop.get("items"), root)
        if items is None or items.get("type", "string") != "string":
            return None
        item_enum = _strings(items.get("enum"))
        item_choices = _titled(items.get("anyOf"))
        if item_choices is not None:
            field["items"] = {"anyOf": item_choices}
        elif item_enum is not None:
            field["items"] = {"type": "string", "enum": item_enum}
        else:
            return None
        field["type"] = "array"
        for key in ("minItems", "maxItems"):
            if isinstance(prop.get(key), int) and not isinstance(prop[key], bool):
                field[key] = prop[key]
        if isinstance(default, list) and all(isinstance(v, str) for v in default):
            field["default"] = default
        return field
    return None


def json_field(name: str, prop: Any, root: Any) -> dict[str, Any]:
    """A text field for a value forms cannot express: its JSON, as the description's schema says."""
    resolved = _resolved(prop, root) or {}
    shown = {k: v for k, v in resolved.items() if k not in ("title", "description", "default")}
    if "$ref" in json.dumps(shown) and isinstance(root, Mapping) and "$defs" in root:
        shown["$defs"] = root["$defs"]
    wanted = (
        "any JSON value"
        if not shown
        else "JSON matching this schema: " + json.dumps(shown, separators=(",", ":"), ensure_ascii=False)
    )
    said = resolved.get("description")
    title = resolved.get("title")
    return {
        "type": "string",
        "title": f"{title if isinstance(title, str) else name} ({_JSON_FIELD_HINT})",
        "description": f"{said}\n{wanted}" if isinstance(said, str) else wanted,
    }


def _resolved(prop: Any, root: Any) -> dict[str, Any] | None:
    """``prop`` with a local ``$ref`` followed and ``X | None`` read as ``X`` (an absent field is the
    form's null); None when it is no schema object."""
    for _ in range(8):  # a chain of references, not a cycle
        if not isinstance(prop, Mapping):
            return None
        ref = prop.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and isinstance(root, Mapping):
            target = (root.get("$defs") or {}).get(ref[len("#/$defs/") :])
            if not isinstance(target, Mapping):
                return None
            prop = {**target, **{k: v for k, v in prop.items() if k != "$ref"}}
            continue
        options = prop.get("anyOf")
        if isinstance(options, list):
            others = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
            if len(others) == 1 and len(others) < len(options):
                prop = {**others[0], **{k: v for k, v in prop.items() if k != "anyOf"}}
                continue
        return dict(prop)
    return None


def _strings(values: Any) -> list[str] | None:
    if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
        return list(values)
    return None


def _titled(options: Any) -> list[dict[str, str]] | None:
    """``oneOf`` / ``anyOf`` options that are all ``{"const": str, "title": str}``."""
    if not isinstance(options, list) or not options:
        return None
    choices = []
    for option in options:
        if not isinstance(option, Mapping) or not isinstance(option.get("const"), str):
            return None
        title = option.get("title")
        choices.append(
            {"const": option["const"], "title": title if isinstance(title, str) else option["const"]}
        )
    return choices


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
