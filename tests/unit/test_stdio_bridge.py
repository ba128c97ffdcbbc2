"""The stdio bridge's relaying, against an httpx transport that records what the gateway would receive."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx

from fastagentic.mcp_bridge import StdioBridge, header_value

URL = "http://gateway.test/mcp"


class Gateway:
    """Answers like /mcp would: SSE for requests, 202 for notifications; records each request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "DELETE":
            return httpx.Response(200)
        body = json.loads(request.content)
        if "id" not in body:
            return httpx.Response(202)
        if body["method"] == "initialize":
            result = {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "serverInfo": {"name": "g", "version": "1"},
            }
            stream = f"id: p1\ndata: \n\nid: e1\nevent: message\ndata: {json.dumps({'jsonrpc': '2.0', 'id': body['id'], 'result': result})}\n\n"
            return httpx.Response(
                200, headers={"content-type": "text/event-stream", "mcp-session-id": "S1"}, content=stream
            )
        if body["method"] == "boom":
            error = {"jsonrpc": "2.0", "id": None, "error": {"code": -32602, "message": "bad"}}
            return httpx.Response(400, json=error)
        progress = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}
        answer = {"jsonrpc": "2.0", "id": body["id"], "result": {"echo": body["method"]}}
        stream = f"data: {json.dumps(progress)}\n\ndata: {json.dumps(answer)}\n\n"
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stream)


async def relay(*messages: dict[str, Any]) -> tuple[list[dict[str, Any]], Gateway]:
    gateway = Gateway()
    stdin = io.BytesIO(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
    stdout = io.BytesIO()
    bridge = StdioBridge(URL, stdin=stdin, stdout=stdout, transport=httpx.MockTransport(gateway.handler))
    await bridge.run()
    return [json.loads(line) for line in stdout.getvalue().splitlines()], gateway


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}}


async def test_legacy_session_id_and_version_go_on_every_later_request() -> None:
    out, gateway = await relay(INITIALIZE, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    assert [m.get("id") for m in out] == [1, None, 2]  # the answer, then a notification and the answer
    tools_list = gateway.requests[1]
    assert tools_list.headers["mcp-session-id"] == "S1"
    assert tools_list.headers["mcp-protocol-version"] == "2025-11-25"
    assert gateway.requests[-1].method == "DELETE"  # stdin closed: the session ends


async def test_2026_request_gets_its_routing_headers_from_its_envelope() -> None:
    envelope = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    call = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "héllo", "_meta": envelope}}
    out, gateway = await relay(call)
    headers = gateway.requests[0].headers
    assert headers["mcp-protocol-version"] == "2026-07-28"
    assert headers["mcp-method"] == "tools/call"
    assert headers["mcp-name"] == header_value("héllo") == "=?base64?aMOpbGxv?="
    assert "mcp-session-id" not in headers
    assert out[-1] == {"jsonrpc": "2.0", "id": 5, "result": {"echo": "tools/call"}}


async def test_error_answered_before_the_id_was_read_gets_the_request_id() -> None:
    out, _ = await relay({"jsonrpc": "2.0", "id": 9, "method": "boom"})
    assert out == [{"jsonrpc": "2.0", "id": 9, "error": {"code": -32602, "message": "bad"}}]


async def test_a_line_that_is_not_json_is_a_parse_error() -> None:
    gateway = Gateway()
    stdout = io.BytesIO()
    bridge = StdioBridge(
        URL, stdin=io.BytesIO(b"{nope\n"), stdout=stdout, transport=httpx.MockTransport(gateway.handler)
    )
    await bridge.run()
    assert json.loads(stdout.getvalue())["error"]["code"] == -32700
    assert gateway.requests == []


async def test_extra_headers_go_on_every_request() -> None:
    gateway = Gateway()
    stdin = io.BytesIO(json.dumps(INITIALIZE).encode() + b"\n")
    bridge = StdioBridge(
        URL,
        headers={"Authorization": "Bearer t0ken"},
        stdin=stdin,
        stdout=io.BytesIO(),
        transport=httpx.MockTransport(gateway.handler),
    )
    await bridge.run()
    assert [request.headers["authorization"] for request in gateway.requests] == ["Bearer t0ken"] * 2


async def test_2026_cancel_of_a_finished_request_is_not_posted() -> None:
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}}
    out, gateway = await relay(cancel)
    assert out == []
    assert gateway.requests == []  # no session to tell, and no stream to close
