"""A2A, fuzzed, in both versions and both bindings: 1.0 (``A2A-Version: 1.0``; JSON-RPC ``SendMessage``,
``GetTask``, ``ListTasks``...; HTTP+JSON ``/message:send``, ``/tasks/{id}``, ``/tasks``) and 0.3 (JSON-RPC
``message/send``, ``tasks/get``...; HTTP+JSON under ``/v1/``), against one gateway serving
tests/workers/a2a_worker.py.

JSON-RPC errors come with HTTP 200 and A2A's codes; HTTP+JSON errors are 4xx JSON; nothing a client
sends yields a 5xx or breaks a stream off (docs/guides/a2a.md, Errors)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from . import checks
from .checks import A2A_CODES, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR
from .harness import Answer, Served, fuzz, send, serve
from .strategies import (
    NASTY,
    ODD_BODIES,
    Raw,
    broken_envelopes,
    content_types,
    header_values,
    ids,
    mutated,
    nasty_values,
    odd_bodies,
    query_values,
    reencoded,
    to_json,
    valid_input,
)

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

WORKER = "tests.workers.a2a_worker:app"
AGENTS = ["ask", "total", "slow", "broken"]
CONTENT_TYPE_NOT_SUPPORTED, VERSION_NOT_SUPPORTED = -32005, -32009
#: What a message whose input is wrong may be refused with.
WRONG_INPUT = frozenset({INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, CONTENT_TYPE_NOT_SUPPORTED})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve(tmp_path_factory, WORKER)


@pytest.fixture(scope="module")
def task_id(served: Served) -> str:
    """A task that exists (finished)."""
    return str(served.http.post("/v1/agents/total/invoke", json={"numbers": [1, 2]}).json()["run_id"])


@dataclass(frozen=True)
class Binding:
    """One A2A version over one binding, framed as its clients frame requests."""

    version: str  # "1.0" or "0.3"
    style: str  # "JSON-RPC" or "HTTP+JSON"

    def __str__(self) -> str:
        return f"{self.version} {self.style}"

    @property
    def rpc(self) -> bool:
        return self.style == "JSON-RPC"

    def headers(self) -> list[tuple[str, str | bytes]]:
        version = [("A2A-Version", "1.0")] if self.version == "1.0" else []
        return [("Content-Type", "application/json"), *version]

    def prefix(self, agent: str) -> str:
        """The HTTP+JSON paths of ``agent``: 0.3's live under ``/v1``."""
        return f"/a2a/{agent}" + ("/v1" if self.version == "0.3" else "")

    def data_part(self, value: Any) -> dict[str, Any]:
        if self.version == "1.0":
            return {"data": value}
        return {"kind": "data", "data": value} if self.rpc else {"data": {"data": value}}

    def message(self, parts: list[Any]) -> dict[str, Any]:
        """A user message; ``parts`` as this version and binding spell them."""
        if self.version == "1.0":
            return {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": parts}
        if self.rpc:
            return {"kind": "message", "messageId": str(uuid.uuid4()), "role": "user", "parts": parts}
        return {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "content": parts}

    def method(self, name: str) -> str:
        """A 1.0 JSON-RPC method name in this version."""
        if self.version == "1.0" or "PushNotification" in name:
            return name
        return {
            "SendMessage": "message/send",
            "SendStreamingMessage": "message/stream",
            "GetTask": "tasks/get",
            "CancelTask": "tasks/cancel",
            "SubscribeToTask": "tasks/resubscribe",
            "ListTasks": "tasks/list",  # not a 0.3 method: method not found
        }[name]

    def call(self, served: Served, agent: str, method: str, params: Any) -> Answer:
        """A JSON-RPC request; ``params`` JSON text or a value."""
        params = Raw(params) if isinstance(params, str) else params
        body = {"jsonrpc": "2.0", "id": 1, "method": self.method(method), "params": params}
        return self.post(served, f"/a2a/{agent}", to_json(body))

    def post(self, served: Served, path: str, body: str | bytes, **extra: Any) -> Answer:
        return send(served.http, "POST", path, body=body, headers=self.headers(), **extra)

    def send_message(self, served: Served, agent: str, message: Any, stream: bool = False) -> Answer:
        """SendMessage (or the streaming one) with ``message`` (JSON text or a value)."""
        message = Raw(message) if isinstance(message, str) else message
        if self.rpc:
            return self.call(
                served, agent, "SendStreamingMessage" if stream else "SendMessage", {"message": message}
            )
        route = "message:stream" if stream else "message:send"
        return self.post(served, f"{self.prefix(agent)}/{route}", to_json({"message": message}))


BINDINGS = [
    Binding("1.0", "JSON-RPC"),
    Binding("1.0", "HTTP+JSON"),
    Binding("0.3", "JSON-RPC"),
    Binding("0.3", "HTTP+JSON"),
]


@pytest.fixture(params=BINDINGS, ids=str)
def binding(request: pytest.FixtureRequest) -> Binding:
    return request.param  # type: ignore[no-any-return]


def answered_as_a2a(
    binding: Binding, answer: Answer, codes: frozenset[int] = A2A_CODES
) -> dict[str, Any] | None:
    """The answer is what the binding prescribes: a JSON-RPC response (each event of a stream too)
    with A2A's codes, never -32603; or an HTTP+JSON answer, 4xx JSON for errors. The JSON-RPC error,
    if any."""
    if not binding.rpc:
        checks.a2a_rest_refusal(answer)
        return None
    assert answer.status == 200, f"JSON-RPC answers HTTP 200, errors too:\n{answer}"
    response = checks.rpc_response(answer, codes)
    return response.get("error")  # type: ignore[no-any-return]


def state_of(answer: Answer) -> str:
    """The state of the task the answer (or its last event) carries, as ``completed`` / ``failed``."""
    for message in reversed(answer.messages()):
        if not isinstance(message, dict):
            continue
        found = message.get("result", message)
        for path in (
            ("task", "status"),
            ("status",),
            ("statusUpdate", "status"),
            ("status_update", "status"),
        ):
            node: Any = found
            for step in path:
                node = node.get(step) if isinstance(node, dict) else None
            if isinstance(node, dict) and "state" in node:
                return str(node["state"]).lower().removeprefix("task_state_").replace("_", "-")
    return "?"


def test_the_worker_serves_what_the_suite_fuzzes(served: Served) -> None:
    assert set(AGENTS) <= set(served.named("agent"))


# --------------------------------------------------------------------------------------- valid input


@fuzz
@given(data=st.data())
def test_a_message_with_valid_input_becomes_a_task_that_ends(
    served: Served, binding: Binding, data: st.DataObject
) -> None:
    agent = data.draw(st.sampled_from(AGENTS), label="agent")
    value = data.draw(valid_input(served.schema(agent)), label="input")
    answer = binding.send_message(served, agent, binding.message([binding.data_part(value)]))
    error = answered_as_a2a(binding, answer)
    assert error is None and answer.status == 200, f"valid input refused:\n{answer}"
    expected = "failed" if agent == "broken" else "completed"
    assert state_of(answer) == expected, f"the task did not end {expected}:\n{answer}"


@fuzz
@given(data=st.data())
def test_a_streamed_message_with_valid_input_streams_its_task_to_the_end(
    served: Served, binding: Binding, data: st.DataObject
) -> None:
    agent = data.draw(st.sampled_from(AGENTS), label="agent")
    value = data.draw(valid_input(served.schema(agent)), label="input")
    answer = binding.send_message(served, agent, binding.message([binding.data_part(value)]), stream=True)
    answered_as_a2a(binding, answer)
    assert answer.status == 200 and answer.is_event_stream, f"no event stream:\n{answer}"
    expected = "failed" if agent == "broken" else "completed"
    assert state_of(answer) == expected, f"the stream did not end {expected}:\n{answer}"


# -------------------------------------------------------------------------------------- wrong input


@fuzz
@given(data=st.data(), stream=st.booleans())
def test_a_message_whose_input_has_one_thing_wrong_is_refused_with_a_spec_error_or_runs(
    served: Served, binding: Binding, data: st.DataObject, stream: bool
) -> None:
    agent = data.draw(st.sampled_from(AGENTS), label="agent")
    value = data.draw(valid_input(served.schema(agent)), label="valid input")
    wrong = data.draw(mutated(value), label="input")
    answer = binding.send_message(served, agent, binding.message([binding.data_part(Raw(wrong))]), stream)
    error = answered_as_a2a(binding, answer)
    if error is not None:
        assert error["code"] in WRONG_INPUT, f"wrong input is invalid params:\n{answer}"


#: Catalogue values of 100 kB and more: sent once per binding, not also streamed, to keep the run short.
HEAVY = {"100 kB string", "900 kB string", "over 1 MiB", "100k-item array"}


def test_every_nasty_value_in_a_data_part_is_refused_with_a_spec_error_or_runs(served: Served) -> None:
    """The catalogue of nasty values, in place of a field and as an extra field of ``total``'s input,
    in each version and binding, sent and streamed."""
    problems = []
    for binding in BINDINGS:
        for label, nasty in NASTY:
            for value in ({"numbers": [1, nasty]}, {"numbers": [1], "extra": nasty}):
                for stream in (False,) if label in HEAVY else (False, True):
                    message = binding.message([binding.data_part(value)])
                    try:
                        error = answered_as_a2a(
                            binding, binding.send_message(served, "total", message, stream)
                        )
                        assert error is None or error["code"] in WRONG_INPUT, f"not invalid params: {error}"
                    except AssertionError as exc:
                        problems.append(f"[{binding}, {label}, {'stream' if stream else 'send'}] {exc}")
    assert not problems, f"{len(problems)} problems:\n\n" + "\n\n".join(problems[:12])


#: Integers JSON holds exactly but a double does not, or only just: in A2A 1.0 they travel as doubles.
LARGE_INTEGERS = [2**53, 2**53 + 1, 2**62, 2**63 - 1, -(2**63), 2**64 - 1]


def test_large_integers_in_a_data_part_run_or_are_refused_never_fail_the_worker(served: Served) -> None:
    """An integer field given a large integer: the task completes (the worker got an integer), or the
    message is refused as invalid params; never a task that fails because the worker got a float."""
    problems = []
    for binding in BINDINGS:
        for number in LARGE_INTEGERS:
            answer = binding.send_message(
                served, "total", binding.message([binding.data_part({"numbers": [number]})])
            )
            try:
                error = answered_as_a2a(binding, answer)
                if error is None and answer.status == 200:
                    assert state_of(answer) == "completed", f"the task did not complete:\n{answer}"
                elif error is not None:
                    assert error["code"] == INVALID_PARAMS, f"not invalid params:\n{answer}"
            except AssertionError as exc:
                problems.append(f"[{binding}, {number}] {exc}")
    assert not problems, f"{len(problems)} problems:\n\n" + "\n\n".join(problems[:8])


@fuzz
@given(data=st.data(), stream=st.booleans())
def test_a_malformed_message_is_refused_with_a_spec_error(
    served: Served, binding: Binding, data: st.DataObject, stream: bool
) -> None:
    """The message itself broken: parts, role, ids, metadata, the configuration."""
    request = {
        "message": binding.message([binding.data_part({"numbers": [1, 2]})]),
        "configuration": {"historyLength": 1, "acceptedOutputModes": ["application/json"]},
        "metadata": {},
    }
    params = data.draw(mutated(request), label="params")
    if binding.rpc:
        answer = binding.call(served, "total", "SendStreamingMessage" if stream else "SendMessage", params)
    else:
        route = "message:stream" if stream else "message:send"
        answer = binding.post(served, f"{binding.prefix('total')}/{route}", params)
    answered_as_a2a(binding, answer)


@fuzz
@given(text=nasty_values().filter(lambda value: type(value) is str) | st.text())
def test_a_text_message_of_odd_text_is_answered(served: Served, binding: Binding, text: str) -> None:
    text_part = (
        {"text": text} if binding.version == "1.0" or not binding.rpc else {"kind": "text", "text": text}
    )
    answer = binding.send_message(served, "ask", binding.message([text_part]))
    error = answered_as_a2a(binding, answer)
    if error is not None:
        assert error["code"] in WRONG_INPUT, f"odd text is invalid params:\n{answer}"


# ------------------------------------------------------------------------------------ JSON-RPC frames

ENVELOPE_CODES: dict[str, frozenset[int]] = {
    "odd id": frozenset({INVALID_REQUEST, PARSE_ERROR}),
    "no jsonrpc": frozenset({INVALID_REQUEST}),
    "wrong jsonrpc": frozenset({INVALID_REQUEST}),
    "method not a string": frozenset({INVALID_REQUEST}),
    "no method": frozenset({INVALID_REQUEST}),
    "params not structured": frozenset({INVALID_REQUEST, INVALID_PARAMS, PARSE_ERROR}),
    "unknown method": frozenset({METHOD_NOT_FOUND, INVALID_REQUEST, VERSION_NOT_SUPPORTED}),
    "extra member": A2A_CODES,
    "batch": frozenset({INVALID_REQUEST}),
}
SERVABLE_IDS = ("1.5", "null", "1" + "0" * 400)


@fuzz
@given(
    method=st.sampled_from(["SendMessage", "GetTask", "ListTasks", "CancelTask", "SendStreamingMessage"]),
    data=st.data(),
)
def test_a_json_rpc_request_with_a_broken_envelope_gets_a_json_rpc_error(
    served: Served, method: str, data: st.DataObject, task_id: str
) -> None:
    for binding in (b for b in BINDINGS if b.rpc):
        params: dict[str, Any] = {"id": task_id}
        if method.startswith("Send"):
            params = {"message": binding.message([binding.data_part({"numbers": [1]})])}
        name = binding.method(method) if method != "ListTasks" else method
        body, wrong = data.draw(broken_envelopes(name, params), label=f"{binding} request")
        answer = binding.post(served, "/a2a/total", body)
        assert answer.body.strip(), f"a request ({wrong}) got no answer:\n{answer}"
        error = answered_as_a2a(binding, answer)
        servable = wrong == "extra member" or (wrong == "odd id" and _id_of(body) in SERVABLE_IDS)
        if error is not None and not servable:  # a parse error is right wherever a lone surrogate went in
            codes = ENVELOPE_CODES[wrong] | {PARSE_ERROR}
            assert error["code"] in codes, f"{wrong}: not the code JSON-RPC defines:\n{answer}"
        if error is None:
            assert servable, f"{wrong}: a broken request was served:\n{answer}"


@fuzz
@given(data=st.data())
def test_a_body_that_is_not_json_is_a_parse_error_or_400(
    served: Served, data: st.DataObject, task_id: str
) -> None:
    binding = data.draw(st.sampled_from(BINDINGS), label="binding")
    message = binding.message([binding.data_part({"numbers": [1]})])
    if binding.rpc:
        path = data.draw(st.sampled_from(["/a2a/total", "/a2a", "/a2a/nobody"]), label="path")
        valid = to_json(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": binding.method("SendMessage"),
                "params": {"message": message},
            }
        )
    else:
        routes = ["message:send", "message:stream", f"tasks/{task_id}:cancel", f"tasks/{task_id}:subscribe"]
        path = f"{binding.prefix('total')}/{data.draw(st.sampled_from(routes), label='route')}"
        valid = to_json({"message": message})
    body = data.draw(odd_bodies() | reencoded(valid.encode()), label="body")
    content_type = data.draw(content_types(), label="content type")
    headers = [h for h in binding.headers() if h[0] != "Content-Type"]
    headers += [] if content_type is None else [("Content-Type", content_type)]
    answer = send(served.http, "POST", path, body=body, headers=headers)
    answered_as_a2a(binding, answer)


def test_every_odd_body_is_a_parse_error_or_400(served: Served, task_id: str) -> None:
    problems = []
    for binding in BINDINGS:
        paths = (
            ["/a2a/total"]
            if binding.rpc
            else [f"{binding.prefix('total')}/{r}" for r in ("message:send", "message:stream")]
        )
        for path in paths:
            for body in ODD_BODIES:
                try:
                    answer = binding.post(served, path, body)
                    error = answered_as_a2a(binding, answer)
                    if binding.rpc:
                        assert error is not None and error["code"] in (PARSE_ERROR, INVALID_REQUEST), (
                            f"not a parse error / invalid request:\n{answer}"
                        )
                    else:
                        assert 400 <= answer.status < 500, f"not a 4xx:\n{answer}"
                except AssertionError as exc:
                    problems.append(f"[{binding}] {exc}")
    assert not problems, f"{len(problems)} problems:\n\n" + "\n\n".join(problems[:12])


@fuzz
@given(version=header_values(), binding=st.sampled_from(BINDINGS))
def test_an_odd_a2a_version_header_is_version_not_supported_or_served(
    served: Served, version: Any, binding: Binding, task_id: str
) -> None:
    headers = [("Content-Type", "application/json"), ("A2A-Version", version)]
    if binding.rpc:
        body = to_json(
            {"jsonrpc": "2.0", "id": 1, "method": binding.method("GetTask"), "params": {"id": task_id}}
        )
        answer = send(served.http, "POST", "/a2a/total", body=body, headers=headers)
    else:
        answer = send(served.http, "GET", f"{binding.prefix('total')}/tasks/{task_id}", headers=headers)
    error = answered_as_a2a(binding, answer)
    if error is not None:
        assert error["code"] == VERSION_NOT_SUPPORTED, f"not version not supported:\n{answer}"
    elif not binding.rpc:
        assert answer.status in (200, 400), f"unexpected status:\n{answer}"


# ----------------------------------------------------------------------------------------- queries


@fuzz
@given(
    params=st.dictionaries(
        st.sampled_from(
            [
                "historyLength",
                "pageSize",
                "pageToken",
                "contextId",
                "status",
                "statusTimestampAfter",
                "includeArtifacts",
            ]
        ),
        query_values(),
        max_size=3,
    ),
    binding=st.sampled_from([b for b in BINDINGS if not b.rpc]),
    which=st.sampled_from(["task", "odd task", "list"]),
    odd=ids(),
)
def test_task_queries_with_odd_parameters_are_answered_or_400(
    served: Served, params: dict[str, str], binding: Binding, which: str, odd: str, task_id: str
) -> None:
    if which == "list":
        path = f"{binding.prefix('total')}/tasks"
    else:
        path = f"{binding.prefix('total')}/tasks/{task_id if which == 'task' else odd}"
    answer = send(served.http, "GET", path, params=params, headers=binding.headers())
    checks.a2a_rest_refusal(answer)


@fuzz
@given(
    method=st.sampled_from(["GetTask", "ListTasks", "CancelTask"]),
    data=st.data(),
    binding=st.sampled_from([b for b in BINDINGS if b.rpc]),
)
def test_task_methods_with_odd_params_get_a_spec_error(
    served: Served, method: str, data: st.DataObject, binding: Binding, task_id: str
) -> None:
    good: dict[str, Any] = (
        {"pageSize": 10, "historyLength": 1, "contextId": "c", "includeArtifacts": True}
        if method == "ListTasks"
        else {"id": task_id, "historyLength": 1}
    )
    params = data.draw(mutated(good), label="params")
    answer = binding.call(served, "total", method, params)
    answered_as_a2a(binding, answer)


#: historyLength values that are not a count: (in a query string, in JSON).
ODD_HISTORY_LENGTHS: list[tuple[str, Any]] = [
    ("x", "x"),
    ("-1", -1),
    ("1.5", 1.5),
    (str(10**12), 10**12),
    (str(2**31), 2**31),
    (str(10**400), Raw(str(10**400))),
    ("", ""),
    ("NaN", Raw("NaN")),
    ("true", True),
]


def test_get_task_with_odd_history_lengths_is_answered_or_refused(served: Served, task_id: str) -> None:
    problems = []
    for binding in BINDINGS:
        for query, value in ODD_HISTORY_LENGTHS:
            try:
                if binding.rpc:
                    params = {"id": task_id, "historyLength": value}
                    answered_as_a2a(binding, binding.call(served, "total", "GetTask", params))
                else:
                    path = f"{binding.prefix('total')}/tasks/{task_id}"
                    answer = send(
                        served.http, "GET", path, params={"historyLength": query}, headers=binding.headers()
                    )
                    checks.a2a_rest_refusal(answer)
            except AssertionError as exc:
                problems.append(f"[{binding}] {exc}")
    assert not problems, "\n\n".join(problems)


#: URLs a push config must not get, or that are odd: loopback and private in every spelling, other
#: schemes, no host, huge, not ASCII.
ODD_URLS = [
    "http://127.0.0.1/hook",
    "http://localhost/hook",
    "http://[::1]/hook",
    "http://0x7f.1/hook",
    "http://2130706433/hook",
    "http://0/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://10.0.0.1/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "file:///etc/passwd",
    "gopher://example.com/",
    "javascript:alert(1)",
    "http://",
    "http:/example.com",
    "//example.com/hook",
    "",
    "not a url",
    "http://exa mple.com/",
    "http://例え.テスト/hook",
    "http://example.com:99999/hook",
    "http://example.com/" + "a" * 10_000,
    "http://user:pass@example.com/hook",
    "https://example.com/hook\r\nX-Injected: 1",
]


@fuzz
@given(
    url=st.sampled_from(ODD_URLS) | st.text(max_size=40) | nasty_values(),
    binding=st.sampled_from([b for b in BINDINGS if b.version == "1.0"] + [Binding("0.3", "JSON-RPC")]),
    token=st.none() | nasty_values(),
)
def test_push_configs_with_odd_urls_are_refused_with_a_spec_error_or_stored(
    served: Served, url: Any, binding: Binding, token: Any, task_id: str
) -> None:
    config: dict[str, Any] = {"url": url, **({"token": token} if token is not None else {})}
    if binding.version == "0.3":
        params = {"taskId": task_id, "pushNotificationConfig": config}
        answer = binding.post(
            served,
            "/a2a/total",
            to_json(
                {"jsonrpc": "2.0", "id": 1, "method": "tasks/pushNotificationConfig/set", "params": params}
            ),
        )
    elif binding.rpc:
        params = {"taskId": task_id, **config}
        answer = binding.call(served, "total", "CreateTaskPushNotificationConfig", params)
    else:
        answer = binding.post(served, f"/a2a/total/tasks/{task_id}/pushNotificationConfigs", to_json(config))
    error = answered_as_a2a(binding, answer)
    if error is not None:
        assert error["code"] in (INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR), (
            f"not invalid params:\n{answer}"
        )


@fuzz
@given(
    method=st.sampled_from(
        [
            "GetTaskPushNotificationConfig",
            "ListTaskPushNotificationConfigs",
            "DeleteTaskPushNotificationConfig",
        ]
    ),
    data=st.data(),
)
def test_push_config_lookups_with_odd_params_get_a_spec_error(
    served: Served, method: str, data: st.DataObject, task_id: str
) -> None:
    binding = Binding("1.0", "JSON-RPC")
    good = {"taskId": task_id, "id": "cfg"} if "List" not in method else {"taskId": task_id, "pageSize": 10}
    params = data.draw(mutated(good), label="params")
    answered_as_a2a(binding, binding.call(served, "total", method, params))


# ----------------------------------------------------------------------------------------- streams


@fuzz
@given(
    odd=ids() | st.sampled_from(["task"]),
    binding=st.sampled_from(BINDINGS),
    verb=st.sampled_from(["GET", "POST"]),
    body=st.none() | odd_bodies(),
)
def test_subscribing_to_odd_tasks_answers_without_breaking_off(
    served: Served, odd: str, binding: Binding, verb: str, body: bytes | None, task_id: str
) -> None:
    """Subscribing to a task that is unknown, finished or odd: an error (as JSON, or as the one event of
    a stream), never a connection broken off."""
    target = task_id if odd == "task" else odd
    if binding.rpc:
        answer = binding.call(served, "total", "SubscribeToTask", {"id": target})
    else:
        answer = send(
            served.http,
            verb,
            f"{binding.prefix('total')}/tasks/{target}:subscribe",
            body=body,
            headers=binding.headers(),
        )
    answered_as_a2a(binding, answer)


# ---------------------------------------------------------------------------------------- afterwards


def _id_of(body: str) -> str:
    import json

    try:
        return json.dumps(json.loads(body)["id"])
    except (ValueError, KeyError, TypeError):
        return "?"


def test_afterwards_a_well_behaved_caller_is_still_served(served: Served) -> None:
    problems = checks.still_serves(served.http, "total", {"numbers": [1, 2]})
    assert not problems, "\n\n".join(problems)


def test_afterwards_the_gateway_log_holds_no_traceback(served: Served) -> None:
    assert served.gateway.alive, "the gateway died"
    problems = checks.log_problems(served.log_since_start())
    assert not problems, "\n\n".join(problems)
