"""The worker runtime: dials the gateway, registers the App's endpoints and runs what it is assigned.

One bidirectional gRPC stream carries everything. The worker keeps the runs it holds across a broken
stream: it reconnects with backoff, names them in its Hello, and resends what the gateway did not get.
On SIGTERM it drains: takes no new work, lets running runs finish within a grace period and hands the
rest back.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import random
import signal
import socket
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import grpc
import grpc.aio
import msgspec

from . import __version__, tracing
from .app import App, Endpoint, completion_values
from .context import Caller, HookRejected, InterruptTimeout, RunContext
from .hooks import ToolRejected, Verdict
from .schema import InputError
from .v1 import worker_pb2 as pb
from .v1 import worker_pb2_grpc as pb_grpc

log = logging.getLogger("fastagentic.worker")

PROTOCOL_VERSION = 1
#: What this SDK understands beyond protocol 1 as first released (Hello.features).
FEATURES = ("model_hint", "interrupts", "tool_checks")
#: Seconds a tool check waits for the gateway's verdict, unless the gateway says (Welcome.tool_check_timeout_ms).
TOOL_CHECK_TIMEOUT = 10.0
#: Seconds a durable run waits for input in place before it is handed back, unless the gateway says.
INTERRUPT_HOLD = 30.0
#: Seconds an ephemeral run waits for input in place before the wait fails, unless the gateway says.
INTERRUPT_TIMEOUT = 3600.0
DEFAULT_GATEWAY = "127.0.0.1:50051"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Events per Events message; keeps one message well under the size limit for ordinary payloads.
MAX_BATCH = 512
# Completions run beside the runs: async completers as tasks on the loop, sync ones in their own threads
# (never the runs' pool, so a slow completer does not take a run's thread). At most this many at once; the
# gateway times out what waits longer.
COMPLETION_THREADS = 2
COMPLETION_TIMEOUT = 10.0
#: Resource changes kept while the stream is down (sent once it is back); the oldest are dropped past this.
MAX_PENDING_CHANGES = 1024


def channel_options(max_message_bytes: int = MAX_MESSAGE_BYTES) -> list[tuple[str, int]]:
    """Keepalive and size limits, explicit so idle streams survive proxies and big payloads fail clearly."""
    return [
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


class Rejected(Exception):
    """The gateway refused this worker's registration; retrying will not help."""


@dataclass(eq=False)
class HeldRun:
    """A run assigned to this worker: its whole event log for the attempt, kept until the gateway has it."""

    assign: pb.Assign
    endpoint: Endpoint
    context: RunContext
    base_seq: int
    events: list[pb.Event] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    done: pb.Done | None = None
    finished_at: float = 0.0
    released: bool = False
    sent: int = 0  # events[:sent] were written to the current stream
    waiting: asyncio.Future[bytes] | None = None  # the answer to the interrupt the run waits on
    waiting_id: str = ""
    held_back: list[tuple[str, bytes, bytes | None]] = field(default_factory=list)  # emitted while waiting
    spans: tracing.RunSpans | None = None  # when the gateway traces the run (Assign.trace_context)

    @property
    def next_seq(self) -> int:
        return self.base_seq + len(self.events)


class Worker:
    def __init__(
        self,
        app: App,
        *,
        gateway: str | None = None,
        slots: int = 8,
        token: str | None = None,
        grace: float = 30.0,
        worker_id: str | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self.app = app
        self.gateway = gateway or os.environ.get("FASTAGENTIC_GATEWAY") or DEFAULT_GATEWAY
        self.slots = slots
        self.token = token if token is not None else os.environ.get("FASTAGENTIC_WORKER_TOKEN", "")
        self.grace = grace
        self.worker_id = (
            worker_id or f"{app.name}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        self.max_message_bytes = max_message_bytes
        #: TLS to the gateway: the CA that signed its certificate (FASTAGENTIC_GATEWAY_CA), and this
        #: worker's client certificate and key for mTLS (FASTAGENTIC_WORKER_CERT / FASTAGENTIC_WORKER_KEY).
        self.tls_ca = tls_ca if tls_ca is not None else os.environ.get("FASTAGENTIC_GATEWAY_CA", "")
        self.tls_cert = tls_cert if tls_cert is not None else os.environ.get("FASTAGENTIC_WORKER_CERT", "")
        self.tls_key = tls_key if tls_key is not None else os.environ.get("FASTAGENTIC_WORKER_KEY", "")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("a worker certificate and its key go together (FASTAGENTIC_WORKER_CERT / _KEY)")
        if self.tls_cert and not self.tls_ca:
            raise ValueError("a worker certificate needs the gateway's CA too (FASTAGENTIC_GATEWAY_CA)")
        self._frame_budget = max_message_bytes // 2  # bytes per frame; the gateway's limit may be lower
        self.connected = asyncio.Event()
        self._runs: dict[str, HeldRun] = {}
        self._active: set[str] = set()  # runs executing now
        self._finished: deque[HeldRun] = deque()  # finished runs, oldest first, kept one lease long
        self._outbox: asyncio.Queue[pb.WorkerMessage | HeldRun | None] | None = None
        self._draining = False
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()  # set while no run is executing
        self._idle.set()
        self._heartbeat_interval = 5.0
        self._lease_ttl = 30.0
        self._interrupt_hold = INTERRUPT_HOLD
        self._interrupt_timeout = INTERRUPT_TIMEOUT
        self._pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="fastagentic-run")
        self._completion_pool: ThreadPoolExecutor | None = None  # made at the first sync completion
        self._completions: set[asyncio.Task[None]] = set()
        self._specs = [ep.spec() for ep in app.endpoints.values()]
        self._loop: asyncio.AbstractEventLoop | None = None
        #: resource URIs announced changed while no stream was up, oldest first
        self._pending_changes: dict[str, None] = {}
        #: the tool points the gateway has hooks for (Welcome.tool_checks): checks are sent for those only
        self._tool_points: frozenset[str] = frozenset()
        self._tool_check_timeout = TOOL_CHECK_TIMEOUT
        #: check id -> (its ToolCheck, the future of its verdict): sent again after a reconnect until answered
        self._checks: dict[str, tuple[pb.WorkerMessage, asyncio.Future[pb.ToolVerdict]]] = {}
        self._check_ids = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, install_signal_handlers: bool = False) -> None:
        """Serve until drained or stopped. Reconnects with capped, jittered backoff when the stream breaks."""
        if install_signal_handlers:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.drain)
        backoff = 0.1
        self._loop = asyncio.get_running_loop()
        stop_listening = self.app._listen_for_changes(self._resource_changed)
        try:
            while not self._stopping.is_set():
                started = time.monotonic()
                try:
                    await self._session()
                except Rejected:
                    raise
                except (grpc.aio.AioRpcError, ConnectionError, OSError) as exc:
                    if self._stopping.is_set():
                        break  # we closed the stream ourselves (drained)
                    detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
                    log.warning("gateway %s unreachable or stream broken: %s", self.gateway, detail)
                if self._stopping.is_set():
                    break
                if time.monotonic() - started > 10:
                    backoff = 0.1
                await self._sleep_or_stop(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, 5.0)
        finally:
            stop_listening()
            self._loop = None
            for held in self._runs.values():
                if held.task is not None:
                    held.task.cancel()
            for task in list(self._completions):
                task.cancel()
            self._pool.shutdown(wait=False, cancel_futures=True)
            if self._completion_pool is not None:
                self._completion_pool.shutdown(wait=False, cancel_futures=True)

    def drain(self) -> None:
        """Stop taking work, let running runs finish within ``grace`` seconds, hand back the rest, stop."""
        if self._draining:
            return
        self._draining = True
        log.info("draining: %d run(s) in flight, grace %.1fs", self._active_count(), self.grace)
        self._send(pb.WorkerMessage(credit=pb.Credit(slots=0)))
        asyncio.get_running_loop().create_task(self._finish_drain())

    def stop(self) -> None:
        """Stop at once (runs in flight are left to the gateway's lease expiry)."""
        self._stopping.set()
        if self._outbox is not None:
            self._outbox.put_nowait(None)

    async def _finish_drain(self) -> None:
        deadline = time.monotonic() + self.grace
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), max(deadline - time.monotonic(), 0))
        for held in list(self._runs.values()):
            if held.done is None and held.task is not None:
                held.released = True
                held.task.cancel()
                self._send(
                    pb.WorkerMessage(
                        release=pb.Release(
                            run_id=held.assign.run_id, attempt=held.assign.attempt, reason="worker draining"
                        )
                    )
                )
        # Let the sender flush Done / Release messages before the stream closes.
        for _ in range(100):
            if self._outbox is None or self._outbox.empty():
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        self.stop()

    async def _sleep_or_stop(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _channel_credentials(self) -> grpc.ChannelCredentials | None:
        if not self.tls_ca:
            return None

        def read(path: str) -> bytes | None:
            with open(path, "rb") as handle:
                return handle.read()

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.tls_ca),
            private_key=read(self.tls_key) if self.tls_key else None,
            certificate_chain=read(self.tls_cert) if self.tls_cert else None,
        )

    def _active_count(self) -> int:
        return len(self._active)

    def _free_slots(self) -> int:
        return 0 if self._draining else max(self.slots - self._active_count(), 0)

    # ------------------------------------------------------------------ one connection

    async def _session(self) -> None:
        options = channel_options(self.max_message_bytes)
        credentials = self._channel_credentials()
        channel = (
            grpc.aio.secure_channel(self.gateway, credentials, options=options)
            if credentials is not None
            else grpc.aio.insecure_channel(self.gateway, options=options)
        )
        async with channel:
            stub = pb_grpc.WorkerGatewayStub(channel)
            outbox: asyncio.Queue[pb.WorkerMessage | HeldRun | None] = asyncio.Queue()
            self._forget_finished()
            hello = pb.Hello(
                worker_id=self.worker_id,
                sdk_version=__version__,
                protocol_version=PROTOCOL_VERSION,
                app_name=self.app.name,
                endpoints=self._specs,
                slots=0 if self._draining else self.slots,
                held=[
                    pb.HeldRun(run_id=h.assign.run_id, attempt=h.assign.attempt) for h in self._runs.values()
                ],
                token=self.token,
                features=FEATURES,
            )
            outbox.put_nowait(pb.WorkerMessage(hello=hello))
            call = stub.Connect(self._outgoing(outbox))
            heartbeat: asyncio.Task[None] | None = None
            try:
                frame = await call.read()
                if frame is grpc.aio.EOF or not frame.messages:
                    raise ConnectionError("gateway closed the stream before welcoming")
                first, *rest = frame.messages
                if first.HasField("reject"):
                    raise Rejected(f"{first.reject.code}: {first.reject.message}")
                if not first.HasField("welcome"):
                    raise ConnectionError("gateway spoke before welcoming")
                self._welcomed(first.welcome, outbox)
                heartbeat = asyncio.create_task(self._heartbeats(outbox))
                log.info("connected to gateway %s as %s", self.gateway, self.worker_id)
                for message in rest:
                    self._handle(message)
                while True:
                    frame = await call.read()
                    if frame is grpc.aio.EOF:
                        raise ConnectionError("gateway closed the stream")
                    for message in frame.messages:
                        self._handle(message)
            finally:
                self.connected.clear()
                self._outbox = None
                outbox.put_nowait(None)
                if heartbeat is not None:
                    heartbeat.cancel()
                call.cancel()

    def _welcomed(
        self, welcome: pb.Welcome, outbox: asyncio.Queue[pb.WorkerMessage | HeldRun | None]
    ) -> None:
        self._heartbeat_interval = max(welcome.heartbeat_interval_ms / 1000, 0.05)
        if welcome.max_message_bytes:
            self._frame_budget = min(self.max_message_bytes, welcome.max_message_bytes) // 2
        self._lease_ttl = max(welcome.lease_ttl_ms / 1000, 0.1)
        self._interrupt_hold = (
            welcome.interrupt_hold_ms / 1000 if welcome.interrupt_hold_ms else INTERRUPT_HOLD
        )
        self._interrupt_timeout = (
            welcome.interrupt_timeout_ms / 1000 if welcome.interrupt_timeout_ms else INTERRUPT_TIMEOUT
        )
        gated = sorted(e.name for e in self.app.endpoints.values() if e.require_approval)
        if gated and "require_approval" not in welcome.features:
            raise Rejected(
                f"gateway {self.gateway} does not enforce require_approval, which endpoints {', '.join(gated)} "
                "rely on: upgrade the gateway (this worker will not serve them unguarded)"
            )
        self._tool_points = frozenset(welcome.tool_checks) if "tool_checks" in FEATURES else frozenset()
        self._tool_check_timeout = (
            welcome.tool_check_timeout_ms / 1000 if welcome.tool_check_timeout_ms else TOOL_CHECK_TIMEOUT
        )
        statuses = {(s.run_id, s.attempt): s for s in welcome.held}
        for held in list(self._runs.values()):
            status = statuses.get((held.assign.run_id, held.assign.attempt))
            if status is None or not status.keep:
                self._drop(held, "the gateway moved the run on")
                continue
            # Resend what the gateway has not stored yet, then the result if there is one.
            start = max(int(status.next_seq) - held.base_seq, 0)
            held.sent = start
            while held.sent < len(held.events):
                outbox.put_nowait(self._events_message(held, held.sent, len(held.events)))
            if held.done is not None:
                outbox.put_nowait(pb.WorkerMessage(done=held.done))
        for message, _ in self._checks.values():  # unanswered tool checks: asked again, after their events
            if message.tool_check.run_id in self._runs:
                outbox.put_nowait(message)
        self._outbox = outbox
        changes, self._pending_changes = self._pending_changes, {}
        for uri in changes:
            outbox.put_nowait(pb.WorkerMessage(resource_changed=pb.ResourceChanged(uri=uri)))
        self.connected.set()

    def _forget_finished(self) -> None:
        """Finished runs are kept one lease long in case their Done was lost with a stream; then dropped."""
        horizon = time.monotonic() - self._lease_ttl
        while self._finished and self._finished[0].finished_at < horizon:
            held = self._finished.popleft()
            if self._runs.get(held.assign.run_id) is held:
                del self._runs[held.assign.run_id]

    async def _heartbeats(self, outbox: asyncio.Queue[pb.WorkerMessage | HeldRun | None]) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            self._forget_finished()
            outbox.put_nowait(pb.WorkerMessage(heartbeat=pb.Heartbeat(free_slots=self._free_slots())))

    async def _outgoing(
        self, outbox: asyncio.Queue[pb.WorkerMessage | HeldRun | None]
    ) -> AsyncIterator[pb.WorkerFrame]:
        """Drain the outbox into frames: everything queued goes in one gRPC write. A HeldRun in the outbox
        means "this run has new events": the first such marker ships everything the run emitted since the
        last send as one Events message; later markers find nothing new. A frame costs about the same
        for one token or fifty."""
        while True:
            budget = self._frame_budget
            frame = pb.WorkerFrame()
            size = 0
            item = await outbox.get()
            while True:
                if item is None:
                    if frame.messages:
                        yield frame
                    return
                if isinstance(item, HeldRun):
                    while item.sent < len(item.events):
                        message = self._events_message(item, item.sent, len(item.events))
                        frame.messages.append(message)
                        size += message.ByteSize()
                else:
                    frame.messages.append(item)
                    size += item.ByteSize()
                if size >= budget or outbox.empty():
                    break
                item = outbox.get_nowait()
            yield frame

    def _events_message(self, held: HeldRun, start: int, end: int) -> pb.WorkerMessage:
        end = min(end, start + MAX_BATCH)
        held.sent = max(held.sent, end)
        return pb.WorkerMessage(
            events=pb.Events(
                run_id=held.assign.run_id,
                attempt=held.assign.attempt,
                first_seq=held.base_seq + start,
                events=held.events[start:end],
            )
        )

    def _send(self, message: pb.WorkerMessage) -> None:
        if self._outbox is not None:
            self._outbox.put_nowait(message)

    # ------------------------------------------------------------------ resource changes

    def _resource_changed(self, uri: str) -> None:
        """``App.resource_changed`` (the URI already checked), from any thread."""
        loop = self._loop
        if loop is None:
            return
        try:
            here = asyncio.get_running_loop() is loop
        except RuntimeError:
            here = False
        if here:
            self._announce(uri)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed: the worker is gone
                loop.call_soon_threadsafe(self._announce, uri)

    def _announce(self, uri: str) -> None:
        if self._outbox is not None:
            self._outbox.put_nowait(pb.WorkerMessage(resource_changed=pb.ResourceChanged(uri=uri)))
            return
        self._pending_changes.pop(uri, None)
        self._pending_changes[uri] = None
        while len(self._pending_changes) > MAX_PENDING_CHANGES:
            del self._pending_changes[next(iter(self._pending_changes))]

    # ------------------------------------------------------------------ gateway messages

    def _handle(self, message: pb.GatewayMessage) -> None:
        body = message.WhichOneof("body")
        if body == "assign":
            self._start(message.assign)
        elif body == "cancel":
            held = self._runs.get(message.cancel.run_id)
            if held is not None and held.assign.attempt == message.cancel.attempt:
                self._drop(held, message.cancel.reason or "cancelled")
        elif body == "drain":
            if message.drain.grace_ms:
                self.grace = message.drain.grace_ms / 1000
            self.drain()
        elif body == "complete":
            task = asyncio.get_running_loop().create_task(self._complete(message.complete))
            self._completions.add(task)
            task.add_done_callback(self._completions.discard)
        elif body == "answer":
            self._answered(message.answer)
        elif body == "hint":
            held = self._runs.get(message.hint.run_id)
            if held is not None and held.assign.attempt == message.hint.attempt:
                held.context.model_hint = message.hint.model_hint[:200]
        elif body == "tool_verdict":
            pending = self._checks.get(message.tool_verdict.check_id)
            if pending is not None and not pending[1].done():
                pending[1].set_result(message.tool_verdict)
        elif body == "reject":
            raise Rejected(f"{message.reject.code}: {message.reject.message}")

    async def _complete(self, request: pb.Complete) -> None:
        """Run a completer and answer with a Completion (values, or the error), never failing the stream."""
        answer = pb.Completion(request_id=request.request_id)
        endpoint = self.app.endpoints.get(request.endpoint)
        completer = endpoint.completers.get(request.argument) if endpoint is not None else None
        try:
            if completer is None:
                raise LookupError(f"{request.endpoint!r} has no completer for {request.argument!r}")
            args = completer.args(request.value, request.arguments)
            if completer.is_async:
                result = await asyncio.wait_for(completer.fn(*args), COMPLETION_TIMEOUT)
            else:
                if self._completion_pool is None:
                    self._completion_pool = ThreadPoolExecutor(
                        max_workers=COMPLETION_THREADS, thread_name_prefix="fastagentic-complete"
                    )
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self._completion_pool, partial(completer.fn, *args))
            values, total, has_more = completion_values(result)
            answer.values.extend(values)
            answer.total = total
            answer.has_more = has_more
        except Exception as exc:
            log.warning("completing %s.%s failed: %r", request.endpoint, request.argument, exc)
            answer.error = f"{type(exc).__name__}: {exc}"[:1000]
        self._send(pb.WorkerMessage(completion=answer))

    def _drop(self, held: HeldRun, reason: str) -> None:
        held.context._cancel()
        if held.task is not None and not held.task.done():
            held.task.cancel(reason)
        self._runs.pop(held.assign.run_id, None)
        self._active.discard(held.assign.run_id)
        if not self._active_count():
            self._idle.set()

    async def _ask(self, held: HeldRun, interrupt_id: str, data: bytes, sink: Any) -> bytes:
        """Emit the interrupt and wait for its answer: in place, or (a durable run, past the gateway's
        ``interrupt_hold``) hand the run back; the answer then starts a new attempt."""
        if held.waiting is not None:
            raise RuntimeError("a run waits for one interrupt at a time")
        sink("interrupt", data, None)
        waiting = held.waiting = asyncio.get_running_loop().create_future()
        held.waiting_id = interrupt_id
        try:
            if held.endpoint.durable:
                done, _ = await asyncio.wait({waiting}, timeout=self._interrupt_hold)
                if not done:
                    self._hand_back(held, "waiting for input")
            else:
                done, _ = await asyncio.wait({waiting}, timeout=self._interrupt_timeout)
                if not done:
                    raise InterruptTimeout(
                        f"interrupt {interrupt_id!r} was not answered within {self._interrupt_timeout:g} s"
                    )
            return await waiting
        finally:
            held.waiting = None

    async def _check_tool(self, held: HeldRun, point: str, tool: str, data: bytes) -> Verdict | None:
        """Ask the gateway's ``point`` chain about a tool call of ``held`` (None: it has no hook there, nothing
        is asked). Bounded by the gateway's tool_check_timeout: no verdict in time refuses the call."""
        if point not in self._tool_points:
            return None
        check_id = f"t{next(self._check_ids)}"
        message = pb.WorkerMessage(
            tool_check=pb.ToolCheck(
                run_id=held.assign.run_id,
                attempt=held.assign.attempt,
                check_id=check_id,
                point=point,
                tool=tool[:200],
                data=data,
            )
        )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[pb.ToolVerdict] = loop.create_future()
        self._checks[check_id] = (message, future)
        # A timer rather than wait_for: the verdict wakes the call directly (this is on every checked call).
        expiry = loop.call_later(self._tool_check_timeout, _expire, future)
        try:
            if self._outbox is not None:
                self._outbox.put_nowait(held)  # the run's events so far go first
                self._outbox.put_nowait(message)
            try:
                answer = await future
            except TimeoutError:
                raise ToolRejected(
                    tool,
                    point,
                    f"the gateway's guardrails did not answer within {self._tool_check_timeout:g} s",
                ) from None
        finally:
            expiry.cancel()
            self._checks.pop(check_id, None)
        return Verdict(
            action=answer.action,
            data=answer.data,
            reason=answer.reason,
            hook=answer.hook,
            retry_after=answer.retry_after_ms / 1000,
        )

    def _hand_back(self, held: HeldRun, reason: str) -> None:
        held.released = True
        self._send(
            pb.WorkerMessage(
                release=pb.Release(run_id=held.assign.run_id, attempt=held.assign.attempt, reason=reason)
            )
        )
        self._drop(held, reason)

    def _answered(self, answer: pb.Answer) -> None:
        held = self._runs.get(answer.run_id)
        waiting = held.waiting if held is not None else None
        if held is None or waiting is None or waiting.done() or held.assign.attempt != answer.attempt:
            return
        if held.waiting_id != answer.interrupt_id or int(answer.next_seq) != held.next_seq + 1:
            log.warning("run %s: an answer that does not fit the run's wait; handing it back", answer.run_id)
            self._hand_back(held, "answer out of step")
            return
        # The gateway stored the answer as the event before next_seq: it joins this attempt's log as sent.
        everything_sent = held.sent == len(held.events)
        held.events.append(pb.Event(kind="input", data=answer.data, ts_ms=time.time_ns() // 1_000_000))
        if everything_sent:
            held.sent = len(held.events)
        held.waiting = None
        held_back, held.held_back = held.held_back, []
        waiting.set_result(answer.data)
        sink = held.context._sink
        for kind, data, checkpoint in held_back:
            sink(kind, data, checkpoint)

    def _start(self, assign: pb.Assign) -> None:
        endpoint = self.app.endpoints.get(assign.endpoint)
        existing = self._runs.get(assign.run_id)
        if existing is not None and existing.done is None:
            self._drop(existing, "superseded by a newer attempt")
        held_ref: list[HeldRun] = []
        answers: dict[str, Any] = {}
        if assign.HasField("resume_input"):
            decoded = msgspec.json.decode(assign.resume_input)
            if isinstance(decoded, dict):
                answers = decoded

        def sink(kind: str, data: bytes, checkpoint: bytes | None) -> None:
            held = held_ref[0]
            if held.done is not None or held.context.cancelled:
                return
            if held.waiting is not None:
                # Nothing is sent while the run waits: the answer (an event the gateway stores) comes first.
                held.held_back.append((kind, data, checkpoint))
                return
            event = pb.Event(kind=kind, data=data, ts_ms=time.time_ns() // 1_000_000)
            if checkpoint is not None:
                event.checkpoint = checkpoint
            held.events.append(event)
            if held.spans is not None:  # every adapter's LLM and tool calls become spans here
                held.spans.event(kind, data, checkpoint)
            if self._outbox is not None:
                self._outbox.put_nowait(held)

        context = RunContext(
            run_id=assign.run_id,
            attempt=assign.attempt,
            endpoint=assign.endpoint,
            caller=Caller(principal=assign.caller.principal, tenant=assign.caller.tenant),
            sink=sink,
            checkpoint_state=msgspec.json.decode(assign.checkpoint)
            if assign.HasField("checkpoint")
            else None,
            resume_input=list(answers.values())[-1] if answers else None,
            deadline=assign.deadline_unix_ms / 1000 if assign.deadline_unix_ms else None,
            model_hint=assign.model_hint,
            protocol=assign.protocol,
            answers=answers,
            asker=lambda interrupt_id, data: self._ask(held_ref[0], interrupt_id, data, sink),
            checker=lambda point, tool, data: self._check_tool(held_ref[0], point, tool, data),
            hooks=self.app.hooks,
        )
        if endpoint is None:
            # The gateway only assigns registered endpoints; answer precisely rather than hang the run.
            self._send(_done(assign, int(assign.next_seq) - 1, error=("UnknownEndpoint", assign.endpoint)))
            return
        held = HeldRun(assign=assign, endpoint=endpoint, context=context, base_seq=int(assign.next_seq))
        if assign.trace_context:
            held.spans = tracing.run_spans(
                assign.trace_context, assign.endpoint, assign.run_id, assign.attempt
            )
        held_ref.append(held)
        self._runs[assign.run_id] = held
        self._idle.clear()
        self._active.add(assign.run_id)
        held.task = asyncio.get_running_loop().create_task(self._execute(held))

    async def _execute(self, held: HeldRun) -> None:
        endpoint = held.endpoint
        last = lambda: held.next_seq - 1  # noqa: E731
        hooks = self.app.hooks
        if held.spans is not None:
            held.spans.attach()  # this task's context: the application's own spans nest in the attempt's
        try:
            raw = held.assign.input
            if "on_request" in hooks:
                raw = msgspec.json.encode(
                    await held.context._run_hooks("on_request", msgspec.json.decode(raw or b"{}"))
                )
            args, kwargs = endpoint.shape.bind(raw, held.context)
            if endpoint.shape.is_async:
                result = await endpoint.fn(*args, **kwargs)
            else:
                result = await asyncio.get_running_loop().run_in_executor(
                    self._pool, partial(endpoint.fn, *args, **kwargs)
                )
            output = endpoint.encode_output(result)
            if "on_response" in hooks:
                output = msgspec.json.encode(
                    await held.context._run_hooks("on_response", msgspec.json.decode(output))
                )
            done = _done(held.assign, last(), output=output)
        except asyncio.CancelledError:
            if held.released or held.assign.run_id not in self._runs:
                if held.spans is not None:
                    held.spans.end(reason="handed back" if held.released else "superseded or dropped")
                return
            done = _done(held.assign, last(), cancelled=True)
        except InputError as exc:
            detail = "; ".join(f"{e.path}: {e.message}" for e in exc.errors)
            done = _done(held.assign, last(), error=("InputError", detail))
        except (HookRejected, ToolRejected) as exc:
            log.info("run %s (%s) refused: %s", held.assign.run_id, endpoint.name, exc)
            done = _done(held.assign, last(), error=(type(exc).__name__, str(exc)))
        except Exception as exc:
            log.exception("run %s (%s) failed", held.assign.run_id, endpoint.name)
            done = _done(held.assign, last(), error=(type(exc).__name__, str(exc)))
        held.done = done.done
        if held.spans is not None:
            held.spans.end(done.done)
        held.finished_at = time.monotonic()
        self._active.discard(held.assign.run_id)
        self._finished.append(held)
        self._send(done)
        if not self._active_count():
            self._idle.set()


def _done(
    assign: pb.Assign,
    last_seq: int,
    *,
    output: bytes | None = None,
    error: tuple[str, str] | None = None,
    cancelled: bool = False,
) -> pb.WorkerMessage:
    done = pb.Done(run_id=assign.run_id, attempt=assign.attempt, last_seq=last_seq)
    if error is not None:
        done.error.CopyFrom(pb.RunError(type=error[0], message=error[1]))
    elif cancelled:
        done.cancelled = True
    else:
        done.output = output if output is not None else b"null"
    return pb.WorkerMessage(done=done)


async def serve(app: App, **options: Any) -> None:
    """Run a worker for ``app`` until SIGTERM / SIGINT drains it."""
    # The app and its imports live as long as the process: keep them out of the collector's full passes.
    gc.collect()
    gc.freeze()
    tracing.configure_from_environment()  # OTEL_TRACES_EXPORTER set and opentelemetry-sdk installed
    await Worker(app, **options).run(install_signal_handlers=True)


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
