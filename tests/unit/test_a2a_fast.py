"""Which requests the A2A front's fast path takes; everything else is left to the SDK's handler."""

from __future__ import annotations

import json
from typing import Any

from a2a.server.routes import DefaultServerCallContextBuilder, create_jsonrpc_routes, create_rest_routes
from starlette.routing import BaseRoute, Route

from fastagentic_gateway.fronts.a2a.fast import FastPath

MESSAGE = {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}


def _fast() -> FastPath:
    routes: list[BaseRoute] = []
    json_rpc: set[int] = set()
    for prefix in ("/a2a", "/a2a/{agent}"):
        rpc_routes = create_jsonrpc_routes(object(), prefix, enable_v0_3_compat=True)  # type: ignore[arg-type]
        json_rpc.update(id(route) for route in rpc_routes)
        routes += rpc_routes
        routes += [
            r
            for r in create_rest_routes(object(), enable_v0_3_compat=True, path_prefix=prefix)  # type: ignore[arg-type]
            if isinstance(r, Route)
        ]
    return FastPath(None, None, None, None, DefaultServerCallContextBuilder(), routes, json_rpc)  # type: ignore[arg-type]


def _takes(path: str = "/a2a/ask", version: str | None = "1.0", **body: Any) -> bool:
    envelope: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": MESSAGE},
    }
    envelope.update(body)
    headers = [(b"a2a-version", version.encode())] if version else []
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    return _fast()._request(scope, json.loads(json.dumps(envelope))) is not None


def test_takes_new_messages_in_1_0() -> None:
    assert _takes()
    assert _takes(path="/a2a")
    assert _takes(method="SendStreamingMessage")
    assert _takes(id="abc")
    assert _takes(params={"message": MESSAGE, "configuration": {"historyLength": 2}})


def test_leaves_everything_else_to_the_sdk() -> None:
    assert not _takes(version=None)  # 0.3
    assert not _takes(version="1.0.0")
    assert not _takes(version="2.0")
    assert not _takes(method="GetTask")
    assert not _takes(method="message/send")
    assert not _takes(path="/a2a/message:send")  # the gateway agent's HTTP+JSON route
    assert not _takes(path="/a2a/ask/message:send")
    assert not _takes(jsonrpc="1.0")
    assert not _takes(id=True)
    assert not _takes(id=None)
    assert not _takes(extra=1)
    assert not _takes(params={"message": {}})  # required fields: the SDK words the error
    assert not _takes(params={"message": {**MESSAGE, "parts": "x"}})
    assert not _takes(params={"message": {**MESSAGE, "taskId": "run_x"}})
    assert not _takes(params={"message": MESSAGE, "configuration": {"returnImmediately": True}})
    assert not _takes(params={"message": MESSAGE, "configuration": {"historyLength": -1}})
    config = {"taskPushNotificationConfig": {"url": "https://example.com/hook"}}
    assert not _takes(params={"message": MESSAGE, "configuration": config})
