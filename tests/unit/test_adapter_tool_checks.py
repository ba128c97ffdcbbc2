"""Central tool checks on every framework adapter's tool path, in process: the run's checker stands in for
the gateway's tool chains (the worker's round trip answers the same ``Verdict``; the round trip itself is
tested end to end in tests/e2e/test_hooks.py and tests/e2e/test_adapter_tool_checks_e2e.py). For each
framework, on its own release with a scripted model: a refused call never runs (its side effects are
counted) and the model sees why, a masked result reaches the model (and the run's log) masked, a modified
call runs with the new arguments, and without a checker nothing changes."""

from __future__ import annotations

import json
from typing import Any

import dspy  # type: ignore[import-untyped]
import msgspec

from fastagentic.hooks import Verdict
from fastagentic.testing import Recording, run_adapter

SECRET = "4111-1111-1111-1111"


class Policy:
    """The gateway's tool chains, as a worker's checks see them: ``shell`` is refused by hook ``policy``,
    every result has ``SECRET`` masked by hook ``pii``, and ``lookup``'s ``key`` is rewritten to lowercase
    by hook ``normalize``. Records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, dict[str, Any]]] = []

    async def __call__(self, point: str, tool: str, data: bytes) -> Verdict | None:
        payload = msgspec.json.decode(data)
        self.asked.append((point, tool, payload))
        if point == "on_tool_call":
            if tool == "shell":
                return Verdict("reject", reason="no shell commands", hook="policy")
            key = payload["arguments"].get("key")
            if isinstance(key, str) and key != key.lower():
                changed = {**payload, "arguments": {**payload["arguments"], "key": key.lower()}}
                return Verdict("modify", data=msgspec.json.encode(changed), hook="normalize")
            return Verdict("proceed")
        text = json.dumps(payload.get("result"))
        if SECRET in text:
            masked = {**payload, "result": json.loads(text.replace(SECRET, "[card]"))}
            return Verdict("modify", data=msgspec.json.encode(masked), hook="pii")
        return Verdict("proceed")


REFUSAL = "tool 'shell': call rejected by hook 'policy': no shell commands"
REFUSED = {"type": "ToolRejected", "message": REFUSAL, "hook": "policy", "point": "on_tool_call"}


def tool_results(recording: Recording) -> dict[str, Any]:
    return {data["name"]: data for data in recording.of("tool_result")}


def assert_nothing_secret(recording: Recording) -> None:
    for event in recording.events:
        assert SECRET not in json.dumps(event.data), (event.kind, event.data)


# ------------------------------------------------------------------------------------------- PydanticAI


def _pydantic_agent(ran: list[str]) -> Any:
    from pydantic_ai import Agent
    from pydantic_ai.models.test import TestModel

    agent = Agent(TestModel(), name="guarded")

    @agent.tool_plain
    def shell(command: str) -> str:
        """Run a shell command."""
        ran.append(f"shell {command}")
        return "done"

    @agent.tool_plain
    def lookup(key: str) -> str:
        """Look a customer's card up."""
        ran.append(f"lookup {key}")
        return f"card of {key}: {SECRET}"

    return agent


async def test_pydantic_ai_refused_calls_never_run_and_results_reach_the_model_masked() -> None:
    ran: list[str] = []
    policy = Policy()
    recording = await run_adapter(_pydantic_agent(ran), {"prompt": "x"}, checker=policy)
    assert recording.error is None
    assert ran == ["lookup a"]  # shell never ran
    # TestModel answers with the tool results it was given: what the model saw.
    assert json.loads(recording.output) == {"shell": REFUSAL, "lookup": "card of a: [card]"}
    results = tool_results(recording)
    assert results["shell"]["error"] == REFUSED
    assert results["lookup"]["result"] == "card of a: [card]"
    assert_nothing_secret(recording)
    assert [(point, tool) for point, tool, _ in policy.asked] == [
        ("on_tool_call", "shell"),
        ("on_tool_call", "lookup"),
        ("on_tool_result", "lookup"),
    ]
    assert policy.asked[0][2]["id"] == results["shell"]["id"]  # the model's tool call id


async def test_pydantic_ai_without_checks_runs_every_tool_unchanged() -> None:
    ran: list[str] = []
    recording = await run_adapter(_pydantic_agent(ran), {"prompt": "x"})
    assert sorted(ran) == ["lookup a", "shell a"]
    assert json.loads(recording.output)["lookup"] == f"card of a: {SECRET}"


# ------------------------------------------------------------------------------------ OpenAI Agents SDK


def _openai_agent(ran: list[str]) -> Any:
    from agents import Agent, function_tool

    from examples.openai_agents_agent import ScriptedModel, call, outputs_of, say

    @function_tool
    def shell(command: str) -> str:
        """Run a shell command."""
        ran.append(f"shell {command}")
        return "done"

    @function_tool
    def lookup(key: str) -> str:
        """Look a customer's card up."""
        ran.append(f"lookup {key}")
        return f"card of {key}: {SECRET}"

    def script(items: list[Any]) -> list[Any]:
        seen = outputs_of(items)
        if seen:
            return [say(" | ".join(seen))]
        return [
            call("shell", {"command": "rm -rf /"}, "call_shell"),
            call("lookup", {"key": "ADA"}, "call_lookup"),
        ]

    return Agent(name="guarded", model=ScriptedModel(script), tools=[shell, lookup])


async def test_openai_agents_refused_calls_never_run_and_results_reach_the_model_masked() -> None:
    ran: list[str] = []
    policy = Policy()
    recording = await run_adapter(_openai_agent(ran), {"prompt": "x"}, checker=policy)
    assert recording.error is None, recording.error
    assert ran == ["lookup ada"]  # shell never ran; lookup ran with the modified arguments
    assert recording.output == f"{REFUSAL} | card of ada: [card]"  # what the model saw
    results = tool_results(recording)
    assert results["shell"] == {"id": "call_shell", "name": "shell", "error": REFUSED}
    assert results["lookup"]["result"] == "card of ada: [card]"
    assert_nothing_secret(recording)
    assert (
        "on_tool_call",
        "shell",
        {"id": "call_shell", "name": "shell", "arguments": {"command": "rm -rf /"}},
    ) in policy.asked


async def test_openai_agents_without_checks_runs_every_tool_unchanged() -> None:
    ran: list[str] = []
    recording = await run_adapter(_openai_agent(ran), {"prompt": "x"})
    assert sorted(ran) == ["lookup ADA", "shell rm -rf /"]
    assert recording.output == f"done | card of ADA: {SECRET}"


# ---------------------------------------------------------------------------- LangChain and LangGraph


def _langchain_agent(ran: list[str]) -> Any:
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
    from langchain_core.tools import tool

    from examples.langchain_agent import ScriptedChatModel

    @tool
    def shell(command: str) -> str:
        """Run a shell command."""
        ran.append(f"shell {command}")
        return "done"

    @tool
    async def lookup(key: str) -> str:
        """Look a customer's card up."""
        ran.append(f"lookup {key}")
        return f"card of {key}: {SECRET}"

    def script(messages: list[BaseMessage]) -> AIMessage:
        answers = [m for m in messages if isinstance(m, ToolMessage)]
        if answers:
            return AIMessage(content=" | ".join(f"{m.status}: {m.content}" for m in answers))
        calls = [
            {"name": "shell", "args": {"command": "rm -rf /"}, "id": "call_shell", "type": "tool_call"},
            {"name": "lookup", "args": {"key": "ADA"}, "id": "call_lookup", "type": "tool_call"},
        ]
        return AIMessage(content="", tool_calls=calls)  # type: ignore[arg-type]

    return create_agent(ScriptedChatModel(script=script), tools=[shell, lookup], name="guarded")


def _last_message(recording: Recording) -> str:
    return str(recording.output["messages"][-1]["content"])


async def test_langchain_refused_calls_never_run_and_results_reach_the_model_masked() -> None:
    ran: list[str] = []
    policy = Policy()
    recording = await run_adapter(
        _langchain_agent(ran), {"messages": [{"role": "user", "content": "x"}]}, checker=policy
    )
    assert recording.error is None, recording.error
    assert ran == ["lookup ada"]  # shell never ran; lookup ran with the modified arguments
    # What the model saw: the refusal as an error ToolMessage, the masked card.
    assert _last_message(recording) == f"error: {REFUSAL} | success: card of ada: [card]"
    results = tool_results(recording)
    assert results["shell"] == {"id": "call_shell", "name": "shell", "error": REFUSED}
    assert results["lookup"] == {"id": "call_lookup", "name": "lookup", "result": "card of ada: [card]"}
    calls = {data["name"]: data for data in recording.of("tool_call")}
    assert calls["lookup"] == {"id": "call_lookup", "name": "lookup", "arguments": {"key": "ada"}}
    assert_nothing_secret(recording)


async def test_langchain_without_checks_runs_every_tool_unchanged() -> None:
    ran: list[str] = []
    recording = await run_adapter(_langchain_agent(ran), {"messages": [{"role": "user", "content": "x"}]})
    assert sorted(ran) == ["lookup ADA", "shell rm -rf /"]
    assert _last_message(recording) == f"success: done | success: card of ADA: {SECRET}"


async def test_langgraph_a_tool_node_of_a_graph_of_your_own_is_checked() -> None:
    from langchain_core.messages import AIMessage, ToolMessage
    from langchain_core.tools import tool
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    from fastagentic.adapters import LangGraphAdapter

    ran: list[str] = []

    @tool
    def shell(command: str) -> str:
        """Run a shell command."""
        ran.append(command)
        return "done"

    def plan(state: MessagesState) -> dict[str, Any]:
        call = {"name": "shell", "args": {"command": "ls"}, "id": "call_1", "type": "tool_call"}
        return {"messages": [AIMessage(content="", tool_calls=[call])]}  # type: ignore[list-item]

    graph = StateGraph(MessagesState)
    graph.add_node("plan", plan)
    graph.add_node("tools", ToolNode([shell]))
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "tools")
    graph.add_edge("tools", END)
    adapter = LangGraphAdapter(graph.compile())
    recording = await run_adapter(adapter, {"messages": []}, checker=Policy())
    assert recording.error is None, recording.error
    assert ran == []
    (answer,) = [m for m in recording.output["messages"] if m["type"] == "tool"]
    assert answer["status"] == "error" and answer["content"] == REFUSAL and answer["tool_call_id"] == "call_1"
    assert tool_results(recording)["shell"]["error"] == REFUSED
    # Outside a FastAgentic run, the graph's tool runs as it did.
    out = await graph.compile().ainvoke({"messages": []})
    assert ran == ["ls"] and isinstance(out["messages"][-1], ToolMessage)


# ------------------------------------------------------------------------------------------- LlamaIndex


def _llamaindex_agent(ran: list[str]) -> Any:
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.base.llms.types import ChatMessage, ToolCallBlock

    from examples.llamaindex_agent import ScriptedLLM, tool_outputs

    def shell(command: str) -> str:
        """Run a shell command."""
        ran.append(f"shell {command}")
        return "done"

    async def lookup(key: str) -> str:
        """Look a customer's card up."""
        ran.append(f"lookup {key}")
        return f"card of {key}: {SECRET}"

    def script(messages: Any) -> Any:
        seen = tool_outputs(messages)
        if seen:
            return " | ".join(seen)
        return ChatMessage(
            role="assistant",
            blocks=[
                ToolCallBlock(
                    tool_call_id="call_shell", tool_name="shell", tool_kwargs={"command": "rm -rf /"}
                ),
                ToolCallBlock(tool_call_id="call_lookup", tool_name="lookup", tool_kwargs={"key": "ADA"}),
            ],
        )

    return FunctionAgent(name="guarded", tools=[shell, lookup], llm=ScriptedLLM(script, "scripted-guarded"))


async def test_llamaindex_refused_calls_never_run_and_results_reach_the_model_masked() -> None:
    ran: list[str] = []
    policy = Policy()
    recording = await run_adapter(_llamaindex_agent(ran), {"prompt": "x"}, checker=policy)
    assert recording.error is None, recording.error
    assert ran == ["lookup ada"]  # shell never ran; lookup ran with the modified arguments
    # What the model saw (the agent runs the two calls concurrently).
    assert sorted(recording.output.split(" | ")) == sorted([REFUSAL, "card of ada: [card]"])
    results = tool_results(recording)
    assert results["shell"] == {"id": "call_shell", "name": "shell", "error": REFUSED}
    assert results["lookup"] == {"id": "call_lookup", "name": "lookup", "result": "card of ada: [card]"}
    assert_nothing_secret(recording)


async def test_llamaindex_without_checks_runs_every_tool_unchanged() -> None:
    ran: list[str] = []
    recording = await run_adapter(_llamaindex_agent(ran), {"prompt": "x"})
    assert sorted(ran) == ["lookup ADA", "shell rm -rf /"]
    assert sorted(recording.output.split(" | ")) == [f"card of ADA: {SECRET}", "done"]


# ------------------------------------------------------------------------------------------------ DSPy


def _dspy_program(ran: list[str]) -> Any:
    from examples.dspy_agent import ScriptedLM, field_of

    def shell(command: str) -> str:
        """Run a shell command."""
        ran.append(f"shell {command}")
        return "done"

    def lookup(key: str) -> str:
        """Look a customer's card up."""
        ran.append(f"lookup {key}")
        return f"card of {key}: {SECRET}"

    def script(text: str) -> dict[str, Any]:
        if "observation_2" in text:  # extract: what the model saw of both tools
            seen = f"{field_of(text, 'observation_0')} | {field_of(text, 'observation_1')}"
            return {"reasoning": "done", "answer": seen}
        if "observation_1" in text:
            return {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}}
        if "observation_0" in text:
            return {"next_thought": "look", "next_tool_name": "lookup", "next_tool_args": {"key": "ADA"}}
        return {"next_thought": "try", "next_tool_name": "shell", "next_tool_args": {"command": "rm -rf /"}}

    from fastagentic.adapters import DSPyAdapter

    return DSPyAdapter(dspy.ReAct("question -> answer", tools=[shell, lookup]), lm=ScriptedLM(script))


async def test_dspy_refused_calls_never_run_and_results_reach_the_model_masked() -> None:
    ran: list[str] = []
    policy = Policy()
    recording = await run_adapter(_dspy_program(ran), {"question": "x"}, checker=policy)
    assert recording.error is None, recording.error
    assert ran == ["lookup ada"]  # shell never ran; lookup ran with the modified arguments
    answer = recording.output["answer"]
    assert REFUSAL in answer and "card of ada: [card]" in answer and SECRET not in answer
    results = tool_results(recording)
    assert results["shell"]["error"] == REFUSED
    assert results["lookup"]["result"] == "card of ada: [card]"
    assert_nothing_secret(recording)
    assert [tool for _, tool, _ in policy.asked] == ["shell", "lookup", "lookup"]  # finish is not checked


async def test_dspy_a_tool_called_from_a_worker_thread_is_checked_too() -> None:
    from examples.dspy_agent import ScriptedLM
    from fastagentic.adapters import DSPyAdapter

    ran: list[str] = []

    def lookup(key: str) -> str:
        """Look a customer's card up."""
        ran.append(key)
        return f"card of {key}: {SECRET}"

    def shell(command: str) -> str:
        """Run a shell command."""
        ran.append(command)
        return "done"

    class Desk(dspy.Module):  # no aforward: the adapter runs it in a worker thread
        def __init__(self) -> None:
            super().__init__()
            self.tools = {"lookup": dspy.Tool(lookup), "shell": dspy.Tool(shell)}

        def forward(self, question: str) -> dspy.Prediction:
            try:
                self.tools["shell"](command="ls")
            except Exception as exc:
                refused = str(exc)
            return dspy.Prediction(card=self.tools["lookup"](key=question), refused=refused)

    adapter = DSPyAdapter(Desk(), lm=ScriptedLM(lambda text: {}))
    recording = await run_adapter(adapter, {"question": "ADA"}, checker=Policy())
    assert recording.error is None, recording.error
    assert recording.output == {"card": "card of ada: [card]", "refused": REFUSAL}
    assert ran == ["ada"]


async def test_dspy_without_checks_runs_every_tool_unchanged() -> None:
    ran: list[str] = []
    recording = await run_adapter(_dspy_program(ran), {"question": "x"})
    assert ran == ["shell rm -rf /", "lookup ADA"]
    assert SECRET in recording.output["answer"]
