"""The SDK side of resource changes and task requirements: what ``App`` accepts, what the worker sends."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fastagentic import App
from fastagentic.v1 import worker_pb2 as pb
from fastagentic.worker import MAX_PENDING_CHANGES, Worker


def _app() -> App:
    app = App("docs")

    @app.resource("docs://index")
    def index() -> str:
        return ""

    @app.resource("docs://{section}/{page}")
    def page(section: str, page: str) -> str:
        return ""

    return app


@pytest.mark.parametrize("uri", ["docs://index", "docs://intro/setup", "docs://a%20b/c"])
def test_a_uri_of_one_of_the_apps_resources_is_announced(uri: str) -> None:
    app = _app()
    heard: list[str] = []
    stop = app._listen_for_changes(heard.append)
    app.resource_changed(uri)
    stop()
    app.resource_changed(uri)  # nobody listens any more: nothing happens
    assert heard == [uri]


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("docs://intro", "is not a URI of a resource of app 'docs'"),
        ("docs://a/b/c", "is not a URI of a resource of app 'docs'"),
        ("other://index", "is not a URI of a resource of app 'docs'"),
        ("docs://index\r\n", "control character"),
        ("docs://" + "x" * 2100, "at most 2048"),
    ],
)
def test_a_uri_the_app_does_not_serve_is_a_value_error(uri: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        _app().resource_changed(uri)


def test_a_uri_must_be_a_str() -> None:
    with pytest.raises(TypeError):
        _app().resource_changed(b"docs://index")  # type: ignore[arg-type]


def test_task_required_is_carried_in_the_endpoint_spec() -> None:
    app = App("jobs")

    @app.agent_endpoint(task_required=True)
    async def crunch(n: int) -> int:
        return n

    @app.tool(durable=True, task_required=True)
    def archive(item: str) -> str:
        return item

    @app.tool
    def quick(item: str) -> str:
        return item

    specs = {name: endpoint.spec() for name, endpoint in app.endpoints.items()}
    assert [specs[name].task_required for name in ("crunch", "archive", "quick")] == [True, True, False]


def test_task_required_on_an_ephemeral_tool_is_a_value_error() -> None:
    app = App("jobs")
    with pytest.raises(ValueError, match="needs durable=True"):

        @app.tool(task_required=True)
        def quick(item: str) -> str:
            return item


def test_input_before_task_is_carried_in_the_endpoint_spec_and_needs_a_task() -> None:
    app = App("jobs")

    @app.agent_endpoint(input_before_task=True)
    async def intake(name: str) -> str:
        return name

    @app.tool(durable=True)
    def archive(item: str) -> str:
        return item

    assert app.endpoints["intake"].spec().input_before_task is True
    assert app.endpoints["archive"].spec().input_before_task is False
    with pytest.raises(ValueError, match="input_before_task=True needs durable=True"):

        @app.tool(input_before_task=True)
        def quick(item: str) -> str:
            return item


async def test_the_worker_sends_changes_from_any_thread_and_keeps_them_while_disconnected() -> None:
    app = _app()
    worker = Worker(app, gateway="127.0.0.1:1")
    outbox: asyncio.Queue[pb.WorkerMessage | None] = asyncio.Queue()
    worker._loop = asyncio.get_running_loop()
    stop = app._listen_for_changes(worker._resource_changed)
    try:
        # Disconnected: kept (once per URI, the latest last), bounded.
        app.resource_changed("docs://a/b")
        app.resource_changed("docs://index")
        app.resource_changed("docs://a/b")
        assert list(worker._pending_changes) == ["docs://index", "docs://a/b"]
        # Connected: straight to the stream, from the loop or from another thread.
        worker._outbox = outbox  # type: ignore[assignment]
        app.resource_changed("docs://index")
        thread = threading.Thread(target=app.resource_changed, args=("docs://x/y",))
        thread.start()
        thread.join()
        sent = [await asyncio.wait_for(outbox.get(), 5) for _ in range(2)]
        assert [m.resource_changed.uri for m in sent if m is not None] == ["docs://index", "docs://x/y"]
        worker._outbox = None
        for n in range(MAX_PENDING_CHANGES + 5):
            app.resource_changed(f"docs://s/{n}")
        assert len(worker._pending_changes) == MAX_PENDING_CHANGES
        assert next(iter(worker._pending_changes)) == "docs://s/5"  # the oldest went first
        # Back: what was kept goes out right after the Welcome, in order.
        worker._welcomed(pb.Welcome(), outbox)  # type: ignore[arg-type]
        flushed = [outbox.get_nowait() for _ in range(outbox.qsize())]
        assert [m.resource_changed.uri for m in flushed if m is not None][:2] == ["docs://s/5", "docs://s/6"]
        assert len(flushed) == MAX_PENDING_CHANGES and not worker._pending_changes
    finally:
        stop()
