"""WebSocket sessions, with real processes and the ``websockets`` client: a socket starts a run (or attaches
to one) and carries its events out, as the SSE stream does, and answers and cancels in; errors come as error
frames with REST's error body and leave the socket usable; a reconnect resumes after the last seq with no gap
and no duplicate; the handshake is authenticated and authorized as REST is."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.sync.connection import Connection

from tests.conftest import Cluster, Gateway, Worker, wait_until
from tests.e2e.follow import Follower
from tests.e2e.test_identity import cli

INTERRUPTS = "tests.workers.interrupt_worker:app"


def _ws_url(gateway: Gateway, path: str) -> str:
    return gateway.url.replace("http://", "ws://", 1) + path


def _open(gateway: Gateway, path: str, headers: dict[str, str] | None = None) -> ClientConnection:
    return connect(_ws_url(gateway, path), additional_headers=headers, proxy=None, open_timeout=10)


def _recv(ws: Connection, timeout: float = 20) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return frame


def _until(ws: Connection, kind: str) -> list[dict[str, Any]]:
    """Event frames up to and including the first of ``kind``."""
    frames = []
    while True:
        frame = _recv(ws)
        assert frame["type"] == "event", frame
        frames.append(frame)
        if frame["kind"] == kind:
            return frames


def _to_the_end(ws: Connection) -> list[dict[str, Any]]:
    """Every frame until the server closes the socket; the close must be 1000."""
    frames = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            frames.append(_recv(ws))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000, closed.value
    return frames


def _sse_events(gateway: Gateway, run_id: str) -> list[dict[str, Any]]:
    follower = Follower([gateway], run_id)
    follower.start()
    follower.join(timeout=60)
    assert not follower.is_alive(), "the run never ended"
    return follower.events


def _as_sse(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Event frames as the SSE stream carries them: the same object without the frame's type."""
    return [{k: v for k, v in frame.items() if k != "type"} for frame in frames]


def _interrupt_worker(cluster: Cluster, gateway: Gateway, tmp_path: Path, token: str = "") -> Worker:
    worker = Worker(gateway, INTERRUPTS, cluster.logs, "interrupts")
    worker.env["INTERRUPT_WORKER_LOG"] = str(tmp_path / "worker.log")
    if token:
        worker.env["FASTAGENTIC_WORKER_TOKEN"] = token
    worker.start()
    cluster.processes.append(worker)
    wait_until(lambda: "(interrupts) connected" in gateway.output(), what="the interrupt worker")
    return worker


@pytest.fixture
def served(cluster: Cluster, tmp_path: Path) -> Iterator[Gateway]:
    """A gateway (frames up to 4 KiB) with the basic worker and the interrupt worker."""
    gateway = cluster.start_gateway(max_body_bytes="4096")
    cluster.start_worker()
    _interrupt_worker(cluster, gateway, tmp_path)
    yield gateway


def test_a_run_started_over_the_socket_streams_its_events_as_sse_does(served: Gateway) -> None:
    with _open(served, "/v1/agents/echo/session") as ws:
        ws.send(json.dumps({"type": "start", "input": {"text": "hi", "repeat": 3}}))
        first = _recv(ws)
        assert first["type"] == "run", first
        run = first["run"]
        assert run["endpoint"] == "echo" and run["status"] in ("queued", "running"), run
        frames = _to_the_end(ws)
    assert {f["type"] for f in frames} == {"event"}
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert [f["kind"] for f in frames][-1] == "run.completed"
    assert [f["data"] for f in frames if f["kind"] == "token"] == [{"text": "hi"}] * 3
    # Each event exactly as the SSE stream carries it.
    assert _as_sse(frames) == _sse_events(served, run["run_id"])


def test_an_interrupt_is_answered_over_the_socket_and_a_wrong_answer_leaves_it_usable(
    served: Gateway,
) -> None:
    with _open(served, "/v1/agents/ask/session") as ws:
        ws.send(json.dumps({"type": "start", "input": {"question": "how much?"}}))
        run_id = _recv(ws)["run"]["run_id"]
        interrupt = _until(ws, "interrupt")[-1]["data"]
        assert interrupt["id"] == "interrupt-1" and interrupt["request"] == {"question": "how much?"}

        ws.send(json.dumps({"type": "answer", "answer": {"amount": "five"}}))
        wrong = _recv(ws)
        assert wrong["type"] == "error" and wrong["op"] == "answer" and wrong["status"] == 422, wrong
        assert wrong["error"]["type"] == "validation_error"
        assert [e["path"] for e in wrong["error"]["errors"]] == ["$.amount"], wrong
        # The same body POST /v1/runs/{id}/resume answers.
        rest = httpx.post(f"{served.url}/v1/runs/{run_id}/resume", json={"answer": {"amount": "five"}})
        assert rest.status_code == 422 and rest.json() == wrong["error"], rest.text

        ws.send(json.dumps({"type": "answer", "interrupt": "other", "answer": {"amount": 5}}))
        other = _recv(ws)
        assert other["status"] == 409 and other["error"]["type"] == "conflict", other
        ws.send(json.dumps({"type": "start", "input": {"question": "again?"}}))
        again = _recv(ws)
        assert again["op"] == "start" and again["status"] == 409, again
        assert run_id in again["error"]["message"]

        ws.send(
            json.dumps({"type": "answer", "interrupt": "interrupt-1", "answer": {"amount": 5, "note": "ok"}})
        )
        rest_of_run = _to_the_end(ws)
    kinds = [f["kind"] for f in rest_of_run]
    assert kinds == ["input", "token", "run.completed"], kinds
    assert rest_of_run[0]["data"] == {"id": "interrupt-1", "answer": {"amount": 5, "note": "ok"}}
    assert rest_of_run[-1]["data"]["output"] == {"amount": 5, "note": "ok", "attempt": 1}
    events = _sse_events(served, run_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["kind"] for e in events] == [
        "run.started",
        "token",
        "interrupt",
        "input",
        "token",
        "run.completed",
    ]


def test_bad_frames_get_precise_errors_and_the_socket_goes_on(served: Gateway) -> None:
    with _open(served, "/v1/agents/ask/session") as ws:
        cases: list[tuple[str | bytes, int, str, list[str]]] = [
            ("not json", 400, "malformed_request", []),
            ("[1, 2]", 422, "validation_error", ["$"]),
            (json.dumps({"type": "resume"}), 422, "validation_error", ["$.type"]),
            (json.dumps({"input": {}}), 422, "validation_error", ["$.type"]),
            (json.dumps({"type": "start", "input": {}, "durable": True}), 422, "validation_error", ["$"]),
            (
                json.dumps({"type": "answer", "answer": 1, "interrupt": 7}),
                422,
                "validation_error",
                ["$.interrupt"],
            ),
            (b'{"type": "cancel"}', 400, "malformed_request", []),  # a binary frame
            (json.dumps({"type": "start", "input": {"question": "x" * 5000}}), 413, "payload_too_large", []),
            (json.dumps({"type": "cancel"}), 409, "conflict", []),  # no run yet
            (
                json.dumps({"type": "start", "input": {"question": 3}}),
                422,
                "validation_error",
                ["$.question"],
            ),
        ]
        errors = []
        for frame, status, kind, paths in cases:
            ws.send(frame)
            error = _recv(ws)
            assert error["type"] == "error" and error["status"] == status, (frame, error)
            assert error["error"]["type"] == kind, (frame, error)
            assert [e["path"] for e in error["error"].get("errors", [])] == paths, (frame, error)
            errors.append(error)
        assert errors[1]["op"] is None and errors[8]["op"] == "cancel", errors
        assert errors[4]["error"]["errors"][0]["message"] == "Object contains unknown field `durable`"
        assert "expected one of start, answer, cancel" in json.dumps(errors[2])
        assert "at most 4096 bytes" in errors[7]["error"]["message"]
        # Still usable: a good start frame starts the run.
        ws.send(json.dumps({"type": "start", "input": {"question": "now?"}}))
        assert _recv(ws)["type"] == "run"
        assert _until(ws, "interrupt")[-1]["data"]["request"] == {"question": "now?"}
        ws.send(json.dumps({"type": "cancel"}))
        assert _to_the_end(ws)[-1]["kind"] == "run.cancelled"


def test_a_frame_past_what_the_server_reads_closes_the_socket_1009(served: Gateway) -> None:
    with _open(served, "/v1/agents/ask/session") as ws:
        ws.send(json.dumps({"type": "start", "input": {"question": "x" * 80_000}}))  # > 4 KiB + 64 KiB
        with pytest.raises(ConnectionClosed) as closed:
            _recv(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009, closed.value


def test_cancel_over_the_socket(served: Gateway) -> None:
    with _open(served, "/v1/agents/steps/session") as ws:
        ws.send(json.dumps({"type": "start", "input": {"steps": 100, "delay": 0.2}}))
        run_id = _recv(ws)["run"]["run_id"]
        _until(ws, "token")
        ws.send(json.dumps({"type": "cancel"}))
        frames = _to_the_end(ws)
    assert frames[-1]["kind"] == "run.cancelled", frames[-3:]
    assert frames[-1]["data"] == {"reason": "cancelled by request"}
    run = httpx.get(f"{served.url}/v1/runs/{run_id}").json()
    assert run["status"] == "cancelled" and run["last_seq"] == frames[-1]["seq"], run
    # Cancelling it again over a socket attached to it: 409, then the socket ends with the run (1000).
    with _open(served, f"/v1/runs/{run_id}/session?after={run['last_seq']}") as ws:
        assert _recv(ws)["run"]["status"] == "cancelled"
        with pytest.raises(ConnectionClosed) as closed:
            _recv(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


def _drop(ws: Connection) -> None:
    """Lose the connection without a closing handshake, as a network failure would."""
    ws.socket.shutdown(socket.SHUT_RDWR)
    ws.socket.close()


def test_a_reconnect_resumes_after_the_last_seq_with_no_gap_and_no_duplicate(served: Gateway) -> None:
    seen: list[dict[str, Any]] = []
    ws: Connection = _open(served, "/v1/agents/steps/session")
    ws.send(json.dumps({"type": "start", "input": {"steps": 12, "delay": 0.15}}))
    run_id = _recv(ws)["run"]["run_id"]
    while len(seen) < 4:
        seen.append(_recv(ws))
    _drop(ws)
    time.sleep(0.6)  # the run goes on meanwhile
    # Attach to the run, after the last seq received.
    with _open(served, f"/v1/runs/{run_id}/session?after={seen[-1]['seq']}") as ws:
        announced = _recv(ws)
        assert announced["type"] == "run" and announced["run"]["last_seq"] > seen[-1]["seq"], announced
        while len(seen) < 10:
            seen.append(_recv(ws))
        _drop(ws)
    # The Last-Event-ID header works as ?after= does.
    with _open(served, f"/v1/runs/{run_id}/session", {"Last-Event-ID": str(seen[-1]["seq"])}) as ws:
        assert _recv(ws)["type"] == "run"
        seen += _to_the_end(ws)
    assert [f["seq"] for f in seen] == list(range(1, len(seen) + 1)), [f["seq"] for f in seen]
    assert _as_sse(seen) == _sse_events(served, run_id)
    assert seen[-1]["kind"] == "run.completed" and seen[-1]["data"]["output"]["completed"] == 12


def test_a_dropped_start_is_found_again_by_its_idempotency_key(served: Gateway) -> None:
    key = {"Idempotency-Key": "session-key-1"}
    start = json.dumps({"type": "start", "input": {"steps": 6, "delay": 0.15}})
    ws: Connection = _open(served, "/v1/agents/steps/session", key)
    ws.send(start)
    first = _recv(ws)
    assert "replayed" not in first
    got = [_recv(ws), _recv(ws)]
    _drop(ws)
    with _open(served, f"/v1/agents/steps/session?after={got[-1]['seq']}", key) as ws:
        ws.send(start)
        again = _recv(ws)
        assert again["replayed"] is True and again["run"]["run_id"] == first["run"]["run_id"], again
        got += _to_the_end(ws)
    assert [f["seq"] for f in got] == list(range(1, len(got) + 1))
    # The same key with another input is REST's 409, on the socket.
    with _open(served, "/v1/agents/steps/session", key) as ws:
        ws.send(json.dumps({"type": "start", "input": {"steps": 7}}))
        conflict = _recv(ws)
        assert conflict["status"] == 409 and "Idempotency-Key" in conflict["error"]["message"], conflict


def test_handshake_errors_close_with_4000_plus_the_rest_status(served: Gateway) -> None:
    for path, code, kind in [
        ("/v1/agents/nope/session", 4404, "not_found"),
        ("/v1/runs/run_nope/session", 4404, "not_found"),
        ("/v1/runs/run_nope/session?after=x", 4400, "malformed_request"),
    ]:
        with _open(served, path) as ws:
            error = _recv(ws)
            assert error["type"] == "error" and error["error"]["type"] == kind, (path, error)
            with pytest.raises(ConnectionClosed) as closed:
                _recv(ws)
        assert closed.value.rcvd is not None, path
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (code, kind), (path, closed.value)
    with _open(served, "/v1/agents/steps/session", {"Run-Timeout": "-1"}) as ws:
        assert _recv(ws)["error"]["message"].startswith("Run-Timeout must be more than 0")


def test_the_socket_is_authenticated_and_scoped_to_the_tenant(cluster: Cluster, tmp_path: Path) -> None:
    data = cluster.tmp_path / "data"
    acme = cli(data, "keys", "create", "--name", "ann", "--tenant", "acme")
    globex = cli(data, "keys", "create", "--name", "gus", "--tenant", "globex")
    token = cli(data, "workers", "create-token", "--name", "interrupts", "--endpoint", "*")
    gateway = cluster.start_gateway(auth="required")
    _interrupt_worker(cluster, gateway, tmp_path, token)
    ann, gus = {"Authorization": f"Bearer {acme}"}, {"X-API-Key": globex}

    # No credential, or a wrong one: refused before the handshake completes, 401 with REST's error body.
    for headers in (None, {"Authorization": "Bearer fa_key_nope"}):
        with pytest.raises(InvalidStatus) as refused:
            _open(gateway, "/v1/agents/ask/session", headers)
        response = refused.value.response
        assert response.status_code == 401, response
        assert json.loads(response.body or b"{}")["type"] == "unauthenticated", response.body
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), response.headers

    with _open(gateway, "/v1/agents/ask/session", ann) as ws:
        ws.send(json.dumps({"type": "start", "input": {"question": "?"}}))
        run = _recv(ws)["run"]
        assert run["tenant"] == "acme", run
        _until(ws, "interrupt")
        # Another tenant cannot attach to it: the run is not found for them, and the socket closes 4404.
        with _open(gateway, f"/v1/runs/{run['run_id']}/session", gus) as other:
            refused_frame = _recv(other)
            assert refused_frame["error"]["type"] == "not_found", refused_frame
            with pytest.raises(ConnectionClosed) as closed:
                _recv(other)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
        # The owner's socket is unaffected: answered, the run ends.
        ws.send(json.dumps({"type": "answer", "answer": {"amount": 3}}))
        assert _to_the_end(ws)[-1]["data"]["output"]["amount"] == 3


def test_a_reader_that_stalls_loses_nothing(served: Gateway) -> None:
    """The client stops reading (its queue holds 4 frames, then TCP pushes back) while the run emits 2000
    events (0.8 MB) and ends; read again, the socket delivers every event, in order, once."""
    url = _ws_url(served, "/v1/agents/echo/session")
    with connect(url, proxy=None, max_queue=4, max_size=None) as ws:  # run.completed holds 0.8 MB
        ws.send(json.dumps({"type": "start", "input": {"text": "x" * 400, "repeat": 2000}}))
        run_id = _recv(ws)["run"]["run_id"]
        wait_until(
            lambda: httpx.get(f"{served.url}/v1/runs/{run_id}").json()["status"] == "succeeded",
            timeout=120,
            what="the run to end while its reader stalls",
        )
        time.sleep(1)
        frames = _to_the_end(ws)
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert sum(f["kind"] == "token" for f in frames) == 2000
    assert frames[-1]["kind"] == "run.completed"
