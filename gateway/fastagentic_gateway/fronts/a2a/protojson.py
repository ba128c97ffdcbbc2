"""Protobuf <-> JSON for the fast path's request, directly.

``value_json`` is ``MessageToDict`` for a ``google.protobuf.Value`` (a data part's), rendered directly:
``json_format`` builds a printer per call and goes through its generic ``_FieldToJsonObject`` for every
nested value. Anything it does not expect goes to ``MessageToDict`` itself, which then gives the same
answer or raises the same error.

``send_request`` is the other way, for the one request the fast path reads: ``ParseDict(params,
SendMessageRequest(), ignore_unknown_fields=True)``, built directly when the params are of the plain shape
clients send (the JSON field names, values of the right JSON types, text and data parts, no push config),
field by field as ``ParseDict`` sets them (so the same message); anything else goes to ``ParseDict``.
(The answers are built as JSON directly: ``taskjson.py``.)
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct, Value

from a2a.types.a2a_pb2 import Part, Role, SendMessageConfiguration, SendMessageRequest


class _Unplanned(Exception):
    """A value this module does not render itself: the whole message goes to ``MessageToDict``."""


def value_json(message: Value) -> Any:
    """``MessageToDict(message)`` for a ``google.protobuf.Value`` (a data part's)."""
    try:
        return _value(message)
    except _Unplanned:
        return json_format.MessageToDict(message)


def _struct(message: Any) -> dict[str, Any]:
    fields = message.fields
    return {key: _value(fields[key]) for key in fields}


def _list(message: Any) -> list[Any]:
    return [_value(value) for value in message.values]


def _value(message: Any) -> Any:
    which = message.WhichOneof("kind")
    if which == "string_value":
        return str(message.string_value)
    if which == "number_value":
        number = message.number_value
        if number - number != 0.0:  # inf or NaN: the printer's error
            raise _Unplanned("number_value")
        return number
    if which == "struct_value":
        return _struct(message.struct_value)
    if which == "list_value":
        return _list(message.list_value)
    if which == "bool_value":
        return bool(message.bool_value)
    return None  # null_value, or unset


# ------------------------------------------------------------------ SendMessageRequest from JSON

_ROLES = {name: number for name, number in Role.items()}
_MESSAGE_STRINGS = {"messageId": "message_id", "contextId": "context_id", "taskId": "task_id"}
_MESSAGE_LISTS = {"extensions": "extensions", "referenceTaskIds": "reference_task_ids"}
_PART_STRINGS = {"mediaType": "media_type", "filename": "filename"}
# ParseDict counts every message it enters (the request 1, its message 2, a part 3, a part's data 4, each
# Struct, ListValue and Value inside one more) and refuses past 100; deeper than this goes to ParseDict.
MAX_DIRECT_DEPTH = 80
_INT32 = (-(2**31), 2**31 - 1)


class _Indirect(Exception):
    """Not of the plain shape: ``ParseDict`` reads it."""


def send_request(params: Any) -> SendMessageRequest:
    """``ParseDict(params, SendMessageRequest(), ignore_unknown_fields=True)`` (see the module docstring);
    raises what ``ParseDict`` raises."""
    try:
        return _send_request(params)
    except _Indirect:
        pass
    except Exception:  # a value protobuf refuses (say a lone surrogate): ParseDict words the error
        pass
    return json_format.ParseDict(params, SendMessageRequest(), ignore_unknown_fields=True)


def _send_request(params: Any) -> SendMessageRequest:
    if type(params) is not dict:
        raise _Indirect
    request = SendMessageRequest()
    for key, value in params.items():
        if key == "message" and type(value) is dict:
            message = request.message
            message.SetInParent()
            _message(value, message)
        elif key == "configuration" and type(value) is dict:
            config = request.configuration
            config.SetInParent()
            _configuration(value, config)
        elif key == "metadata" and type(value) is dict:
            _field_struct(value, request.metadata, 2)
        elif key == "tenant" and type(value) is str:
            request.tenant = value
        else:
            raise _Indirect
    return request


def _message(data: dict[str, Any], message: Any) -> None:
    for key, value in data.items():
        attribute = _MESSAGE_STRINGS.get(key)
        if attribute is not None and type(value) is str:
            setattr(message, attribute, value)
        elif key == "role" and type(value) is str and value in _ROLES:
            message.role = _ROLES[value]
        elif key == "parts" and type(value) is list:
            for item in value:
                if type(item) is not dict:
                    raise _Indirect
                _part(item, message.parts.add())
        elif key == "metadata" and type(value) is dict:
            _field_struct(value, message.metadata, 3)
        elif key in _MESSAGE_LISTS and type(value) is list and all(type(v) is str for v in value):
            getattr(message, _MESSAGE_LISTS[key]).extend(value)
        else:
            raise _Indirect


def _part(data: dict[str, Any], part: Part) -> None:
    content = False
    for key, value in data.items():
        attribute = _PART_STRINGS.get(key)
        if attribute is not None and type(value) is str:
            setattr(part, attribute, value)
        elif key == "text" and type(value) is str and not content:
            part.text = value
            content = True
        elif key == "data" and value is not None and not content:
            target = part.data
            target.SetInParent()
            _value_from(value, target, 4)
            content = True
        elif key == "metadata" and type(value) is dict:
            _field_struct(value, part.metadata, 4)
        else:
            raise _Indirect


def _configuration(data: dict[str, Any], config: SendMessageConfiguration) -> None:
    for key, value in data.items():
        if key == "acceptedOutputModes" and type(value) is list and all(type(v) is str for v in value):
            config.accepted_output_modes.extend(value)
        elif key == "historyLength" and type(value) is int and _INT32[0] <= value <= _INT32[1]:
            config.history_length = value
        elif key == "returnImmediately" and type(value) is bool:
            config.return_immediately = value
        else:
            raise _Indirect


def _field_struct(data: dict[str, Any], struct: Struct, depth: int) -> None:
    """A Struct field, as ``ParseDict`` sets a message field: marked present, then filled."""
    struct.SetInParent()
    _struct_from(data, struct, depth)


def _struct_from(data: dict[str, Any], struct: Struct, depth: int) -> None:
    """As ``ParseDict`` fills a Struct (at ``depth``): cleared, then each key's Value."""
    if depth > MAX_DIRECT_DEPTH:
        raise _Indirect
    struct.Clear()
    fields = struct.fields
    for key, value in data.items():
        _value_from(value, fields[key], depth + 1)


def _value_from(value: Any, out: Value, depth: int) -> None:
    kind = type(value)
    if kind is str:
        out.string_value = value
    elif kind is dict:
        _struct_from(value, out.struct_value, depth + 1)
    elif kind is int or kind is float:
        out.number_value = value
    elif kind is bool:
        out.bool_value = value
    elif value is None:
        out.null_value = 0  # type: ignore[assignment]
    elif kind is list:
        if depth + 1 > MAX_DIRECT_DEPTH:
            raise _Indirect
        values = out.list_value
        values.ClearField("values")
        for item in value:
            _value_from(item, values.values.add(), depth + 2)
    else:
        raise _Indirect


__all__ = ["send_request", "value_json"]
