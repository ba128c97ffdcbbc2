"""Hostile and broken input on the MCP front, in both revisions: a JSON-RPC error for each (the right
code, a short message, ``id: null`` when the request's id cannot be read), never a 5xx, Python's text in
a body, a traceback in the log, or silence (``202``) for a request that is owed an answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import Gateway
from tests.e2e.mcp_support import (
    HEADERS,
    LEGACY,
    MODERN,
    TASKS,
    client,
    modern_headers,
    modern_request,
    open_legacy_session,
    session_headers,
    sse_messages,
)

PYTHON_TEXT = ("validation error for", "input_value=", "Traceback", "pydantic.dev", "errors.pydantic")
#: How a raw request is sent: a 2025-11-25 session, a 2026-07-28 request answered with one JSON body
#: (``ping``: the quick path), and one that may stream (``tools/call``).
REVISIONS = ["2025-11-25", "2026-07-28 quick", "2026-07-28"]

PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
#: Bodies that are JSON but not one JSON-RPC message, and what the answer names.
MALFORMED: dict[str, tuple[Any, str]] = {
    "no jsonrpc": ({"id": 1, "method": "ping"}, '"jsonrpc"'),
    "jsonrpc 1.0": ({**PING, "jsonrpc": "1.0"}, '"jsonrpc"'),
    "jsonrpc a number": ({**PING, "jsonrpc": 2.0}, '"jsonrpc"'),
    "an array": ([PING], "batch"),
    "an empty batch": ([], "batch"),
    "a string": ("ping", "object"),
    "a number": (3, "object"),
    "null": (None, "object"),
    "no method": ({"jsonrpc": "2.0", "id": 1}, '"method"'),
    "method a number": ({**PING, "method": 5}, '"method"'),
    "method null": ({**PING, "method": None}, '"method"'),
    "params an array": ({**PING, "params": [1]}, '"params"'),
    "params a string": ({**PING, "params": "x"}, '"params"'),
    "id an array": ({**PING, "id": []}, '"id"'),
    "id an object": ({**PING, "id": {}}, '"id"'),
    "id true": ({**PING, "id": True}, '"id"'),
    "id a fraction": ({**PING, "id": 1.5}, '"id"'),
    "id null": ({**PING, "id": None}, '"id"'),
    "a response without id": ({"jsonrpc": "2.0", "result": {}}, '"id"'),
    "an error that is not one": ({"jsonrpc": "2.0", "id": 1, "error": 5}, '"error"'),
}


@pytest.fixture(scope="module")
def http(served_mcp: Gateway) -> Iterator[httpx.Client]:
    with served_mcp.client() as http:
        yield http


@pytest.fixture(scope="module")
def session(http: httpx.Client) -> dict[str, str]:
    """The headers of one 2025-11-25 session, shared by the module's raw requests."""
    return session_headers(open_legacy_session(http))


def headers_for(revision: str, session: dict[str, str], method: str = "ping") -> dict[str, str]:
    if revision == "2025-11-25":
        return session
    if revision == "2026-07-28 quick":
        return modern_headers("ping")
    return modern_headers(method)


def clean(response: httpx.Response) -> httpx.Response:
    assert response.status_code < 500, response.text
    assert not any(text in response.text for text in PYTHON_TEXT), response.text
    return response


def refusal(response: httpx.Response, status: int) -> dict[str, Any]:
    """The JSON-RPC error a request was refused with, checked for shape: JSON, no id, a short message."""
    clean(response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None, body
    error: dict[str, Any] = body["error"]
    assert isinstance(error["code"], int) and isinstance(error["message"], str), body
    assert len(error["message"]) < 200, error
    return error


def answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message a POST was answered with, as one JSON body or at the end of an SSE stream."""
    clean(response)
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        messages = [m for _, m in sse_messages(response.text.splitlines()) if m is not None]
        return messages[-1]
    message: dict[str, Any] = response.json()
    return message


# ---------------------------------------------------------------- envelopes


@pytest.mark.parametrize("case", sorted(MALFORMED))
@pytest.mark.parametrize("revision", REVISIONS)
def test_a_malformed_envelope_is_an_invalid_request(
    http: httpx.Client, session: dict[str, str], revision: str, case: str
) -> None:
    body, named = MALFORMED[case]
    response = http.post("/mcp", content=json.dumps(body), headers=headers_for(revision, session))
    error = refusal(response, 400)
    assert error["code"] == types.INVALID_REQUEST, error
    assert named in error["message"], error


@pytest.mark.parametrize("revision", REVISIONS)
def test_a_body_that_is_not_json_is_a_parse_error(
    http: httpx.Client, session: dict[str, str], revision: str
) -> None:
    for body in (
        b'{"jsonrpc":',
        b"",
        b"\xff",
        b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": NaN}}',
    ):
        error = refusal(http.post("/mcp", content=body, headers=headers_for(revision, session)), 400)
        assert error["code"] == types.PARSE_ERROR, (body, error)
        assert error["message"].startswith("Parse error"), error
    deep = (
        b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": ' + b"[" * 3000 + b"]" * 3000 + b"}}"
    )
    error = refusal(http.post("/mcp", content=deep, headers=headers_for(revision, session)), 400)
    assert error == {"code": types.PARSE_ERROR, "message": "Parse error: the JSON is nested too deeply"}


def test_well_formed_messages_still_pass(http: httpx.Client, session: dict[str, str]) -> None:
    """What the check lets through: requests (null params too), notifications, a client's responses."""
    assert answer(http.post("/mcp", json={**PING, "params": None}, headers=session))["result"] == {}
    assert answer(http.post("/mcp", json={**PING, "id": "a string"}, headers=session))["id"] == "a string"
    notification = {
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {"progressToken": 1, "progress": 1},
    }
    assert http.post("/mcp", json=notification, headers=session).status_code == 202
    response = {"jsonrpc": "2.0", "id": 99, "result": {}}
    assert http.post("/mcp", json=response, headers=session).status_code == 202
    error = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "what?"}}
    assert http.post("/mcp", json=error, headers=session).status_code == 202
    discover = modern_request("server/discover")
    modern = http.post("/mcp", json=discover, headers=modern_headers("server/discover"))
    assert modern.status_code == 200 and modern.json()["result"]["supportedVersions"], modern.text


# ---------------------------------------------------------------- transport refusals


def _post(http: httpx.Client, headers: dict[str, str], **changes: str | None) -> httpx.Response:
    sent = {name: value for name, value in {**headers, **changes}.items() if value is not None}
    return http.post("/mcp", content=json.dumps(PING), headers=sent)


@pytest.mark.parametrize("revision", REVISIONS)
def test_transport_refusals_are_json_rpc_errors_with_their_http_status(
    http: httpx.Client, session: dict[str, str], revision: str
) -> None:
    headers = headers_for(revision, session)
    assert refusal(_post(http, headers, **{"Content-Type": "text/plain"}), 400)["code"] == -32600
    assert "Content-Type" in refusal(_post(http, headers, **{"Content-Type": None}), 400)["message"]
    assert "Not Acceptable" in refusal(_post(http, headers, Accept="text/html"), 406)["message"]
    assert refusal(_post(http, headers, Accept=""), 406)["code"] == -32600
    too_large = json.dumps({**PING, "params": {"x": "y" * 1_100_000}}).encode()
    assert "too large" in refusal(http.post("/mcp", content=too_large, headers=headers), 413)["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is met while reading
        yield too_large[:600_000]
        yield too_large[600_000:]

    assert "too large" in refusal(http.post("/mcp", content=chunks(), headers=headers), 413)["message"]
    assert refusal(_post(http, headers, Origin="http://evil.example"), 403)["code"] == -32600
    assert refusal(_post(http, headers, Host="rebound.example"), 421)["code"] == -32600


def test_a_2026_request_that_is_not_a_post_is_a_json_rpc_405(http: httpx.Client) -> None:
    for method in ("GET", "DELETE", "PUT"):
        response = http.request(method, "/mcp", headers=modern_headers("ping"))
        assert refusal(response, 405)["code"] == -32600
        assert response.headers["allow"] == "POST"


def test_an_unknown_session_is_a_json_rpc_404(http: httpx.Client) -> None:
    response = http.post(
        "/mcp", json=PING, headers={**HEADERS, "Mcp-Session-Id": "nope", "MCP-Protocol-Version": LEGACY}
    )
    assert refusal(response, 404)["code"] == -32600


# ---------------------------------------------------------------- methods first, params second


@pytest.mark.parametrize("extension", [False, True])
@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("tasks/list", {"cursor": 5}),
        ("tasks/list", {"cursor": "run_x"}),
        ("tasks/list", {}),
        ("tasks/result", {"taskId": 5}),
        ("tasks/result", {}),
    ],
)
def test_2026_task_methods_the_extension_lacks_are_not_found_whatever_their_params(
    http: httpx.Client, method: str, params: dict[str, Any], extension: bool
) -> None:
    body = modern_request(method, params)
    if extension:
        body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = {"extensions": {TASKS: {}}}
    response = http.post("/mcp", json=body, headers=modern_headers(method))
    clean(response)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == types.METHOD_NOT_FOUND


def test_methods_not_served_are_not_found_whatever_their_params(
    http: httpx.Client, session: dict[str, str]
) -> None:
    for method, params in [
        ("tasks/update", {"taskId": 5}),  # the 2026 extension's, not 2025-11-25's
        ("sampling/createMessage", {"x": 1}),  # the client's method, not the server's
    ]:
        body = {"jsonrpc": "2.0", "id": 3, "method": method, "params": params}
        error = answer(http.post("/mcp", json=body, headers=session))["error"]
        assert error["code"] == types.METHOD_NOT_FOUND, (method, error)
    bad = answer(
        http.post("/mcp", json={**PING, "method": "tasks/get", "params": {"taskId": 5}}, headers=session)
    )
    assert bad["error"]["code"] == types.INVALID_PARAMS  # a method that is served: its params are read


# ---------------------------------------------------------------- argument values


def _call_body(revision: str, method: str, name: str, arguments: bytes) -> bytes:
    envelope = json.dumps(modern_request(method)["params"]["_meta"]).encode()
    meta = b', "_meta": ' + envelope if revision != "2025-11-25" else b""
    return (
        b'{"jsonrpc": "2.0", "id": 5, "method": "'
        + method.encode()
        + b'", "params": {"name": "'
        + name.encode()
        + b'", "arguments": '
        + arguments
        + meta
        + b"}}"
    )


LONE_SURROGATES = {
    "a tool argument, escaped": ("tools/call", "shout", b'{"text": "abc\\ud800"}'),
    "a tool argument, a low one escaped": ("tools/call", "shout", b'{"text": "\\udc00abc"}'),
    "a tool argument, UTF-8 encoded": ("tools/call", "shout", b'{"text": "abc\xed\xa0\x80"}'),
    "a prompt argument, escaped": ("prompts/get", "review", b'{"code": "\\ud83d"}'),
    "an argument name, escaped": ("tools/call", "shout", b'{"\\ud800": "x"}'),
}


@pytest.mark.parametrize("case", sorted(LONE_SURROGATES))
@pytest.mark.parametrize("revision", ["2025-11-25", "2026-07-28"])
def test_a_lone_surrogate_is_a_parse_error(
    http: httpx.Client, session: dict[str, str], revision: str, case: str
) -> None:
    """JSON text is Unicode: a string holding half a surrogate pair is not (the parse layer refuses it, in
    both revisions alike, before any call is built)."""
    method, name, arguments = LONE_SURROGATES[case]
    headers = session if revision == "2025-11-25" else modern_headers(method, name)
    response = http.post("/mcp", content=_call_body(revision, method, name, arguments), headers=headers)
    error = refusal(response, 400)
    assert error["code"] == types.PARSE_ERROR, error
    assert "surrogate" in error["message"] or "UTF-8" in error["message"], error


def test_a_surrogate_pair_is_text(http: httpx.Client, session: dict[str, str]) -> None:
    body = _call_body("2025-11-25", "tools/call", "shout", b'{"text": "ok \\ud83d\\ude00"}')
    result = answer(http.post("/mcp", content=body, headers=session))["result"]
    assert result["content"][0]["text"] == "OK \U0001f600"


DEEP = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]


@pytest.mark.parametrize("mode", ["legacy", MODERN])
@pytest.mark.parametrize(
    ("tool", "arguments", "problem"),
    [
        ("add", {"a": 10**400, "b": 1}, "$.a: integer out of range"),
        ("add", {"a": -(2**63) - 1, "b": 1}, "$.a: integer out of range"),
        ("profile", {"name": "x", "tags": DEEP}, "nested deeper than 32 levels"),
    ],
)
async def test_a_tool_argument_beyond_the_limits_is_an_error_result(
    served_mcp: Gateway, mode: str, tool: str, arguments: dict[str, Any], problem: str
) -> None:
    async with client(served_mcp, mode) as mcp:
        result = await mcp.call_tool(tool, arguments)
        fine = await mcp.call_tool("add", {"a": 2**63 - 1, "b": 0})
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith("validation_error: ") and problem in text, text
    assert not fine.is_error


@pytest.mark.parametrize("mode", ["legacy", MODERN])
@pytest.mark.parametrize(
    ("strict", "problem"),
    [
        ("1" + "0" * 400, "integer out of range"),
        ("[" * 40 + "]" * 40, "nested deeper than 32 levels"),
        ("[" * 3000 + "]" * 3000, "$.strict"),  # too deep to read as JSON: the string, not a boolean
        ('"\\ud800"', "$.strict"),  # JSON holding a lone surrogate escape: the string itself
    ],
)
async def test_a_prompt_argument_beyond_the_limits_is_invalid_params(
    served_mcp: Gateway, mode: str, strict: str, problem: str
) -> None:
    async with client(served_mcp, mode) as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.get_prompt("review", {"code": "x = 1", "strict": strict})
    error = caught.value.error
    assert error.code == types.INVALID_PARAMS, error
    assert problem in error.message, error
    assert not any(text in error.message for text in PYTHON_TEXT)


# ---------------------------------------------------------------- after all that


def test_hostile_requests_leave_no_traceback_and_the_gateway_still_serves(
    served_mcp: Gateway, http: httpx.Client, session: dict[str, str]
) -> None:
    for body, _ in MALFORMED.values():
        for revision in REVISIONS:
            http.post("/mcp", content=json.dumps(body), headers=headers_for(revision, session))
    for method, name, arguments in LONE_SURROGATES.values():
        http.post(
            "/mcp", content=_call_body(MODERN, method, name, arguments), headers=modern_headers(method, name)
        )
    log = served_mcp.output()
    assert "Traceback" not in log
    assert not [line for line in log.splitlines() if " ERROR " in line], log
    call = modern_request("tools/call", {"name": "add", "arguments": {"a": 20, "b": 22}})
    response = http.post("/mcp", json=call, headers=modern_headers("tools/call", "add"))
    assert response.json()["result"]["structuredContent"] == {"result": 42}
    assert answer(http.post("/mcp", json=PING, headers=session))["result"] == {}
