"""Request bodies checked against an endpoint's input JSON Schema, each error with its JSON path."""

from __future__ import annotations

import contextlib
import socket
import time
import urllib.request
from typing import Any

import pytest

from fastagentic_gateway.validation import MAX_DEPTH, FieldError, InputValidator, json_path, value_errors

ORDER = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
                "required": ["name"],
            },
        },
    },
    "required": ["id", "items"],
    "additionalProperties": False,
}

REMOTE_REF = {"$ref": "https://example.com/x.json"}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every attempt to reach the network is recorded (and fails) instead of happening."""
    attempts: list[str] = []

    def refuse(what: str) -> Any:
        def refused(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{what}{args!r}")
            raise OSError(f"network access attempted: {what}")

        return refused

    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse("urlopen"))
    return attempts


# ---------------------------------------------------------------- paths


def test_valid_input_has_no_errors() -> None:
    assert InputValidator(ORDER).errors({"id": 1, "items": [{"name": "pen", "qty": 2}]}) == []


def test_error_in_a_list_item_field_carries_its_json_path() -> None:
    errors = InputValidator(ORDER).errors({"id": 1, "items": [{"name": "pen"}, {"name": 7}]})
    assert [error.path for error in errors] == ["$.items[1].name"]
    assert "string" in errors[0].message


def test_missing_required_field_is_reported_at_the_field_itself() -> None:
    errors = InputValidator(ORDER).errors({"id": 1, "items": [{"qty": 1}]})
    assert errors == [FieldError("$.items[0].name", "'name' is a required property")]


def test_wrong_type_of_the_whole_body_is_reported_at_the_root() -> None:
    errors = InputValidator(ORDER).errors([1, 2])
    assert [error.path for error in errors] == ["$"]


def test_every_offending_field_is_reported() -> None:
    errors = InputValidator(ORDER).errors({"id": "one", "items": [{"name": "pen", "qty": 0}], "extra": 1})
    assert sorted(error.path for error in errors) == ["$", "$.id", "$.items[0].qty"]


def test_errors_are_sorted_by_path() -> None:
    errors = InputValidator(ORDER).errors({"items": [{"name": 1}, {"name": 2}], "id": "x"})
    paths = [error.path for error in errors]
    assert paths == sorted(paths)


def test_at_most_fifty_errors_are_reported() -> None:
    errors = InputValidator(ORDER).errors({"id": 1, "items": [{"name": n} for n in range(80)]})
    assert len(errors) == 50


def test_local_refs_into_defs_are_followed() -> None:
    schema = {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}}},
        "$defs": {"Tag": {"type": "string", "maxLength": 3}},
    }
    errors = InputValidator(schema).errors({"tags": ["ok", "too long"]})
    assert [error.path for error in errors] == ["$.tags[1]"]


def test_boolean_schema_true_accepts_anything() -> None:
    assert InputValidator(True).errors({"anything": [1, None]}) == []


def test_json_path_renders_keys_and_indexes() -> None:
    assert json_path(["items", 1, "name"]) == "$.items[1].name"
    assert json_path([]) == "$"


def test_keys_that_are_not_identifiers_are_quoted_in_brackets_like_the_sdk() -> None:
    # fastagentic.schema renders such keys as ["odd key"]; "$.a.b" would be ambiguous.
    schema = {"type": "object", "properties": {"a.b": {"type": "integer"}, "odd key": {"type": "integer"}}}
    errors = InputValidator(schema).errors({"a.b": "x", "odd key": "y"})
    assert sorted(error.path for error in errors) == ['$["a.b"]', '$["odd key"]']


# ---------------------------------------------------------------- remote references


def test_remote_ref_never_reaches_the_network(no_network: list[str]) -> None:
    validator = InputValidator(REMOTE_REF)
    started = time.monotonic()
    with contextlib.suppress(Exception):
        validator.errors({"a": 1})
    assert no_network == []
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    "schema", [REMOTE_REF, {"$ref": "#/$defs/Missing"}], ids=["remote", "dangling-local"]
)
def test_unresolvable_ref_is_reported_as_an_input_error_instead_of_raising(
    no_network: list[str], schema: dict[str, Any]
) -> None:
    errors = InputValidator(schema).errors({"a": 1})
    assert errors, "an unresolvable $ref must not make every input valid"
    assert all(isinstance(error, FieldError) for error in errors)


#: Integers, or objects whose ``a`` is one of these, to any depth.
_RECURSIVE = {
    "$defs": {
        "n": {"anyOf": [{"type": "integer"}, {"type": "object", "properties": {"a": {"$ref": "#/$defs/n"}}}]}
    },
    "$ref": "#/$defs/n",
}


@pytest.mark.parametrize("depth", [3000, 200_000])
def test_input_too_deep_to_validate_is_an_error_not_a_crash(depth: int) -> None:
    # Valid by the schema, but beyond what either validator can walk: Python's recursion would run out
    # at 3,000 levels, and at 200,000 jsonschema-rs would overflow the native stack (a segmentation
    # fault, not an exception). The nesting is checked first; Python refuses it with a clear error.
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    assert InputValidator(_RECURSIVE).errors(value) == [
        FieldError("$", "input is nested too deeply to validate")
    ]


def test_where_the_validators_differ_the_specification_s_answer_holds() -> None:
    # Decimal multipleOf is exact (Python's float division says 0.3 is not a multiple of 0.1).
    assert InputValidator({"multipleOf": 0.1}).errors(0.3) == []
    assert InputValidator({"multipleOf": 0.1}).errors(0.35) != []
    # \\D is "not an ASCII digit" in ECMA-262: Arabic-Indic digits are not digits there.
    assert InputValidator({"pattern": "^\\D+$"}).errors("١٢") == []
    # A schema whose $refs form a cycle is evaluated, and a refusal is worded, not "nested too deeply".
    cyclic = InputValidator({"type": "string", "allOf": [{"$ref": "#"}]})
    assert cyclic.errors("x") == []
    (error,) = cyclic.errors(5)
    assert error.path == "$" and "string" in error.message
    # Tuples count as arrays for the nesting guard (a hook's payload may hold them).
    value: object = 1
    for _ in range(200_000):
        value = (value,)
    assert InputValidator(
        {
            "$defs": {
                "n": {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"$ref": "#/$defs/n"}}]}
            },
            "$ref": "#/$defs/n",
        }
    ).errors(value)


def test_validity_is_decided_by_ecma_regular_expressions_and_worded_by_either_validator() -> None:
    # Python's re lets \d match any Unicode digit; ECMA-262 (the JSON Schema dialect) only 0-9.
    validator = InputValidator(
        {"type": "object", "properties": {"code": {"type": "string", "pattern": "^\\d+$"}}}
    )
    assert validator.errors({"code": "123"}) == []
    (error,) = validator.errors({"code": "١٢٣"})
    assert error.path == "$.code" and "١٢٣" in error.message
    # An ordinary refusal keeps the Python validator's words and paths.
    assert validator.errors({"code": 5}) == [FieldError("$.code", "5 is not of type 'string'")]


# ------------------------------------------------------------------------- the limits of any input


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_input_within_the_limits_passes() -> None:
    assert value_errors({"a": [1, 2.5, "x", None, True], "n": 2**64 - 1, "m": -(2**63)}) == []
    assert value_errors(_nested(MAX_DEPTH)) == []


def test_nesting_beyond_the_limit_is_refused_at_its_path() -> None:
    [error] = value_errors({"deep": _nested(MAX_DEPTH)})
    assert error.message == f"nested deeper than {MAX_DEPTH} levels"
    assert error.path.startswith("$.deep[0]")


def test_nesting_thousands_deep_does_not_exhaust_the_stack() -> None:
    assert value_errors(_nested(5000))


def test_integers_beyond_64_bits_are_refused() -> None:
    assert value_errors({"n": 2**64})[0].path == "$.n"
    assert value_errors([-(2**63) - 1])[0].message.startswith("integer out of range")
    assert value_errors({"n": int("1" * 401)})


def test_lone_surrogates_and_non_finite_numbers_are_refused() -> None:
    assert value_errors({"s": "a\ud800b"})[0].path == "$.s"
    assert value_errors({"\udfff": 1})[0].message == "a key is not valid Unicode text"
    assert value_errors([float("nan")])[0].path == "$[0]"
    assert value_errors({"x": float("inf")})


def test_the_raw_json_spares_the_walk_only_when_it_cannot_break_a_limit() -> None:
    raw = b'{"n": 123456789012345678901}'
    assert value_errors({"n": 123456789012345678901}, raw)
    shallow = b'{"a": [1, 2]}'
    assert value_errors({"a": [1, 2]}, shallow) == []


def test_a_long_value_is_not_echoed_whole_in_its_error() -> None:
    validator = InputValidator(ORDER)
    [error] = validator.errors({"id": "x" * 100_000, "items": []})
    assert error.path == "$.id"
    assert len(error.message) < 400
    assert error.message.endswith("is not of type 'integer'")
