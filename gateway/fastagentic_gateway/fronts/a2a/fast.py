"""The fast path: a new message over JSON-RPC 1.0, answered without the SDK's per-task machinery.

The SDK serves ``SendMessage`` by building an ``ActiveTask`` per task (a producer and a consumer task,
two event queues with their taps, a task manager writing every event through the task store) and then
serialising through several layers of routing. For the gateway's tasks all of that is a detour: a task
is a run, the run's log is the record, and the events are the run's events mapped one by one. This
path serves the commonest request (a new message, blocking or streamed, over JSON-RPC in 1.0) by doing
exactly what the SDK's path amounts to, with the SDK's parsing, validation and serialisation (or a
direct equivalent of them, proven the same by the unit tests):

- the body is parsed and validated as the SDK's dispatcher does (``ParseDict``, here
  ``protojson.send_request``; the required fields, here ``has_required_fields``), the message goes
  through the same request-context builder (``RunContextBuilder``: the same errors, raised before a task
  exists) and errors are rendered by the SDK's ``build_error_response``;
- the run is followed, each event mapped and folded into the task as ``EventMapper`` and ``apply`` (the
  SDK's TaskManager fold) do, pushed through the push sender as the SDK's consumer does, and answered
  as the SDK's dispatcher answers (``SendMessageResponse`` / ``StreamResponse`` rendered by
  ``MessageToDict``, the JSON-RPC envelope, Starlette's ``JSONResponse``, here ``JsonBody``, or the
  SDK's SSE response). The mapping, the fold and the rendering are done on JSON directly
  (``taskjson.py``): no protobuf task or event is built.

Anything else (another method, 0.3, a request the SDK would refuse, ``returnImmediately``, an inline
push config, a message to an existing task) is left to the SDK: ``serve`` returns False before it has
done anything. The tests check the answers are the SDK's: errors byte for byte, results as the same
JSON but for the order of a data part's object members (see ``taskjson.py``). A task is followed here
until it finishes or waits for input (``input-required``: the blocking answer, the end of the stream);
the follow-up message that answers it is a message to an existing task, served by the SDK's path.

What differs: a task served here is not in the SDK's registry of tasks running in this process, so a
``CancelTask`` or ``SubscribeToTask`` for it takes the SDK's path for a task running elsewhere (the one a
task takes after a gateway restart): cancel records the cancel through the task store, which cancels the
run, and answers with the task as it stood, marked canceled; subscribe reads the run's log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from google.api.field_behavior_pb2 import FieldBehavior, field_behavior  # type: ignore[import-untyped]
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message as ProtobufMessage
from jsonrpc.jsonrpc2 import JSONRPC20Response  # type: ignore[import-untyped]
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from a2a.server.jsonrpc_models import JSONRPCError
from a2a.server.request_handlers.response_helpers import build_error_response
from a2a.server.routes.common import create_event_source_response
from a2a.types.a2a_pb2 import SendMessageRequest
from a2a.utils import json_utils
from a2a.utils.errors import A2AError, InternalError

from ...access.principal import principal_of, request_id_of
from ...runs.model import Event, Run
from ...runs.service import RunService
from .executor import RunContextBuilder
from .mapping import RETURN_STATES, TERMINAL_STATES
from .protojson import send_request
from .push import PushSender
from .store import RunTaskStore
from .taskjson import JsonEvent, JsonEventMapper, apply_json, initial_task_json, limit_history, snapshot

log = logging.getLogger("fastagentic.a2a")

SEND = "SendMessage"
STREAM = "SendStreamingMessage"
ENVELOPE = frozenset({"jsonrpc", "method", "params", "id"})
VERSION_HEADER = b"a2a-version"
AGENT_PATH = re.compile(r"/a2a(?:/([^/]+))?")
JSON_TYPE = b"application/json"
MAX_PATHS = 1024  # paths remembered as "the JSON-RPC route" (agent names; a bound against junk paths)


# ------------------------------------------------------------------ required fields

# What ``proto_utils.validate_proto_required_fields`` checks, planned once per message type: each field
# marked REQUIRED (a repeated one non-empty, one with presence set, another not its default), then every
# message field, recursively, but only into types that can hold a REQUIRED field somewhere below them (the
# SDK walks every nested message: a data part's Struct, field by field, and reads each field's options on
# the way; none of protobuf's own types has a REQUIRED field).
_REPEATED, _PRESENCE, _VALUE = 0, 1, 2  # how a REQUIRED field is checked
_SINGLE, _MAP, _LIST = 0, 1, 2  # how a message field is descended into
_Plan = tuple[tuple[tuple[str, int, Any], ...], tuple[tuple[str, int], ...]]
_PLANS: dict[str, _Plan] = {}


def _descent(field: Any) -> tuple[int, Any]:
    """How the SDK descends into a message field, and the type of what it descends into (None: a map whose
    values are not messages, which it does not validate)."""
    if not field.is_repeated:
        return _SINGLE, field.message_type
    if field.message_type.GetOptions().map_entry:
        value = field.message_type.fields_by_name["value"]
        return _MAP, value.message_type if value.type == FieldDescriptor.TYPE_MESSAGE else None
    return _LIST, field.message_type


def _plan(root: Any) -> None:
    """Plan ``root`` and every type reachable from it."""
    types: dict[str, Any] = {}  # Descriptors by full name
    pending = [root]
    while pending:
        desc = pending.pop()
        if desc.full_name in types:
            continue
        types[desc.full_name] = desc
        for field in desc.fields:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                target = _descent(field)[1]
                if target is not None:
                    pending.append(target)
    required: dict[str, list[tuple[str, int, Any]]] = {}
    for name, desc in types.items():
        required[name] = []
        for field in desc.fields:
            if FieldBehavior.REQUIRED in field.GetOptions().Extensions[field_behavior]:
                kind = _REPEATED if field.is_repeated else _PRESENCE if field.has_presence else _VALUE
                required[name].append((field.name, kind, field.default_value if kind == _VALUE else None))
    checked = {name for name, fields in required.items() if fields}  # types that can fail, at any depth
    grown = True
    while grown:
        grown = False
        for name, desc in types.items():
            if name not in checked and any(
                (target := _descent(field)[1]) is not None and target.full_name in checked
                for field in desc.fields
                if field.type == FieldDescriptor.TYPE_MESSAGE
            ):
                checked.add(name)
                grown = True
    for name, desc in types.items():
        descend = tuple(
            (field.name, _descent(field)[0])
            for field in desc.fields
            if field.type == FieldDescriptor.TYPE_MESSAGE
            and (target := _descent(field)[1]) is not None
            and target.full_name in checked
        )
        _PLANS[name] = (tuple(required[name]), descend)


def has_required_fields(message: ProtobufMessage) -> bool:
    """True when ``validate_proto_required_fields(message)`` would pass (it finds no violation)."""
    plan = _PLANS.get(message.DESCRIPTOR.full_name)
    if plan is None:
        _plan(message.DESCRIPTOR)
        plan = _PLANS[message.DESCRIPTOR.full_name]
    required, descend = plan
    for name, kind, default in required:
        if kind == _REPEATED:
            if not getattr(message, name):
                return False
        elif kind == _PRESENCE:
            if not message.HasField(name):
                return False
        elif getattr(message, name) == default:
            return False
    for name, how in descend:
        if how == _SINGLE:
            if message.HasField(name) and not has_required_fields(getattr(message, name)):
                return False
        elif how == _MAP:
            for item in getattr(message, name).values():
                if isinstance(item, ProtobufMessage) and not has_required_fields(item):
                    return False
        elif not all(has_required_fields(item) for item in getattr(message, name)):
            return False
    return True


class FastPath:
    def __init__(
        self,
        runs: RunService,
        store: RunTaskStore,
        builder: RunContextBuilder,
        push: PushSender,
        routes: list[BaseRoute],
        json_rpc_routes: set[int],
    ) -> None:
        self.runs = runs
        self.store = store
        self.builder = builder
        self.push = push
        self.routes = routes
        self.json_rpc_routes = json_rpc_routes
        self._paths: dict[str, bool] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._resumed: set[str] = set()

    # ------------------------------------------------------------------ which requests

    def _is_json_rpc_route(self, scope: Scope) -> bool:
        """Whether the SDK's routes would hand this POST to a JSON-RPC dispatcher (an agent named like a
        REST path, ``/a2a/message:send``, is the gateway agent's REST route, not a JSON-RPC URL)."""
        path = scope["path"]
        known = self._paths.get(path)
        if known is None:
            known = False
            for route in self.routes:
                match, _ = route.matches(scope)
                if match is Match.FULL:
                    known = id(route) in self.json_rpc_routes
                    break
            if len(self._paths) < MAX_PATHS:
                self._paths[path] = known
        return known

    def is_json_rpc(self, scope: Scope) -> bool:
        """Whether this request goes to a JSON-RPC URL (else an HTTP+JSON route, or none)."""
        return bool(AGENT_PATH.fullmatch(scope["path"])) and self._is_json_rpc_route(scope)

    def _request(self, scope: Scope, data: Any) -> tuple[str, str | int, SendMessageRequest] | None:
        """(method, id, request) for a request this path serves exactly as the SDK would; else None.
        ``data`` is the body as the front decoded it."""
        if scope.get("method") != "POST" or not AGENT_PATH.fullmatch(scope["path"]):
            return None
        if not any(name == VERSION_HEADER and value == b"1.0" for name, value in scope["headers"]):
            return None  # 0.3 (no header), or a version the SDK answers with its own error
        if not self._is_json_rpc_route(scope):
            return None
        if not isinstance(data, dict) or data.get("jsonrpc") != "2.0" or not set(data) <= ENVELOPE:
            return None
        method = data.get("method")
        request_id = data.get("id")
        params = data.get("params")
        if method not in (SEND, STREAM) or not isinstance(params, dict):
            return None
        if isinstance(request_id, bool) or not isinstance(request_id, int | str):
            return None
        try:
            request = send_request(params)  # ParseDict(params, SendMessageRequest(), ...)
        except Exception:
            return None  # the SDK's path words the error
        if not has_required_fields(request):
            return None  # the SDK's path words the error (validate_proto_required_fields)
        config = request.configuration
        if (
            config.return_immediately
            or config.HasField("task_push_notification_config")
            or config.history_length < 0
            or request.message.task_id
        ):
            return None
        return method, request_id, request

    # ------------------------------------------------------------------ serving

    async def serve(self, scope: Scope, data: Any, receive: Receive, send: Send) -> bool:
        """Answer the request (its body decoded: ``data``) if it is one this path serves; False (having
        done nothing) otherwise."""
        parsed = self._request(scope, data)
        if parsed is None:
            return False
        method, request_id, request = parsed
        response = await self._answer(scope, method, request_id, request)
        await response(scope, receive, send)
        return True

    async def _answer(
        self, scope: Scope, method: str, request_id: str | int, request: SendMessageRequest
    ) -> ASGIApp:
        agent = AGENT_PATH.fullmatch(scope["path"]).group(1)  # type: ignore[union-attr]
        try:
            # What the SDK's handler does with the call context it builds (the agent, the caller and the
            # request id from the scope), without building it.
            run = await self.builder.new_run(
                agent, principal_of(scope), request_id_of(scope), request, request.message.context_id or None
            )
        except A2AError as exc:
            return _error(request_id, exc)
        except Exception as exc:
            log.exception("A2A %s failed", method)
            return _error(request_id, InternalError(message=str(exc)))
        following = Following(self, run)
        if method == STREAM:
            return create_event_source_response(_sse(following.stream(request), request_id))
        try:
            task = await following.until_answer()
        except A2AError as exc:
            return _error(request_id, exc)
        result = {"task": limit_history(task, request.configuration)}  # a SendMessageResponse
        # JSONRPC20Response(result=result, _id=request_id).data, in JSONResponse's bytes and headers.
        return JsonBody({"result": result, "id": request_id, "jsonrpc": "2.0"})

    def finish_in_background(self, following: Following) -> None:
        """Go on following a task nobody waits for any more (a stream whose client left before the task
        finished or asked for input), as the SDK's active task does: its pushes still go out."""
        job = asyncio.create_task(following.drain(), name=f"a2a-follow:{following.run.id}")
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    async def resume_pushes(self, created_before: float) -> int:
        """Go on pushing the updates of durable tasks that have push configs and were created before
        ``created_before`` (this process's start): whoever followed them died with an earlier process.
        Each goes on from the run's log as it is now (updates in between are not pushed)."""
        resumed = 0
        for run in await self.runs.durable.pushing(limit=10_000):
            if run.created_at >= created_before or run.id in self._resumed:
                continue
            self._resumed.add(run.id)
            following = Following(self, run)
            following.catch_up(await self.runs.durable.events(run.id))
            self.finish_in_background(following)
            resumed += 1
        return resumed

    async def close(self) -> None:
        for job in list(self._background):
            job.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)


class Following:
    """One new task: its run followed, its events mapped, folded into the task and pushed, all as JSON
    (``taskjson.py``: what the protobuf fold renders, without building it)."""

    def __init__(self, fast: FastPath, run: Run) -> None:
        self.fast = fast
        self.run = run
        self.task = initial_task_json(run)
        self.mapper = JsonEventMapper(run)
        self.seq = 0  # the last run event mapped: a follower that stopped early resumes after it
        self.announced = False
        fast.store.creating.discard(run.id)  # the task exists: GetTask may see it from now on

    @property
    def ended(self) -> bool:
        return self.mapper.state in TERMINAL_STATES

    @property
    def stopped(self) -> bool:
        """Finished, or waiting for input: following stops (a follow-up message follows it anew)."""
        return self.mapper.state in RETURN_STATES

    async def _push(self, kind: str, body: dict[str, Any]) -> None:
        try:
            await self.fast.push.send_json_for_run(self.run, kind, body)
        except Exception:  # best effort, as in the SDK's consumer
            log.exception("push notification for task %s failed", self.run.id)

    def catch_up(self, log: list[Event]) -> None:
        """Fold ``log`` (the run's events so far) into the task without pushing them."""
        for item in log:
            for event in self.mapper.map_one(item):
                apply_json(self.task, event)
        self.seq = log[-1].seq if log else 0
        self.announced = True

    async def _follow(self) -> AsyncGenerator[JsonEvent, None]:
        """The task's updates, each applied to ``task`` and pushed, until it ended or waits for input."""
        if not self.announced:
            self.announced = True
            await self._push("task", snapshot(self.task))
        if self.stopped:
            return
        async for batch in self.fast.runs.follow(self.run, self.seq):
            for item in batch:
                if self.stopped:
                    return
                self.seq = item.seq
                for event in self.mapper.map_one(item):
                    apply_json(self.task, event)
                    await self._push(*event)
                    yield event
                if self.stopped:
                    return

    async def until_answer(self) -> dict[str, Any]:
        """The task once it is finished or waits for input (what a blocking SendMessage answers)."""
        events = self._follow()
        try:
            async for _ in events:
                if self.stopped:
                    break
        finally:
            await events.aclose()
            if not self.stopped:
                self.fast.finish_in_background(self)
        return snapshot(self.task)

    async def stream(self, request: SendMessageRequest) -> AsyncIterator[JsonEvent]:
        """The task, then every update until it ends or waits for input (what SendStreamingMessage
        streams: the stream closes at a terminal or interrupted state, spec 11.7)."""
        first = snapshot(self.task)
        events = self._follow()
        try:
            yield "task", limit_history(first, request.configuration)
            async for event in events:
                yield event
                if self.stopped:
                    return
        finally:
            await events.aclose()
            if not self.stopped:
                self.fast.finish_in_background(self)

    async def drain(self) -> None:
        async for _ in self._follow():
            if self.stopped:
                return


async def _sse(events: AsyncIterator[JsonEvent], request_id: str | int) -> AsyncIterator[dict[str, str]]:
    """The SDK dispatcher's SSE items: each event as a JSON-RPC response carrying a StreamResponse."""
    try:
        async for kind, body in events:
            yield {"data": json_utils.dumps(JSONRPC20Response(result={kind: body}, _id=request_id).data)}
    except Exception as exc:
        log.exception("A2A stream failed")
        error: A2AError | JSONRPCError = (
            exc if isinstance(exc, A2AError | JSONRPCError) else InternalError(message=str(exc))
        )
        yield {"event": "error", "data": json_utils.dumps(build_error_response(request_id, error))}


# ``json.dumps`` with JSONResponse's arguments builds an encoder per call; this is that encoder, built once.
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


class JsonBody:
    """Starlette's ``JSONResponse(content)``, sent as it sends it (the same body bytes, the same headers
    in the same order), without building a Response (its header list, its background hook)."""

    __slots__ = ("body",)

    def __init__(self, content: Any) -> None:
        self.body = _JSON.encode(content).encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-length", str(len(self.body)).encode("latin-1")), (b"content-type", JSON_TYPE)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def _error(request_id: str | int, error: A2AError | JSONRPCError) -> Response:
    return JSONResponse(build_error_response(request_id, error), status_code=200)


__all__ = ["FastPath"]
