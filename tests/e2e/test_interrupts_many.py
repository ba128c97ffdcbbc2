"""Several questions at once (``ctx.ask_many``): one interrupt event whose answer holds every answer, asked
over MCP 2026-07-28 as several ``inputRequests`` entries (a partial answer keeps the rest pending), over
2025-11-25 one request after the other on the call's stream, and over REST answered in one resume body
(validated per question). Real gateway and worker (``tests/workers/conformance_worker.py``), official client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp.client.session import ClientRequestContext

from tests.conftest import Cluster, Gateway, wait_until
from tests.e2e.mcp_support import MODERN, client

pytestmark = pytest.mark.e2e

TOOL = "test_input_required_result_multiple_inputs"


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("many")))
    try:
        gateway = cluster.start_gateway()
        cluster.start_worker("tests.workers.conformance_worker:app")
        yield gateway
    finally:
        cluster.close()


class Callbacks:
    """The client's three callbacks, recording the order it was asked in."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def elicit(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        self.asked.append(f"elicit:{params.message}")
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async def sample(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.asked.append("sample")
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="hi!"), model="m"
        )

    async def roots(self, context: ClientRequestContext) -> types.ListRootsResult:
        self.asked.append("roots")
        return types.ListRootsResult(
            roots=[types.Root.model_validate({"uri": "file:///work", "name": "work"})]
        )

    def options(self) -> dict[str, Any]:
        return {
            "elicitation_callback": self.elicit,
            "sampling_callback": self.sample,
            "list_roots_callback": self.roots,
        }


EXPECTED = "Hello Ada: hi! (roots: file:///work)"


def text_of(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent), block
    return block.text


def events(gateway: Gateway, run_id: str) -> list[tuple[str, Any]]:
    response = httpx.get(f"{gateway.url}/v1/runs/{run_id}/events", timeout=10)
    assert response.status_code == 200, response.text
    kinds, datas = [], []
    for line in response.text.splitlines():
        if line.startswith("event:"):
            kinds.append(line.split(":", 1)[1].strip())
        elif line.startswith("data:"):
            data = json.loads(line.split(":", 1)[1])
            datas.append(data.get("data", data) if isinstance(data, dict) else data)
    return list(zip(kinds, datas, strict=True))


def last_run(gateway: Gateway, endpoint: str) -> dict[str, Any]:
    response = httpx.get(f"{gateway.url}/v1/runs", params={"endpoint": endpoint, "limit": 1}, timeout=10)
    run: dict[str, Any] = response.json()["runs"][0]
    return run


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_every_question_is_asked_and_one_input_event_answers_them_all(many: Gateway, mode: str) -> None:
    callbacks = Callbacks()
    async with client(many, mode, **callbacks.options()) as mcp:
        result = await mcp.call_tool(TOOL, {})
    assert not result.is_error, result
    assert text_of(result) == EXPECTED
    assert sorted(callbacks.asked) == ["elicit:What is your name?", "roots", "sample"]
    if mode == "legacy":  # one after the other, in the order the agent listed them
        assert callbacks.asked == ["elicit:What is your name?", "sample", "roots"]
    logged = events(many, last_run(many, TOOL)["run_id"])
    kinds = [kind for kind, _ in logged]
    assert kinds.count("interrupt") == 1 and kinds.count("input") == 1, kinds
    (answer,) = [data["answer"] for kind, data in logged if kind == "input"]
    assert answer["user_name"] == {"name": "Ada"}
    assert answer["client_roots"] == {"roots": [{"uri": "file:///work", "name": "work"}]}
    assert answer["greeting"]["content"]["text"] == "hi!"


async def test_a_partial_answer_keeps_the_other_questions_pending(many: Gateway) -> None:
    callbacks = Callbacks()
    async with client(many, MODERN, **callbacks.options()) as mcp:
        first = await mcp.session.call_tool(TOOL, {}, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult) and first.input_requests is not None
        assert first.request_state is not None
        methods = {key: request.method for key, request in first.input_requests.items()}
        assert methods == {
            "user_name": "elicitation/create",
            "greeting": "sampling/createMessage",
            "client_roots": "roots/list",
        }
        name: dict[str, Any] = {"user_name": types.ElicitResult(action="accept", content={"name": "Bo"})}
        second = await mcp.session.call_tool(
            TOOL, {}, input_responses=name, request_state=first.request_state, allow_input_required=True
        )
        assert isinstance(second, types.InputRequiredResult) and second.input_requests is not None
        assert set(second.input_requests) == {"greeting", "client_roots"}
        assert second.request_state is not None
        rest: dict[str, Any] = {
            "greeting": types.CreateMessageResult(
                role="assistant", content=types.TextContent(type="text", text="yo"), model="m"
            ),
            "client_roots": types.ListRootsResult(roots=[types.Root.model_validate({"uri": "file:///a"})]),
        }
        done = await mcp.session.call_tool(
            TOOL, {}, input_responses=rest, request_state=second.request_state, allow_input_required=True
        )
    assert isinstance(done, types.CallToolResult) and not done.is_error, done
    assert text_of(done) == "Hello Bo: yo (roots: file:///a)"


async def test_a_refused_answer_is_asked_again_alone(many: Gateway) -> None:
    async with client(many, MODERN, **Callbacks().options()) as mcp:
        first = await mcp.session.call_tool(TOOL, {}, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult) and first.request_state is not None
        wrong: dict[str, Any] = {
            "user_name": types.ElicitResult(action="accept", content={}),
            "client_roots": types.ListRootsResult(roots=[]),
        }
        again = await mcp.session.call_tool(
            TOOL, {}, input_responses=wrong, request_state=first.request_state, allow_input_required=True
        )
    assert isinstance(again, types.InputRequiredResult) and again.input_requests is not None
    assert set(again.input_requests) == {"user_name", "greeting"}
    request = again.input_requests["user_name"]
    assert isinstance(request, types.ElicitRequest) and isinstance(
        request.params, types.ElicitRequestFormParams
    )
    assert "The last answer was not accepted" in request.params.message
    assert "'name' is a required property" in request.params.message


def test_over_rest_one_resume_answers_every_question_validated_per_question(many: Gateway) -> None:
    started = httpx.post(f"{many.url}/v1/agents/multi_input/runs", json={}, timeout=10)
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]

    def run() -> dict[str, Any]:
        found: dict[str, Any] = httpx.get(f"{many.url}/v1/runs/{run_id}", timeout=10).json()
        return found

    wait_until(lambda: run()["status"] == "waiting_input", what="the run to ask")
    resume = f"{many.url}/v1/runs/{run_id}/resume"
    wrong = httpx.post(resume, json={"answer": {"name": {"name": 3}, "confirm": {}}}, timeout=10)
    assert wrong.status_code == 422, wrong.text
    paths = sorted(error["path"] for error in wrong.json()["errors"])
    assert paths == ["$.confirm.confirm", "$.name.name"], wrong.json()
    partial = httpx.post(resume, json={"answer": {"name": {"name": "Cy"}}}, timeout=10)
    assert partial.status_code == 422, partial.text  # every question is answered at once over REST
    right = httpx.post(
        resume, json={"answer": {"name": {"name": "Cy"}, "confirm": {"confirm": True}}}, timeout=10
    )
    assert right.status_code == 200, right.text
    wait_until(lambda: run()["status"] == "succeeded", what="the run to finish")
    assert run()["output"] == "Cy: confirmed"
    ((_, interrupt),) = [(k, d) for k, d in events(many, run_id) if k == "interrupt"]
    assert set(interrupt["request"]["questions"]) == {"name", "confirm"}


def test_over_rest_sampling_and_roots_questions_are_not_asked(many: Gateway) -> None:
    started = httpx.post(f"{many.url}/v1/agents/{TOOL}/runs", json={}, timeout=10)
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    wait_until(
        lambda: httpx.get(f"{many.url}/v1/runs/{run_id}", timeout=10).json()["status"] == "waiting_input",
        what="the run to ask",
    )
    answered = httpx.post(
        f"{many.url}/v1/runs/{run_id}/resume", json={"answer": {"user_name": {"name": "Di"}}}, timeout=10
    )
    assert answered.status_code == 200, answered.text
    wait_until(
        lambda: httpx.get(f"{many.url}/v1/runs/{run_id}", timeout=10).json()["status"] == "failed",
        what="the run to fail on reading its roots",
    )
    error = httpx.get(f"{many.url}/v1/runs/{run_id}", timeout=10).json()["error"]
    assert error["type"] == "RootsUnavailable" and "over rest" in error["message"], error  # read first
    ((_, interrupt),) = [(k, d) for k, d in events(many, run_id) if k == "interrupt"]
    assert list(interrupt["request"]["questions"]) == ["user_name"]  # only what a person can answer
