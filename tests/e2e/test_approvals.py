"""Approval channels with real processes: a run calling ``ctx.approve`` (or asking a question) waits, a
signed webhook reaches a local receiver (the example receiver of docs/guides/approvals.md, run as is), a
Slack-shaped message and emails reach a local HTTP server and a local SMTP server this test starts, and
their one-time links answer the run (approve, reject with a reason, edit with a payload, an answer); a
spent, tampered or expired link is refused; the rules' timeouts reject, approve, escalate and cancel,
also across a gateway restart."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, Cluster, Gateway, Worker, wait_until
from tests.e2e.test_identity import cli

WORKER = "tests.workers.approval_worker:app"
HOOK_SECRET = "hook-secret-0123456789abcdef0123456789"
APPROVAL_SECRET = "approval-secret-0123456789abcdef01234567"
WORKER_TOKEN = "worker-token-0123456789"


# ------------------------------------------------------------------------------ the receivers


def _docs_receiver() -> dict[str, Any]:
    """The example receiver of the approvals guide: its code block, executed as it is printed there."""
    guide = (ROOT / "docs" / "guides" / "approvals.md").read_text()
    block = re.search(r"```python\n(# receiver\.py.*?)```", guide, re.S)
    assert block is not None, "the guide lost its example receiver"
    namespace: dict[str, Any] = {"__name__": "receiver"}
    exec(compile(block.group(1), "docs/guides/approvals.md", "exec"), namespace)
    return namespace


class Receiver:
    """A local HTTP server: signed webhooks (checked by the guide's receiver) on any path but /slack,
    Slack messages on /slack. ``fail`` answers that many webhook POSTs 503 first."""

    def __init__(self, secret: str) -> None:
        example = _docs_receiver()
        self.verify = example["verify"]
        self.webhooks: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.slack: list[dict[str, Any]] = []
        self.refused = 0
        self.failed = 0
        self.fail = 0
        receiver = self

        class Handler(example["Receiver"]):  # type: ignore[misc, valid-type]
            def do_POST(self) -> None:
                if self.path == "/slack":
                    body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                    receiver.slack.append(json.loads(body))
                    self.send_response(200)
                    self.end_headers()
                    return
                if receiver.fail > 0:
                    receiver.fail -= 1
                    receiver.failed += 1
                    self.rfile.read(int(self.headers.get("Content-Length", "0")))
                    self.send_response(503)
                    self.end_headers()
                    return
                super().do_POST()
                if self._status == 401:
                    receiver.refused += 1

            def send_response(self, code: int, message: str | None = None) -> None:
                self._status = code
                super().send_response(code, message)

            def handle_notice(self, notice: dict[str, Any]) -> None:
                receiver.webhooks.append((self.path, notice, dict(self.headers)))

            def log_message(self, *args: Any) -> None:
                pass

        Handler.secret = secret
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def notices(self, run_id: str, path: str = "/hook") -> list[dict[str, Any]]:
        return [
            notice for where, notice, _ in list(self.webhooks) if where == path and notice["run_id"] == run_id
        ]

    def notice(self, run_id: str, path: str = "/hook") -> dict[str, Any]:
        found = wait_until(lambda: self.notices(run_id, path), what=f"a webhook for {run_id} on {path}")
        assert len(found) == 1, found
        return found[0]


class SmtpSink:
    """A small SMTP server (asyncio, in a thread): EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.logins: list[str] = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(asyncio.start_server(self._session, "127.0.0.1", 0))
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=serve, daemon=True).start()
        ready.wait(5)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        say("220 sink ESMTP")
        try:
            while line := (await reader.readline()).decode().rstrip("\r\n"):
                verb = line.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    say("250-sink")
                    say("250-AUTH PLAIN")
                    say("250 8BITMIME")
                elif verb == "AUTH":
                    _, user, password = base64.b64decode(line.split()[2]).decode().split("\0")
                    self.logins.append(f"{user}:{password}")
                    say("235 2.7.0 authenticated")
                elif verb == "DATA":
                    say("354 go on")
                    await writer.drain()
                    lines = []
                    while (data := (await reader.readline()).decode()) != ".\r\n":
                        lines.append(data[1:] if data.startswith("..") else data)
                    message = email.message_from_string("".join(lines), policy=email.policy.default)
                    self.messages.append(message)
                    say("250 2.0.0 queued")
                elif verb == "QUIT":
                    say("221 bye")
                    await writer.drain()
                    break
                else:  # MAIL, RCPT, RSET, NOOP
                    say("250 ok")
                await writer.drain()
        finally:
            writer.close()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)

    def mails(self, run_id: str) -> list[EmailMessage]:
        return [m for m in list(self.messages) if run_id in m.get_content()]


def _links(text: str) -> dict[str, str]:
    """The links of an approval email: each follows its label's line."""
    found: dict[str, str] = {}
    lines = text.splitlines()
    for label, url in itertools.pairwise(lines):
        if label.rstrip(":") in ("Approve", "Reject", "Edit", "Answer") and "/v1/approvals/" in url:
            found[label.rstrip(":").lower()] = url
    return found


# ------------------------------------------------------------------------------ the gateway


def _start(cluster: Cluster, receiver: Receiver, **settings: str) -> Gateway:
    gateway = cluster.start_gateway(
        approval_secret=APPROVAL_SECRET,
        approval_delivery_backoff="0.2",
        **settings,
    )
    _worker(cluster, gateway)
    return gateway


def _worker(cluster: Cluster, gateway: Gateway) -> Worker:
    worker = Worker(gateway, WORKER, cluster.logs, f"approvals{len(cluster.processes)}")
    worker.env["FASTAGENTIC_WORKER_TOKEN"] = WORKER_TOKEN
    worker.start()
    cluster.processes.append(worker)
    wait_until(lambda: "(approvals) connected" in gateway.output(), what="the approval worker")
    return worker


def _auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def _start_run(gateway: Gateway, endpoint: str, body: dict[str, Any], key: str | None = None) -> str:
    response = httpx.post(
        f"{gateway.url}/v1/agents/{endpoint}/runs", json=body, headers=_auth(key), timeout=10
    )
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id


def _run(gateway: Gateway, run_id: str, key: str | None = None) -> dict[str, Any]:
    response = httpx.get(f"{gateway.url}/v1/runs/{run_id}", headers=_auth(key), timeout=10)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def _ended(gateway: Gateway, run_id: str, key: str | None = None, timeout: float = 20) -> dict[str, Any]:
    run: dict[str, Any] = wait_until(
        lambda: (r := _run(gateway, run_id, key))["status"] in ("succeeded", "failed", "cancelled") and r,
        timeout=timeout,
        what=f"run {run_id} to end",
    )
    return run


def _tampered(link: str) -> str:
    """The link with one character of its claims changed (the signature no longer matches them)."""
    base, token = link.rsplit("/", 1)
    claims, signature = token.split(".")
    claims = claims[:10] + ("A" if claims[10] != "A" else "B") + claims[11:]
    return f"{base}/{claims}.{signature}"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver(HOOK_SECRET)
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    yield sink
    sink.close()


class World:
    def __init__(self, gateway: Gateway, keys: dict[str, str]) -> None:
        self.gateway = gateway
        self.keys = keys


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver, smtp: SmtpSink) -> Iterator[World]:
    """A gateway with authentication on: a webhook, Slack and email channel; API keys of tenant acme."""
    cluster = Cluster(Path(tmp_path_factory.mktemp("approvals")))
    data = cluster.tmp_path / "data"
    keys = {
        "caller": cli(data, "keys", "create", "--name", "carol", "--tenant", "acme"),
        "admin": cli(
            data, "keys", "create", "--name", "root", "--tenant", "acme", "--scope", "fastagentic:admin"
        ),
    }
    keys["admin_id"] = next(
        k["id"] for k in json.loads(cli(data, "keys", "list", "--json")) if k["name"] == "root"
    )
    channels = [
        {"name": "ops", "type": "webhook", "url": f"{receiver.url}/hook", "secret": HOOK_SECRET},
        {"name": "chat", "type": "slack", "url": f"{receiver.url}/slack", "recipient": "#refunds"},
        {"name": "finance", "type": "email", "to": ["alice@example.com", "bob@example.com"]},
    ]
    rules = [
        {"name": "refunds", "endpoints": ["refund"], "channels": ["ops", "chat", "finance"]},
        {"name": "questions", "kinds": ["question"], "channels": ["ops"]},
    ]
    try:
        gateway = _start(
            cluster,
            receiver,
            auth="required",
            worker_token=WORKER_TOKEN,
            credential_cache_ttl="0",
            approval_channels=json.dumps(channels),
            approval_rules=json.dumps(rules),
            approval_smtp_host="127.0.0.1",
            approval_smtp_port=str(smtp.port),
            approval_smtp_security="none",
            approval_smtp_username="mailer",
            approval_smtp_password="mail-password",
            approval_smtp_from="agents@example.com",
        )
        yield World(gateway, keys)
    finally:
        cluster.close()


def _audit(world: World, action: str, run_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{world.gateway.url}/v1/audit",
        params={"action": action},
        headers=_auth(world.keys["admin"]),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return [r for r in response.json()["records"] if r["target"] == run_id]


# ------------------------------------------------------------------------------ links


def test_a_signed_webhook_arrives_and_its_approve_link_resumes_the_run_once(
    world: World, receiver: Receiver
) -> None:
    gateway, caller = world.gateway, world.keys["caller"]
    receiver.fail = 1  # the first delivery fails with 503: it is retried
    run_id = _start_run(gateway, "refund", {"amount": 30}, caller)
    notice = receiver.notice(run_id)
    assert receiver.failed == 1, "the failed delivery was not retried"
    _, _, headers = next(w for w in receiver.webhooks if w[1] is notice)
    assert headers["X-FastAgentic-Event"] == "approval.requested"
    assert headers["X-FastAgentic-Delivery"] == notice["id"] and notice["id"].startswith(f"{run_id}:")
    assert notice["type"] == "approval.requested" and notice["kind"] == "approval"
    assert notice["interrupt"]["request"] == {"approval": {"action": "refund", "details": {"amount": 30}}}
    assert notice["tenant"] == "acme" and notice["endpoint"] == "refund" and notice["recipient"] == "ops"
    assert sorted(notice["links"]) == ["approve", "edit", "reject"]
    assert notice["digest"].startswith("sha256:")
    assert _run(gateway, run_id, caller)["status"] == "waiting_input"

    # The guide's receiver refuses a body that is not the one signed, and an old signature.
    body = json.dumps(notice).encode()
    refused = httpx.post(
        f"{receiver.url}/hook",
        content=body,
        headers={"X-FastAgentic-Signature": headers["X-FastAgentic-Signature"]},
        timeout=5,
    )
    assert refused.status_code == 401
    t, v1 = headers["X-FastAgentic-Signature"].split(",")
    assert not receiver.verify(HOOK_SECRET, headers["X-FastAgentic-Signature"], body)
    assert t.startswith("t=") and v1.startswith("v1=")

    approve, reject = notice["links"]["approve"], notice["links"]["reject"]
    assert approve.startswith(gateway.url + "/v1/approvals/")
    # Opening the link shows what is asked (no credential needed: the token is one), and answers nothing.
    shown = httpx.get(approve, timeout=10)
    assert shown.status_code == 200, shown.text
    assert shown.headers["cache-control"] == "no-store" and shown.headers["referrer-policy"] == "no-referrer"
    asked = shown.json()
    assert asked["run_id"] == run_id and asked["decision"] == "approve" and asked["kind"] == "approval"
    assert asked["interrupt"]["request"]["approval"]["details"] == {"amount": 30}
    assert asked["digest"] == notice["digest"] and asked["recipient"] == "ops"
    page = httpx.get(approve, headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 200 and '<form method="post">' in page.text and "Approve refund?" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert _run(gateway, run_id, caller)["status"] == "waiting_input"

    # A tampered token is refused, and answers nothing.
    tampered = httpx.post(_tampered(approve), timeout=10)
    assert tampered.status_code == 403 and tampered.json()["type"] == "invalid_approval_token", tampered.text
    assert httpx.get(f"{gateway.url}/v1/approvals/nonsense", timeout=10).status_code == 403
    assert _run(gateway, run_id, caller)["status"] == "waiting_input"

    answered = httpx.post(approve, timeout=10)
    assert answered.status_code == 200, answered.text
    assert answered.json()["decision"] == "approve" and answered.json()["approver"] == "ops"
    run = _ended(gateway, run_id, caller)
    assert run["status"] == "succeeded" and run["output"] == {
        "decision": "approve",
        "payload": None,
        "reason": "",
    }

    # One time: the same link again, and the other links of the same question, are spent.
    again = httpx.post(approve, timeout=10)
    assert again.status_code == 409 and "no longer waits" in again.json()["message"], again.text
    assert httpx.post(reject, json={"reason": "late"}, timeout=10).status_code == 409
    assert httpx.get(approve, timeout=10).status_code == 409

    # The decision is in the audit log: who, the run, the attempt, the digest, the channel.
    records = wait_until(lambda: _audit(world, "run.approve", run_id), what="the run.approve audit record")
    assert records[0]["principal"] == "ops" and records[0]["tenant"] == "acme"
    assert notice["digest"] in records[0]["detail"] and "channel ops" in records[0]["detail"]
    assert "attempt 1" in records[0]["detail"]
    assert wait_until(lambda: _audit(world, "approval.notify", run_id), what="the approval.notify record")
    assert len(receiver.notices(run_id)) == 1  # notified once


def test_a_slack_message_has_buttons_and_its_reject_link_takes_a_reason(
    world: World, receiver: Receiver
) -> None:
    gateway, caller = world.gateway, world.keys["caller"]
    run_id = _start_run(gateway, "refund", {"amount": 99}, caller)
    message = wait_until(
        lambda: next((m for m in list(receiver.slack) if run_id in json.dumps(m)), None),
        what="the Slack message",
    )
    assert message["text"] == "Approval needed: refund (refund)"
    kinds = [block["type"] for block in message["blocks"]]
    assert kinds == ["header", "section", "context", "actions"], kinds
    assert '"amount": 99' in message["blocks"][1]["text"]["text"]
    buttons = {b["text"]["text"]: b for b in message["blocks"][3]["elements"]}
    assert sorted(buttons) == ["Approve", "Edit…", "Reject"] and buttons["Reject"]["style"] == "danger"
    reject = buttons["Reject"]["url"]
    assert httpx.get(reject, timeout=10).json()["recipient"] == "#refunds"
    answered = httpx.post(reject, json={"reason": "over the limit"}, timeout=10)
    assert answered.status_code == 200, answered.text
    run = _ended(gateway, run_id, caller)
    assert run["output"] == {"decision": "reject", "payload": None, "reason": "over the limit"}
    assert httpx.post(buttons["Approve"]["url"], timeout=10).status_code == 409
    # Secrets stay out of the log: the signing secrets, the SMTP password, the Slack URL, the links.
    output = gateway.output()
    assert "sent on chat to #refunds" in output
    for secret in (APPROVAL_SECRET, HOOK_SECRET, "mail-password", f"{receiver.url}/slack", reject):
        assert secret not in output, secret


def test_emails_arrive_at_the_smtp_server_and_an_edit_link_takes_the_edited_payload(
    world: World, smtp: SmtpSink
) -> None:
    gateway, caller = world.gateway, world.keys["caller"]
    run_id = _start_run(gateway, "refund", {"amount": 30}, caller)
    mails = wait_until(lambda: len(smtp.mails(run_id)) == 2 and smtp.mails(run_id), what="two emails")
    by_to = {m["To"]: m for m in mails}
    assert sorted(by_to) == ["alice@example.com", "bob@example.com"]
    alice = by_to["alice@example.com"]
    assert alice["From"] == "agents@example.com" and alice["Subject"] == "Approval needed: refund (refund)"
    assert "mailer:mail-password" in smtp.logins  # SMTP AUTH with the configured credentials
    links, bobs = _links(alice.get_content()), _links(by_to["bob@example.com"].get_content())
    assert sorted(links) == ["approve", "edit", "reject"]
    assert links["edit"] != bobs["edit"]  # each recipient has links of its own
    assert httpx.get(links["edit"], timeout=10).json()["recipient"] == "alice@example.com"

    no_payload = httpx.post(links["edit"], json={"reason": "half"}, timeout=10)
    assert no_payload.status_code == 422 and no_payload.json()["errors"][0]["path"] == "$.payload", (
        no_payload.text
    )
    with_payload = httpx.post(links["approve"], json={"payload": {"amount": 1}}, timeout=10)
    assert with_payload.status_code == 422 and with_payload.json()["errors"][0]["path"] == "$.payload"
    # The answer page's form: a payload (JSON text) and a reason.
    done = httpx.post(links["edit"], data={"payload": '{"amount": 20}', "reason": "half of it"}, timeout=10)
    assert done.status_code == 200 and "approved with changes" in done.text, done.text
    run = _ended(gateway, run_id, caller)
    assert run["output"] == {"decision": "edit", "payload": {"amount": 20}, "reason": "half of it"}
    assert httpx.post(bobs["approve"], timeout=10).status_code == 409
    records = wait_until(lambda: _audit(world, "run.edit", run_id), what="the run.edit audit record")
    assert records[0]["principal"] == "alice@example.com" and "channel finance" in records[0]["detail"]


def test_a_question_is_answered_by_link_with_its_answer_validated(world: World, receiver: Receiver) -> None:
    gateway, caller = world.gateway, world.keys["caller"]
    run_id = _start_run(gateway, "ask", {"question": "how much?"}, caller)
    notice = receiver.notice(run_id)
    assert notice["kind"] == "question" and list(notice["links"]) == ["answer"]
    link = notice["links"]["answer"]
    shown = httpx.get(link, timeout=10).json()
    assert shown["interrupt"]["schema"]["required"] == ["amount"], shown
    wrong = httpx.post(link, json={"answer": {"amount": "lots"}}, timeout=10)
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["path"] == "$.amount", wrong.text
    no_answer = httpx.post(link, json={"reason": "no"}, timeout=10)
    assert no_answer.status_code == 422 and no_answer.json()["errors"][0]["path"] == "$.answer"
    unknown = httpx.post(link, json={"answer": {"amount": 1}, "extra": 1}, timeout=10)
    assert unknown.status_code == 422 and "extra" in unknown.text, unknown.text
    assert httpx.post(link, content=b"{not json", timeout=10).status_code == 400
    # With a credential, its principal is the approver (the API key "root" of tenant acme: its id).
    answered = httpx.post(
        link, json={"answer": {"amount": 7}}, headers=_auth(world.keys["admin"]), timeout=10
    )
    assert answered.status_code == 200 and answered.json()["approver"] == world.keys["admin_id"], (
        answered.text
    )
    assert _ended(gateway, run_id, caller)["output"] == {"amount": 7}
    records = wait_until(lambda: _audit(world, "run.answer", run_id), what="the run.answer audit record")
    assert records[0]["principal"] == world.keys["admin_id"] and "by authenticated" in records[0]["detail"]


# ------------------------------------------------------------------------------ timeouts


def test_timeouts_reject_approve_escalate_and_cancel_and_links_expire(
    cluster: Cluster, receiver: Receiver
) -> None:
    channels = [
        {"name": "ops", "type": "webhook", "url": f"{receiver.url}/hook", "secret": HOOK_SECRET},
        {"name": "managers", "type": "webhook", "url": f"{receiver.url}/managers", "secret": HOOK_SECRET},
    ]
    rules = [
        {
            "name": "refunds",
            "endpoints": ["refund"],
            "channels": ["ops"],
            "timeout": 1.5,
            "on_timeout": "reject",
        },
        {
            "name": "shipping",
            "endpoints": ["ship"],
            "kinds": ["approval"],
            "channels": ["ops"],
            "timeout": 1.5,
            "on_timeout": "approve",
        },
        {
            "name": "questions",
            "endpoints": ["ask"],
            "channels": ["ops"],
            "timeout": 1.5,
            "on_timeout": "escalate",
            "escalate_to": ["managers"],
        },
        {"name": "quiz", "endpoints": ["quiz"], "channels": ["ops"], "timeout": 6, "on_timeout": "reject"},
    ]
    gateway = _start(
        cluster,
        receiver,
        worker_token=WORKER_TOKEN,
        approval_channels=json.dumps(channels),
        approval_rules=json.dumps(rules),
        approval_sweep_interval="0.2",
        approval_link_ttl="2.5",
        interrupt_hold="0.5",  # durable runs are handed back: their links answer them at the next attempt
    )
    refund = _start_run(gateway, "refund", {"amount": 5})
    ship = _start_run(gateway, "ship", {"order": "A-1"})
    ask = _start_run(gateway, "ask", {"question": "how much?"})
    quiz = _start_run(gateway, "quiz", {"question": "and now?"})
    notices = {run: receiver.notice(run) for run in (refund, ship, ask, quiz)}

    # Escalated: the managers are told (once), with links of their own; the run keeps waiting.
    escalation = receiver.notice(ask, "/managers")
    assert escalation["type"] == "approval.escalated" and escalation["rule"] == "questions"
    time.sleep(0.6)  # three more sweeps
    assert len(receiver.notices(ask, "/managers")) == 1
    waiting = _run(gateway, ask)
    assert waiting["status"] == "waiting_input" and waiting["attempt"] == 2, waiting  # handed back
    assert notices[ask]["attempt"] == 1
    answered = httpx.post(escalation["links"]["answer"], json={"answer": {"amount": 3}}, timeout=10)
    assert answered.status_code == 200, answered.text
    assert _ended(gateway, ask)["output"] == {"amount": 3}

    # Links expire (approval_link_ttl = 2.5 s): 410, and the run still waits.
    wait_until(lambda: time.time() > notices[quiz]["expires_at"] + 0.1, what="the links to expire")
    expired = httpx.get(notices[quiz]["links"]["answer"], timeout=10)
    assert expired.status_code == 410 and expired.json()["type"] == "approval_expired", expired.text
    assert (
        httpx.post(notices[quiz]["links"]["answer"], json={"answer": {"amount": 1}}, timeout=10).status_code
        == 410
    )
    assert _run(gateway, quiz)["status"] == "waiting_input"

    rejected = _ended(gateway, refund)
    assert rejected["output"]["decision"] == "reject", rejected
    assert rejected["output"]["reason"] == "no answer within 1.5 s (approval rule refunds)"
    assert rejected["finished_at"] - notices[refund]["asked_at"] >= 1.5
    approved = _ended(gateway, ship)
    assert approved["output"]["decision"] == "approve", approved

    # A question whose rule rejects: the run is cancelled.
    cancelled = _ended(gateway, quiz)
    assert cancelled["status"] == "cancelled", cancelled
    events = httpx.get(f"{gateway.url}/v1/runs/{quiz}/events", timeout=10).text
    assert "no answer within 6 s (approval rule quiz)" in events


def test_a_timeout_falling_while_the_gateway_is_down_fires_after_its_restart(
    cluster: Cluster, receiver: Receiver
) -> None:
    channels = [{"name": "ops", "type": "webhook", "url": f"{receiver.url}/hook", "secret": HOOK_SECRET}]
    rules = [{"name": "refunds", "channels": ["ops"], "timeout": 3, "on_timeout": "reject"}]
    gateway = _start(
        cluster,
        receiver,
        worker_token=WORKER_TOKEN,
        approval_channels=json.dumps(channels),
        approval_rules=json.dumps(rules),
        approval_sweep_interval="0.2",
        interrupt_hold="600",
        lease_ttl="8",
    )
    run_id = _start_run(gateway, "refund", {"amount": 12})
    notice = receiver.notice(run_id)
    gateway.stop()
    # The timeout falls while no gateway runs.
    wait_until(lambda: time.time() > notice["asked_at"] + 3.5, what="the timeout to pass")
    cluster.restart_gateway(gateway)
    run = _ended(gateway, run_id, timeout=30)
    assert run["output"] == {
        "decision": "reject",
        "payload": None,
        "reason": "no answer within 3 s (approval rule refunds)",
    }
    assert len(receiver.notices(run_id)) == 1  # not notified again after the restart
