"""The REST + SSE front: the routes of the REST contract in ARCHITECTURE.md.

Handlers stay thin: build a Call (calls.py), hand it to the RunService, render the result. Bodies are
decoded and encoded with msgspec; the endpoint's input passes through as the bytes the client sent.
"""

from __future__ import annotations

import base64
import datetime
import math
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import unquote

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.params import Parameter
from litestar.response import Stream

from ..access.gate import Gate
from ..access.model import AuditQuery
from ..access.policy import may_see, require_scope, visible_only
from ..access.principal import principal_of, request_id_of
from ..calls import decode_body, find_endpoint, make_call
from ..errors import Conflict, GatewayError, InvalidInput, MalformedRequest, NotFound, RunFailed
from ..runs.model import EndpointKind, Event, Run, RunError, RunQuery, RunStatus
from ..runs.service import RunService
from ..settings import Settings
from ..stats import DEFAULT_WINDOW, UsageView, tenant_stats, usage_view
from ..usage.model import GROUP_FIELDS, MAX_USAGE_ROWS, Totals, UsageQuery, UsageRow
from ..validation import FieldError
from ..workers.registry import EndpointRegistry

_encode = msgspec.json.encode
JSON = "application/json"
MAX_IDEMPOTENCY_KEY = 255
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def usage_day(name: str, text: str | None) -> str | None:
    """A ``from`` / ``to`` query parameter of ``/v1/usage``: a UTC date ``YYYY-MM-DD``, or None."""
    if text is None:
        return None
    try:
        if not _DAY.fullmatch(text):
            raise ValueError(text)
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        raise MalformedRequest(f"{name} must be a UTC date YYYY-MM-DD, not {text[:40]!r}") from None


def usage_group(text: str) -> tuple[str, ...]:
    """The ``group_by`` query parameter of ``/v1/usage``: comma-separated GROUP_FIELDS, or empty."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    for name in names:
        if name not in GROUP_FIELDS:
            raise MalformedRequest(
                f"group_by takes {', '.join(GROUP_FIELDS)} (comma-separated) or nothing, not {name[:40]!r}"
            )
    return tuple(name for name in GROUP_FIELDS if name in names)


def usage_row_view(row: UsageRow, fields: tuple[str, ...]) -> dict[str, Any]:
    view: dict[str, Any] = {name: getattr(row, name) for name in fields}
    view.update(msgspec.structs.asdict(row.totals))
    return view


class ReplayOf(msgspec.Struct):
    run_id: str
    checkpoint: int


class RunView(msgspec.Struct, omit_defaults=True):
    run_id: str
    endpoint: str
    kind: str
    status: str
    attempt: int
    durable: bool
    principal: str
    tenant: str
    created_at: float
    updated_at: float
    last_seq: int
    output: msgspec.Raw | None = None
    error: RunError | None = None
    started_at: float | None = None
    finished_at: float | None = None
    deadline_at: float | None = None
    replay_of: ReplayOf | None = None
    context_id: str | None = None
    protocol: str = ""  # the front it was created through: rest, mcp, a2a
    usage: UsageView | None = None  # GET /v1/runs/{id} only


class CheckpointView(msgspec.Struct):
    id: int
    seq: int
    attempt: int
    ts: float
    state: msgspec.Raw


class InvokeResult(msgspec.Struct, omit_defaults=True):
    run_id: str
    status: str
    output: msgspec.Raw | None = None
    error: RunError | None = None


def run_view(run: Run) -> RunView:
    return RunView(
        run_id=run.id,
        endpoint=run.endpoint,
        kind=run.kind.value,
        status=run.status.value,
        attempt=run.attempt,
        durable=run.durable,
        principal=run.caller.principal,
        tenant=run.caller.tenant,
        protocol=run.protocol,
        created_at=run.created_at,
        updated_at=run.updated_at,
        last_seq=run.last_seq,
        output=msgspec.Raw(run.output) if run.output is not None else None,
        error=run.error,
        started_at=run.started_at,
        finished_at=run.finished_at,
        deadline_at=run.deadline_at,
        replay_of=(
            ReplayOf(run.replay_of, run.replay_checkpoint)
            if run.replay_of is not None and run.replay_checkpoint is not None
            else None
        ),
        context_id=run.context_id,
    )


def sse_frames(events: list[Event]) -> bytes:
    """One SSE frame per event: id = seq, event = kind, data = the event as one line of JSON.
    Formatted by hand: kinds are validated on ingest and event data is single-line JSON."""
    return b"".join(
        b'id: %d\nevent: %s\ndata: {"run_id":"%s","seq":%d,"ts":%r,"kind":"%s","data":%s}\n\n'
        % (e.seq, e.kind.encode(), e.run_id.encode(), e.seq, e.ts, e.kind.encode(), e.data)
        for e in events
    )


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(_encode(value), status_code=status, media_type=JSON, headers=headers)


def error_body(exc: GatewayError) -> dict[str, Any]:
    """The error object of every REST error response (and of the session socket's error frames)."""
    body: dict[str, Any] = {"type": exc.type, "message": exc.message, **exc.extra}
    if exc.errors:
        body["errors"] = exc.errors
    return body


def idempotency_key_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The ``Idempotency-Key`` header (1 to MAX_IDEMPOTENCY_KEY characters), or None."""
    key = connection.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise MalformedRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    return key


def after_seq_of(connection: ASGIConnection[Any, Any, Any, Any]) -> int:
    """Where a reader resumes a run's events: ``Last-Event-ID`` or ``?after=``, the seq last received."""
    last = connection.headers.get("last-event-id") or connection.query_params.get("after") or "0"
    if not last.isdigit() or len(last) > 18:  # a seq fits 63 bits; more cannot be one of this run's
        raise MalformedRequest(
            "Last-Event-ID must be the seq (a whole number below 10^18) of the last event received"
        )
    return int(last)


def run_timeout_of(request: ASGIConnection[Any, Any, Any, Any], settings: Settings) -> float | None:
    """The ``Run-Timeout`` header: seconds (a positive number, at most ``max_run_timeout``), or None."""
    raw = request.headers.get("run-timeout")
    if raw is None:
        return None
    try:
        seconds = float(raw.strip())
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise MalformedRequest(f"Run-Timeout must be a number of seconds, not {raw[:40]!r}")
    if not 0 < seconds <= settings.max_run_timeout:
        raise MalformedRequest(
            f"Run-Timeout must be more than 0 and at most {settings.max_run_timeout:g} seconds "
            f"(setting max_run_timeout), not {raw[:40]}"
        )
    return seconds


def replay_checkpoint_of(body: bytes) -> int | None:
    """The ``checkpoint`` of a replay request body (an object; empty means the last checkpoint)."""
    value = decode_body(body)
    if not isinstance(value, dict):
        raise InvalidInput(
            "the replay request body must be an object", errors=[FieldError("$", "expected an object")]
        )
    unknown = sorted(set(value) - {"checkpoint"})
    if unknown:
        raise InvalidInput(
            "unknown field(s) in the replay request body",
            errors=[FieldError(f"$.{name}", "unknown field") for name in unknown],
        )
    checkpoint = value.get("checkpoint")
    if checkpoint is None:
        return None
    if not isinstance(checkpoint, int) or isinstance(checkpoint, bool) or not 1 <= checkpoint < 2**63:
        raise InvalidInput(
            "checkpoint must be a checkpoint id (a whole number from 1)",
            errors=[FieldError("$.checkpoint", "expected an integer from 1 to 2^63 - 1")],
        )
    return checkpoint


class ResumeBody(msgspec.Struct, forbid_unknown_fields=True):
    answer: msgspec.Raw
    interrupt: str | None = None


def resume_body_of(body: bytes) -> tuple[str | None, Any, bytes]:
    """``{"answer": <any JSON>, "interrupt": "<id>"?}``: the interrupt it answers (None: the one pending),
    the answer and its JSON."""
    decode_body(body)  # malformed JSON: 400, as for every body
    try:
        parsed = msgspec.json.decode(body, type=ResumeBody)
    except msgspec.ValidationError as exc:
        raise InvalidInput(
            'the resume body must be {"answer": …} (and optionally "interrupt": the interrupt id)',
            errors=[FieldError("$", str(exc))],
        ) from None
    raw = bytes(parsed.answer)
    return parsed.interrupt, msgspec.json.decode(raw), raw


def rest_router(settings: Settings, registry: EndpointRegistry, runs: RunService, gate: Gate) -> Router:
    retry_after = settings.retry_after

    async def _start(
        request: Request[Any, Any, Any], kind: EndpointKind, name: str, idempotency_key: str | None = None
    ) -> tuple[Run, bool]:
        run_timeout = run_timeout_of(request, settings) if kind is EndpointKind.AGENT else None
        endpoint = find_endpoint(registry, kind, name, retry_after)
        body = await request.body()
        call = make_call(
            endpoint,
            decode_body(body),
            principal=principal_of(request.scope),
            protocol="rest",
            request_id=request_id_of(request.scope),
            raw=body,
            idempotency_key=idempotency_key,
        )
        return await runs.submit(call, run_timeout=run_timeout)

    async def _stream(run: Run, after: int) -> AsyncIterator[bytes]:
        async for batch in runs.follow(run, after):
            yield sse_frames(batch) if batch else b": keepalive\n\n"

    def _sse(run: Run, after: int = 0) -> Stream:
        headers = dict(SSE_HEADERS)
        headers["X-Run-Id"] = run.id
        return Stream(_stream(run, after), media_type="text/event-stream", headers=headers)

    async def _call(request: Request[Any, Any, Any], kind: EndpointKind, name: str) -> Run:
        """Run a tool / resource / prompt call to its end; a failed call is an error response."""
        run, created = await _start(request, kind, name)
        return _succeeded(await runs.wait(run, fresh=created))

    @get("/v1/endpoints")
    async def list_endpoints(request: Request[Any, Any, Any]) -> Response[bytes]:
        infos = visible_only(principal_of(request.scope), (endpoint.info for endpoint in registry.served()))
        return json_response({"endpoints": infos})

    @get("/v1/audit")
    async def audit(
        request: Request[Any, Any, Any],
        tenant: str | None = None,
        principal: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since: float | None = None,
        until: float | None = None,
        cursor: int | None = None,
        limit: int = 100,
    ) -> Response[bytes]:
        if not 1 <= limit <= 1000:
            raise MalformedRequest("limit must be between 1 and 1000")
        if cursor is not None and not 0 < cursor < 2**63:
            raise MalformedRequest("cursor must be the next_cursor of a previous page")
        if any(t is not None and not math.isfinite(t) for t in (since, until)):
            raise MalformedRequest("since and until must be Unix times in seconds")
        for name, text in (
            ("tenant", tenant),
            ("principal", principal),
            ("action", action),
            ("outcome", outcome),
        ):
            if text is not None and (len(text) > 256 or "\x00" in text):
                raise MalformedRequest(f"{name} must be at most 256 characters, without NUL")
        query = AuditQuery(
            tenant=tenant,
            principal=principal,
            action=action,
            outcome=outcome,
            since=since,
            until=until,
            before_id=cursor,
            limit=limit,
        )
        records = await gate.audit_records(principal_of(request.scope), query)
        next_cursor = records[-1].id if len(records) == limit else None
        return json_response({"records": records, "next_cursor": next_cursor})

    @get("/v1/usage")
    async def usage(
        request: Request[Any, Any, Any],
        tenant: str | None = None,
        principal: str | None = None,
        endpoint: str | None = None,
        model: str | None = None,
        since: Annotated[str | None, Parameter(query="from")] = None,
        to: str | None = None,
        group_by: str = "day",
        limit: int = 1000,
    ) -> Response[bytes]:
        require_scope(principal_of(request.scope), settings.admin_scope, "reading usage")
        accounting = runs.usage
        if accounting is None:
            raise NotFound("usage accounting is off in this gateway")
        if not 1 <= limit <= MAX_USAGE_ROWS:
            raise MalformedRequest(f"limit must be between 1 and {MAX_USAGE_ROWS}")
        for name, text in (
            ("tenant", tenant),
            ("principal", principal),
            ("endpoint", endpoint),
            ("model", model),
        ):
            if text is not None and (len(text) > 256 or "\x00" in text):
                raise MalformedRequest(f"{name} must be at most 256 characters, without NUL")
        first, last = usage_day("from", since), usage_day("to", to)
        if first is not None and last is not None and first > last:
            raise MalformedRequest(f"from ({first}) is after to ({last})")
        fields = usage_group(group_by)
        query = UsageQuery(
            tenant=tenant,
            principal=principal,
            endpoint=endpoint,
            model=model,
            since=first,
            until=last,
            group_by=fields,
            limit=limit + 1,
        )
        rows = await accounting.usage(query) if fields else []
        summed = await accounting.usage(msgspec.structs.replace(query, group_by=(), limit=1))
        return json_response(
            {
                "from": first,
                "to": last,
                "group_by": list(fields),
                "rows": [usage_row_view(row, fields) for row in rows[:limit]],
                "totals": summed[0].totals if summed else Totals(),
                "truncated": len(rows) > limit,
            }
        )

    @get("/v1/stats")
    async def stats(request: Request[Any, Any, Any], window: str = DEFAULT_WINDOW) -> Response[bytes]:
        principal = principal_of(request.scope)
        require_scope(principal, settings.admin_scope, "reading stats")
        return json_response(await tenant_stats(runs, principal.tenant, window, time.time()))

    @post("/v1/agents/{name:str}/invoke")
    async def invoke(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
        run, created = await _start(request, EndpointKind.AGENT, name)
        run = await runs.wait(run, fresh=created)
        result = InvokeResult(
            run_id=run.id,
            status=run.status.value,
            output=msgspec.Raw(run.output) if run.output is not None else None,
            error=run.error,
        )
        return json_response(result)

    @post("/v1/agents/{name:str}/stream", status_code=200)
    async def stream(request: Request[Any, Any, Any], name: str) -> Stream:
        run, _ = await _start(request, EndpointKind.AGENT, name)
        return _sse(run)

    @post("/v1/agents/{name:str}/runs")
    async def start_run(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
        key = idempotency_key_of(request)
        run, created = await _start(request, EndpointKind.AGENT, name, idempotency_key=key)
        headers = {"Location": f"/v1/runs/{run.id}"}
        if not created:
            headers["Idempotency-Replayed"] = "true"
        return json_response(run_view(run), status=202, headers=headers)

    @get("/v1/runs")
    async def list_runs(
        request: Request[Any, Any, Any],
        status: str | None = None,
        endpoint: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Response[bytes]:
        if status is not None and status not in RunStatus.__members__.values():
            allowed = ", ".join(s.value for s in RunStatus)
            raise MalformedRequest(f"status must be one of {allowed}")
        if not 1 <= limit <= 200:
            raise MalformedRequest("limit must be between 1 and 200")
        if any(text is not None and (len(text) > 256 or "\x00" in text) for text in (endpoint, cursor)):
            raise MalformedRequest("endpoint and cursor must be at most 256 characters, without NUL")
        query = RunQuery(
            tenant=principal_of(request.scope).tenant,
            status=RunStatus(status) if status else None,
            endpoint=endpoint,
            limit=limit,
            before=cursor,
        )
        found = await runs.list_runs(query)
        next_cursor = found[-1].id if len(found) == limit else None
        # Runs of endpoints the caller may not use are left out (a page may then be short).
        principal = principal_of(request.scope)
        shown = [r for r in found if may_see(principal, r, registry)]
        return json_response({"runs": [run_view(r) for r in shown], "next_cursor": next_cursor})

    @get("/v1/runs/{run_id:str}")
    async def get_run(request: Request[Any, Any, Any], run_id: str) -> Response[bytes]:
        run = await runs.require(run_id, principal_of(request.scope))
        view = run_view(run)
        if runs.usage is not None:
            view.usage = usage_view(await runs.usage.run_usage(run))
        return json_response(view)

    @get("/v1/runs/{run_id:str}/events")
    async def run_events(request: Request[Any, Any, Any], run_id: str) -> Stream:
        run = await runs.require(run_id, principal_of(request.scope))
        return _sse(run, after_seq_of(request))

    @get("/v1/runs/{run_id:str}/checkpoints")
    async def run_checkpoints(request: Request[Any, Any, Any], run_id: str) -> Response[bytes]:
        found = await runs.checkpoints(run_id, principal_of(request.scope))
        views = [CheckpointView(c.id, c.seq, c.attempt, c.ts, msgspec.Raw(c.state)) for c in found]
        return json_response({"checkpoints": views})

    @post("/v1/runs/{run_id:str}/replay")
    async def replay_run(request: Request[Any, Any, Any], run_id: str) -> Response[bytes]:
        run_timeout = run_timeout_of(request, settings)
        checkpoint = replay_checkpoint_of(await request.body())
        run = await runs.replay(run_id, principal_of(request.scope), checkpoint, run_timeout=run_timeout)
        return json_response(run_view(run), status=202, headers={"Location": f"/v1/runs/{run.id}"})

    @post("/v1/runs/{run_id:str}/resume", status_code=200)
    async def resume_run(request: Request[Any, Any, Any], run_id: str) -> Response[bytes]:
        interrupt_id, answer, raw = resume_body_of(await request.body())
        run = await runs.resume(
            run_id,
            principal_of(request.scope),
            answer,
            raw,
            interrupt_id=interrupt_id,
            protocol="rest",
            request_id=request_id_of(request.scope),
        )
        return json_response(run_view(run))

    @post("/v1/runs/{run_id:str}/cancel", status_code=200)
    async def cancel_run(request: Request[Any, Any, Any], run_id: str) -> Response[bytes]:
        return json_response(
            run_view(
                await runs.cancel(
                    run_id,
                    principal_of(request.scope),
                    protocol="rest",
                    request_id=request_id_of(request.scope),
                )
            )
        )

    @post("/v1/tools/{name:str}", status_code=200)
    async def call_tool(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
        run = await _call(request, EndpointKind.TOOL, name)
        return Response(b'{"output":' + (run.output or b"null") + b"}", media_type=JSON)

    @post("/v1/prompts/{name:str}", status_code=200)
    async def render_prompt(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
        run = await _call(request, EndpointKind.PROMPT, name)
        return Response(run.output or b"{}", media_type=JSON)

    @get("/v1/resources/{uri:path}")
    async def read_resource(request: Request[Any, Any, Any], uri: str) -> Response[bytes]:
        # The raw path keeps what routing normalises away (the "//" of docs://x); %-escapes work too.
        raw = request.scope.get("raw_path") or uri.encode()
        uri = unquote(raw.decode("latin-1").partition("/v1/resources/")[2]) or uri.lstrip("/")
        found = registry.resource_for(uri)
        if found is None:
            raise NotFound(f"no resource matches {uri!r}")
        endpoint, params = found
        endpoint = find_endpoint(registry, EndpointKind.RESOURCE, endpoint.name, retry_after)
        call = make_call(
            endpoint,
            params,
            principal=principal_of(request.scope),
            protocol="rest",
            request_id=request_id_of(request.scope),
        )
        run = _succeeded(await runs.wait((await runs.submit(call))[0]))
        content = msgspec.json.decode(run.output or b"{}")
        media_type = content.get("mime_type") or "application/octet-stream"
        if "blob" in content:
            return Response(base64.b64decode(content["blob"]), media_type=media_type)
        return Response(str(content.get("text", "")).encode(), media_type=media_type)

    return Router(
        path="/",
        route_handlers=[
            list_endpoints,
            audit,
            usage,
            stats,
            invoke,
            stream,
            start_run,
            list_runs,
            get_run,
            run_events,
            run_checkpoints,
            replay_run,
            resume_run,
            cancel_run,
            call_tool,
            render_prompt,
            read_resource,
        ],
    )


def _succeeded(run: Run) -> Run:
    if run.status is RunStatus.SUCCEEDED:
        return run
    if run.status in (RunStatus.FAILED, RunStatus.TIMED_OUT) and run.error is not None:
        raise RunFailed(
            f"{run.error.type}: {run.error.message}", extra={"run_id": run.id, "error": run.error}
        )
    raise Conflict(f"run {run.id} ended {run.status.value}", extra={"run_id": run.id})
