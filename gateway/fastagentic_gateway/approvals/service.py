"""Approvals: tell people when a run waits for input, take their answers by link, apply timeouts.

- ``waiting(run)``: the run machinery calls it when a run starts waiting (once per interrupt, on the
  replica that stored the interrupt). The first approval rule matching the run's endpoint, tenant and
  kind names the channels; each recipient gets its own signed links. Delivery is in the background and
  never holds the run machinery up.
- ``show`` / ``answer``: the ``/v1/approvals/{token}`` routes. ``answer`` calls ``RunService.resume``
  (a compare-and-set on the run: of two answers at once, one wins, the other gets 409) and records the
  decision in the audit log (``run.approve``, ``run.reject``, ``run.edit``, ``run.answer``).
- ``sweep``: every ``approval_sweep_interval`` seconds, the runs waiting for input are read from the store
  (so timeouts hold across restarts and replicas), and each one whose rule's ``timeout`` has passed since
  its ``interrupt`` event is rejected, approved, or escalated. Every replica sweeps: the resume's
  compare-and-set keeps one answer, and an escalation goes out once for the cluster (a key created in the
  shared counters, NATS key-value in a cluster).

The sweep reads the waiting runs of every tenant from the stores (``RunStore.waiting``), the longest
waiting first, ``SWEEP_LIMIT`` a store and sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import Any
from urllib.parse import parse_qs

import msgspec

from ..access.audit import AuditLog
from ..access.principal import Principal, Via
from ..errors import Conflict, InvalidInput, MalformedRequest, NotFound, StoreUnavailable
from ..limits.counters import Counters, CounterUnavailable
from ..runs.model import Event, Run, RunStatus
from ..runs.service import PendingInterrupt, RunService
from ..settings import Settings
from ..validation import FieldError
from .channels import Delivery, Notice
from .config import ApprovalChannel, ApprovalRule
from .tokens import ApprovalClaims, digest_of, sign, verify

log = logging.getLogger("fastagentic.approvals")

__all__ = ["Approvals", "Asked", "kind_of"]

#: the answers of an approval (``ctx.approve``) and of any other interrupt
APPROVAL_DECISIONS = ("approve", "reject", "edit")
QUESTION_DECISIONS = ("answer",)
MAX_REASON = 2000
#: runs looked at per store and sweep, the longest waiting first (the rest are seen once those are answered)
SWEEP_LIMIT = 1000
#: interrupts whose timeout this replica already acted on, remembered (then forgotten: acting again is a 409)
MAX_DONE = 100_000
#: how long the cluster remembers that an escalation went out
ESCALATED_TTL = 40 * 86400.0


def kind_of(request: Any) -> str:
    """``approval`` for what ``ctx.approve`` asks (``{"approval": {"action", …}}``), else ``question``."""
    if isinstance(request, dict) and isinstance(request.get("approval"), dict):
        return "approval"
    return "question"


class Asked(msgspec.Struct, kw_only=True):
    """What a link answers, as ``GET /v1/approvals/{token}`` shows it."""

    run_id: str
    endpoint: str
    tenant: str
    attempt: int
    kind: str
    decision: str  # what this link answers: approve, reject, edit or answer
    interrupt: dict[str, Any]
    digest: str
    recipient: str
    channel: str
    expires_at: int
    answer_with: dict[str, Any]


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = ""
    payload: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)  # empty: not given (null neither)
    answer: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)

    def given(self, name: str) -> bytes | None:
        raw = bytes(getattr(self, name))
        return raw if raw and raw != b"null" else None


class Approvals:
    def __init__(
        self,
        settings: Settings,
        runs: RunService,
        counters: Counters,
        *,
        audit: AuditLog | None = None,
    ) -> None:
        self.settings = settings
        self.runs = runs
        self.counters = counters
        self.audit = audit
        self.channels = {channel.name: channel for channel in settings.approval_channels}
        self.rules = list(settings.approval_rules) or [
            ApprovalRule(name="default", channels=list(self.channels))
        ]
        self.secrets = [settings.approval_secret.encode()] + (
            [settings.approval_previous_secret.encode()] if settings.approval_previous_secret else []
        )
        base = settings.approval_url or settings.public_url
        if not base:
            host = settings.http_host if ":" not in settings.http_host else f"[{settings.http_host}]"
            scheme = "https" if settings.tls_cert_file else "http"
            base = f"{scheme}://{host}:{settings.http_port}"
        self.base_url = base.rstrip("/")
        self.delivery = Delivery(
            attempts=settings.approval_delivery_attempts,
            backoff=settings.approval_delivery_backoff,
            timeout=settings.approval_delivery_timeout,
            smtp={
                "host": settings.approval_smtp_host,
                "port": settings.approval_smtp_port,
                "security": settings.approval_smtp_security,
                "username": settings.approval_smtp_username,
                "password": settings.approval_smtp_password,
                "sender": settings.approval_smtp_from,
            },
            urls={channel.url for channel in settings.approval_channels if channel.url},
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._done: set[str] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.delivery.start()
        if any(rule.timeout for rule in self.rules):
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(), name="approvals")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._tasks:  # notifications under way get a delivery's time to finish, then are dropped (logged)
            _, late = await asyncio.wait(set(self._tasks), timeout=self.settings.approval_delivery_timeout)
            for task in late:
                log.warning("approval notification dropped at shutdown (the run still waits)")
                task.cancel()
            for task in late:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.delivery.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("approval notification failed", exc_info=task.exception())

    # ------------------------------------------------------------------ notifications

    def waiting(self, run: Run) -> None:
        """``run`` just started waiting for input (its last event is the interrupt): notify, in the
        background. Never raises: the run machinery must not be held up by a notification."""
        try:
            self._spawn(self._notify_waiting(run))
        except RuntimeError:  # no running loop: nothing to notify from
            log.error("run %s waits for input but no notification could be started", run.id)

    async def _notify_waiting(self, run: Run) -> None:
        event = await self._interrupt_event(run)
        if event is None:
            return
        pending = msgspec.json.decode(event.data, type=PendingInterrupt)
        rule = self.rule_for(run, kind_of(pending.request))
        if rule is None:
            return
        await self._notify(run, event, pending, rule, rule.channels, escalated=False)

    def rule_for(self, run: Run, kind: str) -> ApprovalRule | None:
        return next((r for r in self.rules if r.applies(run.endpoint, run.caller.tenant, kind)), None)

    async def _interrupt_event(self, run: Run) -> Event | None:
        """The interrupt ``run`` waits on (its last event), or None when its last event is something else."""
        store = self.runs.durable if run.durable else self.runs.ephemeral
        events = await store.events(run.id, after_seq=max(run.last_seq - 1, 0))
        if not events or events[-1].kind != "interrupt" or events[-1].seq != run.last_seq:
            return None
        return events[-1]

    async def _notify(
        self,
        run: Run,
        event: Event,
        pending: PendingInterrupt,
        rule: ApprovalRule,
        channel_names: list[str],
        *,
        escalated: bool,
    ) -> None:
        tenant = run.caller.tenant
        kind = kind_of(pending.request)
        digest = digest_of(event.data)
        expires = math.ceil(time.time() + self.settings.approval_link_ttl)
        if self.audit is not None:
            self.audit.record(
                "approval.escalate" if escalated else "approval.notify",
                subject="approvals",
                tenant=tenant,
                protocol="approvals",
                target=run.id,
                detail=f"rule {rule.name}, channels {', '.join(channel_names)}; interrupt {pending.id} "
                f"(seq {event.seq}, attempt {run.attempt}) {digest}",
            )
        sends = []
        for name in channel_names:
            channel = self.channels[name]
            for recipient in channel.to if channel.type == "email" else [channel.approver]:
                claims = ApprovalClaims(
                    v=1,
                    run=run.id,
                    tenant=tenant,
                    attempt=run.attempt,
                    interrupt=pending.id,
                    seq=event.seq,
                    digest=digest,
                    decision="",
                    to=recipient,
                    channel=channel.name,
                    exp=expires,
                )
                decisions = APPROVAL_DECISIONS if kind == "approval" else QUESTION_DECISIONS
                links = {d: self.link(msgspec.structs.replace(claims, decision=d)) for d in decisions}
                notice = Notice(
                    type="approval.escalated" if escalated else "approval.requested",
                    id=f"{run.id}:{event.seq}",
                    run_id=run.id,
                    attempt=run.attempt,
                    endpoint=run.endpoint,
                    tenant=tenant,
                    kind=kind,
                    interrupt=msgspec.json.decode(event.data),
                    digest=digest,
                    asked_at=event.ts,
                    expires_at=expires,
                    channel=channel.name,
                    recipient=recipient,
                    links=links,
                    rule=rule.name,
                )
                sends.append(self._deliver(channel, notice))
        await asyncio.gather(*sends)

    def link(self, claims: ApprovalClaims) -> str:
        return f"{self.base_url}/v1/approvals/{sign(claims, self.secrets[0])}"

    async def _deliver(self, channel: ApprovalChannel, notice: Notice) -> None:
        if await self.delivery.send(channel, notice):
            return
        if self.audit is not None:
            self.audit.record(
                "approval.undelivered",
                outcome="failed",
                subject="approvals",
                tenant=notice.tenant,
                protocol="approvals",
                target=notice.run_id,
                detail=f"channel {channel.name} to {notice.recipient}: gave up after "
                f"{self.settings.approval_delivery_attempts} attempt(s) (see the gateway's log)",
            )

    # ------------------------------------------------------------------ links

    async def _check(self, token: str) -> tuple[ApprovalClaims, Run, PendingInterrupt]:
        """The claims of ``token`` and the run it answers, still waiting on that very interrupt."""
        claims = verify(token, self.secrets)
        run = await self.runs.get(claims.run, claims.tenant)
        if run is None:
            raise NotFound(f"run {claims.run} no longer exists")
        if run.status is not RunStatus.WAITING_INPUT:
            raise Conflict(
                f"run {run.id} no longer waits for this answer ({run.status.value}): it was answered, "
                "or it ended",
                extra={"run_id": run.id, "status": run.status.value},
            )
        event = await self._interrupt_event(run)
        if event is None or event.seq != claims.seq:
            raise Conflict(
                f"run {run.id} no longer waits for this answer: that question was answered (it may wait "
                "on another one now)",
                extra={"run_id": run.id, "status": run.status.value},
            )
        if digest_of(event.data) != claims.digest:
            raise Conflict(f"run {run.id} waits on another request than this link was made for")
        return claims, run, msgspec.json.decode(event.data, type=PendingInterrupt)

    async def show(self, token: str) -> Asked:
        claims, run, pending = await self._check(token)
        body: dict[str, Any]
        if claims.decision == "edit":
            body = {"payload": "<the edited payload (required)>", "reason": "<optional>"}
        elif claims.decision == "answer":
            body = {"answer": "<an answer matching interrupt.schema (required)>"}
        else:
            body = {"reason": "<optional>"}
        return Asked(
            run_id=run.id,
            endpoint=run.endpoint,
            tenant=run.caller.tenant,
            attempt=claims.attempt,
            kind=kind_of(pending.request),
            decision=claims.decision,
            interrupt={"id": pending.id, "request": pending.request, "schema": pending.schema},
            digest=claims.digest,
            recipient=claims.to,
            channel=claims.channel,
            expires_at=claims.exp,
            answer_with={"method": "POST", "body": body},
        )

    async def answer(
        self, token: str, principal: Principal, body: bytes, *, form: bool = False, request_id: str = ""
    ) -> tuple[Run, str, str]:
        """Answer what ``token`` answers; ``body`` (JSON, or form fields) may add a reason, an edited
        payload, or (a question) the answer. Returns the run, the decision and the approver."""
        claims, run, pending = await self._check(token)
        parsed = _parse_body(body, form)
        answer: Any
        given, payload = parsed.given("answer"), parsed.given("payload")
        if claims.decision == "answer":
            if given is None or parsed.reason or payload is not None:
                raise InvalidInput(
                    'this link answers a question: the body must be {"answer": …}',
                    errors=[FieldError("$.answer", "required")],
                )
            answer = msgspec.json.decode(given)
        else:
            if given is not None:
                raise InvalidInput(
                    f"this link {claims.decision}s an approval: it takes a reason"
                    + (" and a payload" if claims.decision == "edit" else "")
                    + ", not an answer",
                    errors=[FieldError("$.answer", "not allowed")],
                )
            answer = {"decision": claims.decision}
            if claims.decision == "edit":
                if payload is None:
                    raise InvalidInput(
                        "an edit needs the edited payload", errors=[FieldError("$.payload", "required")]
                    )
                answer["payload"] = msgspec.json.decode(payload)
            elif payload is not None:
                raise InvalidInput(
                    f"a payload goes with an edit link, not a {claims.decision} link",
                    errors=[FieldError("$.payload", "not allowed")],
                )
            if parsed.reason:
                answer["reason"] = parsed.reason
        authenticated = principal.via is not Via.ANONYMOUS and bool(principal.subject)
        approver = principal.subject if authenticated else claims.to
        who = Principal(subject=approver, tenant=claims.tenant, via=principal.via, unrestricted=True)
        raw = msgspec.json.encode(answer)
        resumed = await self.runs.resume(
            run.id,
            who,
            answer,
            raw,
            interrupt_id=claims.interrupt,
            protocol="approvals",
            request_id=request_id,
        )
        if self.audit is not None:
            by = f"authenticated ({principal.tenant}, {principal.via.value})" if authenticated else "link"
            self.audit.record(
                f"run.{claims.decision}",
                subject=approver,
                tenant=claims.tenant,
                protocol="approvals",
                request_id=request_id,
                target=run.id,
                detail=f"attempt {claims.attempt}, interrupt {pending.id}, {claims.digest}, channel "
                f"{claims.channel}, link to {claims.to}, by {by}",
            )
        log.info(
            "run %s: %s by %s (approval link, channel %s)", run.id, claims.decision, approver, claims.channel
        )
        return resumed, claims.decision, approver

    # ------------------------------------------------------------------ timeouts

    async def _sweep_forever(self) -> None:
        interval = self.settings.approval_sweep_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except StoreUnavailable as exc:
                log.warning("approval timeouts wait for the run store: %s", exc.message)
            except Exception:
                log.exception("approval sweep failed; retrying")

    async def sweep(self, now: float | None = None) -> None:
        """Apply the rules' timeouts to the runs waiting for input."""
        now = time.time() if now is None else now
        for store in (self.runs.durable, self.runs.ephemeral):
            for run in await store.waiting(SWEEP_LIMIT):
                await self._timeout(run, now)

    async def _timeout(self, run: Run, now: float) -> None:
        event = await self._interrupt_event(run)
        if event is None:
            return
        key = f"{run.id}:{event.seq}"
        if key in self._done:
            return
        pending = msgspec.json.decode(event.data, type=PendingInterrupt)
        kind = kind_of(pending.request)
        rule = self.rule_for(run, kind)
        if rule is None or not rule.timeout or now - event.ts < rule.timeout:
            return
        if len(self._done) >= MAX_DONE:
            self._done.clear()
        self._done.add(key)
        reason = f"no answer within {rule.timeout:g} s (approval rule {rule.name})"
        timer = Principal(subject="approvals:timeout", tenant=run.caller.tenant, unrestricted=True)
        try:
            if rule.on_timeout == "escalate":
                try:
                    first = await self.counters.first(f"approval\x1f{key}\x1fescalate", ESCALATED_TTL)
                except CounterUnavailable as exc:
                    log.warning("approval escalation: the shared counter is unreachable (%s); sending", exc)
                    first = True
                if first:
                    log.info("run %s: %s; escalated to %s", run.id, reason, ", ".join(rule.escalate_to))
                    await self._notify(run, event, pending, rule, rule.escalate_to, escalated=True)
                return
            if kind == "question":  # only "reject" reaches here (the settings refuse "approve")
                await self.runs.cancel(run.id, timer, reason, protocol="approvals")
                log.info("run %s cancelled: %s", run.id, reason)
                return
            answer = {"decision": rule.on_timeout, "reason": reason}
            await self.runs.resume(
                run.id,
                timer,
                answer,
                msgspec.json.encode(answer),
                interrupt_id=pending.id,
                protocol="approvals",
            )
            if self.audit is not None:
                self.audit.record(
                    f"run.{rule.on_timeout}",
                    subject="approvals:timeout",
                    tenant=run.caller.tenant,
                    protocol="approvals",
                    target=run.id,
                    detail=f"attempt {run.attempt}, interrupt {pending.id}, {digest_of(event.data)}: {reason}",
                )
            log.info("run %s: %s, so %s", run.id, reason, rule.on_timeout)
        except Conflict:
            pass  # answered meanwhile, or another replica acted first
        except NotFound:
            pass
        except InvalidInput as exc:
            log.warning(
                "run %s: the timeout's %s does not fit interrupt %r (%s): it keeps waiting",
                run.id,
                rule.on_timeout,
                pending.id,
                exc.message,
            )


def _parse_body(body: bytes, form: bool) -> _Body:
    """The optional body of an answer: JSON ``{"reason", "payload", "answer"}`` or, from the answer page,
    form fields of the same names (``payload`` and ``answer`` holding JSON text)."""
    if not body.strip():
        return _Body()
    if not form:
        try:
            parsed = msgspec.json.decode(body, type=_Body)
        except msgspec.ValidationError as exc:
            raise InvalidInput(
                'the body must be {"reason": "…", "payload": …} or {"answer": …}',
                errors=[FieldError("$", str(exc))],
            ) from None
        except msgspec.DecodeError as exc:
            raise MalformedRequest(f"the body is not valid JSON: {exc}") from None
    else:
        parsed = _form_body(body)
    if len(parsed.reason) > MAX_REASON:
        raise InvalidInput(
            f"reason is longer than {MAX_REASON} characters", errors=[FieldError("$.reason", "too long")]
        )
    return parsed


def _form_body(body: bytes) -> _Body:
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedRequest(f"the form is malformed: {exc}") from None
    unknown = sorted(set(fields) - {"reason", "payload", "answer"})
    if unknown:
        raise InvalidInput(
            "unknown form field(s)", errors=[FieldError(f"$.{name}", "unknown field") for name in unknown]
        )
    values = {name: fields[name][-1] for name in fields}
    parsed = _Body(reason=values.get("reason", "").strip())
    for name in ("payload", "answer"):
        text = values.get(name, "").strip()
        if not text:
            continue
        try:
            msgspec.json.decode(text)
        except msgspec.DecodeError:
            raise InvalidInput(
                f"{name} must be JSON", errors=[FieldError(f"$.{name}", "expected JSON")]
            ) from None
        parsed = msgspec.structs.replace(parsed, **{name: msgspec.Raw(text.encode())})
    return parsed
