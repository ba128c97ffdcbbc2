"""MCP, fuzzed, in both revisions: 2025-11-25 (a session: ``initialize``, then ``Mcp-Session-Id``) and
2026-07-28 (stateless: the ``_meta`` envelope and the ``MCP-Protocol-Version`` / ``Mcp-Method`` /
``Mcp-Name`` headers), against one gateway serving tests/workers/mcp_worker.py.

Every answer to a POST is a JSON-RPC response (as JSON or as the last event of an SSE stream) with a
code among JSON-RPC's and MCP's own; a request that carries an ``id`` is always answered."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mcp.shared.inbound import encode_header_value

from . import checks
from .checks import INVALID_PARAMS, INVALID_REQUEST, MCP_CODES, METHOD_NOT_FOUND, PARSE_ERROR
from .harness import Answer, Served, fuzz, send, serve
from .strategies import (
    NASTY,
    ODD_BODIES,
    Raw,
    broken_envelopes,
    content_types,
    header_values,
    ids,
    mutated,
    nasty_values,
    odd_bodies,
    reencoded,
    to_json,
    valid_input,
)

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

WORKER = "tests.workers.mcp_worker:app"
LEGACY, MODERN = "2025-11-25", "2026-07-28"
ACCEPT = "application/json, text/event-stream"
HEADER_MISMATCH, RESOURCE_NOT_FOUND, MISSING_CAPABILITY = -32020, -32002, -32021
#: What wrong params may be answered with: invalid params, or invalid request (params not an object),
#: a parse error (what was put in is not JSON: NaN), a header that no longer agrees with the body.
WRONG_PARAMS = (INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, HEADER_MISMATCH)
#: How an error result starts when the gateway refused the call, or the worker could not decode the
#: arguments the gateway accepted: never for valid arguments.
REFUSALS = ("validation_error", "InputError", "no_worker", "internal")
#: Tools whose function raises by design: their result is ``isError: true``.
FAILING = {"explode", "fragile"}
PROMPTS = ["review", "conversation", "trip"]
RESOURCE_URIS = ["config://app", "notes://garden", "blobs://b"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve(tmp_path_factory, WORKER)


class Mcp:
    """``/mcp`` in one revision, framed as a well-behaved client frames it, except for what a test
    breaks on purpose."""

    def __init__(self, served: Served, revision: str) -> None:
        self.http = served.http
        self.revision = revision
        self.session_id: str | None = None

    @contextmanager
    def connected(self) -> Iterator[Mcp]:
        """2025-11-25: a fresh session (initialize + initialized) for the block, ended after it."""
        if self.revision == MODERN:
            yield self
            return
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": LEGACY,
                "capabilities": {},
                "clientInfo": {"name": "fuzz", "version": "1"},
            },
        }
        opened = send(self.http, "POST", "/mcp", body=json.dumps(init), headers=self._base())
        assert opened.status == 200, f"initialize failed:\n{opened}"
        self.session_id = opened.headers["mcp-session-id"]
        ack = send(
            self.http,
            "POST",
            "/mcp",
            body='{"jsonrpc": "2.0", "method": "notifications/initialized"}',
            headers=self.headers("notifications/initialized"),
        )
        assert ack.status == 202, f"initialized failed:\n{ack}"
        try:
            yield self
        finally:
            self.http.delete("/mcp", headers=dict(self.headers("")))  # type: ignore[arg-type]
            self.session_id = None

    def _base(self) -> list[tuple[str, str | bytes]]:
        return [("Accept", ACCEPT), ("Content-Type", "application/json")]

    def headers(self, method: str, name: str | None = None) -> list[tuple[str, str | bytes]]:
        headers = self._base()
        if self.revision == LEGACY:
            if self.session_id:
                headers += [("Mcp-Session-Id", self.session_id), ("MCP-Protocol-Version", LEGACY)]
            return headers
        headers += [("MCP-Protocol-Version", MODERN), ("Mcp-Method", method)]
        if name is not None:
            # A name no header can carry (a lone surrogate): the request goes without one.
            with contextlib.suppress(UnicodeEncodeError):
                headers.append(("Mcp-Name", encode_header_value(name)))
        return headers

    def params(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` with the 2026-07-28 envelope in ``_meta``."""
        if self.revision == LEGACY:
            return params
        envelope = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        return {**params, "_meta": envelope}

    def request(self, method: str, params: dict[str, Any], name: str | None = None) -> Answer:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": self.params(params)}
        return self.post(to_json(body), method, name)

    def post(self, body: str | bytes, method: str, name: str | None = None, **headers: str | bytes) -> Answer:
        sent = self.headers(method, name)
        replaced = {key.lower().replace("_", "-") for key in headers}
        sent = [(k, v) for k, v in sent if k.lower() not in replaced]
        sent += [(k.replace("_", "-"), v) for k, v in headers.items() if v is not None]
        return send(self.http, "POST", "/mcp", body=body, headers=sent)


@pytest.fixture(params=[LEGACY, MODERN])
def mcp(request: pytest.FixtureRequest, served: Served) -> Mcp:
    return Mcp(served, request.param)


def tools(served: Served) -> list[str]:
    return [*served.named("tool"), *served.named("agent")]


def as_prompt_arguments(value: dict[str, Any]) -> dict[str, str]:
    """Prompt arguments are strings in MCP; a non-string parameter is sent as its JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def test_the_worker_serves_what_the_suite_fuzzes(served: Served) -> None:
    assert set(PROMPTS) <= set(served.named("prompt"))
    assert set(tools(served)) >= FAILING


# ---------------------------------------------------------------------------------------- valid calls


@fuzz
@given(data=st.data())
def test_a_tool_call_with_valid_arguments_answers_its_result(
    mcp: Mcp, served: Served, data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(tools(served)), label="tool")
    arguments = data.draw(valid_input(served.schema(name)), label="arguments")
    with mcp.connected():
        answer = mcp.request("tools/call", {"name": name, "arguments": arguments}, name)
    response = checks.rpc_response(answer, MCP_CODES, request_id=1)
    assert "result" in response, f"valid arguments refused:\n{answer}"
    result = response["result"]
    if name in FAILING:
        assert result.get("isError"), f"a failing tool did not fail:\n{answer}"
    elif result.get("isError"):
        # The function may raise on some input (locate([]) does); the gateway may not refuse it.
        text = " ".join(block.get("text", "") for block in result.get("content", []))
        assert not text.startswith(REFUSALS), f"valid arguments refused:\n{answer}"


@fuzz
@given(data=st.data())
def test_a_prompt_with_valid_arguments_renders(mcp: Mcp, served: Served, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(PROMPTS), label="prompt")
    arguments = as_prompt_arguments(data.draw(valid_input(served.schema(name)), label="arguments"))
    with mcp.connected():
        answer = mcp.request("prompts/get", {"name": name, "arguments": arguments}, name)
    response = checks.rpc_response(answer, MCP_CODES, request_id=1)
    assert "result" in response, f"valid arguments refused:\n{answer}"


# -------------------------------------------------------------------------------------- wrong params


@fuzz
@given(data=st.data())
def test_a_tool_call_with_wrong_arguments_is_an_error_result_or_invalid_params(
    mcp: Mcp, served: Served, data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(tools(served)), label="tool")
    arguments = data.draw(valid_input(served.schema(name)), label="valid arguments")
    params = data.draw(mutated({"name": name, "arguments": arguments}), label="params")
    body = to_json({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": Raw(params)})
    if mcp.revision == MODERN:  # the envelope goes in whatever params became, when it is an object
        body = _with_envelope(body)
    with mcp.connected():
        answer = mcp.post(body, "tools/call", name)
    response = checks.rpc_response(answer, MCP_CODES, request_id=1, internal_ok=checks.failed_run)
    if "error" in response:
        assert response["error"]["code"] in WRONG_PARAMS, f"wrong arguments are invalid params:\n{answer}"


def test_every_nasty_argument_is_answered_with_a_result_or_invalid_params(served: Served) -> None:
    """The catalogue of nasty values, as an argument and as an extra argument of ``add``, as a prompt
    argument and as a resource URI, both revisions: a result (an error result when the value is wrong
    there) or an error of the wrong-params kind."""
    problems = []
    for revision in (LEGACY, MODERN):
        mcp = Mcp(served, revision)
        with mcp.connected():
            for label, nasty in NASTY:
                calls = [
                    ("tools/call", {"name": "add", "arguments": {"a": nasty, "b": 1}}, "add"),
                    ("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2, "c": nasty}}, "add"),
                    ("prompts/get", {"name": "review", "arguments": {"code": nasty}}, "review"),
                    ("resources/read", {"uri": nasty}, nasty if type(nasty) is str else None),
                ]
                for method, params, name in calls:
                    try:
                        response = checks.rpc_response(
                            mcp.request(method, params, name), MCP_CODES, request_id=1
                        )
                        if "error" in response:
                            assert response["error"]["code"] in (*WRONG_PARAMS, RESOURCE_NOT_FOUND), (
                                f"not invalid params: {response}"
                            )
                    except AssertionError as exc:
                        problems.append(f"[{revision}, {method}, {label}] {exc}")
    assert not problems, f"{len(problems)} problems:\n\n" + "\n\n".join(problems[:12])


@fuzz
@given(data=st.data())
def test_a_prompt_with_odd_arguments_renders_or_is_invalid_params(
    mcp: Mcp, served: Served, data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(PROMPTS), label="prompt")
    arguments = as_prompt_arguments(data.draw(valid_input(served.schema(name)), label="valid arguments"))
    params = data.draw(mutated({"name": name, "arguments": arguments}), label="params")
    body = to_json({"jsonrpc": "2.0", "id": 1, "method": "prompts/get", "params": Raw(params)})
    if mcp.revision == MODERN:
        body = _with_envelope(body)
    with mcp.connected():
        answer = mcp.post(body, "prompts/get", name)
    response = checks.rpc_response(answer, MCP_CODES, request_id=1, internal_ok=checks.failed_run)
    if "error" in response:
        assert response["error"]["code"] in WRONG_PARAMS, f"wrong arguments are invalid params:\n{answer}"


@fuzz
@given(
    uri=st.sampled_from(RESOURCE_URIS)
    | st.builds(
        lambda scheme, name: scheme + name, st.sampled_from(["notes://", "blobs://", "", "x:"]), ids()
    )
    | nasty_values()
)
def test_reading_odd_resource_uris_answers_or_is_not_found(mcp: Mcp, uri: Any) -> None:
    name = uri if isinstance(uri, str) and not isinstance(uri, Raw) else None
    with mcp.connected():
        answer = mcp.request("resources/read", {"uri": uri}, name)
    response = checks.rpc_response(answer, MCP_CODES, request_id=1, internal_ok=checks.failed_run)
    if "error" in response:
        assert response["error"]["code"] in (*WRONG_PARAMS, RESOURCE_NOT_FOUND), (
            f"an odd URI is not found / invalid params:\n{answer}"
        )


#: Methods beyond the calls, with params a client would send (a task id that does not exist; a prompt
#: argument whose completion is instant). ``tasks/result`` and ``logging/setLevel`` are 2025-11-25 only.
OTHER_METHODS: dict[str, dict[str, Any]] = {
    "tasks/get": {"taskId": "run_" + "0" * 32},
    "tasks/cancel": {"taskId": "run_" + "0" * 32},
    "tasks/list": {"cursor": "x"},
    "tasks/result": {"taskId": "run_" + "0" * 32},
    "completion/complete": {
        "ref": {"type": "ref/prompt", "name": "review"},
        "argument": {"name": "language", "value": "py"},
        "context": {"arguments": {"code": "x"}},
    },
    "logging/setLevel": {"level": "info"},
    "resources/templates/list": {"cursor": "x"},
    "prompts/list": {},
    "ping": {},
}
NAME_PARAMS = {"tasks/get": "taskId", "tasks/cancel": "taskId", "tasks/result": "taskId"}


@fuzz
@given(method=st.sampled_from(sorted(OTHER_METHODS)), data=st.data())
def test_other_methods_with_odd_params_answer_or_refuse_with_a_spec_error(
    mcp: Mcp, method: str, data: st.DataObject
) -> None:
    good = OTHER_METHODS[method]
    params = data.draw(mutated(good), label="params")
    body = to_json({"jsonrpc": "2.0", "id": 1, "method": method, "params": Raw(params)})
    if mcp.revision == MODERN:
        body = _with_envelope(body)
    name_key = NAME_PARAMS.get(method)
    with mcp.connected():
        answer = mcp.post(body, method, good[name_key] if name_key else None)
    response = checks.rpc_response(answer, MCP_CODES, request_id=1)
    if "error" in response:
        # A 2026-07-28 client that did not declare the tasks extension (this one) is told so first.
        extension = (MISSING_CAPABILITY,) if mcp.revision == MODERN and method.startswith("tasks/") else ()
        assert response["error"]["code"] in (*WRONG_PARAMS, METHOD_NOT_FOUND, *extension), (
            f"not a params error:\n{answer}"
        )


# ---------------------------------------------------------------------------------------- envelopes

#: What a request whose envelope is wrong in one way must be answered with (JSON-RPC 2.0, section 5.1).
ENVELOPE_CODES: dict[str, frozenset[int]] = {
    "odd id": frozenset({INVALID_REQUEST, PARSE_ERROR}),
    "no jsonrpc": frozenset({INVALID_REQUEST}),
    "wrong jsonrpc": frozenset({INVALID_REQUEST}),
    "method not a string": frozenset({INVALID_REQUEST}),
    "no method": frozenset({INVALID_REQUEST}),
    "params not structured": frozenset({INVALID_REQUEST, INVALID_PARAMS, PARSE_ERROR}),
    "unknown method": frozenset({METHOD_NOT_FOUND, INVALID_REQUEST, HEADER_MISMATCH}),
    "extra member": MCP_CODES,
    "batch": MCP_CODES,
}
#: Ids that are still ids (a number, null): the request may be served.
SERVABLE_IDS = ("1.5", "null", "1" + "0" * 400)


@fuzz
@given(
    method=st.sampled_from(["tools/list", "tools/call", "prompts/get", "resources/read", "ping"]),
    data=st.data(),
)
def test_a_request_with_a_broken_envelope_is_answered_with_a_json_rpc_error(
    mcp: Mcp, method: str, data: st.DataObject
) -> None:
    params = mcp.params({"name": "add", "arguments": {"a": 1, "b": 2}, "uri": "config://app"})
    body, wrong = data.draw(broken_envelopes(method, params), label="envelope")
    name = (
        "config://app"
        if method == "resources/read"
        else "add"
        if method in ("tools/call", "prompts/get")
        else None
    )
    with mcp.connected():
        answer = mcp.post(body, method, name)
    assert answer.body.strip(), f"a request ({wrong}) got no answer:\n{answer}"
    response = checks.rpc_response(answer, MCP_CODES)
    servable = wrong in ("extra member", "batch") or (wrong == "odd id" and _id_of(body) in SERVABLE_IDS)
    if "error" in response:
        # A parse error is right wherever a lone surrogate or NaN went in; a header mismatch in 2026-07-28.
        extra = {PARSE_ERROR, HEADER_MISMATCH} if mcp.revision == MODERN else {PARSE_ERROR}
        codes = MCP_CODES if servable else ENVELOPE_CODES[wrong] | extra
        assert response["error"]["code"] in codes, f"{wrong}: not the code JSON-RPC defines:\n{answer}"
    else:
        assert servable, f"{wrong}: a broken request was served:\n{answer}"


@fuzz
@given(data=st.data())
def test_a_body_that_is_not_a_json_rpc_message_is_a_parse_error_or_invalid_request(
    mcp: Mcp, data: st.DataObject
) -> None:
    valid = to_json({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": mcp.params({})}).encode()
    body = data.draw(odd_bodies() | reencoded(valid), label="body")
    content_type = data.draw(content_types(), label="content type")
    with mcp.connected():
        answer = mcp.post(body, "tools/list", Content_Type=content_type)  # type: ignore[arg-type]
    checks.answered(answer)
    if answer.status != 202:
        checks.rpc_response(answer, MCP_CODES)


def test_every_odd_body_is_a_parse_error_or_invalid_request(served: Served) -> None:
    problems = []
    for revision in (LEGACY, MODERN):
        mcp = Mcp(served, revision)
        with mcp.connected():
            for body in ODD_BODIES:
                try:
                    answer = mcp.post(body, "tools/list")
                    error = checks.rpc_error(answer, MCP_CODES)
                    assert error["code"] in (PARSE_ERROR, INVALID_REQUEST), f"not a parse error:\n{answer}"
                except AssertionError as exc:
                    problems.append(f"[{revision}] {exc}")
    assert not problems, "\n\n".join(problems)


# ------------------------------------------------------------------------------------------ headers


@fuzz
@given(
    header=st.sampled_from(
        [
            "MCP-Protocol-Version",
            "Mcp-Method",
            "Mcp-Name",
            "Mcp-Session-Id",
            "Accept",
            "Origin",
            "Last-Event-ID",
        ]
    ),
    value=header_values(),
    verb=st.sampled_from(["POST", "GET", "DELETE"]),
)
def test_odd_headers_are_refused_with_a_json_rpc_error(mcp: Mcp, header: str, value: Any, verb: str) -> None:
    with mcp.connected():
        body = to_json(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": mcp.params({"name": "add", "arguments": {"a": 1, "b": 2}}),
            }
        )
        headers = [(k, v) for k, v in mcp.headers("tools/call", "add") if k.lower() != header.lower()]
        headers.append((header, value))
        answer = send(
            mcp.http, verb, "/mcp", body=body if verb == "POST" else None, headers=headers, stream_seconds=1.0
        )
    checks.answered(answer)
    if verb == "POST" and answer.status != 202 and answer.body.strip():
        checks.rpc_response(answer, MCP_CODES)


@fuzz
@given(
    verb=st.sampled_from(["PUT", "PATCH", "OPTIONS", "HEAD", "GET", "DELETE"]),
    session=st.none() | ids().filter(lambda value: value == value.strip()),
)
def test_other_methods_and_unknown_sessions_are_client_errors(
    mcp: Mcp, verb: str, session: str | None
) -> None:
    headers = [("Accept", ACCEPT), ("MCP-Protocol-Version", mcp.revision)]
    headers += [("Mcp-Session-Id", session.encode())] if session else []
    checks.answered(send(mcp.http, verb, "/mcp", headers=headers, stream_seconds=1.0))


# ---------------------------------------------------------------------------------------- afterwards


def _with_envelope(body: str) -> str:
    """Put the 2026-07-28 envelope into ``params`` when they are an object (textually: the value may hold
    what no parser reads)."""
    envelope = '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
    marker = '"params":{'
    if marker in body:
        head, _, tail = body.partition(marker)
        return head + marker + envelope + ("," if not tail.startswith("}") else "") + tail
    return body


def _id_of(body: str) -> str:
    try:
        return json.dumps(json.loads(body)["id"])
    except (ValueError, KeyError, TypeError):
        return "?"


def test_afterwards_a_well_behaved_caller_is_still_served(served: Served) -> None:
    problems = checks.still_serves(served.http, "research", {"topic": "still here", "steps": 1, "delay": 0})
    for revision in (LEGACY, MODERN):
        mcp = Mcp(served, revision)
        with mcp.connected():
            answer = mcp.request("tools/call", {"name": "add", "arguments": {"a": 20, "b": 22}}, "add")
        try:
            response = checks.rpc_response(answer, MCP_CODES, request_id=1)
            assert response.get("result", {}).get("structuredContent") == {"result": 42}, (
                f"add fails:\n{answer}"
            )
        except AssertionError as exc:
            problems.append(f"[{revision}] {exc}")
    assert not problems, "\n\n".join(problems)


def test_afterwards_the_gateway_log_holds_no_traceback(served: Served) -> None:
    assert served.gateway.alive, "the gateway died"
    problems = checks.log_problems(served.log_since_start())
    assert not problems, "\n\n".join(problems)
