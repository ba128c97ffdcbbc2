"""What every answer of the gateway must be, whatever was asked, and what a well-behaved caller must
still get once the fuzzing is done.

- **An answer**: no reset or dropped connection, no timeout (``harness.send`` fails the test on those).
- **No 5xx** for anything a client sends.
- **No Python text** in a body: no traceback, no pydantic dump, no ``repr`` of an exception.
- **JSON-RPC where JSON-RPC is due** (MCP, A2A's JSON-RPC URL): a response object whose error code is
  one the specs define for the case; ``-32603`` (internal error) only for a real server-side failure.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import msgspec

from .harness import Answer, send
from .strategies import to_json

#: Text that only Python writes: a body holding one (that the request did not hold) leaks internals.
PYTHON_TEXT = (
    "Traceback",
    'File "',
    "validation error for",
    "validation errors for",
    "input_value=",
    "input_type=",
    "errors.pydantic.dev",
    "pydantic",
    "object has no attribute",
    "codec can't",
    "maximum recursion depth",
    "NoneType",
)

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = (
    -32700,
    -32600,
    -32601,
    -32602,
    -32603,
)
#: The JSON-RPC 2.0 codes a client mistake may get.
SPEC_CODES = frozenset({PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS})
#: A2A's own: task not found, not cancelable, push not supported, unsupported operation, content type
#: not supported, invalid agent response, extended card not configured, extension support required,
#: version not supported.
A2A_CODES = SPEC_CODES | frozenset(range(-32009, -32000))
#: MCP's own: resource not found (2025-11-25), header mismatch, missing client capability, unsupported
#: protocol version (2026-07-28), request cancelled.
MCP_CODES = SPEC_CODES | frozenset({-32002, -32020, -32021, -32022, -32800})


# ------------------------------------------------------------------------------------ every answer


def python_text(answer: Answer) -> list[str]:
    sent = (answer.sent.body or b"").decode("utf-8", errors="replace") + answer.sent.path
    return [marker for marker in PYTHON_TEXT if marker in answer.text and marker not in sent]


#: An error answer is short whatever was sent: it names what is wrong, it does not echo a long value.
MAX_ERROR_BYTES = 64 * 1024


def answered(answer: Answer) -> None:
    """No 5xx, no Python text, no long error."""
    assert answer.status < 500, f"server error for a client's request:\n{answer}"
    leaked = python_text(answer)
    assert not leaked, f"Python text ({', '.join(leaked)}) in the answer:\n{answer}"
    if answer.status >= 400:
        assert len(answer.body) <= MAX_ERROR_BYTES, f"error answer of {len(answer.body)} bytes:\n{answer}"


def json_body(answer: Answer) -> Any:
    """The body is one JSON document."""
    document = answer.messages()
    assert document and document[0] is not None and not answer.is_event_stream, (
        f"answer is not a JSON document:\n{answer}"
    )
    return document[0]


def rest_refusal(answer: Answer) -> None:
    """A REST answer that is a 4xx is in the error format: ``{"type", "message", ...}``."""
    answered(answer)
    if answer.status >= 400:
        body = json_body(answer)
        assert isinstance(body, dict) and isinstance(body.get("type"), str), (
            f"REST error not in the error format:\n{answer}"
        )


def a2a_rest_refusal(answer: Answer) -> None:
    """An A2A HTTP+JSON answer that is a 4xx is JSON (google.rpc style ``{"error": {...}}``), but for a
    path or method no route has (404, 405)."""
    answered(answer)
    if answer.status >= 400 and answer.status not in (404, 405):
        json_body(answer)


def failed_run(error: dict[str, Any]) -> bool:
    """MCP's documented -32603: a prompt or resource run that failed, ``data.type`` its error type."""
    data = error.get("data")
    return isinstance(data, dict) and isinstance(data.get("type"), str) and data["type"] != "InputError"


def rpc_response(
    answer: Answer, codes: frozenset[int], *, internal_ok: Any = None, request_id: Any = ...
) -> dict[str, Any]:
    """The answer carries a JSON-RPC response (the last message of a stream), ``jsonrpc: "2.0"``; if an
    error, its code is among ``codes``, and -32603 only where ``internal_ok(error)`` says it is a real
    server-side failure. ``request_id``, when given, is the id the response must carry (or null, on an
    error)."""
    answered(answer)
    responses = [m for m in answer.messages() if isinstance(m, dict) and ("result" in m or "error" in m)]
    assert responses, f"no JSON-RPC response in the answer:\n{answer}"
    response = responses[-1]
    assert response.get("jsonrpc") == "2.0", f"not a JSON-RPC 2.0 response:\n{answer}"
    error = response.get("error")
    if error is not None:
        size = len(msgspec.json.encode(error))
        assert size <= MAX_ERROR_BYTES, f"JSON-RPC error of {size} bytes:\n{answer}"
    if request_id is not ...:  # an error may say null: the id of a request that could not be read
        allowed = (request_id,) if error is None else (request_id, None)
        assert response.get("id") in allowed, f"response id is not {request_id!r}:\n{answer}"
    if error is not None:
        assert isinstance(error, dict) and isinstance(error.get("code"), int), f"malformed error:\n{answer}"
        code = error["code"]
        if code == INTERNAL_ERROR:
            assert internal_ok is not None and internal_ok(error), (
                f"-32603 (internal error) for a client's mistake:\n{answer}"
            )
        else:
            assert code in codes, f"error code {code} is not one the spec defines for this:\n{answer}"
    return response


def rpc_error(answer: Answer, codes: frozenset[int], **options: Any) -> dict[str, Any]:
    """As ``rpc_response``, and the response is an error."""
    response = rpc_response(answer, codes, **options)
    assert "error" in response, f"a JSON-RPC error was due, not a result:\n{answer}"
    return response["error"]


# ----------------------------------------------------------------------------- after the fuzzing

WHOLE = 512 * 1024 * 1024
#: How many pages of runs and of tasks a listing walks at most (10,000 runs, 10,000 tasks).
PAGES = 200


def still_serves(http: httpx.Client, agent: str, good: dict[str, Any]) -> list[str]:
    """What a well-behaved caller must still get from a gateway that was fuzzed: ``agent`` runs; every
    run lists (REST) and every task lists (A2A ListTasks, both bindings, the agent's and the gateway
    agent's); the new run gets, as a run and as a task (1.0 and 0.3). The problems found."""
    problems: list[str] = []

    def check(answer: Answer, ok: bool, what: str) -> bool:
        if not ok or answer.status >= 500 or python_text(answer):
            problems.append(f"{what}:\n{answer}")
            return False
        return True

    def get(path: str, **kw: Any) -> Answer | None:
        try:  # a page of runs or tasks holds the fuzzing's largest inputs: read it whole
            return send(http, "GET", path, read_limit=WHOLE, **kw)
        except AssertionError as exc:
            problems.append(str(exc))
            return None

    def post(path: str, body: Any, headers: list[tuple[str, str]] | None = None) -> Answer | None:
        headers = [("Content-Type", "application/json"), *(headers or [])]
        try:
            return send(http, "POST", path, body=to_json(body), headers=headers, read_limit=WHOLE)
        except AssertionError as exc:
            problems.append(str(exc))
            return None

    def first(answer: Answer) -> dict[str, Any]:
        messages = answer.messages()
        return messages[0] if messages and isinstance(messages[0], dict) else {}

    # It runs.
    invoked = post(f"/v1/agents/{agent}/invoke", good)
    run_id = None
    if invoked and check(invoked, invoked.status == 200, f"{agent} does not run"):
        result = first(invoked)
        run_id = result["run_id"]
        check(invoked, result["status"] == "succeeded", f"{agent} does not succeed")

    # Every run lists, page by page; the runs of the first page get.
    cursor: str | None = None
    for number in range(PAGES):
        page_query = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        listed = get("/v1/runs", params=page_query)
        if not listed or not check(listed, listed.status == 200, "GET /v1/runs fails"):
            break
        body = first(listed)
        if number == 0:
            for run in body["runs"][:30]:
                got = get(f"/v1/runs/{run['run_id']}")
                if got:
                    check(got, got.status == 200, "a listed run does not get")
        cursor = body["next_cursor"]
        if not cursor:
            break

    # Every task lists, both bindings, the agent's and the gateway agent's (A2A 1.0).
    v1 = [("A2A-Version", "1.0")]
    for base in (f"/a2a/{agent}", "/a2a"):
        token = ""
        for _ in range(PAGES):
            page: dict[str, Any] = {"pageSize": 50, **({"pageToken": token} if token else {})}
            rpc = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": page}
            listed = post(base, rpc, v1)
            if not listed or not check(
                listed, "result" in first(listed), f"ListTasks (JSON-RPC) fails on {base}"
            ):
                break
            token = first(listed)["result"].get("nextPageToken", "")
            if not token:
                break
        token = ""
        for _ in range(PAGES):
            query = {"pageSize": "50", **({"pageToken": token} if token else {})}
            listed = get(f"{base}/tasks", params=query, headers=v1)
            if not listed or not check(listed, listed.status == 200, f"GET {base}/tasks fails"):
                break
            token = first(listed).get("nextPageToken", "")
            if not token:
                break

    # The new run gets as a task: 1.0 JSON-RPC and HTTP+JSON, 0.3 JSON-RPC and HTTP+JSON.
    if run_id:
        base = f"/a2a/{agent}"
        got = post(base, {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": run_id}}, v1)
        if got:
            check(got, "result" in first(got), "GetTask (1.0 JSON-RPC) fails")
        got = get(f"{base}/tasks/{run_id}", headers=v1)
        if got:
            check(got, got.status == 200, "GET /tasks/{id} (1.0 HTTP+JSON) fails")
        got = post(base, {"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": run_id}})
        if got:
            check(got, "result" in first(got), "tasks/get (0.3 JSON-RPC) fails")
        got = get(f"{base}/v1/tasks/{run_id}")
        if got:
            check(got, got.status == 200, "GET /v1/tasks/{id} (0.3 HTTP+JSON) fails")

    # A message becomes a task that completes (1.0 JSON-RPC).
    message = {
        "messageId": str(uuid.uuid4()),
        "role": "ROLE_USER",
        "parts": [{"data": good}],
    }
    sent = post(
        f"/a2a/{agent}",
        {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}},
        v1,
    )
    if sent:
        state = first(sent).get("result", {}).get("task", {}).get("status", {})
        check(sent, state.get("state") == "TASK_STATE_COMPLETED", "SendMessage does not complete")
    return problems


_LOG_LEVEL = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) |^(WARNING|ERROR|CRITICAL):")


def log_problems(log: str, limit: int = 5) -> list[str]:
    """Tracebacks, and lines at WARNING or above, in a gateway log: a client's mistake is worth at most
    one line below WARNING. Each with the lines that follow it."""
    lines = log.splitlines()
    found: list[str] = []
    index = 0
    while index < len(lines) and len(found) < limit:
        line = lines[index]
        if "Traceback" in line or _LOG_LEVEL.match(line):
            block = [line]
            index += 1
            while index < len(lines) and not _starts_entry(lines[index]) and len(block) < 400:
                block.append(lines[index])
                index += 1
            # The entry's line, and the exceptions its traceback names.
            raised = list(dict.fromkeys(m.group(0) for b in block[1:] if (m := _EXCEPTION.search(b))))
            found.append("\n    ... ".join([block[0], *raised[:3]]))
        else:
            index += 1
    return found


_EXCEPTION = re.compile(r"\b[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b: .{0,200}")


def _starts_entry(line: str) -> bool:
    return bool(re.match(r"^\d{4}-\d\d-\d\d |^(INFO|WARNING|ERROR|DEBUG|CRITICAL):", line))
