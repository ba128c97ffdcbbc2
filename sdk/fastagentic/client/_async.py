"""``AsyncFastAgenticClient``: the asyncio twin of ``_sync.py``, method for method."""

# ruff: noqa: ASYNC109 (a per-call ``timeout=`` is the HTTP timeout of each request, as in httpx.AsyncClient)

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

import httpx

from . import _calls as calls
from ._base import (
    DEFAULT_STREAM_READ_TIMEOUT,
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    ClientConfig,
    connection_error,
    log,
)
from ._calls import DEFAULT, Call, TimeoutArg
from ._errors import APIConnectionError, error_from_response
from ._models import (
    Checkpoint,
    Endpoint,
    PromptMessage,
    Resource,
    Run,
    RunPage,
    RunRequest,
    RunResponse,
    RunStatus,
    StreamEvent,
)
from ._retry import Retries
from ._sse import SSEDecoder, decode_event

__all__ = ["AsyncEventStream", "AsyncFastAgenticClient"]


class AsyncEventStream:
    """A run's events as they happen: iterate it (``async for event in stream``), and close it (or use it
    in an ``async with`` block) to stop early. Closing it does not cancel the run.

    A connection that breaks is reopened from ``last_seq`` (``Last-Event-ID``): no event is missed and
    none is seen twice. ``run_id`` is set once the gateway has named the run."""

    def __init__(
        self,
        client: AsyncFastAgenticClient,
        first: Call | None,
        run_id: str | None,
        after: int,
        timeout: TimeoutArg,
    ) -> None:
        self.run_id = run_id
        self.last_seq = after
        self._events = client._follow(self, first, timeout)

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    async def __anext__(self) -> StreamEvent:
        return await anext(self._events)

    async def aclose(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncFastAgenticClient:
    """The asyncio twin of ``FastAgenticClient``: the same methods, as coroutines.

    ``api_key`` is sent as ``X-API-Key``; ``token`` (a string, or a callable, sync or async, that
    returns one, called for every request so that it may refresh it) as ``Authorization: Bearer``. ``timeout`` bounds each
    call (seconds, or an ``httpx.Timeout``; every method takes ``timeout=`` too); ``stream_read_timeout``
    is the longest silence tolerated on an event stream before it is reconnected. ``retries`` is a
    ``Retries`` policy, a number of retries, or None for none."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        token: str | Callable[[], str | Awaitable[str]] | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        stream_read_timeout: float | None = DEFAULT_STREAM_READ_TIMEOUT,
        retries: Retries | int | None = Retries(),  # noqa: B008 (frozen: shared safely)
        headers: Mapping[str, str] | None = None,
        verify: Any = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = ClientConfig(base_url, api_key, token, timeout, stream_read_timeout, retries, headers)
        self._http = httpx.AsyncClient(base_url=self._config.base_url, verify=verify, transport=transport)

    @property
    def base_url(self) -> str:
        return self._config.base_url

    # Lifecycle.

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncFastAgenticClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # Endpoints.

    async def endpoints(self, kind: str | None = None, *, timeout: TimeoutArg = DEFAULT) -> list[Endpoint]:
        """The endpoints connected workers serve (those the caller may use); ``kind``: only agents, tools,
        resources or prompts."""
        return calls.endpoints_of(await self._send(Call("GET", "/v1/endpoints", True, timeout)), kind)

    # Agents.

    async def invoke(
        self,
        agent: str | RunRequest,
        input: Any = None,
        *,
        run_timeout: float | None = None,
        check: bool = True,
        output_type: Any = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> RunResponse:
        """Run ``agent`` on ``input`` and wait for the end. Raises ``RunFailedError`` when the run failed
        or passed its deadline (``check=False``: return it). ``output_type`` converts the output."""
        request = calls.run_request(agent, input, run_timeout)
        response = await self._send(calls.agent_call(request, "invoke", timeout))
        return calls.invoke_result(response, check, output_type)

    def stream(
        self,
        agent: str | RunRequest,
        input: Any = None,
        *,
        run_timeout: float | None = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> AsyncEventStream:
        """Start a run of ``agent`` and iterate its events to the terminal one."""
        request = calls.run_request(agent, input, run_timeout)
        return AsyncEventStream(self, calls.agent_call(request, "stream", timeout), None, 0, timeout)

    async def start(
        self,
        agent: str | RunRequest,
        input: Any = None,
        *,
        run_timeout: float | None = None,
        idempotency_key: str | None = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> Run:
        """Start a run in the background. An ``Idempotency-Key`` (``idempotency_key``, else a new one) makes
        retries of this start answer the same run."""
        request = calls.run_request(agent, input, run_timeout, idempotency_key)
        return calls.decode(await self._send(calls.agent_call(request, "runs", timeout)), Run)

    # Runs.

    async def get(self, run_id: str, *, timeout: TimeoutArg = DEFAULT) -> Run:
        return calls.decode(await self._send(Call("GET", calls.run_path(run_id), True, timeout)), Run)

    def follow(self, run_id: str, *, after: int = 0, timeout: TimeoutArg = DEFAULT) -> AsyncEventStream:
        """The run's events after seq ``after`` (0: from the first), stored then live, to the terminal one."""
        calls.segment(run_id, "run_id")
        return AsyncEventStream(self, None, run_id, after, timeout)

    async def wait(self, run_id: str, *, check: bool = True, timeout: TimeoutArg = DEFAULT) -> Run:
        """Wait for the run to end (following its events) and return it. Raises ``RunFailedError`` when it
        failed or passed its deadline (``check=False``: return it). ``timeout`` bounds each request; the
        wait itself has no limit (the event stream uses the client's stream timeouts)."""
        run = await self.get(run_id, timeout=timeout)
        if not run.finished:
            async with self.follow(run_id, after=run.last_seq) as events:
                async for _ in events:
                    pass
            run = await self.get(run_id, timeout=timeout)
        return calls.checked_run(run, check)

    async def cancel(self, run_id: str, *, timeout: TimeoutArg = DEFAULT) -> Run:
        return calls.decode(
            await self._send(Call("POST", calls.run_path(run_id, "cancel"), False, timeout)), Run
        )

    async def resume(
        self, run_id: str, answer: Any, *, interrupt: str | None = None, timeout: TimeoutArg = DEFAULT
    ) -> Run:
        """Answer the interrupt the run waits on (``interrupt``: its id, checked against the pending one)."""
        return calls.decode(await self._send(calls.resume_call(run_id, answer, interrupt, timeout)), Run)

    async def replay(
        self,
        run_id: str,
        checkpoint: int | None = None,
        *,
        run_timeout: float | None = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> Run:
        """Start a new run from one of this run's checkpoints (None: its last)."""
        return calls.decode(
            await self._send(calls.replay_call(run_id, checkpoint, run_timeout, timeout)), Run
        )

    async def checkpoints(self, run_id: str, *, timeout: TimeoutArg = DEFAULT) -> list[Checkpoint]:
        return calls.checkpoints_of(
            await self._send(Call("GET", calls.run_path(run_id, "checkpoints"), True, timeout))
        )

    async def runs(
        self,
        status: RunStatus | str | None = None,
        *,
        endpoint: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        timeout: TimeoutArg = DEFAULT,
    ) -> RunPage:
        """One page of the caller's runs, newest first."""
        return calls.run_page_of(
            await self._send(calls.list_runs_call(status, endpoint, limit, cursor, timeout))
        )

    async def iter_runs(
        self, status: RunStatus | str | None = None, *, endpoint: str | None = None, page_size: int = 50
    ) -> AsyncIterator[Run]:
        """Every run of the caller, newest first, fetching pages as needed."""
        cursor: str | None = None
        while True:
            page = await self.runs(status, endpoint=endpoint, limit=page_size, cursor=cursor)
            for run in page.runs:
                yield run
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # Tools, resources, prompts.

    async def call_tool(
        self, name: str, arguments: Any = None, *, output_type: Any = None, timeout: TimeoutArg = DEFAULT
    ) -> Any:
        """Call a tool and return its output. Raises ``RunFailedError`` when the tool raised."""
        call = Call(
            "POST",
            f"/v1/tools/{calls.segment(name, 'tool')}",
            False,
            timeout,
            content=calls.encode(arguments),
        )
        return calls.tool_output_of(await self._send(call), output_type)

    async def read_resource(self, uri: str, *, timeout: TimeoutArg = DEFAULT) -> Resource:
        return calls.resource_of(uri, await self._send(calls.resource_call(uri, timeout)))

    async def get_prompt(
        self, name: str, arguments: Any = None, *, timeout: TimeoutArg = DEFAULT
    ) -> list[PromptMessage]:
        call = Call(
            "POST",
            f"/v1/prompts/{calls.segment(name, 'prompt')}",
            False,
            timeout,
            content=calls.encode(arguments),
        )
        return calls.prompt_of(await self._send(call))

    # Sending.

    async def _credential(self) -> str | None:
        token = self._config.token
        if token is None or isinstance(token, str):
            return token
        value = token()
        if inspect.isawaitable(value):
            value = await value
        if not isinstance(value, str) or not value:
            raise TypeError(f"the token provider returned {type(value).__name__}, not a non-empty string")
        return value

    async def _send(self, call: Call, stream: bool = False) -> httpx.Response:
        """Send ``call``, retrying as ``Retries`` says; a 2xx answer, or the typed error of the last one."""
        retry = 0
        while True:
            request = self._http.build_request(
                call.method,
                call.path,
                params=call.params,
                content=call.content,
                headers=self._config.headers_of(call, await self._credential()),
                timeout=self._config.timeout_of(call, stream),
            )
            try:
                response = await self._http.send(request, stream=stream)
                if not response.is_success:
                    await response.aread()
                    await response.aclose()
            except httpx.TransportError as exc:
                wait = self._config.retry_transport(call, exc, retry)
                if wait is None:
                    raise connection_error(call, exc) from exc
            else:
                if response.is_success:
                    return response
                error = error_from_response(response.status_code, response.headers, response.content)
                error.request_id = call.request_id
                wait = self._config.retry_answer(call, response, error, retry)
                if wait is None:
                    raise error
            await asyncio.sleep(wait)
            retry += 1

    async def _follow(
        self, stream: AsyncEventStream, first: Call | None, timeout: TimeoutArg
    ) -> AsyncGenerator[StreamEvent, None]:
        call = first
        quiet = 0  # reconnections in a row that brought no event
        while True:
            if call is None:
                assert stream.run_id is not None
                call = calls.events_call(stream.run_id, stream.last_seq, timeout)
            response = await self._send(call, stream=True)
            stream.run_id = stream.run_id or response.headers.get("x-run-id")
            broken: httpx.TransportError | None = None
            received = False
            try:
                decoder = SSEDecoder()
                async for chunk in response.aiter_bytes():
                    for frame in decoder.feed(chunk):
                        event = decode_event(frame)
                        if event.seq <= stream.last_seq:
                            continue  # already seen (a reconnection overlapping what arrived)
                        stream.last_seq, received = event.seq, True
                        yield event
                        if event.terminal:
                            return
            except httpx.TransportError as exc:
                broken = exc
            finally:
                await response.aclose()
            if stream.run_id is None:
                raise APIConnectionError("the stream broke before the gateway named its run")
            if received:
                quiet = 0
            if broken is None:
                # The gateway closed the stream before the terminal event: the run may have ended with
                # nothing after last_seq, or the gateway is going away.
                run = await self.get(stream.run_id)
                if run.finished and run.last_seq <= stream.last_seq:
                    return
            wait = self._config.retries.delay(quiet)
            if wait is None:
                raise APIConnectionError(
                    f"the event stream of {stream.run_id} broke {quiet + 1} times in a row without an event"
                    + (f" ({type(broken).__name__}: {broken})" if broken else "")
                )
            log.info(
                "fastagentic: event stream of %s broke after seq %d (%s); reconnecting in %.2fs",
                stream.run_id, stream.last_seq, type(broken).__name__ if broken else "closed", wait,
            )  # fmt: skip
            await asyncio.sleep(wait)
            quiet += 1
            call = None
