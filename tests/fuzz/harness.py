"""The fuzz suite's harness: one real gateway and worker per module, requests that always come back as
an ``Answer`` (or fail naming the request), and the Hypothesis settings every property shares.

Sizes and seeds:

- ``FASTAGENTIC_FUZZ_EXAMPLES`` (default 20): examples per property. ``make test`` runs the default,
  derandomized (the same examples every run), so a failure is reproducible by running the test again.
- ``FASTAGENTIC_FUZZ_RANDOM=1`` (``make fuzz``): random examples, from pytest's ``--hypothesis-seed``
  when given (``make fuzz`` always gives one and prints it: ``make fuzz FUZZ_SEED=<seed>`` draws the
  same examples again); a failure also prints a ``@reproduce_failure`` blob for its test.

Every failure names the request (method, path, headers, body with long runs folded: ``<'['*3000>``) and
the answer, so that it reproduces with curl.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, Phase, settings

from tests.conftest import Cluster, Gateway

EXAMPLES = int(os.environ.get("FASTAGENTIC_FUZZ_EXAMPLES", "20"))
RANDOM = os.environ.get("FASTAGENTIC_FUZZ_RANDOM", "") not in ("", "0")

#: The settings of every property: bounded, seeded unless asked otherwise, no time limit per example
#: (each one is a round trip to a real gateway), and no example database in the working tree.
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    database=None,
    print_blob=RANDOM,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)

#: How long a request may take to be answered, and how much of an answer is read: enough for any
#: error or finished run; a live event stream is cut there, which is not a failure.
TIMEOUT = httpx.Timeout(connect=5.0, read=20.0, write=20.0, pool=5.0)
READ_LIMIT = 16 * 1024 * 1024
READ_SECONDS = 20.0


# ------------------------------------------------------------------------------ one gateway per module


class Served:
    """A gateway with its worker, and what it serves."""

    def __init__(
        self, cluster: Cluster, gateway: Gateway, http: httpx.Client, endpoints: dict[str, dict[str, Any]]
    ) -> None:
        self.cluster = cluster
        self.gateway = gateway
        self.http = http
        self.endpoints = endpoints
        self.log_start = len(gateway.output())

    @property
    def url(self) -> str:
        return self.gateway.url

    def __repr__(self) -> str:
        return f"<gateway {self.url}>"

    def named(self, kind: str) -> list[str]:
        return sorted(name for name, info in self.endpoints.items() if info["kind"] == kind)

    def schema(self, name: str) -> dict[str, Any]:
        return dict(self.endpoints[name]["input_schema"])

    def log_since_start(self) -> str:
        """What the gateway logged after its workers connected: the fuzzing."""
        return self.gateway.output()[self.log_start :]


def serve(tmp_path_factory: pytest.TempPathFactory, worker: str) -> Iterator[Served]:
    """Start a gateway and one worker of ``worker`` for a module; stop both after it."""
    cluster = Cluster(Path(tmp_path_factory.mktemp("fuzz")))
    try:
        gateway = cluster.start_gateway()
        cluster.start_worker(worker)
        with httpx.Client(
            base_url=gateway.url,
            timeout=TIMEOUT,
            # A fresh connection per request: a connection one request broke never carries the next.
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as http:
            endpoints = {e["name"]: e for e in http.get("/v1/endpoints").json()["endpoints"]}
            yield Served(cluster, gateway, http, endpoints)
    finally:
        cluster.close()


# --------------------------------------------------------------------------------- requests, answers


@dataclass
class Sent:
    """A request as sent, shown the way a failure report needs it: method, path, headers, body."""

    method: str
    path: str
    headers: list[tuple[str, str | bytes]] = field(default_factory=list)
    body: bytes | None = None

    def __str__(self) -> str:
        headers = "".join(f"  {name}: {value!r}" for name, value in self.headers)
        body = "" if self.body is None else f"  body: {shorten(self.body)}"
        return f"{self.method} {self.path}{headers}{body}"


_REPEATS = re.compile(rb"(.{1,3}?)\1{15,}", re.DOTALL)


def shorten(body: bytes, limit: int = 400) -> str:
    """A body as a reader wants it: runs of a repeated piece as ``<'['*3000>``, the rest cut at ``limit``."""

    def fold(match: re.Match[bytes]) -> bytes:
        unit = match.group(1)
        return b"<%r*%d>" % (unit.decode("latin-1"), len(match.group(0)) // len(unit))

    text = repr(_REPEATS.sub(fold, body))
    return text if len(text) <= limit else text[:limit] + f"... ({len(body)} bytes)"


@dataclass
class Answer:
    sent: Sent
    status: int
    headers: httpx.Headers
    body: bytes
    #: False when the body was cut at its read limit or time (a live stream).
    complete: bool

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def is_event_stream(self) -> bool:
        return self.content_type.startswith("text/event-stream")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return msgspec.json.decode(self.body)

    def events(self) -> list[str]:
        """The ``data`` of each SSE event, in order."""
        events, data = [], []
        for line in [*_LINES.split(self.text), ""]:
            if not line:
                if data:
                    events.append("\n".join(data))
                data = []
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        return events

    def messages(self) -> list[Any]:
        """The JSON documents of the answer: the body, or each SSE event's data."""
        if self.is_event_stream:
            return [_json_or_none(data) for data in self.events() if data.strip()]
        return [_json_or_none(self.body)] if self.body.strip() else []

    def __str__(self) -> str:
        return f"{self.sent}\n  -> {self.status} {self.content_type}  {shorten(self.body, 600)}"

    def __repr__(self) -> str:
        return f"<answer {self.status} to {self.sent.method} {self.sent.path[:80]}>"


#: SSE lines end with CRLF, LF or CR, and nothing else (not U+0085 or U+2028, as str.splitlines has it).
_LINES = re.compile(r"\r\n|\r|\n")


def _json_or_none(data: str | bytes) -> Any:
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None


Headers = Iterable[tuple[str, str | bytes]]


def send(
    http: httpx.Client,
    method: str,
    path: str,
    *,
    body: bytes | str | None = None,
    headers: Headers = (),
    params: dict[str, str] | None = None,
    stream_seconds: float = READ_SECONDS,
    read_limit: int = READ_LIMIT,
) -> Answer:
    """Send one request and read its answer, a bounded part of it for a live stream: an event stream is
    read for at most ``stream_seconds`` (quiet that long, it is cut, which is no failure). No answer
    at all (a reset or dropped connection, a timeout before the response starts) fails the test,
    naming the request."""
    if isinstance(body, str):
        body = body.encode()
    header_list = list(headers)
    shown = path if not params else f"{path}?{httpx.QueryParams(params)}"
    sent = Sent(method, shown, header_list, body)
    timeout = (
        httpx.Timeout(
            connect=TIMEOUT.connect,
            read=min(TIMEOUT.read or 0, stream_seconds),
            write=TIMEOUT.write,
            pool=TIMEOUT.pool,
        )
        if stream_seconds < READ_SECONDS
        else TIMEOUT
    )
    request = http.build_request(
        method, path, content=body, params=params, headers=[(k, v) for k, v in header_list], timeout=timeout
    )
    started = time.monotonic()
    try:
        response = http.send(request, stream=True)
    except httpx.TransportError as exc:
        raise AssertionError(f"no answer ({type(exc).__name__}: {exc}) to\n  {sent}") from None
    chunks: list[bytes] = []
    size = 0
    complete = False
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= read_limit or time.monotonic() - started > stream_seconds:
                break
        else:
            complete = True
    except httpx.ReadTimeout:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            raise AssertionError(f"no complete answer (read timeout) to\n  {sent}") from None
    except httpx.TransportError as exc:
        raise AssertionError(
            f"answer {response.status_code} broken off ({type(exc).__name__}: {exc}) for\n  {sent}\n"
            f"  after {shorten(b''.join(chunks))}"
        ) from None
    finally:
        response.close()
    return Answer(sent, response.status_code, response.headers, b"".join(chunks), complete)
