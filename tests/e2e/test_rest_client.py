"""The Python client (fastagentic.client) against real gateway and worker processes: every method, sync and
async; streams cut mid-way by a TCP proxy that resume with no gap and no duplicate; retries honouring
Retry-After on 429 (a rate limit) and 503 (no worker); a background start retried after a lost answer
makes one run; each error type from the real gateway; interrupts answered with ``resume``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from fastagentic.client import (
    APIConnectionError,
    AsyncFastAgenticClient,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    FastAgenticClient,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    Retries,
    Run,
    RunFailedError,
    RunStatus,
    StreamEvent,
    StreamEventType,
    UnavailableError,
    ValidationError,
)
from tests.conftest import ROOT, Cluster, Gateway, Worker, base_env, wait_until

BASIC = "tests.workers.basic:app"
INTERRUPTS = "tests.workers.interrupt_worker:app"
WORKER_TOKEN = "client-worker-secret-0123456789"
FAST = Retries(max_retries=5, backoff=0.05, max_delay=5)


class Proxy:
    """A TCP proxy between the client and the gateway that a test can break: ``cut()`` closes every open
    connection (a network drop mid-stream); ``swallow`` answers to drop (the request reaches the gateway,
    its answer never reaches the client). ``requests`` are the request heads it forwarded."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.sent = bytearray()
        self.swallow = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[tuple[str, str, dict[str, str]]]:
        with self.lock:
            sent = bytes(self.sent)
        heads = re.findall(rb"(GET|POST) (\S+) HTTP/1.1\r\n(.*?)\r\n\r\n", sent, flags=re.DOTALL)
        return [
            (
                method.decode(),
                path.decode(),
                {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in head.decode().split("\r\n"))
                },
            )
            for method, path, head in heads
        ]

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upward: bool) -> None:
        try:
            while data := source.recv(65536):
                with self.lock:
                    if upward:
                        self.sent += data
                    elif self.swallow:
                        self.swallow -= 1
                        raise OSError("answer swallowed")
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def cut(self) -> None:
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(
                socket.SHUT_RDWR
            )  # wakes the accepting thread; new connections are refused
        self.listener.close()
        self.cut()


def _start_worker(cluster: Cluster, gateway: Gateway, target: str, **env: str) -> Worker:
    worker = Worker(gateway, target, cluster.logs, f"worker{len(cluster.processes)}")
    worker.env.update(env)
    worker.start()
    cluster.processes.append(worker)
    app = target.rsplit(":", 1)[0].rsplit(".", 1)[1]
    name = {"basic": "basic", "interrupt_worker": "interrupts"}[app]
    wait_until(lambda: f"({name}) connected" in gateway.output() or not worker.alive, what=worker.name)
    assert worker.alive, worker.output()
    return worker


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway (auth none) with the basic and interrupt workers, shared by the tests of this module
    that only add runs of their own."""
    cluster = Cluster(Path(tmp_path_factory.mktemp("client")))
    try:
        gateway = cluster.start_gateway()
        _start_worker(cluster, gateway, BASIC)
        _start_worker(cluster, gateway, INTERRUPTS)
        yield gateway
    finally:
        cluster.close()


@pytest.fixture
def proxy(served: Gateway) -> Iterator[Proxy]:
    proxy = Proxy(served.http_port)
    yield proxy
    proxy.close()


def _seqs(events: list[StreamEvent]) -> list[int]:
    return [e.seq for e in events]


# Every method, sync.


def test_sync_client_lists_endpoints_invokes_and_streams(served: Gateway) -> None:
    with FastAgenticClient(served.url) as client:
        endpoints = {e.name: e for e in client.endpoints()}
        assert endpoints["echo"].kind == "agent" and endpoints["echo"].streams
        assert endpoints["note"].uri_template == "notes://{name}"
        assert {e.name for e in client.endpoints("tool")} >= {"add", "maybe"}

        result = client.invoke("echo", {"text": "hi", "repeat": 2})
        assert result.status is RunStatus.SUCCEEDED and result.output["text"] == "hihi"
        assert result.run_id.startswith("run_")

        class EchoOut(msgspec.Struct):
            text: str
            attempt: int

        typed = client.invoke("echo", {"text": "t"}, output_type=EchoOut)
        assert typed.output == EchoOut(text="t", attempt=1)

        with client.stream("echo", {"text": "ab", "repeat": 3}) as stream:
            events = list(stream)
        assert stream.run_id is not None and all(e.run_id == stream.run_id for e in events)
        assert _seqs(events) == list(range(1, len(events) + 1))
        assert events[0].type is StreamEventType.RUN_STARTED
        assert "".join(e.text for e in events if e.type is StreamEventType.TOKEN) == "ababab"
        assert events[-1].type is StreamEventType.RUN_COMPLETED and events[-1].output["text"] == "ababab"
        custom = [e for e in events if e.kind == "progress"]
        assert custom and custom[0].data == {"pct": 50}


def test_sync_client_runs_in_the_background(served: Gateway) -> None:
    with FastAgenticClient(served.url) as client:
        run = client.start("steps", {"steps": 3, "delay": 0.05})
        assert isinstance(run, Run) and run.status in (RunStatus.QUEUED, RunStatus.RUNNING)
        events = list(client.follow(run.run_id))
        assert _seqs(events) == list(range(1, len(events) + 1)) and events[-1].terminal
        later = list(client.follow(run.run_id, after=events[-3].seq))
        assert later == events[-2:]
        done = client.wait(run.run_id)
        assert done.status is RunStatus.SUCCEEDED and done.output["completed"] == 3
        got = client.get(run.run_id)
        assert got.last_seq == events[-1].seq and got.usage is not None

        checkpoints = client.checkpoints(run.run_id)
        assert [c.state for c in checkpoints] == [{"done": 1}, {"done": 2}, {"done": 3}]
        replay = client.replay(run.run_id, checkpoint=2)
        assert replay.replay_of is not None and replay.replay_of.checkpoint == 2
        assert client.wait(replay.run_id).output["resumed_from"] == 2

        long = client.start("steps", {"steps": 50, "delay": 0.1})
        cancelled = client.cancel(long.run_id)
        assert cancelled.status is RunStatus.CANCELLED
        assert client.wait(long.run_id).status is RunStatus.CANCELLED

        page = client.runs(RunStatus.CANCELLED, endpoint="steps")
        assert long.run_id in [r.run_id for r in page.runs]
        assert all(r.status is RunStatus.CANCELLED for r in page.runs)
        assert run.run_id in [r.run_id for r in client.runs("succeeded", limit=200).runs]
        walked = [r.run_id for r in client.iter_runs(endpoint="steps", page_size=1)]
        assert walked[:3] == [long.run_id, replay.run_id, run.run_id]


def test_sync_client_calls_tools_reads_resources_and_renders_prompts(served: Gateway) -> None:
    with FastAgenticClient(served.url) as client:
        assert client.call_tool("add", {"a": 2, "b": 3}) == 5
        assert client.call_tool("add", {"a": 2, "b": 3}, output_type=float) == 5.0
        assert client.call_tool("maybe") is None
        note = client.read_resource("notes://today")
        assert (note.media_type, note.text) == ("text/plain", "note today")
        blob = client.read_resource("blobs://ab")
        assert blob.content == b"abab" and blob.media_type == "application/octet-stream"
        messages = client.get_prompt("greet", {"name": "Ada", "formal": True})
        assert [(m.role, m.text) for m in messages] == [("user", "Dear Ada,")]


def test_sync_client_answers_an_interrupt_with_resume(served: Gateway) -> None:
    with FastAgenticClient(served.url) as client:
        events: list[StreamEvent] = []
        with client.stream("ask", {"question": "how much?"}) as stream:
            for event in stream:
                events.append(event)
                if event.type is StreamEventType.INTERRUPT:
                    asked = event.interrupt
                    assert asked is not None and asked.request == {"question": "how much?"}
                    assert asked.schema is not None and "amount" in asked.schema["properties"]
                    assert stream.run_id is not None
                    assert client.get(stream.run_id).status is RunStatus.WAITING_INPUT
                    with pytest.raises(ValidationError) as wrong:
                        client.resume(stream.run_id, {"amount": "lots"}, interrupt=asked.id)
                    assert [e.path for e in wrong.value.errors] == ["$.amount"]
                    with pytest.raises(ConflictError):
                        client.resume(stream.run_id, {"amount": 1}, interrupt="not-this-one")
                    resumed = client.resume(stream.run_id, {"amount": 7, "note": "ok"}, interrupt=asked.id)
                    assert resumed.status in (RunStatus.RUNNING, RunStatus.QUEUED)
        kinds = [e.kind for e in events]
        assert kinds.index("interrupt") + 1 == kinds.index("input")
        assert events[-1].output == {"amount": 7, "note": "ok", "attempt": 1}
        assert _seqs(events) == list(range(1, len(events) + 1))
        with pytest.raises(ConflictError):
            client.resume(events[-1].run_id, {"amount": 1})


# Every method, async.


async def test_async_client_lists_endpoints_invokes_and_streams(served: Gateway) -> None:
    async with AsyncFastAgenticClient(served.url) as client:
        assert "echo" in {e.name for e in await client.endpoints("agent")}
        assert {e.name for e in await client.endpoints("prompt")} >= {"greet"}
        result = await client.invoke("echo", {"text": "hi"})
        assert result.status is RunStatus.SUCCEEDED and result.output["text"] == "hi"
        async with client.stream("echo", {"text": "x", "repeat": 4}) as stream:
            events = [event async for event in stream]
        assert _seqs(events) == list(range(1, len(events) + 1))
        assert "".join(e.text for e in events) == "xxxx" and events[-1].output["text"] == "xxxx"


async def test_async_client_runs_in_the_background(served: Gateway) -> None:
    async with AsyncFastAgenticClient(served.url) as client:
        run = await client.start("steps", {"steps": 3, "delay": 0.05})
        events = [e async for e in client.follow(run.run_id)]
        assert _seqs(events) == list(range(1, len(events) + 1)) and events[-1].terminal
        assert [e async for e in client.follow(run.run_id, after=events[-2].seq)] == events[-1:]
        done = await client.wait(run.run_id)
        assert done.output["completed"] == 3 and (await client.get(run.run_id)).finished
        assert len(await client.checkpoints(run.run_id)) == 3
        replay = await client.replay(run.run_id)
        assert replay.replay_of is not None and replay.replay_of.checkpoint == 3
        assert (await client.wait(replay.run_id)).output["resumed_from"] == 3
        long = await client.start("steps", {"steps": 50, "delay": 0.1})
        assert (await client.cancel(long.run_id)).status is RunStatus.CANCELLED
        page = await client.runs("cancelled", endpoint="steps", limit=200)
        assert long.run_id in [r.run_id for r in page.runs]
        walked = [r.run_id async for r in client.iter_runs(endpoint="steps", page_size=2)]
        assert walked[:3] == [long.run_id, replay.run_id, run.run_id]


async def test_async_client_calls_tools_reads_resources_and_renders_prompts(served: Gateway) -> None:
    async with AsyncFastAgenticClient(served.url) as client:
        assert await client.call_tool("add", {"a": 20, "b": 22}) == 42
        assert (await client.read_resource("notes://x")).text == "note x"
        assert (await client.read_resource("blobs://z")).content == b"zz"
        messages = await client.get_prompt("greet", {"name": "Bo"})
        assert messages[0].text == "Hi Bo!"


async def test_async_client_answers_an_interrupt_with_resume(served: Gateway) -> None:
    async with AsyncFastAgenticClient(served.url) as client:
        run = await client.start("ask", {"question": "refund?"})
        async with client.follow(run.run_id) as stream:
            async for event in stream:
                if event.interrupt is not None:
                    with pytest.raises(ValidationError) as wrong:
                        await client.resume(run.run_id, {"note": "no amount"})
                    assert [e.path for e in wrong.value.errors] == ["$.amount"]
                    await client.resume(run.run_id, {"amount": 3}, interrupt=event.interrupt.id)
        assert event.output == {"amount": 3, "note": "", "attempt": 1}
        waiting = await client.runs(RunStatus.WAITING_INPUT)
        assert run.run_id not in [r.run_id for r in waiting.runs]


# Streams that break.


def test_a_cut_stream_resumes_with_no_gap_and_no_duplicate_sync(served: Gateway, proxy: Proxy) -> None:
    with FastAgenticClient(proxy.url, retries=FAST) as client:
        events: list[StreamEvent] = []
        for event in client.stream("steps", {"steps": 8, "delay": 0.1}):
            events.append(event)
            if len(events) in (3, 9):
                proxy.cut()
    assert _seqs(events) == list(range(1, len(events) + 1))
    assert events[-1].type is StreamEventType.RUN_COMPLETED and events[-1].output["completed"] == 8
    assert "".join(e.text for e in events) == "".join(f"step {i} " for i in range(1, 9))
    requests = proxy.requests
    assert requests[0][:2] == ("POST", "/v1/agents/steps/stream")
    resumed = [r for r in requests[1:] if r[1].endswith("/events")]
    assert len(resumed) >= 2, requests
    assert resumed[0][1] == f"/v1/runs/{events[0].run_id}/events"
    assert int(resumed[0][2]["last-event-id"]) >= 3 and int(resumed[-1][2]["last-event-id"]) >= 9


async def test_a_cut_stream_resumes_with_no_gap_and_no_duplicate_async(served: Gateway, proxy: Proxy) -> None:
    async with AsyncFastAgenticClient(proxy.url, retries=FAST) as client:
        run = await client.start("steps", {"steps": 6, "delay": 0.1})
        events: list[StreamEvent] = []
        async for event in client.follow(run.run_id):
            events.append(event)
            if len(events) == 4:
                proxy.cut()
    assert _seqs(events) == list(range(1, len(events) + 1)) and events[-1].output["completed"] == 6
    follows = [r for r in proxy.requests if r[1].endswith("/events")]
    assert len(follows) >= 2 and "last-event-id" not in follows[0][2]
    assert int(follows[1][2]["last-event-id"]) >= 4


def test_a_stream_that_cannot_reconnect_gives_up_after_its_retries(served: Gateway, proxy: Proxy) -> None:
    with FastAgenticClient(proxy.url, retries=Retries(max_retries=2, backoff=0.01)) as client:
        events = []
        with pytest.raises(APIConnectionError):
            for event in client.stream("steps", {"steps": 20, "delay": 0.1}):
                events.append(event)
                if len(events) == 2:
                    proxy.close()  # cut, and refuse new connections
    assert _seqs(events) == list(range(1, len(events) + 1)) and len(events) < 5  # a chunk may hold a few


# Retries.


def test_a_retried_background_start_makes_one_run(served: Gateway, proxy: Proxy) -> None:
    marker = uuid.uuid4().hex
    proxy.swallow = 1  # the first start reaches the gateway, its 202 is lost
    with FastAgenticClient(proxy.url, retries=FAST) as client:
        run = client.start("echo", {"text": marker})
        client.wait(run.run_id)
        time.sleep(0.5)  # a second run, had the retry made one, has ended too
        mine = [
            r for r in client.runs(endpoint="echo", limit=200).runs if r.output and r.output["text"] == marker
        ]
        assert [r.run_id for r in mine] == [run.run_id]
    starts = [r for r in proxy.requests if r[1] == "/v1/agents/echo/runs"]
    assert len(starts) == 2 and starts[0][2]["idempotency-key"] == starts[1][2]["idempotency-key"]


async def test_a_call_that_is_not_idempotent_is_not_retried_after_a_lost_answer(
    served: Gateway, proxy: Proxy
) -> None:
    proxy.swallow = 1
    async with AsyncFastAgenticClient(proxy.url, retries=FAST) as client:
        with pytest.raises(APIConnectionError):
            await client.invoke("echo", {"text": "once"})
    assert len([r for r in proxy.requests if r[1] == "/v1/agents/echo/invoke"]) == 1


def test_a_503_is_retried_after_its_retry_after(cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    gateway = cluster.start_gateway(retry_after="1")
    first = _start_worker(cluster, gateway, BASIC)
    first.stop()
    with FastAgenticClient(gateway.url, retries=Retries(max_retries=0)) as client:
        wait_until(lambda: "echo" not in gateway.endpoints(), what="the worker to leave")
        with pytest.raises(UnavailableError) as refused:
            client.invoke("echo", {"text": "hi"})
        assert refused.value.type == "no_worker" and refused.value.retry_after == 1.0
        assert refused.value.request_id is not None and refused.value.request_id.startswith("fac-")

    def later() -> None:
        time.sleep(1.5)
        _start_worker(cluster, gateway, BASIC)

    starter = threading.Thread(target=later)
    starter.start()
    caplog.set_level(logging.INFO, logger="fastagentic.client")
    with FastAgenticClient(gateway.url, retries=Retries(max_retries=30, backoff=0.1, max_delay=2)) as client:
        began = time.monotonic()
        assert client.invoke("echo", {"text": "back"}).output["text"] == "back"
        took = time.monotonic() - began
    starter.join()
    retried = [r.getMessage() for r in caplog.records if "503" in r.getMessage()]
    assert retried and all("Retry-After 1.0" in line for line in retried)
    assert took >= len(retried) * 1.0  # each retry waited the second the gateway asked for


def _key(data: Path, name: str, *extra: str) -> str:
    env = base_env() | {"FASTAGENTIC_DATA_DIR": str(data)}
    args = [sys.executable, "-m", "fastagentic_gateway", "keys", "create", "--name", name, *extra]
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, dict[str, str]]]:
    """A gateway with auth required and a rate limit of 1/second on the tool ``maybe``."""
    cluster = Cluster(Path(tmp_path_factory.mktemp("client-auth")))
    try:
        data = cluster.tmp_path / "data"
        keys = {
            "plain": _key(data, "plain", "--tenant", "acme"),
            "orders": _key(data, "orders", "--tenant", "acme", "--scope", "orders:write"),
        }
        rules = [{"name": "slow-maybe", "rate": "1/second", "burst": 1, "endpoints": ["maybe"]}]
        gateway = cluster.start_gateway(auth="required", worker_token=WORKER_TOKEN, limits=json.dumps(rules))
        _start_worker(cluster, gateway, BASIC, FASTAGENTIC_WORKER_TOKEN=WORKER_TOKEN)
        yield gateway, keys
    finally:
        cluster.close()


def test_a_429_is_retried_after_its_retry_after(
    secured: tuple[Gateway, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    gateway, keys = secured
    time.sleep(1.1)  # the limit's bucket refills from whatever another test left
    caplog.set_level(logging.INFO, logger="fastagentic.client")
    with FastAgenticClient(gateway.url, api_key=keys["plain"], retries=Retries(max_retries=3)) as client:
        client.call_tool("maybe", {"value": 1})
        began = time.monotonic()
        assert client.call_tool("maybe", {"value": 2}) == 2
        took = time.monotonic() - began
    retried = [r.getMessage() for r in caplog.records if "429 rate_limited" in r.getMessage()]
    assert len(retried) == 1 and "Retry-After 1.0" in retried[0]
    assert took >= 1.0


async def test_a_429_longer_than_max_delay_or_without_retries_is_a_rate_limit_error(
    secured: tuple[Gateway, dict[str, str]],
) -> None:
    gateway, keys = secured
    async with AsyncFastAgenticClient(gateway.url, api_key=keys["plain"], retries=0) as client:
        with contextlib.suppress(RateLimitError):
            await client.call_tool("maybe")
        with pytest.raises(RateLimitError) as refused:
            await client.call_tool("maybe")
    assert refused.value.status == 429 and refused.value.type == "rate_limited"
    assert refused.value.retry_after == 1.0 and refused.value.body["rule"] == "slow-maybe"
    await asyncio.sleep(1.1)
    patient = Retries(max_retries=5, max_delay=0.5)  # the gateway asks for 1 s: more than allowed
    async with AsyncFastAgenticClient(gateway.url, api_key=keys["plain"], retries=patient) as client:
        await client.call_tool("maybe")
        began = time.monotonic()
        with pytest.raises(RateLimitError):
            await client.call_tool("maybe")
        assert time.monotonic() - began < 1.0  # not retried: a retry waits the whole second


# Credentials and errors.


def test_credentials_by_api_key_or_a_token_provider_called_per_request(
    secured: tuple[Gateway, dict[str, str]],
) -> None:
    gateway, keys = secured
    with FastAgenticClient(gateway.url) as anonymous, pytest.raises(AuthenticationError) as refused:
        anonymous.endpoints()
    assert refused.value.status == 401 and refused.value.type == "unauthenticated"
    with (
        FastAgenticClient(gateway.url, api_key="fa_key_not_a_real_one") as wrong,
        pytest.raises(AuthenticationError),
    ):
        wrong.invoke("echo", {"text": "x"})
    with FastAgenticClient(gateway.url, api_key=keys["plain"]) as client:
        assert client.invoke("echo", {"text": "k"}).output["text"] == "k"
        with pytest.raises(PermissionDeniedError) as denied:
            client.invoke("order", {"customer": "c", "items": []})
        assert denied.value.required_scopes == ["orders:write"]

    tokens = iter([keys["orders"], "fa_key_expired", keys["orders"]])
    issued: list[str] = []

    def provider() -> str:
        issued.append(next(tokens))
        return issued[-1]

    with FastAgenticClient(gateway.url, token=provider) as client:
        assert client.invoke("order", {"customer": "c", "items": [{"name": "a"}]}).output["total_items"] == 1
        with pytest.raises(AuthenticationError):
            client.endpoints()
        assert "echo" in {e.name for e in client.endpoints()}
    assert len(issued) == 3


async def test_an_async_token_provider_is_awaited_per_request(
    secured: tuple[Gateway, dict[str, str]],
) -> None:
    gateway, keys = secured
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return keys["plain"]

    async with AsyncFastAgenticClient(gateway.url, token=provider) as client:
        await client.endpoints()
        assert (await client.invoke("echo", {"text": "a"})).output["text"] == "a"
    assert calls == 2


def test_each_error_type_from_the_real_gateway_sync(served: Gateway) -> None:
    with FastAgenticClient(served.url) as client:
        with pytest.raises(NotFoundError) as missing:
            client.invoke("no_such_agent", {})
        assert missing.value.status == 404 and missing.value.type == "not_found"
        with pytest.raises(NotFoundError):
            client.get("run_00000000000000000000000000000000")
        with pytest.raises(NotFoundError):
            client.read_resource("nowhere://x")

        with pytest.raises(ValidationError) as invalid:
            client.invoke("echo", {"repeat": "x"})
        assert [e.path for e in invalid.value.errors] == ["$.repeat", "$.text"]

        with pytest.raises(BadRequestError) as bad:
            client.invoke("echo", {"text": "x"}, run_timeout=-1)
        assert bad.value.status == 400 and "Run-Timeout" in bad.value.message

        with pytest.raises(RunFailedError) as failed:
            client.invoke("fail", {"message": "bad thing"})
        assert (failed.value.error_type, failed.value.error_message) == ("ValueError", "bad thing")
        assert failed.value.run_status == "failed" and failed.value.run_id is not None
        unchecked = client.invoke("fail", {"message": "soft"}, check=False)
        assert unchecked.status is RunStatus.FAILED and unchecked.error is not None

        with pytest.raises(RunFailedError) as raised:
            client.read_resource("notes://missing")
        assert raised.value.status == 500 and raised.value.error_type == "FileNotFoundError"

        done = client.start("echo", {"text": "x"})
        client.wait(done.run_id)
        with pytest.raises(ConflictError):
            client.cancel(done.run_id)
        key = uuid.uuid4().hex
        client.start("echo", {"text": "one"}, idempotency_key=key)
        assert client.start("echo", {"text": "one"}, idempotency_key=key).run_id  # the same run again
        with pytest.raises(ConflictError) as reused:
            client.start("echo", {"text": "two"}, idempotency_key=key)
        assert reused.value.type == "conflict"


async def test_each_error_type_from_the_real_gateway_async(served: Gateway) -> None:
    async with AsyncFastAgenticClient(served.url) as client:
        with pytest.raises(NotFoundError):
            await client.call_tool("no_such_tool")
        with pytest.raises(ValidationError) as invalid:
            await client.call_tool("add", {"a": 1})
        assert [e.path for e in invalid.value.errors] == ["$.b"]
        with pytest.raises(RunFailedError) as failed:
            await client.wait((await client.start("fail", {"message": "later"})).run_id)
        assert failed.value.error_type == "ValueError" and failed.value.error_message == "later"
        no_checkpoint = await client.start("fail", {"message": "early"})
        await client.wait(no_checkpoint.run_id, check=False)
        with pytest.raises(ConflictError):
            await client.replay(no_checkpoint.run_id)
        with pytest.raises(NotFoundError):
            await client.replay((await client.start("steps", {"steps": 1, "delay": 0})).run_id, checkpoint=9)


def test_an_unreachable_gateway_is_a_connection_error() -> None:
    with (
        FastAgenticClient("http://127.0.0.1:9", retries=Retries(max_retries=1, backoff=0.01)) as client,
        pytest.raises(APIConnectionError) as failed,
    ):
        client.endpoints()
    assert "ConnectError" in str(failed.value)
