"""``fastagentic dev`` (what ``make run`` runs): a gateway subprocess plus the example worker."""

from __future__ import annotations

import contextlib
import signal
import sys

import httpx
import pytest

from tests.conftest import Process, base_env, free_port, wait_until
from tests.services import postgres_database


def test_dev_serves_the_example_and_prints_the_addresses(tmp_path) -> None:  # type: ignore[no-untyped-def]
    http_port, grpc_port = free_port(), free_port()
    env = base_env()
    # The ports as flags; the environment's (taken ones here) must not win over them.
    env.update(
        {
            "FASTAGENTIC_HTTP_PORT": "1",
            "FASTAGENTIC_GRPC_PORT": "1",
            "FASTAGENTIC_DATA_DIR": str(tmp_path / "data"),
        }
    )
    args = ["dev", "examples.demo:app", "--http-port", str(http_port), "--grpc-port", str(grpc_port)]
    dev = Process("dev", [sys.executable, "-m", "fastagentic", *args], env, tmp_path)
    dev.start()
    base = f"http://127.0.0.1:{http_port}"
    try:
        wait_until(lambda: "connected to gateway" in dev.output() or not dev.alive, timeout=30, what="dev")
        output = dev.output()
        assert f"REST            {base}/v1" in output
        assert f"MCP             {base}/mcp" in output and "A2A" in output
        with httpx.Client(base_url=base, timeout=30) as client:
            answer = client.post("/v1/agents/answer/invoke", json={"text": "hello", "delay": 0}).json()
            assert answer["status"] == "succeeded"
            assert answer["output"]["text"].startswith("You asked: hello.")
            assert client.post("/v1/tools/add", json={"a": 2, "b": 3}).json() == {"output": 5}
            assert client.get("/v1/resources/docs://intro").text.startswith("FastAgentic")
            greeting = client.post("/v1/prompts/greet", json={"name": "Ann"}).json()
            assert greeting["messages"][0]["content"]["text"] == "Write a warm, friendly greeting for Ann."
            assert (tmp_path / "data" / "runs.sqlite3").exists()
    finally:
        if dev.alive:
            dev.signal(signal.SIGINT)
        assert dev.wait(30) == 0
    wait_until(lambda: not _listening(base), what="the gateway subprocess to stop")


def _listening(base: str) -> bool:
    try:
        httpx.get(f"{base}/healthz", timeout=0.5)
    except httpx.HTTPError:
        return False
    return True


def test_gateway_reports_a_port_in_use_clearly(cluster) -> None:  # type: ignore[no-untyped-def]
    first = cluster.start_gateway()
    env = base_env()
    env.update(
        {
            "FASTAGENTIC_HTTP_PORT": str(first.http_port),
            "FASTAGENTIC_DATA_DIR": str(cluster.tmp_path / "d2"),
            "FASTAGENTIC_AUTH": "none",
        }
    )
    second = Process("second", [sys.executable, "-m", "fastagentic_gateway", "serve"], env, cluster.logs)
    second.start()
    assert second.wait(30) == 1
    assert f"cannot listen on 127.0.0.1:{first.http_port}" in second.output()
    assert "Traceback" not in second.output()


def test_gateway_reports_a_metrics_port_in_use_clearly(cluster) -> None:  # type: ignore[no-untyped-def]
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        env = base_env()
        env.update(
            {
                "FASTAGENTIC_HTTP_PORT": "0",
                "FASTAGENTIC_GRPC_PORT": "0",
                "FASTAGENTIC_METRICS_PORT": str(port),
                "FASTAGENTIC_DATA_DIR": str(cluster.tmp_path / "d3"),
                "FASTAGENTIC_AUTH": "none",
            }
        )
        gateway = Process(
            "metrics-taken", [sys.executable, "-m", "fastagentic_gateway", "serve"], env, cluster.logs
        )
        gateway.start()
        assert gateway.wait(30) == 1
        assert f"cannot listen on 127.0.0.1:{port} (metrics)" in gateway.output()
        assert "Traceback" not in gateway.output()
    finally:
        taken.close()


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        (
            {"FASTAGENTIC_STORE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"},
            "cannot connect to PostgreSQL at 127.0.0.1:1/nowhere",
        ),
        (
            {"FASTAGENTIC_BUS_URL": "nats://127.0.0.1:1"},
            "cannot connect to NATS at nats://127.0.0.1:1: no connection within 15 s",
        ),
    ],
    ids=["store", "bus"],
)
def test_gateway_that_cannot_reach_its_store_or_bus_says_so_in_one_line(
    cluster,  # type: ignore[no-untyped-def]
    settings: dict[str, str],
    says: str,
) -> None:
    env = base_env()
    env.update(
        {
            "FASTAGENTIC_HTTP_PORT": "0",
            "FASTAGENTIC_GRPC_PORT": "0",
            "FASTAGENTIC_DATA_DIR": str(cluster.tmp_path / "d4"),
            "FASTAGENTIC_AUTH": "none",
            **settings,
        }
    )
    with contextlib.ExitStack() as stack:
        if "FASTAGENTIC_BUS_URL" in env:  # a cluster's bus needs a store its replicas share: a real one
            env["FASTAGENTIC_STORE_URL"] = stack.enter_context(postgres_database())
        gateway = Process(
            "unreachable", [sys.executable, "-m", "fastagentic_gateway", "serve"], env, cluster.logs
        )
        gateway.start()
        stack.callback(gateway.stop)
        assert gateway.wait(40) == 1
    assert f"fastagentic-gateway: {says}" in gateway.output()
    assert "Traceback" not in gateway.output()


def test_dev_refuses_a_bad_port_flag(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "fastagentic", "dev", "examples.demo:app", "--http-port", "70000"],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "expected a port number (1-65535), not '70000'" in result.stderr
