"""REST, fuzzed: agents (invoke, stream, runs), tools, prompts, resources and the run routes of one
gateway serving tests/workers/basic.py, with inputs drawn from each endpoint's schema, then broken."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from . import checks
from .harness import Answer, Served, fuzz, send, serve
from .strategies import (
    NASTY,
    content_types,
    header_values,
    ids,
    mutated,
    odd_bodies,
    query_values,
    reencoded,
    to_json,
    valid_input,
)

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

WORKER = "tests.workers.basic:app"
#: Agents fuzzed: every one of the worker's but ``big_checkpoint``, which waits 10 s by design.
AGENTS = ["echo", "fail", "order", "steps"]
JSON = [("Content-Type", "application/json")]
ERROR_TYPES = {
    "malformed_request",
    "not_found",
    "method_not_allowed",
    "conflict",
    "payload_too_large",
    "validation_error",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve(tmp_path_factory, WORKER)


def callable_paths(served: Served) -> list[tuple[str, str]]:
    """(route, endpoint) for every agent route, tool and prompt."""
    routes = [(f"/v1/agents/{name}/{verb}", name) for name in AGENTS for verb in ("invoke", "runs", "stream")]
    routes += [(f"/v1/tools/{name}", name) for name in served.named("tool")]
    routes += [(f"/v1/prompts/{name}", name) for name in served.named("prompt")]
    return routes


def refused_or_served(answer: Answer) -> None:
    """No 5xx (a tool function that raised is the documented 500 ``run_failed``: not for these inputs),
    no Python text, errors in the error format with a documented type."""
    checks.rest_refusal(answer)
    if answer.status >= 400:
        assert answer.json()["type"] in ERROR_TYPES, f"undocumented error type:\n{answer}"


def test_the_worker_serves_what_the_suite_fuzzes(served: Served) -> None:
    assert set(AGENTS) <= set(served.named("agent"))


# ---------------------------------------------------------------------------------------- valid input


@fuzz
@given(data=st.data())
def test_an_agent_run_with_valid_input_ends_and_is_found(served: Served, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(AGENTS), label="agent")
    value = data.draw(valid_input(served.schema(name)), label="input")
    answer = send(served.http, "POST", f"/v1/agents/{name}/invoke", body=to_json(value), headers=JSON)
    refused_or_served(answer)
    assert answer.status == 200, f"valid input refused:\n{answer}"
    result = answer.json()
    assert result["status"] == ("failed" if name == "fail" else "succeeded"), (
        f"run did not succeed:\n{answer}"
    )
    run = send(served.http, "GET", f"/v1/runs/{result['run_id']}")
    refused_or_served(run)
    assert run.status == 200 and run.json()["status"] == result["status"], (
        f"run not found as it ended:\n{run}"
    )


@fuzz
@given(data=st.data())
def test_tools_and_prompts_answer_valid_input(served: Served, data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["tool", "prompt"]), label="kind")
    name = data.draw(st.sampled_from(served.named(kind)), label="name")
    value = data.draw(valid_input(served.schema(name)), label="input")
    answer = send(served.http, "POST", f"/v1/{kind}s/{name}", body=to_json(value), headers=JSON)
    refused_or_served(answer)
    assert answer.status == 200, f"valid input refused:\n{answer}"


@fuzz
@given(data=st.data())
def test_a_stream_of_valid_input_is_the_runs_events_to_its_end(served: Served, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(AGENTS), label="agent")
    value = data.draw(valid_input(served.schema(name)), label="input")
    answer = send(served.http, "POST", f"/v1/agents/{name}/stream", body=to_json(value), headers=JSON)
    refused_or_served(answer)
    assert answer.status == 200 and answer.is_event_stream, f"no event stream:\n{answer}"
    kinds = [event.get("kind") for event in answer.messages() if isinstance(event, dict)]
    assert kinds and kinds[-1] in ("run.completed", "run.failed"), (
        f"stream did not end with the run:\n{answer}"
    )


# -------------------------------------------------------------------------------------- wrong input


@fuzz
@given(data=st.data())
def test_input_with_one_thing_wrong_is_refused_or_run_never_a_server_error(
    served: Served, data: st.DataObject
) -> None:
    route, name = data.draw(st.sampled_from(callable_paths(served)), label="route")
    value = data.draw(valid_input(served.schema(name)), label="valid input")
    body = data.draw(mutated(value), label="body")
    refused_or_served(send(served.http, "POST", route, body=body, headers=JSON))


def test_every_nasty_value_in_an_agent_input_is_refused_or_run(served: Served) -> None:
    """The catalogue of nasty values, each in place of a field and as an extra field, on invoke."""
    problems = []
    for label, nasty in NASTY:
        for body in ({"text": nasty}, {"text": "hi", "extra": nasty}):
            try:
                refused_or_served(send(served.http, "POST", "/v1/agents/echo/invoke", body=to_json(body)))
            except AssertionError as exc:
                problems.append(f"[{label}] {exc}")
    assert not problems, "\n\n".join(problems)


@fuzz
@given(data=st.data())
def test_bodies_that_are_not_json_input_are_client_errors(served: Served, data: st.DataObject) -> None:
    route, name = data.draw(st.sampled_from(callable_paths(served)), label="route")
    valid = to_json(data.draw(valid_input(served.schema(name)), label="valid input")).encode()
    body = data.draw(odd_bodies() | reencoded(valid), label="body")
    content_type = data.draw(content_types(), label="content type")
    headers = [] if content_type is None else [("Content-Type", content_type)]
    refused_or_served(send(served.http, "POST", route, body=body, headers=headers))


def test_every_odd_body_is_a_client_error(served: Served) -> None:
    from .strategies import ODD_BODIES

    problems = []
    for body in ODD_BODIES:
        for route in ("/v1/agents/echo/invoke", "/v1/tools/add", "/v1/agents/echo/stream"):
            try:
                refused_or_served(send(served.http, "POST", route, body=body, headers=JSON))
            except AssertionError as exc:
                problems.append(str(exc))
    assert not problems, "\n\n".join(problems)


# -------------------------------------------------------------------------------- headers and queries


@fuzz
@given(
    header=st.sampled_from(["Idempotency-Key", "Run-Timeout", "Content-Type", "Accept", "Content-Encoding"]),
    value=header_values(),
    verb=st.sampled_from(["invoke", "runs", "stream"]),
)
def test_odd_headers_on_agent_calls_are_client_errors(
    served: Served, header: str, value: Any, verb: str
) -> None:
    answer = send(
        served.http,
        "POST",
        f"/v1/agents/echo/{verb}",
        body='{"text": "hi"}',
        headers=[*JSON, (header, value)] if header != "Content-Type" else [(header, value)],
    )
    refused_or_served(answer)


@fuzz
@given(
    params=st.dictionaries(
        st.sampled_from(["status", "limit", "cursor", "endpoint", "x"]), query_values(), max_size=4
    )
)
def test_run_queries_with_odd_parameters_are_answered_or_400(served: Served, params: dict[str, str]) -> None:
    answer = send(served.http, "GET", "/v1/runs", params=params)
    refused_or_served(answer)
    assert answer.status in (200, 400), f"unexpected status:\n{answer}"


@fuzz
@given(
    run_id=ids(),
    route=st.sampled_from(
        [
            ("GET", ""),
            ("GET", "/events"),
            ("GET", "/checkpoints"),
            ("POST", "/cancel"),
            ("POST", "/replay"),
            ("DELETE", ""),
        ]
    ),
    after=st.none() | query_values(),
)
def test_odd_run_ids_are_not_found(served: Served, run_id: str, route: tuple[str, str], after: Any) -> None:
    method, suffix = route
    params = {"after": after} if after is not None and suffix == "/events" else None
    answer = send(served.http, method, f"/v1/runs/{run_id}{suffix}", params=params)
    refused_or_served(answer)
    assert answer.status in (400, 404, 405), f"unexpected status:\n{answer}"


@fuzz
@given(uri=ids(), scheme=st.sampled_from(["notes://", "blobs://", "", "nope://", "notes:", "notes%3A%2F%2F"]))
def test_resource_reads_of_odd_uris_are_answered_or_not_found(served: Served, uri: str, scheme: str) -> None:
    answer = send(served.http, "GET", f"/v1/resources/{scheme}{uri}")
    body = answer.messages()[0] if answer.status == 500 and answer.messages() else None
    if isinstance(body, dict) and body.get("error", {}).get("type") == "FileNotFoundError":
        return  # notes://missing: the resource function raises, as the worker means it to
    refused_or_served(answer)


def test_events_of_a_run_after_odd_positions(served: Served) -> None:
    run_id = send(served.http, "POST", "/v1/agents/echo/invoke", body='{"text": "x"}').json()["run_id"]
    problems = []
    for after in ["x", "-1", "1.5", str(10**12), str(2**63), str(2**64), str(10**400), "", "%00", "\u0661"]:
        for how in ("query", "header"):
            try:
                answer = send(
                    served.http,
                    "GET",
                    f"/v1/runs/{run_id}/events",
                    params={"after": after} if how == "query" else None,
                    headers=[("Last-Event-ID", after.encode())] if how == "header" else [],
                )
                refused_or_served(answer)
            except AssertionError as exc:
                problems.append(str(exc))
    assert not problems, "\n\n".join(problems)


@fuzz
@given(data=st.data())
def test_replaying_or_cancelling_a_run_with_odd_bodies_is_answered_or_refused(
    served: Served, data: st.DataObject
) -> None:
    run_id = data.draw(st.sampled_from(finished_runs(served)), label="run")
    route = data.draw(st.sampled_from(["replay", "cancel"]), label="route")
    body = data.draw(odd_bodies() | mutated({"checkpoint": 1}).map(str.encode), label="body")
    answer = send(served.http, "POST", f"/v1/runs/{run_id}/{route}", body=body, headers=JSON)
    refused_or_served(answer)


def test_replaying_odd_checkpoints_is_not_found_or_refused(served: Served) -> None:
    run_id = finished_runs(served)[0]
    problems = []
    for checkpoint in [0, -1, 2, 2**31, 2**63 - 1, 2**63, 10**19, 2**64 - 1, 2**64, "1", 1.5, True, [1]]:
        try:
            body = to_json({"checkpoint": checkpoint})
            answer = send(served.http, "POST", f"/v1/runs/{run_id}/replay", body=body, headers=JSON)
            refused_or_served(answer)
            assert answer.status in (404, 422), f"unexpected status:\n{answer}"
        except AssertionError as exc:
            problems.append(str(exc))
    assert not problems, "\n\n".join(problems)


def finished_runs(served: Served) -> list[str]:
    """Two finished runs of ``echo`` (each with a checkpoint), started once per module."""
    if not hasattr(served, "finished"):
        runs = [send(served.http, "POST", "/v1/agents/echo/invoke", body='{"text": "x"}') for _ in range(2)]
        served.finished = [answer.json()["run_id"] for answer in runs]  # type: ignore[attr-defined]
    return served.finished  # type: ignore[attr-defined,no-any-return]


def test_other_http_methods_on_known_routes_are_405_or_404(served: Served) -> None:
    problems = []
    routes = [
        "/v1/endpoints",
        "/v1/agents/echo/invoke",
        "/v1/runs",
        "/v1/tools/add",
        "/healthz",
        "/mcp",
        "/a2a/echo",
    ]
    for route in routes:
        for method in ("PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND"):
            try:
                answer = send(served.http, method, route, stream_seconds=2.0)
                checks.answered(answer)
                allowed = (204, 405) if method == "OPTIONS" else (400, 404, 405, 406)
                assert answer.status in allowed, f"unexpected status:\n{answer}"
            except AssertionError as exc:
                problems.append(str(exc))
    assert not problems, "\n\n".join(problems)


# ---------------------------------------------------------------------------------------- afterwards


def test_afterwards_a_well_behaved_caller_is_still_served(served: Served) -> None:
    problems = checks.still_serves(served.http, "echo", {"text": "still here"})
    assert not problems, "\n\n".join(problems)


def test_afterwards_the_gateway_log_holds_no_traceback(served: Served) -> None:
    assert served.gateway.alive, "the gateway died"
    problems = checks.log_problems(served.log_since_start())
    assert not problems, "\n\n".join(problems)
