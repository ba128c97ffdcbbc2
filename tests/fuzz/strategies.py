"""Hypothesis strategies of the fuzz suite: valid inputs drawn from each endpoint's input JSON Schema,
and the ways a caller can get a request wrong (values, bodies, headers, query parameters, JSON-RPC
envelopes).

Requests are built as JSON *text*, not Python values: ``Raw`` pieces go into it exactly as written, so
a request can hold what no JSON encoder writes (``NaN``, ``10**400``, ``"\\ud800"``, arrays nested
thousands deep, a key given twice).
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

# ------------------------------------------------------------------------------------------ raw JSON


class Raw(str):
    """JSON text that goes into a request exactly as written."""

    __slots__ = ()


def to_json(value: Any) -> str:
    """``value`` as JSON text; ``Raw`` pieces verbatim; strings holding lone surrogates as ``\\u``
    escapes (the only way JSON can carry them), other text as UTF-8."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{to_json(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(item) for item in value) + "]"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(value, ensure_ascii=True)
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, allow_nan=False)


def nested(depth: int, kind: str = "array") -> Raw:
    """An array (or object) nested ``depth`` levels deep."""
    if kind == "array":
        return Raw("[" * depth + "]" * depth)
    return Raw('{"a":' * depth + "0" + "}" * depth)


# ------------------------------------------------------------------------------------- valid inputs

#: Fields whose value is work, waiting or a file on the worker (a loop count, a sleep, a path the
#: function writes): valid draws keep them small or empty, and no mutation puts a large valid number in
#: them, so that no example keeps a worker busy for long. Everything else is drawn from the schema as is.
WORK = frozenset({"repeat", "steps", "n", "size"})
WAIT = frozenset({"delay", "seconds", "after", "pause"})
FILES = frozenset({"marker"})
COSTLY = WORK | WAIT | FILES

#: The limits every input obeys on every front (docs: gateway/fastagentic_gateway/validation.py): a valid
#: draw stays inside them.
MAX_DEPTH = 32
MIN_INT, MAX_INT = -(2**63), 2**64 - 1


def tame(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its costly fields bounded (and required, so that no slow default applies)."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            properties = node.get("properties")
            if isinstance(properties, dict):
                costly = sorted(COSTLY & properties.keys())
                for name in costly:
                    if name in WORK:
                        properties[name] = {"type": "integer", "minimum": 0, "maximum": 3}
                    elif name in WAIT:
                        properties[name] = {"type": "number", "minimum": 0, "maximum": 0.01}
                    else:  # nothing to write to: null where allowed, else the empty string
                        allows_null = '"null"' in json.dumps(properties[name])
                        properties[name] = {"type": "null"} if allows_null else {"const": ""}
                if costly:
                    node["required"] = sorted({*node.get("required", []), *costly})
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    return schema


def within_limits(value: Any, depth: int = 0) -> bool:
    if isinstance(value, dict):
        return depth < MAX_DEPTH and all(within_limits(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return depth < MAX_DEPTH and all(within_limits(v, depth + 1) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return MIN_INT <= value <= MAX_INT
    return True


@functools.cache
def _valid(schema_json: str) -> st.SearchStrategy[Any]:
    return from_schema(tame(json.loads(schema_json))).filter(within_limits)


def valid_input(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Inputs the schema accepts (and that stay within the gateway's limits), costly fields tamed."""
    return _valid(json.dumps(schema, sort_keys=True))


# ------------------------------------------------------------------------------------- wrong values

BIG = Raw("1" + "0" * 400)  # 10**400: beyond a double, beyond 64 bits

#: Values that are wrong for any field, or out of every limit: each one, put anywhere in an input, must
#: be refused with a client error (or, where the schema allows anything, accepted), never a 5xx. No
#: valid large number is among them: a large loop count or sleep is a slow worker, not a finding.
NASTY: list[tuple[str, Any]] = [
    ("null", None),
    ("true", True),
    ("minus one", -1),
    ("a fraction", 0.25),
    ("empty string", ""),
    ("empty array", []),
    ("empty object", {}),
    ("10**400", BIG),
    ("-10**400", Raw("-" + BIG)),
    ("1e400", Raw("1e400")),
    ("-1e400", Raw("-1e400")),
    ("1e-400", Raw("1e-400")),
    ("2**63", 2**63),  # fits 64 bits unsigned (the gateway's limit), not a signed 64-bit column
    ("2**64", 2**64),
    ("-2**63-1", -(2**63) - 1),
    ("NaN", Raw("NaN")),
    ("Infinity", Raw("Infinity")),
    ("-Infinity", Raw("-Infinity")),
    ("lone high surrogate", "\ud800"),
    ("lone low surrogate", "x\udfffy"),
    ("NUL", "a\x00b"),
    ("bidi override", "\u202eevil\u202c"),
    ("BOM", "\ufeffx"),
    ("noncharacter", "\uffff\ufffe"),
    ("astral", "\U0001f600\U000e0001"),
    ("combining", "e" + "\u0301" * 50),
    ("control characters", "".join(map(chr, range(32)))),
    ("100 kB string", "x" * 100_000),
    ("900 kB string", "é" * 450_000),
    ("over 1 MiB", "x" * 1_100_000),
    ("100k-item array", Raw("[" + ",".join(["0"] * 100_000) + "]")),
    ("array nested 33 deep", nested(33)),
    ("object nested 34 deep", nested(34, "object")),
    ("array nested 101 deep", nested(101)),
    ("object nested 101 deep", nested(101, "object")),
    ("array nested 1000 deep", nested(1000)),
    ("array nested 3000 deep", nested(3000)),
    ("object nested 3000 deep", nested(3000, "object")),
    ("array nested 5000 deep", nested(5000)),
    ("duplicate key", Raw('{"a":1,"a":2}')),
    ("lone surrogate key", {"\udc00": 1}),
]


#: Nasty values that are wrong for every field, whatever its type.
WRONG_ANYWHERE: list[Any] = [Raw("NaN"), BIG, nested(3000), [None], {"": None}]


def nasty_values() -> st.SearchStrategy[Any]:
    generated = st.one_of(
        st.integers(34, 5000).map(nested),
        st.integers(34, 3000).map(lambda depth: nested(depth, "object")),
        st.integers(65, 1400).map(lambda bits: 2**bits),
        st.text(st.characters(codec=None, categories=["Cs", "Co", "Cc", "Cf", "Mn"]), min_size=1),
        st.text(min_size=1),
    )
    return st.sampled_from([value for _, value in NASTY]) | generated


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``value``: the root, then each key and index, depth first."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def put(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    value = copy.copy(value)
    value[path[0]] = put(value[path[0]], path[1:], new)
    return value


def drop(value: Any, path: tuple[Any, ...]) -> Any:
    value = copy.copy(value)
    if len(path) == 1:
        del value[path[0]]
    else:
        value[path[0]] = drop(value[path[0]], path[1:])
    return value


ODD_KEYS = ["", "__proto__", "$ref", "\u0000", "\ud800", "é" * 300, "a.b", "[0]"]


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> str:
    """``value`` with one thing wrong, as JSON text: a value replaced by a nasty one, a key dropped, an
    odd key added. A costly field (``COSTLY``) gets no value that would be valid there."""
    where = draw(st.sampled_from(paths(value)))
    how = draw(st.sampled_from(["replace", "drop", "add"]))
    costly = any(isinstance(step, str) and step in COSTLY for step in where)
    if how == "drop" and where and isinstance(value, dict):
        return to_json(drop(value, where))
    if how == "add":
        container = value
        for step in where:
            container = container[step]
        if isinstance(container, dict):
            key = draw(st.sampled_from(ODD_KEYS) | st.text(max_size=8))
            return to_json(put(value, where, {**container, key: draw(nasty_values())}))
    # In a costly field a small valid number is not wrong, only slow, and a string may be a path the
    # worker writes to: those get a value that is wrong for any field instead.
    nasty = draw(st.sampled_from(WRONG_ANYWHERE) if costly else nasty_values())
    return to_json(put(value, where, nasty))


# ----------------------------------------------------------------------------- bodies, headers, params

#: Request bodies that are not (one) JSON document in UTF-8, or that are JSON no endpoint wants.
ODD_BODIES: list[bytes] = [
    b"",
    b" \n",
    b"\xff",
    b"\x00",
    b"\xfe\xff\x00{\x00}",
    "{}".encode("utf-16"),  # with its BOM
    '{"a": "é"}'.encode("utf-16-le"),
    b"\xef\xbb\xbf{}",  # UTF-8 BOM
    b'{"a": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8 (CESU-8): not UTF-8
    b'{"a": "\xc3"}',  # a truncated UTF-8 sequence
    b"null",
    b"true",
    b"0",
    b'"x"',
    b"[]",
    b"[{}]",
    b"{",
    b'{"a":',
    b"{]",
    b"{'a': 1}",
    b'{"a": 1} {"b": 2}',
    b'{"a": 1}\x00',
    b"NaN",
    b"Infinity",
    BIG.encode(),
    b"1e400",
    nested(3000).encode(),
    nested(100_000).encode(),
    b"[" * 50_000,
    b"x" * 1_100_000,
]


def odd_bodies() -> st.SearchStrategy[bytes]:
    return st.sampled_from(ODD_BODIES) | st.binary(max_size=64)


def reencoded(body: bytes) -> st.SearchStrategy[bytes]:
    """The same JSON in an encoding nobody asked for."""
    text = body.decode()
    return st.sampled_from(
        [
            text.encode("utf-16"),
            text.encode("utf-16-be"),
            text.encode("utf-32"),
            b"\xef\xbb\xbf" + body,
            text.encode("latin-1", errors="replace"),
        ]
    )


CONTENT_TYPES: list[str | bytes | None] = [
    None,
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=x",
    "application/json; charset=utf-16",
    "application/json; charset=nope",
    "application/xml",
    "*/*",
    "",
    ";;;",
    b"application/json\xff",
]


def content_types() -> st.SearchStrategy[str | bytes | None]:
    return st.sampled_from(CONTENT_TYPES)


#: Header values no caller should send: empty, long, not ASCII, not Latin-1 (as raw UTF-8 bytes). Not
#: what HTTP/1.1 itself forbids (NUL, DEL, edge whitespace): the client library refuses to send those, or
#: the HTTP server answers them before the gateway sees the request.
ODD_HEADER_VALUES: list[str | bytes] = [
    "",
    "a b",
    "x",
    "0",
    "-1",
    "1" + "0" * 400,
    "NaN",
    "inf",
    "1e999",
    "x" * 8000,
    b"\xff\xfe",
    "é".encode(),
    "\U0001f600".encode(),
    "2025-11-25, 2026-07-28",
]


def header_values() -> st.SearchStrategy[str | bytes]:
    printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
    return st.sampled_from(ODD_HEADER_VALUES) | printable.filter(lambda value: value == value.strip())


#: Query parameter values: not numbers, too large numbers, empty, escapes, odd unicode.
ODD_QUERY_VALUES = [
    "",
    "x",
    "-1",
    "0",
    "1.5",
    "NaN",
    "Infinity",
    "1e3",
    " 1",
    "0x10",
    str(10**12),
    str(2**31),
    str(2**63),
    str(10**400),
    "\x00",
    "é",
    "[]",
    "true",
]


def query_values() -> st.SearchStrategy[str]:
    return st.sampled_from(ODD_QUERY_VALUES) | st.text(max_size=12)


#: Path segments where an id or a name goes.
ODD_IDS = [
    "x",
    "run_x",
    "run_" + "0" * 32,
    "run_" + "f" * 33,
    "..",
    "%2e%2e",
    "%00",
    "%ff",
    "%ed%a0%80",
    "é",
    "%F0%9F%98%80",
    "a" * 5000,
    "1" + "0" * 400,
    "null",
    "-1",
    " ",
    "%20",
    "a%2Fb",
    "tasks",
    "v1",
]


def ids() -> st.SearchStrategy[str]:
    return st.sampled_from(ODD_IDS) | st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#%"),
        min_size=1,
        max_size=20,
    )


# --------------------------------------------------------------------------------- JSON-RPC envelopes

#: Ids JSON-RPC 2.0 does not allow (an id is a string, a number or null; MCP forbids null and
#: fractions): a request carrying one is an invalid request, answered with an error whose id is null.
ODD_RPC_IDS: list[Any] = [[], {}, True, False, 1.5, None, [1], {"id": 1}, BIG, Raw("NaN")]
#: ``jsonrpc`` members that are not "2.0".
ODD_JSONRPC: list[Any] = ["1.0", "2", 2.0, 2, "", None, "2.0 ", [], {}]


@st.composite
def broken_envelopes(draw: st.DrawFn, method: str, params: Any) -> tuple[str, str]:
    """A JSON-RPC request with one thing wrong in its envelope, and what is wrong. (A request whose id
    is odd is still a request: it must be answered, not treated as a notification.)"""
    envelope: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    wrong = draw(
        st.sampled_from(
            [
                "odd id",
                "no jsonrpc",
                "wrong jsonrpc",
                "method not a string",
                "no method",
                "params not structured",
                "unknown method",
                "extra member",
                "batch",
            ]
        )
    )
    if wrong == "odd id":
        envelope["id"] = draw(st.sampled_from(ODD_RPC_IDS))
    elif wrong == "no jsonrpc":
        del envelope["jsonrpc"]
    elif wrong == "wrong jsonrpc":
        envelope["jsonrpc"] = draw(st.sampled_from(ODD_JSONRPC))
    elif wrong == "method not a string":
        envelope["method"] = draw(st.sampled_from([None, 1, [], {}, True, [method]]))
    elif wrong == "no method":
        del envelope["method"]
    elif wrong == "params not structured":
        envelope["params"] = draw(st.sampled_from(["x", 1, True, Raw("NaN"), BIG]))
    elif wrong == "unknown method":
        envelope["method"] = draw(
            st.sampled_from(["", "nope", method.upper(), method + "/", "rpc.discover", "\ud800", "é" * 100])
            | st.text(max_size=20)
        )
    elif wrong == "extra member":
        envelope[draw(st.sampled_from(["id2", "", "\ud800", "METHOD"]))] = draw(nasty_values())
    else:
        return to_json([envelope, envelope]), wrong
    return to_json(envelope), wrong
