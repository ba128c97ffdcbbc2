"""Hostile and broken input on the A2A front: a precise client error for each, never a 5xx, a reset
connection, Python's text in a body or a traceback in the log; and no task that breaks listing for others."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Cluster, Gateway
from tests.e2e.a2a_support import WORKER as A2A_WORKER
from tests.e2e.a2a_support import rpc

V1 = {"A2A-Version": "1.0", "Content-Type": "application/json"}
V03 = {"Content-Type": "application/json"}
PYTHON_TEXT = ("Traceback", "validation error for", "input_value", "pydantic", "codec can't", "int too large")
NOT_JSON = {
    "byte ff": b"\xff",
    "utf-16 with a byte-order mark": '{"jsonrpc": "2.0", "id": 1, "method": "GetTask"}'.encode("utf-16"),
    "NaN": b'{"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"x": NaN}}',
    "nested 3000 deep": b'{"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": '
    + b"[" * 3000
    + b"]" * 3000
    + b"}",
    "lone surrogate": b'{"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"x": "\\ud800"}}',
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("hostile")))
    try:
        gateway = cluster.start_gateway()
        cluster.start_worker(A2A_WORKER)
        cluster.start_worker("tests.workers.odd_output:app")
        yield gateway
    finally:
        cluster.close()


def _clean(response: httpx.Response) -> httpx.Response:
    assert response.status_code < 500, response.text
    assert not any(text in response.text for text in PYTHON_TEXT), response.text
    return response


def _rpc_error(response: httpx.Response) -> dict[str, Any]:
    _clean(response)
    assert response.status_code == 200, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def _data_message(data: Any) -> dict[str, Any]:
    return {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"data": data}]}}


def _data_message_03(data: Any) -> dict[str, Any]:
    parts = [{"kind": "data", "data": data}]
    return {"message": {"messageId": "m1", "role": "user", "kind": "message", "parts": parts}}


def test_a_task_whose_output_no_double_can_hold_is_listed_and_shown(served: Gateway) -> None:
    """The output of a worker is not held to the input limits; its task still projects into A2A."""
    ran = httpx.post(f"{served.url}/v1/agents/odd/invoke", json={"depth": 150, "digits": 401}, timeout=30)
    assert ran.json()["status"] == "succeeded", ran.text
    run_id = ran.json()["run_id"]
    listed = rpc(served.url, "/a2a/odd", "ListTasks", {}).json()
    assert run_id in [task["id"] for task in listed["result"]["tasks"]], listed
    rest = _clean(httpx.get(f"{served.url}/a2a/odd/tasks", headers=V1))
    assert rest.status_code == 200 and run_id in rest.text
    task = rpc(served.url, "/a2a/odd", "GetTask", {"id": run_id}).json()["result"]
    output = json.dumps(task["artifacts"])
    assert "9" * 401 in output  # the integer, as text: a double cannot hold it
    legacy = rpc(served.url, "/a2a/odd", "tasks/get", {"id": run_id}, version=None).json()
    assert legacy["result"]["id"] == run_id


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"numbers": [int("1" * 401)]}, "integer out of range"),
        (
            {
                "numbers": [1],
                "label": "x",
                "extra": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
            },
            "nested deeper",
        ),
    ],
)
def test_input_beyond_the_limits_is_refused_alike_on_every_front(
    served: Gateway, value: dict[str, Any], problem: str
) -> None:
    rest = _clean(httpx.post(f"{served.url}/v1/agents/total/invoke", json=value))
    assert rest.status_code == 422 and problem in rest.text
    error = _rpc_error(rpc(served.url, "/a2a/total", "SendMessage", _data_message(value)))
    assert error["code"] == -32602 and problem in error["message"]
    legacy = _rpc_error(rpc(served.url, "/a2a/total", "message/send", _data_message_03(value), version=None))
    assert legacy["code"] == -32602 and problem in legacy["message"]
    http_json = _clean(
        httpx.post(f"{served.url}/a2a/total/message:send", json=_data_message(value), headers=V1)
    )
    assert http_json.status_code == 400 and problem in http_json.text


@pytest.mark.parametrize("case", sorted(NOT_JSON))
def test_a_body_that_is_not_json_is_a_parse_error(served: Gateway, case: str) -> None:
    body = NOT_JSON[case]
    for headers in (V1, V03):
        assert (
            _rpc_error(httpx.post(f"{served.url}/a2a/ask", content=body, headers=headers))["code"] == -32700
        )
    for path in ("/a2a/ask/message:send", "/a2a/ask/v1/message:send", "/a2a/ask/message:stream"):
        response = _clean(httpx.post(served.url + path, content=body, headers=V1))
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_legacy_history_length_is_checked(served: Gateway) -> None:
    for query in ("x", "-1", str(10**12)):
        response = _clean(httpx.get(f"{served.url}/a2a/ask/v1/tasks/run_x?historyLength={query}"))
        assert response.status_code == 400, (query, response.text)
        assert "historyLength" in response.json()["error"]["message"]
    params = {"id": "run_x", "historyLength": 10**12}
    error = _rpc_error(rpc(served.url, "/a2a/ask", "tasks/get", params, version=None))
    assert error["code"] == -32602 and "historyLength" in error["message"]


def test_legacy_streams_answer_their_error_before_streaming(served: Gateway) -> None:
    """0.3 SSE routes used to say 200 and then reset the connection."""
    unknown = _clean(httpx.post(f"{served.url}/a2a/ask/v1/tasks/run_nope:subscribe", headers=V03))
    assert unknown.status_code == 404 and unknown.json()["error"]["status"] == "NOT_FOUND"
    bad = _clean(httpx.post(f"{served.url}/a2a/ask/v1/message:stream", json={"message": {"parts": 5}}))
    assert bad.status_code == 400
    empty_part = {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{}]}}
    assert _clean(httpx.post(f"{served.url}/a2a/ask/v1/message:stream", json=empty_part)).status_code == 400
    with httpx.stream(
        "POST",
        f"{served.url}/a2a/ask/v1/message:stream",
        json={"message": {"messageId": "m2", "role": "ROLE_USER", "content": [{"text": "hi"}]}},
        timeout=30,
    ) as good:
        assert good.status_code == 200
        assert "You asked: hi" in "".join(good.iter_text())


def test_legacy_params_mistakes_are_short_invalid_params(served: Gateway) -> None:
    for method, params in [
        ("tasks/get", {"id": 5}),
        ("message/send", {"message": {"parts": "x"}}),
        ("message/send", _data_message_03({"numbers": "x"}) | {"configuration": {"historyLength": "x"}}),
    ]:
        error = _rpc_error(rpc(served.url, "/a2a/ask", method, params, version=None))
        assert error["code"] == -32602, (method, error)
        assert len(error["message"]) < 400


def test_an_empty_legacy_part_is_a_client_error(served: Gateway) -> None:
    body = {"message": {"messageId": "m", "role": "user", "kind": "message", "parts": [{}]}}
    response = _clean(httpx.post(f"{served.url}/a2a/ask/v1/message:send", json=body))
    assert response.status_code == 400
    legacy = _rpc_error(rpc(served.url, "/a2a/ask", "message/send", body, version=None))
    assert legacy["code"] in (-32600, -32602)


def test_client_errors_are_one_quiet_line_each_and_the_agent_still_serves(served: Gateway) -> None:
    """After all of the above (and a few more), the log holds no traceback and no WARNING from the SDK,
    and a well-behaved caller is served."""
    for body in NOT_JSON.values():
        httpx.post(f"{served.url}/a2a/ask", content=body, headers=V1)
    rpc(served.url, "/a2a/ask", "message/send", {"message": 5}, version=None)
    rpc(served.url, "/a2a/ask", "SendMessage", {"message": 5})
    log = served.output()
    assert "Traceback" not in log
    assert "not spec-compliant" not in log  # the SDK's warning about the request handler's card
    assert not [line for line in log.splitlines() if " WARNING a2a." in line or " ERROR a2a." in line]
    answer = rpc(served.url, "/a2a/ask", "SendMessage", _data_message({"question": "still there?"})).json()
    assert answer["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert "tasks" in rpc(served.url, "/a2a/ask", "ListTasks", {}).json()["result"]


def test_params_and_bodies_that_are_not_objects_are_client_errors(served: Gateway) -> None:
    for method in ("GetTask", "SendMessage", "message/send"):
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": None}
        headers = V1 if "/" not in method else V03
        error = _rpc_error(httpx.post(f"{served.url}/a2a/total", json=body, headers=headers))
        assert error["code"] == -32602, (method, error)
    assert _rpc_error(httpx.post(f"{served.url}/a2a/total", content=b"null", headers=V1))["code"] == -32600
    for path in ("/a2a/total/message:send", "/a2a/total/message:stream", "/a2a/total/v1/message:send"):
        response = _clean(httpx.post(served.url + path, content=b"null", headers=V1))
        assert response.status_code == 400, path


def test_a_legacy_method_under_another_version_is_version_not_supported(served: Gateway) -> None:
    for version in ("1.0", "2.0", "x"):
        body = {"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": "run_x"}}
        error = _rpc_error(httpx.post(f"{served.url}/a2a/total", json=body, headers={"A2A-Version": version}))
        assert error["code"] == -32009, (version, error)


@pytest.mark.parametrize("number", [2**53, 2**53 + 2, 2**62, 2**63 - 1, -(2**63)])
def test_integers_beyond_a_double_still_reach_the_agent(served: Gateway, number: int) -> None:
    """A2A carries data parts as doubles: the integer arrives rounded, but it arrives as an integer."""
    reply = rpc(served.url, "/a2a/total", "SendMessage", _data_message({"numbers": [number]})).json()
    assert reply["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED", reply


def test_data_nested_to_the_limit_passes_and_one_level_more_is_refused_on_every_binding(
    served: Gateway,
) -> None:
    def nested(depth: int) -> Any:
        value: Any = 0
        for _ in range(depth - 1):  # the data object itself is the first level
            value = {"a": value}
        return {"numbers": [1], "extra": value}

    for depth, ok in ((32, True), (33, False)):
        reply = rpc(served.url, "/a2a/total", "message/send", _data_message_03(nested(depth)), version=None)
        assert ("result" in reply.json()) is ok, (depth, reply.text[:300])
        if not ok:
            assert reply.json()["error"]["code"] == -32602
        legacy_rest = _clean(
            httpx.post(f"{served.url}/a2a/total/v1/message:send", json=_rest_03(nested(depth)))
        )
        assert (legacy_rest.status_code == 200) is ok, (depth, legacy_rest.text[:300])
        current = rpc(served.url, "/a2a/total", "SendMessage", _data_message(nested(depth))).json()
        assert ("result" in current) is ok, (depth, str(current)[:300])


def _rest_03(data: Any) -> dict[str, Any]:
    part = {"data": {"data": data}}
    return {"message": {"messageId": "m3", "role": "ROLE_USER", "content": [part]}}


def test_a_legacy_http_json_part_without_content_is_invalid_params(served: Gateway) -> None:
    body = {"message": {"messageId": "m9", "role": "ROLE_USER", "content": [{}]}}
    for path in ("/a2a/total/v1/message:send", "/a2a/total/v1/message:stream"):
        response = _clean(httpx.post(served.url + path, json=body))
        assert response.status_code == 400, (path, response.text)
        assert "text, a file or data" in response.json()["error"]["message"]


def test_a_context_id_with_nul_is_invalid_params(served: Gateway) -> None:
    params = _data_message({"numbers": [1]})
    params["message"]["contextId"] = "ctx\u0000x"
    error = _rpc_error(rpc(served.url, "/a2a/total", "SendMessage", params))
    assert error["code"] == -32602 and "NUL" in error["message"]


def test_an_error_does_not_quote_a_huge_value_whole(served: Gateway) -> None:
    params = {"message": {"messageId": "m", "role": "ROLE_USER", "parts": "x" * 100_000}}
    rpc_answer = rpc(served.url, "/a2a/total", "SendMessage", params)
    assert _rpc_error(rpc_answer)["code"] == -32602
    assert len(rpc_answer.content) < 4096
    rest = _clean(httpx.post(f"{served.url}/a2a/total/message:send", json=params, headers=V1))
    assert rest.status_code == 400 and len(rest.content) < 4096
    assert int(rest.headers["content-length"]) == len(rest.content)
