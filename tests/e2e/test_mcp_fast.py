"""The MCP fast path (``fronts/mcp/fast.py``) answers byte for byte as the ``mcp`` package's path does.

Two gateways, identical but for ``mcp_fast_path`` (on: the path under test; off: every request through the
SDK), each with auth required, the same API keys and the same two workers (``mcp_worker`` and
``secured``, registered in the same order). Each request goes to both, in the same order, and the answers
must match: status, content type, headers (but the date, the session id's value and the gateway's
port) and body (2025-11-25
session ids and event ids renumbered within the stream). The fast gateway logs (debug) each request it
served, which shows which requests the fast path took and which it left to the SDK.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.server._streamable_http_modern import _write
from mcp_types import JSONRPCResponse

from fastagentic_gateway.fronts.mcp import fast as fast_module
from tests.conftest import ROOT, Cluster, Worker, base_env, wait_until
from tests.e2e.mcp_support import HEADERS, LEGACY_INITIALIZE, modern_headers, modern_request, session_headers

WORKERS = ("tests.workers.mcp_worker:app", "tests.workers.secured:app")
SERVED = "served on the MCP fast path"
#: Headers that differ between two gateways by nature.
_VARYING = {"date", "mcp-session-id", "x-request-id"}
_ADDRESS = re.compile(r"127\.0\.0\.1:\d+")
_EVENT_ID = re.compile(rb"^id: ([^\r\n/]+)/(\d+)\r$", re.MULTILINE)


def _cli(data_dir: Path, *args: str) -> str:
    env = base_env()
    env["FASTAGENTIC_DATA_DIR"] = str(data_dir)
    done = subprocess.run(
        [sys.executable, "-m", "fastagentic_gateway", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class Side:
    """One gateway with its workers and its API keys (``admin``: tools:admin and reports:read; ``plain``)."""

    def __init__(self, cluster: Cluster, fast: bool) -> None:
        self.cluster = cluster
        data = cluster.tmp_path / "data"
        self.keys = {
            "admin": _cli(
                data,
                "keys",
                "create",
                "--name",
                "alice",
                "--tenant",
                "acme",
                "--scope",
                "tools:admin",
                "--scope",
                "reports:read",
            ),
            "plain": _cli(data, "keys", "create", "--name", "carol", "--tenant", "acme"),
        }
        token = _cli(data, "workers", "create-token", "--name", "all", "--endpoint", "*")
        self.gateway = cluster.start_gateway(
            auth="required", mcp_fast_path="true" if fast else "false", log_level="debug"
        )
        for index, target in enumerate(WORKERS):
            worker = Worker(self.gateway, target, cluster.logs, f"worker{index}")
            worker.env["FASTAGENTIC_WORKER_TOKEN"] = token
            worker.start()
            cluster.processes.append(worker)
            wanted = "add" if index == 0 else "purge"
            wait_until(lambda w=wanted: w in self._tools(), what=f"{target} registered")  # type: ignore[misc]
        self.http = httpx.Client(base_url=f"{self.gateway.url}/mcp", timeout=30)

    def _tools(self) -> set[str]:
        try:
            response = httpx.get(f"{self.gateway.url}/v1/endpoints", headers=self.auth("admin"), timeout=2)
        except httpx.HTTPError:
            return set()
        return {e["name"] for e in response.json().get("endpoints", [])} if response.is_success else set()

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def served(self) -> int:
        return self.gateway.output().count(SERVED)

    def post(self, body: Any, headers: dict[str, str], who: str = "admin") -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.http.post("", content=content, headers={**headers, **self.auth(who)})

    def session(self, who: str = "admin", initialized: bool = True) -> str:
        opened = self.post(LEGACY_INITIALIZE, HEADERS, who)
        assert opened.status_code == 200, opened.text
        session_id = opened.headers["mcp-session-id"]
        if initialized:
            note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            assert self.post(note, session_headers(session_id), who).status_code == 202
        return session_id


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Side, Side]]:
    clusters = [Cluster(Path(tmp_path_factory.mktemp(name))) for name in ("fast", "sdk")]
    try:
        yield Side(clusters[0], fast=True), Side(clusters[1], fast=False)
    except BaseException:
        for cluster in clusters:
            sys.stderr.write(cluster.dump())
        raise
    finally:
        for cluster in clusters:
            cluster.close()


def _normalised(body: bytes) -> bytes:
    """Session ids as ``S``, event ids counted from the stream's first."""
    first: list[int] = []

    def renumber(match: re.Match[bytes]) -> bytes:
        number = int(match.group(2))
        if not first:
            first.append(number)
        return b"id: S/%d\r" % (number - first[0])

    return _EVENT_ID.sub(renumber, body)


def _same(fast: httpx.Response, sdk: httpx.Response) -> bytes:
    """Assert the two answers are the same; the fast one's body."""
    assert fast.status_code == sdk.status_code, (fast.text, sdk.text)
    assert fast.headers.get("content-type") == sdk.headers.get("content-type")
    fast_headers = [(k, _ADDRESS.sub("HOST", v)) for k, v in fast.headers.multi_items() if k not in _VARYING]
    sdk_headers = [(k, _ADDRESS.sub("HOST", v)) for k, v in sdk.headers.multi_items() if k not in _VARYING]
    assert fast_headers == sdk_headers
    assert ("mcp-session-id" in fast.headers) == ("mcp-session-id" in sdk.headers)
    assert _normalised(fast.content) == _normalised(sdk.content), (fast.content, sdk.content)
    return fast.content


def _both(
    sides: tuple[Side, Side], body: Any, headers: dict[str, str], who: str = "admin", *, fast_path: bool
) -> bytes:
    """Send the request to both gateways; the answers must match, and the fast gateway must have served it
    on its fast path (``fast_path``) or left it to the SDK."""
    fast, sdk = sides
    before = fast.served()
    answer = _same(fast.post(body, headers, who), sdk.post(body, headers, who))
    wait_until(lambda: fast.served() >= before + fast_path, what="the fast gateway's log")
    assert fast.served() == before + fast_path, "the fast path took a request it should leave, or the reverse"
    return answer


def _call(name: str, arguments: Any, request_id: int = 1) -> dict[str, Any]:
    return modern_request("tools/call", {"name": name, "arguments": arguments}, request_id)


def _legacy(method: str, params: dict[str, Any] | None, request_id: int = 7) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


# ------------------------------------------------------------------ 2026-07-28


def test_modern_calls_answer_as_the_sdk(sides: tuple[Side, Side]) -> None:
    headers = lambda name: modern_headers("tools/call", name)  # noqa: E731
    ok = _both(sides, _call("add", {"a": 2, "b": 3}), headers("add"), fast_path=True)
    assert b'"structuredContent":{"result":5}' in ok
    failed = _both(sides, _call("explode", {"message": "boom"}), headers("explode"), fast_path=True)
    assert b'"isError":true' in failed and b"boom" in failed
    unknown = _both(sides, _call("nope", {}), headers("nope"), fast_path=True)
    assert b"Unknown tool: nope" in unknown
    invalid = _both(sides, _call("add", {"a": "two"}), headers("add"), fast_path=True)
    assert b'"isError":true' in invalid
    # params the SDK's surface validation refuses (arguments not an object): its error, from its kernel
    refused = _both(sides, _call("add", "not an object"), headers("add"), fast_path=True)
    assert b"-32602" in refused
    # a string id, a scoped tool its holder may call
    _both(sides, {**_call("purge", {"days": 3}), "id": "x-1"}, headers("purge"), fast_path=True)


def test_modern_access_rules_hold(sides: tuple[Side, Side]) -> None:
    # a tool the caller may not call: refused before any path (403, the scope challenge)
    denied = _both(
        sides, _call("purge", {"days": 3}), modern_headers("tools/call", "purge"), "plain", fast_path=False
    )
    assert b"insufficient_scope" in denied
    listing = modern_request("tools/list")
    everything = _both(sides, listing, modern_headers("tools/list"), "admin", fast_path=True)
    filtered = _both(sides, listing, modern_headers("tools/list"), "plain", fast_path=True)
    assert b'"name":"purge"' in everything and b'"name":"purge"' not in filtered


def test_modern_requests_left_to_the_sdk(sides: tuple[Side, Side]) -> None:
    # the Mcp-Name header disagrees with the body: the SDK's -32020 (HTTP 400)
    mismatch = _both(
        sides, _call("add", {"a": 1, "b": 1}), modern_headers("tools/call", "shout"), fast_path=False
    )
    assert b"-32020" in mismatch
    # a progress token: notifications on the way, the SDK streams them
    counting = modern_request("tools/call", {"name": "count", "arguments": {"n": 2}})
    counting["params"]["_meta"]["progressToken"] = "p1"
    _both(sides, counting, modern_headers("tools/call", "count"), fast_path=False)
    # another method, a notification, an envelope without client capabilities
    _both(sides, modern_request("prompts/list"), modern_headers("prompts/list"), fast_path=False)
    bare = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {}}}
    _both(sides, bare, modern_headers("tools/list"), fast_path=False)


# ------------------------------------------------------------------ 2025-11-25


def test_session_calls_answer_as_the_sdk(sides: tuple[Side, Side]) -> None:
    fast, sdk = sides
    ids = fast.session(), sdk.session()
    heads = [session_headers(i) for i in ids]

    def both(body: Any, fast_path: bool = True, who: str = "admin") -> bytes:
        before = fast.served()
        answer = _same(fast.post(body, heads[0], who), sdk.post(body, heads[1], who))
        wait_until(lambda: fast.served() >= before + fast_path, what="the fast gateway's log")
        assert fast.served() == before + fast_path
        return answer

    ok = both(_legacy("tools/call", {"name": "add", "arguments": {"a": 2, "b": 3}}, 1))
    assert ok.startswith(b"id: ") and b'"structuredContent":{"result":5}' in ok
    assert b'"isError":true' in both(_legacy("tools/call", {"name": "explode", "arguments": {}}, 2))
    assert b"Unknown tool" in both(_legacy("tools/call", {"name": "nope", "arguments": {}}, 3))
    assert b'"isError":true' in both(_legacy("tools/call", {"name": "add", "arguments": {"a": "x"}}, "s-4"))
    # the run's logs go out as notifications/message on the call's stream, before its answer
    chatty = both(_legacy("tools/call", {"name": "chatty", "arguments": {}}, 5))
    assert chatty.count(b"notifications/message") == 3
    assert b'"-32602' not in both(_legacy("tools/list", None, 6))
    # the stream of a call served on the fast path resumes from the session's event store
    event_ids = [line[4:].strip().decode() for line in ok.splitlines() if line.startswith(b"id: ")]
    replayed = b""
    resume = {**heads[0], **fast.auth("admin"), "Last-Event-ID": event_ids[0]}
    with fast.http.stream("GET", "", headers=resume, timeout=10) as stream:
        for chunk in stream.iter_bytes():
            replayed += chunk
            if b"structuredContent" in replayed:
                break
    assert b'"structuredContent":{"result":5}' in replayed
    # the SDK's kernel refuses params it cannot read: its error, on the stream
    assert b"-32602" in both(_legacy("tools/call", {"name": 3}, 8))
    # a task (its answer names a new run: compared by shape), another method, a progress token: the SDK's
    before = fast.served()
    task = _legacy("tools/call", {"name": "archive", "arguments": {"item": "a"}, "task": {"ttl": 1000}}, 9)
    created = fast.post(task, heads[0]), sdk.post(task, heads[1])
    assert [r.status_code for r in created] == [200, 200] and all(b'"taskId"' in r.content for r in created)
    assert fast.served() == before
    # Each task's end is a notification on its session's stream: let both end before the next comparison,
    # or one side's answer may carry an event the other's does not yet.
    for side, head, response in zip((fast, sdk), heads, created, strict=True):
        task_id = re.search(rb'"taskId":"([^"]+)"', response.content)
        assert task_id is not None
        get = _legacy("tasks/get", {"taskId": task_id.group(1).decode()}, 90)
        wait_until(lambda side=side, head=head, get=get: b'"completed"' in side.post(get, head).content)
    both(_legacy("prompts/list", None, 10), False)
    progress = {"name": "add", "arguments": {"a": 1, "b": 1}, "_meta": {"progressToken": 1}}
    both(_legacy("tools/call", progress, 11), False)


def test_session_lists_are_filtered_per_principal(sides: tuple[Side, Side]) -> None:
    fast, sdk = sides
    for who, has_purge in (("admin", True), ("plain", False)):
        ids = fast.session(who), sdk.session(who)
        before = fast.served()
        answer = _same(
            fast.post(_legacy("tools/list", {}), session_headers(ids[0]), who),
            sdk.post(_legacy("tools/list", {}), session_headers(ids[1]), who),
        )
        wait_until(lambda b=before: fast.served() == b + 1, what="the fast gateway's log")  # type: ignore[misc]
        assert (b'"name":"purge"' in answer) is has_purge


def test_sessions_the_sdk_refuses(sides: tuple[Side, Side]) -> None:
    call = _legacy("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
    # an unknown session, no session at all
    missing = _both(sides, call, session_headers("0123456789abcdef"), fast_path=False)
    assert b"Session not found" in missing
    no_session = {**HEADERS, "MCP-Protocol-Version": "2025-11-25"}
    _both(sides, call, no_session, fast_path=False)
    # a session whose client never sent notifications/initialized: the SDK's gate
    fast, sdk = sides
    ids = fast.session(initialized=False), sdk.session(initialized=False)
    before = fast.served()
    _same(fast.post(call, session_headers(ids[0])), sdk.post(call, session_headers(ids[1])))
    assert fast.served() == before
    # another principal presenting the session id: no such session
    ids = fast.session(), sdk.session()
    _same(fast.post(call, session_headers(ids[0]), "plain"), sdk.post(call, session_headers(ids[1]), "plain"))
    assert fast.served() == before


# ------------------------------------------------------------------ the answers' bytes, over varied outputs

_TEXT = st.text(max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=_TEXT, tags=st.lists(_TEXT, max_size=3), text=_TEXT)
def test_varied_outputs_answer_as_the_sdk(
    sides: tuple[Side, Side], name: str, tags: list[str], text: str
) -> None:
    """Tool outputs of any text (unicode, escapes, controls, surrogate-free astral characters), nested in
    structured content: the fast path's serialisation gives the SDK's bytes in both revisions."""
    fast, sdk = sides
    _both(
        sides,
        _call("profile", {"name": name, "tags": tags}),
        modern_headers("tools/call", "profile"),
        fast_path=True,
    )
    _both(sides, _call("shout", {"text": text}), modern_headers("tools/call", "shout"), fast_path=True)
    ids = fast.session(), sdk.session()
    for body in (
        _legacy("tools/call", {"name": "profile", "arguments": {"name": name, "tags": tags}}, 1),
        _legacy("tools/call", {"name": "shout", "arguments": {"text": text}}, 2),
    ):
        before = fast.served()
        _same(fast.post(body, session_headers(ids[0])), sdk.post(body, session_headers(ids[1])))
        wait_until(lambda b=before: fast.served() >= b + 1, what="the fast gateway's log")  # type: ignore[misc]


def test_slow_calls_answer_as_the_sdk(sides: tuple[Side, Side]) -> None:
    """Calls that outlast the fast path's hold (2025-11-25: the head and priming event held; 2026-07-28:
    the disconnect watcher started late): the same bytes."""
    fast, sdk = sides
    slow = _call("count", {"n": 2, "delay": 0.15})
    _both(sides, slow, modern_headers("tools/call", "count"), fast_path=True)
    ids = fast.session(), sdk.session()
    body = _legacy("tools/call", {"name": "count", "arguments": {"n": 2, "delay": 0.15}}, 1)
    before = fast.served()
    answer = _same(fast.post(body, session_headers(ids[0])), sdk.post(body, session_headers(ids[1])))
    wait_until(lambda: fast.served() >= before + 1, what="the fast gateway's log")
    assert answer.startswith(b"id: ") and b'"result":{"content":[{"text":"2"' in answer


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and infinities included: the model dump turns them into null
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


async def _sdk_write_body(answer: JSONRPCResponse) -> tuple[list[tuple[bytes, bytes]], bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.disconnect"}

    await _write(answer, {"type": "http"}, receive, send)
    return list(sent[0]["headers"]), sent[1]["body"]


@settings(max_examples=400, deadline=None)
@given(
    request_id=st.integers(min_value=-(2**53), max_value=2**53) | st.text(max_size=6),
    result=st.dictionaries(st.text(max_size=6), _JSON, max_size=5),
    structured=_JSON,
)
def test_serialisation_is_the_sdks(request_id: Any, result: dict[str, Any], structured: Any) -> None:
    """``json_body`` and ``sse_data`` against the SDK's own ``_write`` and ``model_dump_json`` on a model
    it validated: the same bytes, or (non-finite floats, for the JSON body) the SDK's serialisation."""
    result = {"content": [{"type": "text", "text": "x"}], **result, "structuredContent": structured}
    validated = JSONRPCResponse(jsonrpc="2.0", id=request_id, result=result)
    constructed = fast_module._response(request_id, result)
    headers, body = asyncio.run(_sdk_write_body(validated))
    ours = fast_module.json_body(constructed)
    if ours is None:
        assert "NaN" in json.dumps(result) or "Infinity" in json.dumps(result)
    else:
        assert ours == body
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(fast_module._write_answer(constructed, {"type": "http"}, _no_receive, send))
    assert sent[0]["headers"] == headers and sent[1]["body"] == body
    assert fast_module.sse_data(constructed) == validated.model_dump_json(by_alias=True, exclude_unset=True)
    # what the session's event store replays: the constructed model dumps as the validated one
    assert constructed.model_dump_json(by_alias=True, exclude_unset=True) == validated.model_dump_json(
        by_alias=True, exclude_unset=True
    )


async def _no_receive() -> Any:
    return {"type": "http.disconnect"}
