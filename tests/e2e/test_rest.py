"""The REST contract end to end: real gateway and worker processes over real gRPC."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Cluster, Gateway, wait_until


def sse_events(response: httpx.Response) -> list[dict[str, Any]]:
    """Parse an SSE body into events, checking each frame's id and event lines against its data."""
    events = []
    for frame in response.text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in frame.splitlines():
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
        if "data" in fields:
            event = json.loads(fields["data"])
            assert int(fields["id"]) == event["seq"]
            assert fields["event"] == event["kind"]
            events.append(event)
    return events


def assert_gap_free(events: list[dict[str, Any]], first: int = 1) -> None:
    assert [e["seq"] for e in events] == list(range(first, first + len(events)))


@pytest.fixture
def served(cluster: Cluster) -> Gateway:
    gateway = cluster.start_gateway()
    cluster.start_worker()
    return gateway


def test_endpoints_are_listed_with_their_schemas(served: Gateway) -> None:
    with served.client() as client:
        endpoints = {e["name"]: e for e in client.get("/v1/endpoints").json()["endpoints"]}
    assert {"echo", "steps", "fail", "order", "add", "where_am_i", "maybe", "note", "blob", "greet"} <= set(
        endpoints
    )
    echo = endpoints["echo"]
    assert echo["kind"] == "agent" and echo["durable"] is True and echo["streams"] is True
    assert echo["input_schema"]["required"] == ["text"]
    assert endpoints["add"]["kind"] == "tool" and endpoints["add"]["durable"] is False
    assert endpoints["note"]["uri_template"] == "notes://{name}"
    assert endpoints["order"]["scopes"] == ["orders:write"]


def test_invoke_returns_the_output_of_a_finished_run(served: Gateway) -> None:
    with served.client() as client:
        body = client.post("/v1/agents/echo/invoke", json={"text": "hi", "repeat": 2}).json()
    assert body["status"] == "succeeded"
    assert body["output"] == {"text": "hihi", "run_id": body["run_id"], "attempt": 1}


def test_stream_delivers_every_event_in_order_ending_with_completion(served: Gateway) -> None:
    with served.client() as client:
        response = client.post("/v1/agents/echo/stream", json={"text": "ab", "repeat": 3})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    assert_gap_free(events)
    kinds = [e["kind"] for e in events]
    assert kinds == ["run.started", "token", "token", "token", "progress", "checkpoint", "run.completed"]
    assert [e["data"]["text"] for e in events if e["kind"] == "token"] == ["ab", "ab", "ab"]
    assert events[-1]["data"]["output"]["text"] == "ababab"
    assert {e["run_id"] for e in events} == {response.headers["x-run-id"]}


def test_input_types_convert_through_pydantic_dataclass_enum_and_typeddict(served: Gateway) -> None:
    order = {"customer": "ann", "items": [{"name": "tea", "quantity": 2}, {"name": "cup"}], "color": "red"}
    with served.client() as client:
        body = client.post("/v1/agents/order/invoke", json=order).json()
    assert body["status"] == "succeeded", body
    assert body["output"] == {"customer": "ann", "total_items": 3}


def test_background_run_answers_202_with_location_and_finishes(served: Gateway) -> None:
    with served.client() as client:
        response = client.post("/v1/agents/steps/runs", json={"steps": 2, "delay": 0.05})
        assert response.status_code == 202
        location = response.headers["location"]
        run = response.json()
        assert location == f"/v1/runs/{run['run_id']}"
        assert run["status"] in {"queued", "running"}
        final = wait_until(
            lambda: (r := client.get(location).json())["status"] == "succeeded" and r, what="run to succeed"
        )
    assert final["output"]["completed"] == 2
    assert final["attempt"] == 1 and final["finished_at"] >= final["started_at"] >= final["created_at"]


def test_idempotency_key_returns_the_same_run_for_the_same_request(served: Gateway) -> None:
    with served.client() as client:
        headers = {"Idempotency-Key": "order-42"}
        first = client.post("/v1/agents/steps/runs", json={"steps": 1, "delay": 0}, headers=headers)
        again = client.post("/v1/agents/steps/runs", json={"steps": 1, "delay": 0}, headers=headers)
        other = client.post("/v1/agents/steps/runs", json={"steps": 2, "delay": 0}, headers=headers)
    assert first.status_code == 202 and again.status_code == 202
    assert again.json()["run_id"] == first.json()["run_id"]
    assert again.headers["idempotency-replayed"] == "true"
    assert other.status_code == 409
    assert other.json()["type"] == "conflict"


def test_idempotency_key_treats_reordered_json_as_the_same_request(served: Gateway) -> None:
    with served.client() as client:
        headers = {"Idempotency-Key": "order-43", "content-type": "application/json"}
        first = client.post("/v1/agents/steps/runs", content=b'{"steps": 1, "delay": 0}', headers=headers)
        again = client.post("/v1/agents/steps/runs", content=b'{"delay":0,"steps":1}', headers=headers)
    assert again.status_code == 202
    assert again.json()["run_id"] == first.json()["run_id"]


def test_events_resume_after_last_event_id_and_follow_to_the_end(served: Gateway) -> None:
    with served.client() as client:
        run = client.post("/v1/agents/steps/runs", json={"steps": 6, "delay": 0.1}).json()
        url = f"/v1/runs/{run['run_id']}/events"
        wait_until(lambda: client.get(f"/v1/runs/{run['run_id']}").json()["last_seq"] >= 4, what="4 events")
        resumed = sse_events(client.get(url, headers={"Last-Event-ID": "3"}))
        everything = sse_events(client.get(url))
    assert resumed[0]["seq"] == 4
    assert_gap_free(resumed, first=4)
    assert resumed[-1]["kind"] == "run.completed"
    assert_gap_free(everything)
    assert everything[3:] == resumed


def test_events_of_a_finished_run_past_its_end_return_at_once(served: Gateway) -> None:
    with served.client() as client:
        run = client.post("/v1/agents/echo/invoke", json={"text": "x"}).json()
        last = client.get(f"/v1/runs/{run['run_id']}").json()["last_seq"]
        started = time.monotonic()
        events = sse_events(
            client.get(f"/v1/runs/{run['run_id']}/events", headers={"Last-Event-ID": str(last)})
        )
    assert events == [] and time.monotonic() - started < 2


def test_last_event_id_must_be_a_number(served: Gateway) -> None:
    with served.client() as client:
        run = client.post("/v1/agents/echo/invoke", json={"text": "x"}).json()
        response = client.get(f"/v1/runs/{run['run_id']}/events", headers={"Last-Event-ID": "abc"})
    assert response.status_code == 400


def test_cancel_reaches_the_worker_function(served: Gateway, tmp_path: Path) -> None:
    marker = tmp_path / "cancelled.txt"
    with served.client() as client:
        run = client.post(
            "/v1/agents/steps/runs", json={"steps": 100, "delay": 0.1, "marker": str(marker)}
        ).json()
        run_id = run["run_id"]
        wait_until(lambda: client.get(f"/v1/runs/{run_id}").json()["status"] == "running", what="running")
        cancelled = client.post(f"/v1/runs/{run_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        wait_until(marker.exists, what="the worker to see the cancellation")
        assert marker.read_text() == "cancelled ctx.cancelled=True"
        again = client.post(f"/v1/runs/{run_id}/cancel")
        assert again.status_code == 409
        events = sse_events(client.get(f"/v1/runs/{run_id}/events"))
    assert events[-1]["kind"] == "run.cancelled"
    assert_gap_free(events)
    assert client.get  # the client is closed; nothing further


def test_cancel_frees_the_slot_for_the_next_run(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    cluster.start_worker("tests.workers.basic:app", "--slots", "1")
    with gateway.client() as client:
        blocking = client.post("/v1/agents/steps/runs", json={"steps": 100, "delay": 0.1}).json()
        wait_until(
            lambda: client.get(f"/v1/runs/{blocking['run_id']}").json()["status"] == "running", what="run"
        )
        client.post(f"/v1/runs/{blocking['run_id']}/cancel")
        assert client.post("/v1/tools/add", json={"a": 1, "b": 1}).json() == {"output": 2}


def test_tool_call_answers_its_output(served: Gateway) -> None:
    with served.client() as client:
        assert client.post("/v1/tools/add", json={"a": 2, "b": 40}).json() == {"output": 42}
        assert client.post("/v1/tools/maybe", json={}).json() == {"output": None}
        assert client.post("/v1/tools/maybe").json() == {"output": None}


def test_sync_functions_run_off_the_event_loop_thread(served: Gateway) -> None:
    with served.client() as client:
        output = client.post("/v1/tools/where_am_i", json={}).json()["output"]
    assert output["main"] is False and output["thread"].startswith("fastagentic-run")


def test_sync_function_does_not_block_other_runs(served: Gateway) -> None:
    with served.client() as client, httpx.Client(base_url=served.url, timeout=30) as other:
        import threading

        slow: dict[str, Any] = {}
        thread = threading.Thread(
            target=lambda: slow.update(client.post("/v1/tools/where_am_i", json={"pause": 1.5}).json())
        )
        thread.start()
        time.sleep(0.3)
        started = time.monotonic()
        assert other.post("/v1/tools/add", json={"a": 1, "b": 2}).json() == {"output": 3}
        elapsed = time.monotonic() - started
        thread.join()
    assert slow["output"]["main"] is False
    assert elapsed < 1.0


def test_resource_is_read_by_uri_with_its_media_type(served: Gateway) -> None:
    with served.client() as client:
        text = client.get("/v1/resources/notes://today")
        encoded = client.get("/v1/resources/notes%3A%2F%2Ftoday")
        blob = client.get("/v1/resources/blobs://ab")
        unknown = client.get("/v1/resources/nothing://here")
    assert text.status_code == 200 and text.text == "note today"
    assert text.headers["content-type"].startswith("text/plain")
    assert encoded.text == "note today"
    assert blob.content == b"abab" and blob.headers["content-type"] == "application/octet-stream"
    assert unknown.status_code == 404 and unknown.json()["type"] == "not_found"


def test_failing_resource_is_an_error_with_the_worker_exception(served: Gateway) -> None:
    with served.client() as client:
        response = client.get("/v1/resources/notes://missing")
    assert response.status_code == 500
    body = response.json()
    assert body["type"] == "run_failed"
    assert body["error"] == {"type": "FileNotFoundError", "message": "no note missing"}
    assert "Traceback" not in response.text


def test_prompt_renders_messages(served: Gateway) -> None:
    with served.client() as client:
        body = client.post("/v1/prompts/greet", json={"name": "Ann", "formal": True}).json()
    assert body == {"messages": [{"role": "user", "content": {"type": "text", "text": "Dear Ann,"}}]}


def test_worker_exception_fails_the_run_with_type_and_message_and_no_traceback(served: Gateway) -> None:
    with served.client() as client:
        body = client.post("/v1/agents/fail/invoke", json={"message": "bad thing"}).json()
        stored = client.get(f"/v1/runs/{body['run_id']}").json()
        events = sse_events(client.get(f"/v1/runs/{body['run_id']}/events"))
    assert body["status"] == "failed"
    assert body["error"] == {"type": "ValueError", "message": "bad thing"}
    assert stored["error"] == body["error"]
    assert events[-1]["kind"] == "run.failed" and events[-1]["data"]["error"]["type"] == "ValueError"
    assert "Traceback" not in json.dumps([body, stored, events])


def test_unknown_endpoint_is_404(served: Gateway) -> None:
    with served.client() as client:
        for method, path in [
            ("POST", "/v1/agents/nope/invoke"),
            ("POST", "/v1/tools/nope"),
            ("POST", "/v1/prompts/nope"),
            ("GET", "/v1/runs/run_doesnotexist"),
            ("POST", "/v1/runs/run_doesnotexist/cancel"),
            ("POST", "/v1/tools/echo"),  # an agent is not a tool
        ]:
            response = client.request(method, path, json={})
            assert response.status_code == 404, path
            assert response.json()["type"] == "not_found"


def test_input_not_matching_the_schema_is_422_with_field_paths(served: Gateway) -> None:
    with served.client() as client:
        response = client.post(
            "/v1/agents/order/invoke", json={"customer": 3, "items": [{"name": "x", "quantity": "2"}]}
        )
    assert response.status_code == 422
    body = response.json()
    assert body["type"] == "validation_error"
    paths = {e["path"] for e in body["errors"]}
    assert {"$.customer", "$.items[0].quantity"} <= paths


def test_a_missing_field_is_named_by_its_own_path(served: Gateway) -> None:
    with served.client() as client:
        response = client.post("/v1/tools/add", json={"a": 1})
    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == ["$.b"]


def test_malformed_json_is_400(served: Gateway) -> None:
    with served.client() as client:
        response = client.post(
            "/v1/tools/add", content=b'{"a": 1,', headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json()["type"] == "malformed_request"


def test_body_over_the_limit_is_413(cluster: Cluster) -> None:
    gateway = cluster.start_gateway(max_body_bytes="1000")
    cluster.start_worker()
    with gateway.client() as client:
        response = client.post("/v1/agents/echo/invoke", json={"text": "x" * 2000})
    assert response.status_code == 413
    assert response.json()["type"] == "payload_too_large"


def test_endpoint_without_a_worker_is_503_with_retry_after(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    worker = cluster.start_worker()
    worker.stop()
    with gateway.client() as client:
        wait_until(lambda: "add" not in gateway.endpoints(), what="the worker to leave")
        response = client.post("/v1/tools/add", json={"a": 1, "b": 2})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["type"] == "no_worker"


def test_runs_are_listed_newest_first_with_filters_and_a_cursor(served: Gateway) -> None:
    with served.client() as client:
        ids = [
            client.post("/v1/agents/echo/invoke", json={"text": str(i)}).json()["run_id"] for i in range(3)
        ]
        client.post("/v1/agents/fail/invoke", json={})
        page = client.get("/v1/runs", params={"endpoint": "echo", "limit": 2}).json()
        rest = client.get(
            "/v1/runs", params={"endpoint": "echo", "limit": 2, "cursor": page["next_cursor"]}
        ).json()
        failed = client.get("/v1/runs", params={"status": "failed"}).json()
        bad = client.get("/v1/runs", params={"status": "sideways"})
    assert [r["run_id"] for r in page["runs"]] == ids[::-1][:2]
    assert [r["run_id"] for r in rest["runs"]] == ids[:1]
    assert rest["next_cursor"] is None
    assert [r["endpoint"] for r in failed["runs"]] == ["fail"]
    assert bad.status_code == 400


def test_every_run_records_its_caller(served: Gateway) -> None:
    with served.client() as client:
        body = client.post("/v1/agents/echo/invoke", json={"text": "x"}).json()
        run = client.get(f"/v1/runs/{body['run_id']}").json()
    assert run["principal"] == "anonymous" and run["tenant"] == "default"


def test_ephemeral_calls_write_nothing_to_the_store(served: Gateway) -> None:
    with served.client() as client:
        client.post("/v1/tools/add", json={"a": 1, "b": 2})
        order = {"customer": "a", "items": []}
        ephemeral = client.post("/v1/agents/order/invoke", json=order).json()["run_id"]
        durable = client.post("/v1/agents/echo/invoke", json={"text": "x"}).json()["run_id"]
        assert client.get(f"/v1/runs/{ephemeral}").json()["durable"] is False
    with sqlite3.connect(served.data_dir / "runs.sqlite3") as db:
        stored = {row[0] for row in db.execute("SELECT id FROM runs")}
        events = db.execute("SELECT count(*) FROM events WHERE run_id = ?", (ephemeral,)).fetchone()[0]
    assert stored == {durable}
    assert events == 0


def test_openapi_document_has_an_operation_per_endpoint(served: Gateway) -> None:
    with served.client() as client:
        document = client.get("/openapi.json").json()
        docs = client.get("/docs")
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    operation = paths["/v1/agents/echo/invoke"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["text"] == {"type": "string"}
    assert (
        "/v1/tools/add" in paths and "/v1/prompts/greet" in paths and "/v1/resources/notes://{name}" in paths
    )
    assert "/v1/agents/steps/runs" in paths
    assert docs.status_code == 200 and "/openapi.json" in docs.text


def test_openapi_follows_workers_live(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    with gateway.client() as client:
        assert "/v1/tools/add" not in client.get("/openapi.json").json()["paths"]
        worker = cluster.start_worker()
        assert "/v1/tools/add" in client.get("/openapi.json").json()["paths"]
        worker.stop()
        wait_until(lambda: "/v1/tools/add" not in client.get("/openapi.json").json()["paths"], what="removal")


def test_health_and_readiness(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    with gateway.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        not_ready = client.get("/readyz")
        assert not_ready.status_code == 503 and "workers" in not_ready.json()["problems"]
        cluster.start_worker()
        assert client.get("/readyz").status_code == 200


def test_unknown_route_and_wrong_method_use_the_error_format(served: Gateway) -> None:
    with served.client() as client:
        missing = client.get("/v2/nothing")
        wrong = client.get("/v1/tools/add")
    assert missing.status_code == 404 and missing.json()["type"] == "not_found"
    assert wrong.status_code == 405 and wrong.json()["type"] == "method_not_allowed"


def test_hostile_nesting_is_a_clear_400_not_a_crash(served: Gateway) -> None:
    deep = b'{"a":' * 20_000 + b"1" + b"}" * 20_000
    with served.client() as client:
        response = client.post("/v1/tools/add", content=deep, headers={"content-type": "application/json"})
        assert response.status_code == 400
        assert response.json() == {
            "type": "malformed_request",
            "message": "request body is nested too deeply",
        }
        assert client.post("/v1/tools/add", json={"a": 1, "b": 1}).json() == {"output": 2}


def test_checkpoints_of_a_run_are_listed_in_order(served: Gateway) -> None:
    with served.client() as client:
        run = client.post("/v1/agents/steps/invoke", json={"steps": 3, "delay": 0}).json()
        body = client.get(f"/v1/runs/{run['run_id']}/checkpoints").json()
        events = sse_events(client.get(f"/v1/runs/{run['run_id']}/events"))
        missing = client.get("/v1/runs/run_nope/checkpoints")
    checkpoints = body["checkpoints"]
    assert [c["id"] for c in checkpoints] == [1, 2, 3]
    assert [c["state"] for c in checkpoints] == [{"done": 1}, {"done": 2}, {"done": 3}]
    assert [c["seq"] for c in checkpoints] == [e["seq"] for e in events if e["kind"] == "checkpoint"]
    assert all(c["attempt"] == 1 for c in checkpoints)
    assert missing.status_code == 404


def test_finished_durable_runs_are_deleted_after_the_retention_period(cluster: Cluster) -> None:
    gateway = cluster.start_gateway(retention="1")
    cluster.start_worker()
    with gateway.client() as client:
        run = client.post("/v1/agents/echo/invoke", json={"text": "x"}).json()
        assert client.get(f"/v1/runs/{run['run_id']}").status_code == 200
        wait_until(
            lambda: client.get(f"/v1/runs/{run['run_id']}").status_code == 404, timeout=15, what="retention"
        )
    with sqlite3.connect(gateway.data_dir / "runs.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM events WHERE run_id = ?", (run["run_id"],)).fetchone()[0] == 0
