"""The client's pure parts: SSE decoding of chunks cut anywhere, backoff and Retry-After, error mapping,
and that importing fastagentic stays free of httpx."""

from __future__ import annotations

import email.utils
import subprocess
import sys
import time

import httpx
import pytest

from fastagentic.client import (
    AuthenticationError,
    ConflictError,
    FastAgenticClient,
    FastAgenticError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    Retries,
    RunFailedError,
    ServerError,
    StreamEvent,
    StreamEventType,
    UnavailableError,
    ValidationError,
)
from fastagentic.client._errors import error_from_response, retry_after_of
from fastagentic.client._sse import SSEDecoder, decode_event
from tests.conftest import ROOT

STREAM = (
    "id: 1\nevent: run.started\n"
    'data: {"run_id":"run_a","seq":1,"ts":1.5,"kind":"run.started","data":{"attempt":1,"worker":"w"}}\n\n'
    ": keepalive\n\n"
    "id: 2\r\nevent: token\r\n"
    'data: {"run_id":"run_a","seq":2,"ts":1.6,"kind":"token","data":{"text":"héllo ✓"}}\r\n\r\n'
    "id: 3\revent: run.completed\r"
    'data: {"run_id":"run_a","seq":3,"ts":1.7,"kind":"run.completed","data":{"output":{"n":1}}}\r\r'
).encode()


def _decode(chunks: list[bytes]) -> list[StreamEvent]:
    decoder = SSEDecoder()
    return [decode_event(frame) for chunk in chunks for frame in decoder.feed(chunk)]


def test_sse_frames_cut_at_every_byte_decode_the_same() -> None:
    whole = _decode([STREAM])
    assert [e.seq for e in whole] == [1, 2, 3]
    assert whole[1].text == "héllo ✓" and whole[2].output == {"n": 1} and whole[2].terminal
    for cut in range(1, len(STREAM)):
        assert _decode([STREAM[:cut], STREAM[cut:]]) == whole, cut
    assert _decode([bytes([b]) for b in STREAM]) == whole


def test_sse_comments_and_frames_without_data_yield_nothing() -> None:
    assert SSEDecoder().feed(b": keepalive\n\nevent: x\n\nid: 4\n\n") == []


def test_a_multi_line_data_field_is_joined_with_newlines() -> None:
    (frame,) = SSEDecoder().feed(b"data: a\ndata: b\n\n")
    assert frame.data == "a\nb" and frame.event == "message"


def test_an_unreadable_event_is_a_client_error_naming_it() -> None:
    (frame,) = SSEDecoder().feed(b"data: {not json\n\n")
    with pytest.raises(FastAgenticError, match="cannot read"):
        decode_event(frame)


def test_event_types_and_typed_views() -> None:
    call = StreamEvent("r", 1, 0.0, "tool_call", {"id": "c1", "name": "search", "arguments": {"q": "x"}})
    assert call.type is StreamEventType.TOOL_CALL and call.tool_call is not None
    assert call.tool_call.arguments == {"q": "x"} and call.tool_result is None
    result = StreamEvent("r", 2, 0.0, "tool_result", {"id": "c1", "name": "search", "result": [1]})
    assert result.tool_result is not None and result.tool_result.result == [1]
    failed = StreamEvent("r", 3, 0.0, "run.failed", {"error": {"type": "KeyError", "message": "k"}})
    assert failed.terminal and failed.error is not None and failed.error.type == "KeyError"
    assert StreamEvent("r", 4, 0.0, "my.kind", {}).type is StreamEventType.CUSTOM


def test_backoff_grows_exponentially_to_its_cap_with_full_jitter() -> None:
    policy = Retries(max_retries=10, backoff=0.5, max_delay=4)
    assert [policy.delay(n, rand=lambda: 1.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert policy.delay(3, rand=lambda: 0.0) == 0.0
    assert all(0 <= (policy.delay(2) or 0) <= 2.0 for _ in range(200))


def test_retry_after_is_honoured_up_to_max_delay_and_retries_are_bounded() -> None:
    policy = Retries(max_retries=2, backoff=0.5, max_delay=10)
    assert policy.delay(0, retry_after=3, rand=lambda: 0.0) == 3
    assert policy.delay(0, retry_after=3, rand=lambda: 1.0) == 3.5
    assert policy.delay(0, retry_after=11) is None  # longer than allowed: give up at once
    assert policy.delay(2) is None and policy.delay(2, retry_after=1) is None
    assert Retries(max_retries=0).delay(0) is None
    with pytest.raises(ValueError):
        Retries(max_retries=-1)


def test_retry_after_reads_seconds_an_http_date_or_the_body() -> None:
    assert retry_after_of(httpx.Headers({"Retry-After": "7"})) == 7.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (retry_after_of(httpx.Headers({"Retry-After": later})) or 0) <= 31
    assert retry_after_of(httpx.Headers(), {"retry_after": 2}) == 2.0
    assert retry_after_of(httpx.Headers({"Retry-After": "soon"})) is None


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (401, {"type": "unauthenticated", "message": "no"}, AuthenticationError),
        (
            403,
            {"type": "insufficient_scope", "message": "no", "required_scopes": ["a"]},
            PermissionDeniedError,
        ),
        (404, {"type": "not_found", "message": "no"}, NotFoundError),
        (409, {"type": "conflict", "message": "no", "run_id": "run_x"}, ConflictError),
        (
            422,
            {"type": "validation_error", "message": "no", "errors": [{"path": "$.a", "message": "m"}]},
            ValidationError,
        ),
        (429, {"type": "rate_limited", "message": "no", "retry_after": 3}, RateLimitError),
        (503, {"type": "no_worker", "message": "no"}, UnavailableError),
        (502, {}, ServerError),
    ],
)
def test_error_answers_map_to_their_types(status: int, body: dict[str, object], cls: type) -> None:
    import msgspec

    error = error_from_response(
        status, httpx.Headers(), msgspec.json.encode(body) if body else b"Bad Gateway"
    )
    assert type(error) is cls and error.status == status
    if cls is ValidationError:
        assert [(e.path, e.message) for e in error.errors] == [("$.a", "m")]  # type: ignore[attr-defined]
    if cls is RateLimitError:
        assert error.retry_after == 3.0  # type: ignore[attr-defined]
    if cls is ServerError:
        assert error.message == "Bad Gateway"


def test_a_failed_tool_call_is_a_run_failed_error_with_the_remote_type() -> None:
    body = b'{"type":"run_failed","message":"KeyError: k","run_id":"run_1","error":{"type":"Timeout","message":"late"}}'
    error = error_from_response(500, httpx.Headers(), body)
    assert isinstance(error, RunFailedError)
    assert (error.run_id, error.error_type, error.error_message, error.run_status) == (
        "run_1",
        "Timeout",
        "late",
        "timed_out",
    )


def test_two_credentials_are_refused_before_any_request() -> None:
    with pytest.raises(ValueError, match="not both"):
        FastAgenticClient(api_key="a", token="b")


def test_importing_fastagentic_does_not_import_httpx_until_a_client_is_asked_for() -> None:
    code = (
        "import sys, fastagentic; assert 'httpx' not in sys.modules, 'eager'; "
        "from fastagentic import FastAgenticClient, AsyncFastAgenticClient; "
        "import fastagentic.client as c; assert FastAgenticClient is c.FastAgenticClient; "
        "assert 'fastagentic_gateway' not in sys.modules and 'litestar' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
