"""Shared fixtures: real gateway and worker processes on free loopback ports, cleaned up after."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


#: What a gateway prints once it serves HTTP and gRPC.
BANNER = "FastAgentic gateway ready"


class Process:
    """A child process whose output goes to a log file we can show when a test fails."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """kill -9: no cleanup, no goodbye."""
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTAGENTIC_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(ROOT)
    return env


class Gateway(Process):
    def __init__(self, log_dir: Path, data_dir: Path, ca_file: str | None = None, **settings: str) -> None:
        self.ca_file = ca_file  # the gateway serves HTTPS with a certificate this CA signed
        self.http_port = free_port()
        self.grpc_port = free_port()
        env = base_env()
        env.update(
            {
                "FASTAGENTIC_HTTP_PORT": str(self.http_port),
                "FASTAGENTIC_GRPC_PORT": str(self.grpc_port),
                "FASTAGENTIC_DATA_DIR": str(data_dir),
                "FASTAGENTIC_LEASE_TTL": "2",
                "FASTAGENTIC_HEARTBEAT_INTERVAL": "0.3",
                "FASTAGENTIC_SSE_KEEPALIVE": "1",
                # Tests choose explicitly; the identity tests start gateways with auth="required".
                "FASTAGENTIC_AUTH": "none",
            }
        )
        env.update({f"FASTAGENTIC_{k.upper()}": v for k, v in settings.items()})
        super().__init__("gateway", [sys.executable, "-m", "fastagentic_gateway", "serve"], env, log_dir)
        self.data_dir = data_dir

    @property
    def url(self) -> str:
        return f"{'https' if self.ca_file else 'http'}://127.0.0.1:{self.http_port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self) -> None:
        lives = self.output().count(BANNER)  # the log is appended to across restarts
        super().start()

        def healthy() -> bool:
            if not self.alive:
                raise AssertionError(f"gateway exited:\n{self.output()}")
            try:
                verify = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True
                return httpx.get(f"{self.url}/healthz", timeout=0.5, verify=verify).status_code == 200
            except httpx.HTTPError:
                return False

        # Generous: on a loaded two-core machine a start-up (imports, migrations) has taken over 15 s.
        wait_until(healthy, timeout=45.0, what="gateway /healthz")
        # /healthz answers a moment before the banner is printed (after gRPC starts): a test reading the
        # log right after start() must see this life's banner, not only an earlier one's.
        wait_until(lambda: self.output().count(BANNER) > lives, timeout=15.0, what="the gateway's banner")

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def endpoints(self) -> set[str]:
        try:
            response = httpx.get(f"{self.url}/v1/endpoints", timeout=1)
        except httpx.HTTPError:
            return set()
        return {e["name"] for e in response.json()["endpoints"]}


class Worker(Process):
    def __init__(
        self, gateway: Gateway, target: str, log_dir: Path, name: str, *extra: str, address: str | None = None
    ) -> None:
        env = base_env()
        address = address or gateway.grpc_address
        args = [sys.executable, "-m", "fastagentic", "run", target, "--gateway", address, *extra]
        super().__init__(name, args, env, log_dir)
        self.gateway = gateway


class Cluster:
    """A gateway and any number of workers for one test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        self.processes: list[Process] = []
        self._workers = 0
        self.gateway: Gateway | None = None

    def start_gateway(self, **settings: str) -> Gateway:
        gateway = Gateway(self.logs, self.tmp_path / "data", **settings)
        self.processes.append(gateway)  # before it starts: one that never gets healthy is stopped too
        gateway.start()
        self.gateway = gateway
        return gateway

    def restart_gateway(self, gateway: Gateway) -> None:
        """Start the same gateway again: same ports, same data directory."""
        gateway.start()

    def start_worker(
        self,
        target: str = "tests.workers.basic:app",
        *extra: str,
        wait: bool = True,
        gateway: Gateway | None = None,
        address: str | None = None,
    ) -> Worker:
        """A worker dialling ``gateway`` (by default the last one started), or the gRPC target ``address``."""
        gateway = gateway or self.gateway
        assert gateway is not None
        self._workers += 1
        worker = Worker(gateway, target, self.logs, f"worker{self._workers}", *extra, address=address)
        self.processes.append(worker)
        worker.start()
        if wait:
            wait_until(
                lambda: (worker.alive and _connected(gateway, worker)) or _dead(worker),
                what=f"{worker.name} to register",
            )
            if not worker.alive:
                raise AssertionError(f"{worker.name} exited:\n{worker.output()}")
        return worker

    def dump(self) -> str:
        return "\n".join(f"===== {p.name} =====\n{p.output()[-6000:]}" for p in self.processes)

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop(timeout=10)


def _dead(process: Process) -> bool:
    return not process.alive


def _connected(gateway: Gateway, worker: Worker) -> bool:
    return f"worker {worker.name}" in gateway.output() or "connected to gateway" in worker.output()


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.close()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            sys.stderr.write(cluster.dump())


@pytest.fixture
def gateway(cluster: Cluster) -> Gateway:
    return cluster.start_gateway()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
