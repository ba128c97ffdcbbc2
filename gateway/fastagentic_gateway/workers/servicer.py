"""The gRPC side of the worker protocol: handshake, message validation, and the stream's lifetime.

A worker that breaks the protocol gets a Reject naming the reason and is disconnected; its runs keep
their leases (they are requeued when the lease expires) and the gateway goes on serving everyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import msgspec

from fastagentic.v1 import worker_pb2 as pb
from fastagentic.v1 import worker_pb2_grpc as pb_grpc

from ..access.audit import AuditLog
from ..access.keys import CredentialRejected, Credentials
from ..access.model import CredentialKind
from ..runs.service import RunService
from ..settings import Settings
from ..telemetry.metrics import GatewayMetrics
from .connection import ProtocolViolation, WorkerConnection
from .lanes import LaneFailed, RunLanes
from .registry import EndpointRegistry, RegistrationError

log = logging.getLogger("fastagentic.workers")

PROTOCOL_VERSION = 1
HELLO_TIMEOUT = 10.0
MAX_ENDPOINTS = 1000
#: What this gateway enforces for workers' endpoints (Welcome.features): a worker relying on one refuses a
#: gateway without it.
GATEWAY_FEATURES = ("require_approval",)
_COMPLETABLE = frozenset({pb.ENDPOINT_KIND_PROMPT, pb.ENDPOINT_KIND_RESOURCE})


def server_options(settings: Settings) -> list[tuple[str, int]]:
    return [
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
    ]


def completions_of(specs: list[pb.EndpointSpec]) -> dict[str, frozenset[str]]:
    """Which arguments of which endpoints the worker completes; RegistrationError when a spec declares
    completions where there are none to make (not a prompt or resource, an argument it does not have)."""
    completions: dict[str, frozenset[str]] = {}
    for spec in specs:
        if not spec.completions:
            continue
        if spec.kind not in _COMPLETABLE:
            raise RegistrationError(f"endpoint {spec.name!r}: only prompts and resources declare completions")
        declared = frozenset(spec.completions)
        # The registry has checked the schema is JSON; its properties are the arguments.
        try:
            schema = msgspec.json.decode(spec.input_schema) if spec.input_schema else {}
        except msgspec.DecodeError:
            schema = {}
        properties = schema.get("properties", {}) if isinstance(schema, dict) else {}
        unknown = sorted(name for name in declared if name not in properties)
        if unknown:
            raise RegistrationError(
                f"endpoint {spec.name!r}: completions {unknown[:5]} are not arguments of the endpoint"
            )
        completions[spec.name] = declared
    return completions


def _reject(code: str, message: str) -> pb.GatewayFrame:
    return pb.GatewayFrame(messages=[pb.GatewayMessage(reject=pb.Reject(code=code, message=message))])


class WorkerGateway(pb_grpc.WorkerGatewayServicer):
    def __init__(
        self,
        settings: Settings,
        registry: EndpointRegistry,
        runs: RunService,
        credentials: Credentials | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.runs = runs
        #: worker tokens are verified against these when workers must authenticate (auth = "required")
        self.credentials = credentials if settings.auth == "required" else None
        self.audit = audit
        self.gateway_id = uuid.uuid4().hex[:12]
        #: worker id -> (credential, until when) of workers that disconnected within a lease
        self._recent: OrderedDict[str, tuple[str, float]] = OrderedDict()
        #: counts refused workers when the gateway serves metrics
        self.metrics: GatewayMetrics | None = None

    def _reject(self, code: str, message: str) -> pb.GatewayFrame:
        if self.metrics is not None:
            self.metrics.worker_refused.inc(code)
        return _reject(code, message)

    def _remember(self, worker: WorkerConnection) -> None:
        if not worker.credential:
            return
        self._recent[worker.worker_id] = (worker.credential, time.monotonic() + self.settings.lease_ttl)
        self._recent.move_to_end(worker.worker_id)
        while len(self._recent) > 100_000:
            self._recent.popitem(last=False)

    def _certificate_of(self, context: grpc.aio.ServicerContext) -> tuple[str, set[str]] | None:
        """(credential, endpoints) of the peer's verified client certificate when ``worker_certificates``
        names it (its subject CN, or one of its DNS names)."""
        if not self.settings.worker_ca_file:
            return None
        auth = context.auth_context()
        names = [
            n.decode()
            for key in ("x509_common_name", "x509_subject_alternative_name")
            for n in auth.get(key, [])
        ]
        for name in names:
            allowed = self.settings.worker_certificates.get(name)
            if allowed is not None:
                return f"cert:{name}", set(allowed)
        return None

    async def _credential_of(self, hello: pb.Hello, certificate: tuple[str, set[str]] | None = None) -> str:
        """The id of the credential ``hello`` presents ("" when workers do not authenticate): the shared
        ``worker_token`` of the settings, or a worker token of the store. A CredentialRejected says why
        the worker may not serve what it registers."""
        shared = self.settings.worker_token
        if shared and hmac.compare_digest(hello.token.encode(), shared.encode()):
            credential, allowed = "settings:worker_token", set(self.settings.worker_token_endpoints)
        elif certificate is not None and not hello.token:
            credential, allowed = certificate
        elif self.credentials is None and not shared:
            return ""  # auth = "none" and no shared token: workers do not authenticate
        elif self.credentials is None:
            raise CredentialRejected("bad or missing worker token")
        elif not hello.token:
            raise CredentialRejected("a worker token is required: fastagentic-gateway workers create-token")
        else:
            token = await self.credentials.verify(hello.token, CredentialKind.WORKER_TOKEN)
            credential, allowed = token.id, set(token.endpoints)
        if "*" not in allowed:
            refused = sorted({spec.name for spec in hello.endpoints} - allowed)
            if refused:
                raise CredentialRejected(
                    f"worker token {credential} may not serve {', '.join(repr(n) for n in refused[:5])}",
                    credential,
                )
        holder = self.runs.workers.get(hello.worker_id)
        recent = self._recent.get(hello.worker_id)
        if recent is not None and recent[1] < time.monotonic():
            recent = None
        if (holder is not None and holder.credential != credential) or (
            holder is None and recent is not None and recent[0] != credential
        ):
            raise CredentialRejected(
                f"worker id {hello.worker_id!r} is connected under another worker token", credential
            )
        return credential

    def _check_hello(self, hello: pb.Hello) -> tuple[str, str] | None:
        """(code, message) when the Hello cannot be accepted."""
        if hello.protocol_version != PROTOCOL_VERSION:
            return (
                "unsupported_protocol",
                f"protocol version {hello.protocol_version} is not {PROTOCOL_VERSION}",
            )
        if not hello.worker_id or len(hello.worker_id) > 200:
            return "invalid_hello", "worker_id must be 1 to 200 characters"
        if len(hello.endpoints) > MAX_ENDPOINTS:
            return "invalid_hello", f"at most {MAX_ENDPOINTS} endpoints per worker"
        if hello.slots > 10_000:
            return "invalid_hello", "slots must be at most 10000"
        return None

    async def Connect(
        self, request_iterator: AsyncIterator[pb.WorkerFrame], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GatewayFrame]:
        peer = context.peer()
        try:
            frame = await asyncio.wait_for(anext(request_iterator), HELLO_TIMEOUT)
        except (TimeoutError, StopAsyncIteration):
            log.warning("worker %s: no Hello within %.0fs; disconnected", peer, HELLO_TIMEOUT)
            yield self._reject("protocol_violation", "the first message must be Hello")
            return
        first = frame.messages[0] if frame.messages else pb.WorkerMessage()
        if first.WhichOneof("body") != "hello":
            log.warning(
                "worker %s: first message was %s, not Hello; disconnected", peer, first.WhichOneof("body")
            )
            yield self._reject("protocol_violation", "the first message must be Hello")
            return
        hello = first.hello
        problem = self._check_hello(hello)
        if problem is not None:
            log.warning("worker %s (%s) refused: %s", hello.worker_id[:200], peer, problem[1])
            yield self._reject(*problem)
            return
        try:
            credential = await self._credential_of(hello, self._certificate_of(context))
        except CredentialRejected as exc:
            log.warning("worker %s (%s) refused: %s", hello.worker_id[:200], peer, exc.reason)
            if self.audit is not None:
                self.audit.record(
                    "worker.refused",
                    outcome="denied",
                    subject=exc.credential_id,
                    protocol="grpc",
                    target=hello.worker_id[:200],
                    detail=exc.reason,
                )
            yield self._reject("unauthenticated", exc.reason)
            return
        try:
            completions = completions_of(list(hello.endpoints))
        except RegistrationError as exc:
            log.warning("worker %s (%s) refused: %s", hello.worker_id, peer, exc)
            yield self._reject("invalid_registration", str(exc))
            return
        worker = WorkerConnection(
            hello.worker_id,
            hello.app_name[:200],
            hello.slots,
            [spec.name for spec in hello.endpoints],
            completions,
            credential,
        )
        try:
            self.registry.register(worker, list(hello.endpoints))
        except RegistrationError as exc:
            log.warning("worker %s (%s) refused: %s", hello.worker_id, peer, exc)
            yield self._reject("invalid_registration", str(exc))
            return
        reader: asyncio.Task[None] | None = None
        try:
            held = await self.runs.attach(worker, hello.held)
            hooks = self.runs.hooks
            welcome = pb.GatewayMessage(
                welcome=pb.Welcome(
                    gateway_id=self.gateway_id,
                    heartbeat_interval_ms=int(self.settings.heartbeat_interval * 1000),
                    lease_ttl_ms=int(self.settings.lease_ttl * 1000),
                    max_message_bytes=self.settings.max_message_bytes,
                    held=held,
                    interrupt_hold_ms=max(1, int(self.settings.interrupt_hold * 1000)),
                    interrupt_timeout_ms=max(1, min(int(self.settings.interrupt_timeout * 1000), 2**32 - 1)),
                    features=GATEWAY_FEATURES,
                    tool_checks=hooks.tool_points if hooks is not None else (),
                    tool_check_timeout_ms=int(hooks.tool_check_timeout * 1000) if hooks is not None else 0,
                )
            )
            yield pb.GatewayFrame(messages=[welcome])
            log.info(
                "worker %s (%s) connected: %d endpoint(s), %d slot(s), %d run(s) kept",
                worker.worker_id,
                worker.app_name,
                len(worker.endpoints),
                worker.capacity,
                sum(1 for h in held if h.keep),
            )
            worker.features = frozenset(feature[:64] for feature in hello.features[:64])
            lacking = self.runs.lacking(worker)
            if lacking:
                log.warning(
                    "worker %s (SDK %s) lacks %s; upgrade its SDK",
                    worker.worker_id,
                    hello.sdk_version[:40],
                    lacking,
                )
            self.runs.ready(worker)
            reader = asyncio.create_task(self._read(worker, request_iterator, list(frame.messages[1:])))
            outbox = worker.outbox
            budget = self.settings.max_message_bytes // 2  # a frame stays well under the message limit
            while True:
                # Everything queued for this worker goes out in one frame.
                message = await outbox.get()
                if message is None:
                    break
                out = pb.GatewayFrame(messages=[message])
                size = message.ByteSize()
                while not outbox.empty() and size < budget:
                    message = outbox.get_nowait()
                    if message is None:
                        break
                    out.messages.append(message)
                    size += message.ByteSize()
                yield out
                if message is None:
                    break
        finally:
            self.registry.unregister(worker)
            self.runs.detach(worker)
            # Its runs keep their leases for a while: its id stays its credential's until they lapse.
            self._remember(worker)
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            log.info("worker %s disconnected", worker.worker_id)

    async def _read(
        self,
        worker: WorkerConnection,
        request_iterator: AsyncIterator[pb.WorkerFrame],
        pending: list[pb.WorkerMessage],
    ) -> None:
        def checks_in_order() -> bool:
            hooks = self.runs.hooks  # read per frame: SIGHUP may reload them
            return hooks is not None and hooks.observes

        lanes = RunLanes(
            worker,
            lambda message: self.runs.on_message(worker, message),
            lambda exc: _broken(worker, exc),
            checks_in_order=checks_in_order,
        )
        try:
            await lanes.put(pending)
            async for frame in request_iterator:
                await lanes.put(frame.messages)
            await lanes.drain()  # the worker ended its stream: what it sent last is handled all the same
        except LaneFailed:
            pass
        except Exception as exc:
            _broken(worker, exc)
        finally:
            worker.close()


def _broken(worker: WorkerConnection, exc: BaseException) -> None:
    """Handling a worker's message failed: its stream closes (with a Reject when the worker is at fault)."""
    if isinstance(exc, ProtocolViolation):
        log.warning("worker %s broke the protocol and is disconnected: %s", worker.worker_id, exc)
        worker.send(pb.GatewayMessage(reject=pb.Reject(code="protocol_violation", message=str(exc))))
    elif not isinstance(exc, grpc.aio.AioRpcError):
        # Not the worker's fault (e.g. the store failed): close without Reject so it reconnects.
        log.error("worker %s: failed to handle a message; closing its stream", worker.worker_id, exc_info=exc)
    worker.close()


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS for the worker port (``tls_cert_file``), requiring client certificates signed by
    ``worker_ca_file`` when it is set (mTLS); None: plain gRPC."""
    if not settings.tls_cert_file:
        return None
    key = Path(settings.tls_key_file).read_bytes()
    chain = Path(settings.tls_cert_file).read_bytes()
    ca = Path(settings.worker_ca_file).read_bytes() if settings.worker_ca_file else None
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=ca, require_client_auth=ca is not None
    )


def build_server(settings: Settings, servicer: WorkerGateway) -> grpc.aio.Server:
    server = grpc.aio.server(options=server_options(settings))
    pb_grpc.add_WorkerGatewayServicer_to_server(servicer, server)
    return server
