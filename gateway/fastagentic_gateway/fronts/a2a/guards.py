"""What the A2A front checks before the a2a-sdk sees a request, and where it corrects the SDK's answers.

Hostile or broken input must get a precise client error, never a 5xx, a reset connection or an
exception's text. The SDK (a2a-sdk 1.3) falls short in a few places; each guard here names the upstream
behaviour it covers, so it can go when the SDK is fixed (``docs/architecture.md`` lists them too):

- ``screen_body``: every POST body is JSON as RFC 8259 and the gateway's input limits define it (UTF-8,
  no ``NaN``/``Infinity``, no lone surrogates, nesting and integers bounded: ``validation.MAX_DEPTH``,
  64-bit integers). Upstream, ``json.loads`` takes NaN, UTF-16 and 10**400, and what it took then fails
  deep inside (500 on HTTP+JSON, -32603 with Python's text on JSON-RPC); nesting ~3,000 deep escapes its
  error handling as a ``RecursionError``.
- ``Guarded03JsonRpc``: the 0.3 JSON-RPC adapter answers a params mistake with -32600 carrying a pydantic
  dump, and a ``historyLength`` beyond int32 with -32603 carrying protobuf's text.
- ``Guarded03Rest``: the 0.3 HTTP+JSON adapter parses ``historyLength`` with ``int()`` (500 on ``x``) and
  starts its SSE answer before reading the request or the task, so an unknown task or a bad message
  resets a connection that already said 200.
- ``Interrupted03Handler`` (both 0.3 adapters): the 0.3 conversion sets ``final`` on a status update only
  for terminal states; 0.3 ends an interaction's stream with ``final: true`` at ``input-required`` (and
  ``auth-required``) too, and the stream does close there.
- ``ClientErrorLogs``: the SDK logs client errors at WARNING, and some with a full traceback at ERROR; a
  client can fill the log with them. They become one line at INFO; server errors keep their traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from google.protobuf.json_format import Parse, ParseError
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Send

from a2a.compat.v0_3 import a2a_v0_3_pb2 as pb2_v03
from a2a.compat.v0_3 import proto_utils as proto_utils_v03
from a2a.compat.v0_3 import types as types_v03
from a2a.compat.v0_3.jsonrpc_adapter import JSONRPC03Adapter
from a2a.compat.v0_3.request_handler import RequestHandler03
from a2a.compat.v0_3.rest_adapter import REST03Adapter
from a2a.server.context import ServerCallContext
from a2a.server.jsonrpc_models import InvalidParamsError as RpcInvalidParams
from a2a.server.jsonrpc_models import InvalidRequestError as RpcInvalidRequest
from a2a.server.jsonrpc_models import JSONRPCError as CoreJSONRPCError
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.server.routes.common import ServerCallContextBuilder, create_event_source_response
from a2a.utils import json_utils
from a2a.utils.error_handlers import rest_error_handler, rest_stream_error_handler
from a2a.utils.errors import InvalidParamsError

from ...validation import MAX_DEPTH, value_errors

#: The envelope around an input nests levels of its own above it: ``params.message.parts[0].data`` is
#: five deep. Data nested deeper than the input limit below that is refused here, before protobuf
#: (which holds about as much inside a message) fails on it.
ENVELOPE_DEPTH = 5
INT32_MAX = 2**31 - 1
_END = object()


class BodyRefused(msgspec.Struct, frozen=True):
    """Why a body is refused: ``parse`` (not JSON at all: -32700 / 400), ``request`` (JSON, but not a
    request: -32600 / 400) or ``params`` (bad params, or values outside the input limits: -32602, or
    -32600 without a usable id / 400), and the id to answer a JSON-RPC request with."""

    kind: str
    message: str
    request_id: str | int | None = None


def screen_body(body: bytes, json_rpc: bool = True) -> tuple[Any, BodyRefused | None]:
    """The body decoded, or why it is refused. An empty body is left to the SDK (it has its own words).
    A JSON-RPC body must be an object (arrays are the SDK's to refuse as batches) whose ``params``, when
    present, is an object; an HTTP+JSON body must be an object."""
    if not body.strip():
        return None, None
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        return None, BodyRefused("parse", f"the body is not JSON (RFC 8259, UTF-8, no NaN): {exc}")
    except RecursionError:
        return None, BodyRefused("parse", "the body is nested too deeply to parse")
    request_id = value.get("id") if isinstance(value, dict) else None
    if isinstance(request_id, bool) or not isinstance(request_id, str | int | None):
        request_id = None
    # The envelope nests a few levels of its own above an input; the input itself is held to the
    # letter of the limits when its call is built (calls.make_call).
    errors = value_errors(value, body, max_depth=MAX_DEPTH + ENVELOPE_DEPTH)
    if errors:
        first = errors[0]
        where = "" if first.path == "$" else f" at {first.path}"
        return None, BodyRefused("params", f"{first.message}{where}", request_id)
    if not json_rpc:
        if not isinstance(value, dict):
            return None, BodyRefused("request", "the body must be a JSON object")
    elif not isinstance(value, dict | list):
        return None, BodyRefused("request", "Invalid Request: a JSON-RPC request is a JSON object")
    elif isinstance(value, dict) and "params" in value and not isinstance(value["params"], dict):
        return None, BodyRefused("params", "Invalid params: params must be an object", request_id)
    return value, None


def refusal(refused: BodyRefused, json_rpc: bool) -> Response:
    """The answer to a refused body: a JSON-RPC error (HTTP 200, as the SDK answers JSON-RPC errors), or
    the HTTP+JSON error shape with 400."""
    if json_rpc:
        code = {"parse": -32700, "request": -32600}.get(
            refused.kind, -32602 if refused.request_id is not None else -32600
        )
        body = {
            "jsonrpc": "2.0",
            "id": refused.request_id,
            "error": {"code": code, "message": refused.message},
        }
        return JSONResponse(body)
    error = {"code": 400, "status": "INVALID_ARGUMENT", "message": refused.message}
    return JSONResponse({"error": error}, status_code=400)


def _pydantic_errors(exc: ValidationError) -> tuple[bool, str]:
    """(in params?, one line naming each field and what is wrong), without the input's values."""
    lines = []
    in_params = True
    for error in exc.errors(include_url=False, include_input=False)[:5]:
        loc = [str(part) for part in error.get("loc", ())]
        in_params = in_params and bool(loc) and loc[0] == "params"
        lines.append(f"{'.'.join(loc) or '$'}: {error.get('msg', 'invalid')}")
    return in_params, "; ".join(lines)


def _history_length_error(params: Any) -> str | None:
    for holder in (params, getattr(params, "configuration", None)):
        length = getattr(holder, "history_length", None)
        if isinstance(length, int) and not -INT32_MAX - 1 <= length <= INT32_MAX:
            return f"historyLength must be at most {INT32_MAX}"
    return None


_INTERRUPTED_03 = (types_v03.TaskState.input_required, types_v03.TaskState.auth_required)


def _final_at_interrupt(
    item: types_v03.SendStreamingMessageSuccessResponse,
) -> types_v03.SendStreamingMessageSuccessResponse:
    result = item.result
    if isinstance(result, types_v03.TaskStatusUpdateEvent) and result.status.state in _INTERRUPTED_03:
        result.final = True
    return item


class Interrupted03Handler(RequestHandler03):
    """The SDK's 0.3 request handler, marking the status update that ends a stream at an interrupted
    state ``final`` (0.3: "the server signals the end of updates for an interaction cycle by setting
    final: true ... when the task reaches a terminal state or an input-required state")."""

    async def on_message_send_stream(
        self, request: types_v03.SendMessageRequest, context: ServerCallContext
    ) -> AsyncIterator[types_v03.SendStreamingMessageSuccessResponse]:
        async for item in super().on_message_send_stream(request, context):
            yield _final_at_interrupt(item)

    async def on_subscribe_to_task(
        self, request: types_v03.TaskResubscriptionRequest, context: ServerCallContext
    ) -> AsyncIterator[types_v03.SendStreamingMessageSuccessResponse]:
        async for item in super().on_subscribe_to_task(request, context):
            yield _final_at_interrupt(item)


class Guarded03JsonRpc(JSONRPC03Adapter):
    """The SDK's 0.3 JSON-RPC adapter, answering params mistakes with -32602 and a short message."""

    def __init__(
        self, http_handler: RequestHandler, context_builder: ServerCallContextBuilder | None = None
    ) -> None:
        super().__init__(http_handler, context_builder=context_builder)
        self.handler = Interrupted03Handler(request_handler=http_handler)

    async def handle_request(
        self, request_id: str | int | None, method: str, body: dict[str, Any], request: Request
    ) -> Any:
        try:
            parsed = self.METHOD_TO_MODEL[method].model_validate(body)  # type: ignore[attr-defined]
        except ValidationError as exc:
            in_params, message = _pydantic_errors(exc)
            error = RpcInvalidParams(message=f"Invalid params: {message}") if in_params else None
            return self._generate_error_response(
                request_id, error or RpcInvalidRequest(message=f"Invalid Request: {message}")
            )
        problem = _history_length_error(getattr(parsed, "params", None))
        if problem is not None:
            return self._generate_error_response(request_id, RpcInvalidParams(message=problem))
        version = request.headers.get("a2a-version", "").strip()
        if version and not version.startswith("0.3"):
            # The SDK answers this -32603 (its version check's error has no 0.3 code); it is the client's
            # mismatch: a 0.3 method name sent as another version.
            return self._generate_error_response(
                request_id,
                CoreJSONRPCError(
                    code=-32009,
                    message=f"{method} is an A2A 0.3 method; A2A-Version {version[:20]} is not supported for it",
                ),
            )
        return await super().handle_request(request_id, method, body, request)


class Guarded03Rest(REST03Adapter):
    """The SDK's 0.3 HTTP+JSON adapter, checking ``historyLength`` and starting a stream only once its
    first event is there (so a bad request or an unknown task gets its 400 / 404 first)."""

    def __init__(
        self, http_handler: RequestHandler, context_builder: ServerCallContextBuilder | None = None
    ) -> None:
        super().__init__(http_handler, context_builder=context_builder)
        self.handler.handler03 = Interrupted03Handler(request_handler=http_handler)

    @rest_error_handler
    async def _handle_request(
        self, method: Callable[[Request, Any], Awaitable[Any]], request: Request
    ) -> Response:
        raw = request.query_params.get("historyLength")
        if raw:
            try:
                length = int(raw)
            except ValueError:
                raise InvalidParamsError(message="historyLength must be a whole number") from None
            if not 0 <= length <= INT32_MAX:
                raise InvalidParamsError(message=f"historyLength must be between 0 and {INT32_MAX}")
        if request.method == "POST" and request.url.path.endswith("/v1/message:send"):
            _check_legacy_message(await request.body())
        return await super()._handle_request(method, request)

    @rest_stream_error_handler
    async def _handle_streaming_request(
        self, method: Callable[[Request, Any], AsyncIterable[Any]], request: Request
    ) -> Response:
        body = await request.body()
        if request.url.path.endswith("/v1/message:stream"):
            _check_legacy_message(body)
        context = self._context_builder.build(request)
        stream = aiter(method(request, context))
        first = await anext(
            stream, _END
        )  # raises the request's error while an error answer can still be sent

        async def events() -> AsyncIterator[str]:
            if first is _END:
                return
            yield json_utils.dumps(first)
            async for item in stream:
                yield json_utils.dumps(item)

        return create_event_source_response(events(), shutdown_grace_period=self._shutdown_grace_period)


def _check_legacy_message(body: bytes) -> None:
    """The 0.3 HTTP+JSON message as the SDK will convert it: a part it cannot convert (``{}``: no text,
    file or data) raises a bare ValueError there, answered 500; here it is invalid params."""
    message = pb2_v03.SendMessageRequest()
    try:
        Parse(body, message, ignore_unknown_fields=True)
    except ParseError:
        return  # the SDK's own parse answers it, 400
    try:
        proto_utils_v03.FromProto.message_send_params(message)
    except (ValueError, TypeError):
        raise InvalidParamsError(message="each message part must hold text, a file or data") from None


# ------------------------------------------------------------------------------- error size

#: An error answer longer than this has its long texts cut: protobuf's parse errors quote the offending
#: value whole (a 100 kB string sent as ``parts`` came back in the error message).
MAX_ERROR_BYTES = 8192
MAX_ERROR_TEXT = 300


def short_errors(send: Send) -> Send:
    """``send``, cutting the long texts of an error answer (a JSON body starting ``{"error"``) sent in
    one piece; anything else passes untouched (the start of a response waits for its first body)."""
    held: list[Message] = []

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start" and not held:
            held.append(message)
            return
        if held and message["type"] == "http.response.body":
            start = held.pop()
            body: bytes = message.get("body", b"")
            if not message.get("more_body") and len(body) > MAX_ERROR_BYTES and body.startswith(b'{"error"'):
                body = _shortened(body)
                message = {**message, "body": body}
                headers = [(k, v) for k, v in start.get("headers", ()) if k.lower() != b"content-length"]
                start = {**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
            await send(start)
        await send(message)

    return sending


def _shortened(body: bytes) -> bytes:
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body

    def cut(node: Any) -> Any:
        if isinstance(node, str):
            return node if len(node) <= MAX_ERROR_TEXT else node[:MAX_ERROR_TEXT] + "…"
        if isinstance(node, list):
            return [cut(item) for item in node[:20]]
        if isinstance(node, dict):
            return {key: cut(item) for key, item in node.items()}
        return node

    return msgspec.json.encode(cut(value))


# ----------------------------------------------------------------------------------------- logs

#: The SDK's loggers that report client errors.
SDK_LOGGERS = (
    "a2a.utils.version_validator",
    "a2a.utils.push_url_validator",
    "a2a.server.routes.jsonrpc_dispatcher",
    "a2a.server.routes.rest_dispatcher",
    "a2a.compat.v0_3.jsonrpc_adapter",
    "a2a.compat.v0_3.rest_adapter",
    "a2a.utils.error_handlers",
)
#: Messages the SDK logs with a traceback for what a client sent.
CLIENT_TRACEBACKS = (
    "Failed to validate base JSON-RPC request",
    "Failed to parse request params",
)


_USERINFO = re.compile(r"//[^/@\s]+@")


class ClientErrorLogs(logging.Filter):
    """Client errors the SDK logs become one line at INFO; a server error keeps its level and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "@" in message and _USERINFO.search(message):
            # A client's URL may carry credentials (push configs: https://user:pass@host/...).
            record.msg, record.args = _USERINFO.sub("//***@", message), None
        if record.levelno == logging.WARNING and record.exc_info is None:
            record.levelno, record.levelname = logging.INFO, "INFO"
        elif record.exc_info and isinstance(record.msg, str) and record.msg.startswith(CLIENT_TRACEBACKS):
            # The exception's type only: its text may echo what the client sent.
            record.msg, record.args = "%s (%s)", (record.getMessage(), type(record.exc_info[1]).__name__)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_client_errors() -> None:
    """Install ``ClientErrorLogs`` on the SDK's loggers (once per process)."""
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ClientErrorLogs) for f in logger.filters):
            logger.addFilter(ClientErrorLogs())


__all__ = [
    "BodyRefused",
    "ClientErrorLogs",
    "Guarded03JsonRpc",
    "Guarded03Rest",
    "Interrupted03Handler",
    "quiet_client_errors",
    "refusal",
    "screen_body",
]
