"""Following runs from the outside, as a client would: over SSE, reconnecting with Last-Event-ID."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import msgspec

from tests.conftest import Gateway

TERMINAL_KINDS = {"run.completed", "run.failed", "run.cancelled"}


class Follower(threading.Thread):
    """Follows a run's events over SSE, moving to the next replica (with Last-Event-ID) when one fails."""

    def __init__(self, gateways: list[Gateway], run_id: str) -> None:
        super().__init__(daemon=True)
        self.gateways = gateways
        self.run_id = run_id
        self.events: list[dict[str, Any]] = []
        self.served_by: list[str] = []

    def run(self) -> None:
        turn = 0
        while not self.events or self.events[-1]["kind"] not in TERMINAL_KINDS:
            gateway = self.gateways[turn % len(self.gateways)]
            last = str(self.events[-1]["seq"]) if self.events else "0"
            try:
                with httpx.stream(
                    "GET",
                    f"{gateway.url}/v1/runs/{self.run_id}/events",
                    headers={"Last-Event-ID": last},
                    timeout=httpx.Timeout(10, read=30),
                ) as response:
                    self.served_by.append(gateway.url)
                    buffer = ""
                    for chunk in response.iter_text():
                        buffer += chunk
                        *frames, buffer = buffer.split("\n\n")
                        for frame in frames:
                            data = [line[6:] for line in frame.splitlines() if line.startswith("data: ")]
                            if data:
                                self.events.append(msgspec.json.decode(data[0]))
                    if response.status_code != 200:
                        time.sleep(0.2)  # 503 while a service is down: ask again shortly
            except httpx.HTTPError:
                turn += 1  # that replica is gone: the next one has the same log
                time.sleep(0.1)


def run_status(gateway: Gateway, run_id: str) -> dict[str, Any]:
    try:
        return httpx.get(f"{gateway.url}/v1/runs/{run_id}", timeout=2).json()
    except httpx.HTTPError:
        return {}
