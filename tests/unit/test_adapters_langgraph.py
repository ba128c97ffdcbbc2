"""The LangGraph adapter in process, through the contract kit, on langgraph's own release with a scripted
chat model: event order, resume at the next node from FastAgentic's checkpoints, cancellation, errors,
interrupts (emitted, then answered with ``resume_input``), the model hint inside a node, and schemas."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt
from typing_extensions import TypedDict as ExtTypedDict

from examples.langgraph_graph import builder, graph
from fastagentic import App
from fastagentic.adapters import LangGraphAdapter, Schema, adapter_for, run_context
from fastagentic.testing import (
    Recording,
    Unanswered,
    check_adapter,
    check_cancellation,
    check_event_order,
    run_adapter,
)

QUESTION = {"messages": [{"role": "user", "content": "add 2 and 40"}]}


def _messages(output: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(m["type"], m["content"]) for m in output["messages"]]


class Job(ExtTypedDict, total=False):
    done: list[str]
    hint: str


def _line(*nodes: Any) -> Any:
    """A graph running ``nodes`` (name, function) one after the other."""
    line = StateGraph(Job)
    previous = START
    for name, function in nodes:
        line.add_node(name, function)
        line.add_edge(previous, name)
        previous = name
    line.add_edge(previous, END)
    return line.compile(name="line")


def _step(name: str) -> Any:
    def run(state: Job) -> Job:
        return {"done": [*state.get("done", []), name]}

    return run


def test_a_compiled_graph_is_found_its_adapter_named_after_it_with_its_schemas() -> None:
    adapter = adapter_for(graph)
    assert isinstance(adapter, LangGraphAdapter) and adapter.name == "calculator_graph"
    assert (
        isinstance(adapter.input_type, Schema) and "messages" in adapter.input_type.json_schema["properties"]
    )
    # Messages are a discriminated union JSON Schema cannot express: published as anyOf, so
    # {"role": "user", "content": ...} (which LangGraph coerces) validates.
    items = adapter.input_type.json_schema["properties"]["messages"]["items"]
    assert "anyOf" in items and "oneOf" not in items


def test_an_uncompiled_graph_is_refused_with_the_fix() -> None:
    with pytest.raises(TypeError, match=r"graph.compile\(\)"):
        LangGraphAdapter(builder)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="pydantic describes typing.TypedDict from 3.12 on")
def test_a_state_pydantic_cannot_describe_gets_an_open_schema() -> None:
    class Plain(TypedDict):
        n: int

    plain = StateGraph(Plain)
    plain.add_node("one", lambda state: state)
    plain.add_edge(START, "one")
    app = App("t")
    app.agent(plain.compile(), name="plain")
    assert app.endpoint("plain").shape.input_schema == {"type": "object"}
    assert app.endpoint("plain").output_schema == {}


async def test_the_example_graph_keeps_the_contract_and_resumes_at_the_next_node() -> None:
    def in_the_tools_node(recording: Recording) -> bool:
        return {"node": "tools", "step": 2} in recording.of("node_enter")

    recording = await check_adapter(
        graph, QUESTION, stop_when=in_the_tools_node, compare=lambda output: _messages(output)
    )
    assert _messages(recording.output)[-1] == ("ai", "The sum is 42.")


async def test_nodes_models_tools_and_tokens_come_in_order() -> None:
    recording = await run_adapter(graph, QUESTION)
    shown = [
        (kind, data.get("node") or data.get("name") or data.get("text") or data.get("model"))
        for kind, data in ((e.kind, e.data) for e in recording.events)
        if kind != "checkpoint"
    ]
    assert shown == [
        ("node_enter", "agent"),
        ("llm_start", "scripted-chat"),
        ("llm_end", "scripted-chat"),
        ("node_exit", "agent"),
        ("node_enter", "tools"),
        ("tool_call", "add"),
        ("tool_result", "add"),
        ("node_exit", "tools"),
        ("node_enter", "agent"),
        ("llm_start", "scripted-chat"),
        ("token", "The"),
        ("token", " sum"),
        ("token", " is"),
        ("token", " 42."),
        ("message", "The sum is 42."),
        ("llm_end", "scripted-chat"),
        ("node_exit", "agent"),
    ]
    assert recording.of("llm_end")[0] == {"model": "scripted-chat", "input_tokens": 20, "output_tokens": 6}


async def test_a_resumed_run_skips_the_nodes_before_its_checkpoint() -> None:
    ran: list[str] = []

    def counted(name: str) -> Any:
        def run(state: Job) -> Job:
            ran.append(name)
            return {"done": [*state.get("done", []), name]}

        return run

    line = _line(("a", counted("a")), ("b", counted("b")), ("c", counted("c")))
    first = await run_adapter(line, {})
    left_a = next(i for i, e in enumerate(first.events) if e.kind == "node_exit" and e.data["node"] == "a")
    after_a = next(e.checkpoint for e in first.events[left_a:] if e.kind == "checkpoint")
    ran.clear()
    second = await run_adapter(line, {}, attempt=2, checkpoint_state=after_a)
    assert ran == ["b", "c"]
    assert second.output == {"done": ["a", "b", "c"]}
    assert [d["node"] for d in second.of("node_enter")] == ["b", "c"]


async def test_cancelling_the_run_cancels_the_running_node() -> None:
    ticks: list[int] = []

    async def slow(state: Job) -> Job:
        for tick in range(500):
            ticks.append(tick)
            await asyncio.sleep(0.01)
        return {}

    await check_cancellation(
        _line(("slow", slow)), {}, started=lambda r: len(ticks) >= 3, progress=lambda: len(ticks)
    )


async def test_a_nodes_exception_fails_the_run_and_closes_the_node_with_it() -> None:
    def broken(state: Job) -> Job:
        raise LookupError("no such ticket: 7")

    recording = await run_adapter(_line(("ok", _step("ok")), ("broken", broken)), {})
    assert isinstance(recording.error, LookupError)
    assert recording.of("node_exit")[-1] == {
        "node": "broken",
        "step": 2,
        "error": {"type": "LookupError", "message": "no such ticket: 7"},
    }
    check_event_order(recording, complete=True)


async def test_an_interrupt_in_a_node_is_the_runs_interrupt_and_its_answer_resumes_the_graph() -> None:
    def ask(state: Job) -> Job:
        answer = interrupt({"question": "ship it?"})
        return {"done": [*state.get("done", []), f"answer:{answer}"]}

    line = _line(("prepare", _step("prepare")), ("ask", ask))
    # Answered while the run waits in place: the graph goes on.
    answered = await run_adapter(line, {}, answer=lambda interrupt_id, request: "yes")
    assert answered.output == {"done": ["prepare", "answer:yes"]}, answered.error
    (asked,) = answered.of("interrupt")
    assert asked["request"] == {"question": "ship it?"} and asked["id"].startswith("langgraph-")
    check_event_order(answered, complete=True)  # the paused node was closed, then ran again
    assert [d["node"] for d in answered.of("node_enter")] == ["prepare", "ask", "ask"]
    # Not answered in place (a durable run handed back): the run stops waiting...
    waiting = await run_adapter(line, {})
    assert isinstance(waiting.error, Unanswered)
    (pending,) = waiting.of("interrupt")
    # ...and the new attempt, given the answer, resumes from the checkpoint without preparing again.
    resumed = await run_adapter(
        line, {}, attempt=2, checkpoint_state=waiting.checkpoints[-1], answers={pending["id"]: "no"}
    )
    assert resumed.output == {"done": ["prepare", "answer:no"]}, resumed.error
    # The paused node meets its interrupt again (answered at once: not asked again), then runs through.
    assert [d["node"] for d in resumed.of("node_enter")] == ["ask", "ask"]
    assert resumed.of("interrupt") == []


async def test_nodes_read_the_model_hint_through_run_context_in_any_thread() -> None:
    def sync_node(state: Job) -> Job:
        return {"hint": f"{run_context().model_hint}@{threading.current_thread() is threading.main_thread()}"}

    recording = await run_adapter(_line(("pick", sync_node)), {}, model_hint="mini")
    assert recording.output == {"hint": "mini@False"}


def test_only_graphs_are_run() -> None:
    with pytest.raises(TypeError, match="compiled LangGraph graph"):
        LangGraphAdapter(object())


async def test_the_saver_also_serves_a_graph_invoked_synchronously_in_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    import msgspec

    from fastagentic import RunContext
    from fastagentic.adapters.langgraph_saver import RunCheckpointSaver
    from fastagentic.context import Caller

    saved: list[Any] = []

    def sink(kind: str, data: bytes, checkpoint: bytes | None) -> None:
        if checkpoint is not None:
            saved.append(msgspec.json.decode(checkpoint))

    ctx = RunContext(run_id="run_sync", attempt=1, endpoint="e", caller=Caller("p", "t"), sink=sink)
    saver = RunCheckpointSaver()
    saver.open(ctx)
    line = StateGraph(Job)
    line.add_node("a", _step("a"))
    line.add_node("b", _step("b"))
    line.add_edge(START, "a")
    line.add_edge("a", "b")
    line.add_edge("b", END)
    graph = line.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "run_sync"}}
    # A sync endpoint runs in a thread: the saver saves on the run's loop and waits for it.
    result = await asyncio.to_thread(graph.invoke, {}, config)
    assert result == {"done": ["a", "b"]}
    assert saved and saved[-1]["format"] == "langgraph.checkpoints/1"
    # On the loop itself a sync run blocks the loop: its save is refused, saying what to do instead.
    monkeypatch.setattr("fastagentic.adapters.langgraph_saver.SYNC_SAVE_TIMEOUT", 0.5)
    with pytest.raises(RuntimeError, match="would block it"):
        graph.invoke({}, {"configurable": {"thread_id": "run_sync"}})
