"""Delivery of approval notifications: a signed JSON webhook, a Slack incoming webhook, email over SMTP.

Each delivery runs in the background with bounded retries (``approval_delivery_attempts``, backoff from
``approval_delivery_backoff`` doubling): network errors, 429 and 5xx (SMTP: 4xx replies and dropped
connections) retry, anything else is final. A delivery that fails for good is logged and audited
(``approval.undelivered``); the run keeps waiting, answerable over the API. One pooled HTTP client serves
every webhook.

The webhook signature (``X-FastAgentic-Signature: t=<unix seconds>,v1=<hex>``) is HMAC-SHA256, keyed with
the channel's ``secret``, of ``f"{t}.{body}"``: the receiver recomputes it over the raw body and refuses
a ``t`` older than its tolerance (replays), as with Stripe's and Slack's signatures.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import httpx
import msgspec

from .config import ApprovalChannel

log = logging.getLogger("fastagentic.approvals")

__all__ = [
    "SIGNATURE_HEADER",
    "Delivery",
    "Notice",
    "email_message",
    "sign_webhook",
    "slack_payload",
]

SIGNATURE_HEADER = "X-FastAgentic-Signature"
#: the most characters of the request shown in a Slack message or an email subject
MAX_SHOWN = 2500


class Notice(msgspec.Struct, kw_only=True):
    """What a notification says (the body of a webhook POST): a run waits for an answer."""

    type: str  # "approval.requested", or "approval.escalated" past a rule's timeout
    id: str  # "<run id>:<seq>": one interrupt; the same for every channel and recipient told of it
    run_id: str
    attempt: int
    endpoint: str
    tenant: str
    kind: str  # "approval" (ctx.approve) or "question"
    interrupt: dict[str, Any]  # {"id", "request", "schema"}: the interrupt event's data
    digest: str  # what the links are bound to: SHA-256 of the interrupt event's data
    asked_at: float
    expires_at: int  # when the links expire
    channel: str
    recipient: str  # whom the links name as the approver
    links: dict[str, str]  # decision -> URL (approve, reject, edit; or answer)
    rule: str


def sign_webhook(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-FastAgentic-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def _shown(value: Any, limit: int = MAX_SHOWN) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def headline(notice: Notice) -> str:
    """One line: what is asked, of whom."""
    request = notice.interrupt.get("request")
    if notice.kind == "approval":
        action = str(request["approval"].get("action", ""))[:100] if isinstance(request, dict) else ""
        text = f"Approval needed: {action} ({notice.endpoint})"
    elif isinstance(request, str):
        text = f"Question from {notice.endpoint}: {request[:100]}"
    elif isinstance(request, dict) and isinstance(request.get("message") or request.get("question"), str):
        text = (
            f"Question from {notice.endpoint}: {str(request.get('message') or request.get('question'))[:100]}"
        )
    else:
        text = f"Question from {notice.endpoint}"
    if notice.type == "approval.escalated":
        text = "Escalated: " + text
    return " ".join(text.split())  # one line: no header injection, no broken Slack header


def _details(notice: Notice) -> Any:
    request = notice.interrupt.get("request")
    if notice.kind == "approval" and isinstance(request, dict):
        return request["approval"].get("details")
    return request


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_LABELS = {"approve": "Approve", "reject": "Reject", "edit": "Edit…", "answer": "Answer…"}
_STYLES = {"approve": "primary", "reject": "danger"}


def slack_payload(notice: Notice) -> dict[str, Any]:
    """An incoming-webhook message: the question, what it is about, and a button per answer link (the
    buttons open the link's page, where the answer is confirmed: opening it answers nothing)."""
    title = headline(notice)
    buttons: list[dict[str, Any]] = []
    for decision, url in notice.links.items():
        button: dict[str, Any] = {
            "type": "button",
            "text": {"type": "plain_text", "text": _LABELS.get(decision, decision)},
            "url": url,
            "action_id": f"fastagentic-{decision}",
        }
        if decision in _STYLES:
            button["style"] = _STYLES[decision]
        buttons.append(button)
    context = (
        f"run `{notice.run_id}` · endpoint `{_slack_escape(notice.endpoint)}` · tenant "
        f"`{_slack_escape(notice.tenant)}` · links expire <!date^{notice.expires_at}^{{date_short_pretty}} "
        f"{{time}}|{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(notice.expires_at))}>"
    )
    return {
        "text": title,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "```" + _slack_escape(_shown(_details(notice))) + "```"},
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
            {"type": "actions", "elements": buttons},
        ],
    }


def email_message(notice: Notice, sender: str, to: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = headline(notice)[:200]
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    lines = [
        headline(notice),
        "",
        _shown(_details(notice), 20_000),
        "",
        f"Run {notice.run_id} (endpoint {notice.endpoint}, tenant {notice.tenant}).",
        "",
    ]
    for decision, url in notice.links.items():
        lines += [f"{_LABELS.get(decision, decision).rstrip('…')}:", url, ""]
    lines += [
        "Each link opens a page where you confirm (and for an edit, give the changes). The links work once,",
        f"for this question only, until {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(notice.expires_at))}.",
        "Do not forward this email: anyone holding a link can answer.",
    ]
    message.set_content("\n".join(lines))
    return message


def _where(url: str) -> str:
    """A channel's URL as logs show it: scheme and host (a Slack webhook's path is its secret)."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode()}"


class _HideChannelUrls(logging.Filter):
    """Drops httpx's request log lines for channel URLs (``Delivery`` logs its own, without the path)."""

    def __init__(self, urls: set[str]) -> None:
        super().__init__()
        self.urls = urls

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(str(arg) in self.urls for arg in args)


class Permanent(Exception):
    """A delivery failure that retrying will not fix."""


class Delivery:
    """Sends notifications; one pooled HTTP client. ``send`` retries and never raises."""

    def __init__(
        self,
        *,
        attempts: int,
        backoff: float,
        timeout: float,
        smtp: dict[str, Any],
        urls: Iterable[str] = (),  # the channels' URLs: kept out of httpx's log lines
    ) -> None:
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.smtp = smtp  # host, port, security, username, password, sender
        self._client: httpx.AsyncClient | None = None
        self._hide = _HideChannelUrls({str(httpx.URL(url)) for url in urls})

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
            logging.getLogger("httpx").addFilter(self._hide)

    async def close(self) -> None:
        logging.getLogger("httpx").removeFilter(self._hide)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send(self, channel: ApprovalChannel, notice: Notice) -> bool:
        """Deliver ``notice`` on ``channel``, retrying; False (logged) when it could not be."""
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                await self._send_once(channel, notice)
                log.info("approval notice %s sent on %s to %s", notice.id, channel.name, notice.recipient)
                return True
            except Permanent as exc:
                log.error("approval notice %s on %s failed for good: %s", notice.id, channel.name, exc)
                return False
            except Exception as exc:  # network, timeouts, 5xx: retried
                if attempt == self.attempts:
                    log.error(
                        "approval notice %s on %s failed after %d attempts: %s",
                        notice.id,
                        channel.name,
                        attempt,
                        exc,
                    )
                    return False
                log.warning(
                    "approval notice %s on %s failed (attempt %d of %d), retrying in %.1fs: %s",
                    notice.id,
                    channel.name,
                    attempt,
                    self.attempts,
                    delay,
                    exc,
                )
            await asyncio.sleep(delay)
            delay *= 2
        return False

    async def _send_once(self, channel: ApprovalChannel, notice: Notice) -> None:
        if channel.type == "email":
            message = email_message(notice, self.smtp["sender"], notice.recipient)
            await asyncio.to_thread(self._smtp_send, message)
            return
        if channel.type == "slack":
            body = msgspec.json.encode(slack_payload(notice))
            headers = {"content-type": "application/json"}
        else:
            body = msgspec.json.encode(notice)
            headers = {
                "content-type": "application/json",
                SIGNATURE_HEADER: sign_webhook(channel.secret, body, int(time.time())),
                "X-FastAgentic-Event": notice.type,
                "X-FastAgentic-Delivery": notice.id,
            }
        assert self._client is not None, "Delivery.start was not called"
        response = await self._client.post(channel.url, content=body, headers=headers)
        if response.status_code < 300:
            return
        reason = f"{_where(channel.url)} answered {response.status_code}"
        if response.status_code == 429 or response.status_code >= 500:
            raise ConnectionError(reason)
        raise Permanent(reason)

    def _smtp_send(self, message: EmailMessage) -> None:
        """One SMTP session (in a thread): connect, secure, authenticate, send."""
        smtp = self.smtp
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if smtp["security"] == "tls":
            client = smtplib.SMTP_SSL(smtp["host"], smtp["port"], timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(smtp["host"], smtp["port"], timeout=self.timeout)
        try:
            client.ehlo()
            if smtp["security"] == "starttls":
                if not client.has_extn("starttls"):
                    raise Permanent(f"the SMTP server {smtp['host']} does not offer STARTTLS")
                client.starttls(context=context)
                client.ehlo()
            if smtp["username"]:
                client.login(smtp["username"], smtp["password"])
            client.send_message(message)
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise Permanent(f"the SMTP server refused: {exc.smtp_code} {exc.smtp_error!r}") from None
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            raise Permanent(f"the SMTP server refused the recipients {sorted(exc.recipients)}") from None
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
