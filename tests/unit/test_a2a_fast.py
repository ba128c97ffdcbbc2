"""Which requests the A2A front's fast path takes; everything else is left to the SDK's handler."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from a2a.server.routes import create_jsonrpc_routes, create_rest_routes
from a2a.types import a2a_pb2
from a2a.types.a2a_pb2 import SendMessageRequest, SendMessageResponse
from a2a.utils import proto_utils
from a2a.utils.errors import InvalidParamsError
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.message import Message as ProtobufMessage
from google.protobuf.struct_pb2 import Value
from jsonrpc.jsonrpc2 import JSONRPC20Response  # type: ignore[import-untyped]
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from fastagentic_gateway.fronts.a2a import protojson
from fastagentic_gateway.fronts.a2a.fast import FastPath, JsonBody, has_required_fields
from fastagentic_gateway.fronts.a2a.mapping import EventMapper, encode_meta, fold, project
from fastagentic_gateway.fronts.a2a.protojson import send_request
from fastagentic_gateway.runs.model import Caller, EndpointKind, Event, Run

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
    return FastPath(None, None, None, None, routes, json_rpc)  # type: ignore[arg-type]


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


def _sdk_passes(request: SendMessageRequest) -> bool:
    try:
        proto_utils.validate_proto_required_fields(request)
    except InvalidParamsError:
        return False
    return True


REQUESTS: list[dict[str, Any]] = [
    {},
    {"message": {}},
    {"message": MESSAGE},
    {"message": {**MESSAGE, "messageId": ""}},
    {"message": {**MESSAGE, "role": "ROLE_UNSPECIFIED"}},
    {"message": {**MESSAGE, "parts": []}},
    {"message": {"role": "ROLE_USER", "parts": [{"text": "x"}]}},
    {"message": {**MESSAGE, "parts": [{"data": {"a": [1, {"b": None}], "c": {"d": "e"}}}]}},
    {"message": {**MESSAGE, "metadata": {"skill": "echo"}, "extensions": ["x"]}},
    {"message": MESSAGE, "configuration": {"historyLength": 2, "acceptedOutputModes": ["text/plain"]}},
    {"message": MESSAGE, "configuration": {"taskPushNotificationConfig": {"url": "https://h/x"}}},
    {"message": MESSAGE, "configuration": {"taskPushNotificationConfig": {"token": "t"}}},
    {
        "message": MESSAGE,
        "configuration": {"taskPushNotificationConfig": {"url": "https://h", "authentication": {}}},
    },
    {
        "message": MESSAGE,
        "configuration": {
            "taskPushNotificationConfig": {"url": "https://h", "authentication": {"scheme": "Bearer"}}
        },
    },
    {"message": MESSAGE, "metadata": {"deep": {"deeper": [[{"x": 1}]]}}},
    {"configuration": {"historyLength": 1}},
]


def test_required_fields_as_the_sdk_checks_them() -> None:
    """The fast path's check of REQUIRED fields (planned once per type, skipping types that hold none)
    passes and fails exactly where the SDK's ``validate_proto_required_fields`` does."""
    outcomes = set()
    for params in REQUESTS:
        request = ParseDict(params, SendMessageRequest(), ignore_unknown_fields=True)
        sdk = _sdk_passes(request)
        assert has_required_fields(request) is sdk, params
        outcomes.add(sdk)
    assert outcomes == {True, False}
    # Every message type the SDK's proto declares, empty: the same verdict.
    for name in dir(a2a_pb2):
        kind = getattr(a2a_pb2, name)
        if isinstance(kind, type) and issubclass(kind, ProtobufMessage) and kind is not ProtobufMessage:
            message = kind()
            assert has_required_fields(message) is (
                not proto_utils._validate_proto_required_fields_internal(message)
            ), name


# ---------------------------------------------------------------------- protobuf <-> JSON, directly


def _deep(levels: int) -> Any:
    value: Any = "leaf"
    for level in range(levels):
        value = {"k": value} if level % 2 else [value]
    return value


def _message(**fields: Any) -> dict[str, Any]:
    return {**MESSAGE, **fields}


PARAMS: list[Any] = [
    {"message": MESSAGE},
    {"message": _message(parts=[{"data": {"text": "hello", "n": 42}, "mediaType": "application/json"}])},
    {
        "message": _message(
            contextId="c",
            taskId="",
            messageId="",
            metadata={"skill": "echo", "nested": {"a": [1, 2.5, None, True, "x", {}, []]}},
            extensions=["e1", "e2"],
            referenceTaskIds=["t1"],
            parts=[
                {"text": ""},
                {"text": "ünïcode ✓", "filename": "f.txt", "metadata": {}},
                {"data": {}},
                {"data": []},
                {"data": [[], {}, [{"x": [None]}]]},
                {"data": 2**70},
                {"data": -0.0},
                {"data": 1e308},
                {"data": False},
                {"data": "s", "mediaType": "text/plain"},
            ],
        ),
        "configuration": {
            "acceptedOutputModes": ["text/plain"],
            "historyLength": 0,
            "returnImmediately": False,
        },
        "metadata": {},
        "tenant": "t",
    },
    {"message": MESSAGE, "configuration": {}},
    {"message": _message(parts=[{"data": None}])},
    {"message": MESSAGE, "configuration": {"historyLength": 2**31}},  # out of range: ParseDict's error
    {"message": MESSAGE, "configuration": {"historyLength": "3"}},
    {"message": MESSAGE, "configuration": {"historyLength": 3.0}},
    {"message": MESSAGE, "configuration": {"taskPushNotificationConfig": {"url": "https://h"}}},
    {"message": MESSAGE, "unknown": 1},
    {"message": {**MESSAGE, "message_id": "snake"}},
    {"message": {**MESSAGE, "messageId": "a", "message_id": "b"}},
    {"message": {**MESSAGE, "role": 1}},
    {"message": {**MESSAGE, "role": "ROLE_NOPE"}},
    {"message": {**MESSAGE, "role": None}},
    {"message": {**MESSAGE, "parts": [{"text": "a", "data": {}}]}},  # two of a oneof
    {"message": {**MESSAGE, "parts": [{"url": "https://x"}]}},
    {"message": {**MESSAGE, "parts": [{"raw": "aGk="}]}},
    {"message": {**MESSAGE, "parts": [{}]}},
    {"message": {**MESSAGE, "parts": ["x"]}},
    {"message": {**MESSAGE, "parts": [{"text": "\ud800"}]}},  # a lone surrogate
    {"message": {**MESSAGE, "extensions": [1]}},
    {"message": {**MESSAGE, "parts": [{"data": {"d": _deep(20)}}]}},
    {"message": {**MESSAGE, "parts": [{"data": {"d": _deep(39)}}]}},
    {"message": {**MESSAGE, "parts": [{"data": {"d": _deep(48)}}]}},  # past ParseDict's depth
    {"message": {**MESSAGE, "parts": [{"data": {"d": _deep(60)}}]}},
    {"message": "x"},
    {"message": None},
    [],
    {},
]


def _outcome(parse: Any, params: Any) -> tuple[str, Any]:
    try:
        message = parse(params)
    except Exception as exc:
        return type(exc).__name__, str(exc)
    return "ok", (message.SerializeToString(deterministic=True), MessageToDict(message), message.ListFields())


def test_send_request_is_parse_dict() -> None:
    """The fast path reads a SendMessage's params into the message ParseDict builds (the same bytes, the
    same fields present), or, for anything not of the plain shape, lets ParseDict read them (its
    answer or its error)."""
    direct = 0
    for params in PARAMS:
        expected = _outcome(lambda p: ParseDict(p, SendMessageRequest(), ignore_unknown_fields=True), params)
        assert _outcome(send_request, params) == expected, params
        try:
            protojson._send_request(params)
            direct += 1
        except Exception:
            pass
    assert direct >= 6  # the plain shapes are built directly


def _run(**fields: Any) -> Run:
    now = 1_765_000_000.123456
    defaults: dict[str, Any] = {
        "id": "run_1",
        "endpoint": "echo",
        "kind": EndpointKind.AGENT,
        "durable": False,
        "caller": Caller(),
        "input": b'{"text":"hello","n":42}',
        "context_id": "ctx",
        "protocol_meta": encode_meta("m1", "data"),
        "created_at": now,
        "updated_at": now + 1,
    }
    return Run(**{**defaults, **fields})


def _events(run: Run, *items: tuple[str, Any]) -> list[Event]:
    return [
        Event(run_id=run.id, seq=seq, ts=1_765_000_000.5 + seq / 7, kind=kind, data=json.dumps(data).encode())
        for seq, (kind, data) in enumerate(items, 1)
    ]


OUTPUTS: list[Any] = [
    {"text": "hello", "n": 42},
    "plain ✓",
    [1, 2.5, -0.0, None, True, {"deep": [[{}]]}],
    None,
    1e300,
    2**60,
    {},
]


def _samples() -> list[Any]:
    samples: list[Any] = []
    text_run = _run(input=b'{"text":"hi"}', protocol_meta=encode_meta("m2", "text:text"), context_id=None)
    for run in (_run(), text_run):
        for output in OUTPUTS:
            events = _events(
                run,
                ("run.started", {}),
                ("token", {"text": "he"}),
                ("token", {"text": "llo"}),
                ("progress", {"current": 1, "total": 3}),
                ("message", {"text": "thinking", "x": 1.5}),
                ("artifact", {"name": "chart", "points": [1, 2]}),
                ("interrupt", {"id": "i1", "request": {"question": "ok?"}, "schema": {"type": "string"}}),
                ("input", {"answer": "yes"}),
                ("run.completed", {"output": output}),
            )
            task, _ = fold(run, events)
            samples.append(SendMessageResponse(task=task))
            samples += [proto_utils.to_stream_response(e) for e in EventMapper(run).map(events)]
        failed = _events(run, ("run.failed", {"error": {"type": "Boom", "message": "no"}}))
        cancelled = _events(run, ("run.cancelled", {"reason": "stop"}))
        samples += [
            SendMessageResponse(task=project(run, failed)),
            SendMessageResponse(task=fold(run, cancelled)[0]),
        ]
    message = ParseDict(PARAMS[2]["message"], a2a_pb2.Message())
    samples.append(SendMessageResponse(message=message))
    odd = a2a_pb2.Part(raw=b"\x00\xffbytes", filename="f", media_type="application/octet-stream")
    samples.append(
        a2a_pb2.Message(message_id="x", role=a2a_pb2.Role.ROLE_AGENT, parts=[odd, a2a_pb2.Part(url="u")])
    )
    samples.append(a2a_pb2.ListTasksResponse(tasks=[samples[0].task], next_page_token="n", total_size=3))
    samples.append(a2a_pb2.Task(status=a2a_pb2.TaskStatus(state=99)))  # type: ignore[arg-type]  # unknown enum
    samples.append(SendMessageResponse(task=a2a_pb2.Task(status=a2a_pb2.TaskStatus(state=0))))
    return samples


def test_value_json_is_message_to_dict() -> None:
    """A data part's value read as MessageToDict reads it (number types and key order included), and the
    same error for what it cannot render."""
    values = [
        None,
        True,
        0,
        -0.0,
        2.5,
        1e300,
        "ünï ✓",
        [],
        {},
        [1, [None, {"a": []}]],
        {"b": 1, "a": {"c": "d"}},
    ]
    for value in values:
        message = ParseDict(value, Value())
        expected = MessageToDict(message)
        assert json.dumps(protojson.value_json(message)) == json.dumps(expected), value
    bad = Value(number_value=float("nan"))
    with pytest.raises(Exception) as expected_error:
        MessageToDict(bad)
    with pytest.raises(type(expected_error.value), match="NaN"):
        protojson.value_json(bad)


async def _sent(app: Any) -> list[Any]:
    messages: list[Any] = []

    async def send(message: Any) -> None:
        messages.append(message)

    async def receive() -> Any:
        return {"type": "http.disconnect"}

    await app({"type": "http", "method": "POST", "path": "/a2a"}, receive, send)
    return messages


@pytest.mark.parametrize("request_id", [1, 0, -7, "abc", "ünï ✓", ""])
def test_answer_is_sent_as_the_sdk_sends_it(request_id: str | int) -> None:
    """The blocking answer's envelope is JSONRPC20Response's, sent as Starlette's JSONResponse sends it:
    the same ASGI messages (status, headers in order, body bytes)."""
    result = MessageToDict(_samples()[0])
    expected = JSONResponse(JSONRPC20Response(result=result, _id=request_id).data)
    got = JsonBody({"result": result, "id": request_id, "jsonrpc": "2.0"})
    assert asyncio.run(_sent(got)) == asyncio.run(_sent(expected))
    with pytest.raises(ValueError):  # NaN: refused by both
        JSONResponse({"x": float("nan")})
    with pytest.raises(ValueError):
        JsonBody({"x": float("nan")})
