"""LlamaIndex human in the loop as the run's interrupts, in process through the contract kit, on the
example's scripted LLM: a tool's ``InputRequiredEvent`` is the run's interrupt, the answer reaches the tool as
the ``HumanResponseEvent`` it waits for (matching its requirements), its tool call is shown once; a new
attempt given the answer does not ask again; the same question asked twice is two interrupts; a custom
response event is built by ``human_response``."""

# No `from __future__ import annotations`: LlamaIndex finds a tool's `ctx: Context` parameter by its
# annotation, which must be the class, not a string.
from collections.abc import Sequence
from typing import Any

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.workflow import Context, Event, HumanResponseEvent, InputRequiredEvent

from examples.llamaindex_agent import ScriptedLLM, call, cleanup, tool_outputs
from fastagentic.adapters import LlamaIndexAdapter
from fastagentic.adapters.llamaindex import human_response
from fastagentic.testing import Unanswered, check_event_order, run_adapter

CLEAN = {"prompt": "clean /tmp/scratch"}


async def test_an_input_required_event_is_the_runs_interrupt_and_the_answer_reaches_the_tool() -> None:
    asked: list[tuple[str, Any]] = []

    def answer(interrupt_id: str, request: Any) -> Any:
        asked.append((interrupt_id, request))
        return "yes"

    recording = await run_adapter(cleanup, CLEAN, answer=answer)
    assert recording.error is None, recording.error
    assert recording.output == "Cleanup: /tmp/scratch deleted."
    ((interrupt_id, request),) = asked
    assert interrupt_id.startswith("llamaindex-") and interrupt_id.endswith("-1")
    question = "Delete everything in /tmp/scratch? (yes/no)"
    assert request == {
        "message": question,
        "input_required": {"prefix": question, "user_name": "operator"},
    }
    (interrupt,) = recording.of("interrupt")
    assert interrupt["schema"] is None  # any JSON: a text over MCP forms and A2A
    check_event_order(recording)
    kinds = [k for k in recording.kinds if k not in ("token", "message")]
    # The tool runs again once the answer came (LlamaIndex's wait_for_event): its call is shown once.
    assert kinds == [
        "llm_start",
        "llm_end",
        "tool_call",
        "interrupt",
        "input",
        "tool_result",
        "llm_start",
        "llm_end",
    ], kinds
    assert recording.of("tool_result") == [
        {"id": "call_delete", "name": "delete_folder", "result": "/tmp/scratch deleted"}
    ]


async def test_a_no_reaches_the_tool_too() -> None:
    recording = await run_adapter(cleanup, CLEAN, answer=lambda i, r: "no")
    assert recording.output == "Cleanup: /tmp/scratch kept."


async def test_a_new_attempt_given_the_answer_does_not_ask_again() -> None:
    waiting = await run_adapter(cleanup, CLEAN)  # nobody answers in place: a durable run handed back
    assert isinstance(waiting.error, Unanswered)
    (pending,) = waiting.of("interrupt")
    # The new attempt starts over (no checkpoints), meets the same question and gets its answer at once.
    resumed = await run_adapter(cleanup, CLEAN, attempt=2, answers={pending["id"]: "yes"})
    assert resumed.error is None, resumed.error
    assert resumed.of("interrupt") == []
    assert resumed.output == "Cleanup: /tmp/scratch deleted."


def _twice(messages: Sequence[ChatMessage]) -> ChatMessage | str:
    results = tool_outputs(messages)
    if len(results) == 2:
        return " and ".join(results)
    return call("confirm", {}, f"call_{len(results)}")


async def confirm(ctx: Context) -> str:
    """Ask the same question each time."""
    answer = await ctx.wait_for_event(
        HumanResponseEvent, waiter_id="sure", waiter_event=InputRequiredEvent(prefix="Sure?")
    )
    return str(answer.response)


async def test_the_same_question_asked_twice_is_two_interrupts() -> None:
    agent = FunctionAgent(name="twice", tools=[confirm], llm=ScriptedLLM(_twice))
    answers = iter(["first", "second"])
    recording = await run_adapter(agent, {"prompt": "go"}, answer=lambda i, r: next(answers))
    assert recording.output == "first and second"
    first, second = (i["id"] for i in recording.of("interrupt"))
    assert first.endswith("-1") and second.endswith("-2") and first[:-2] == second[:-2]
    check_event_order(recording)


class Verdict(Event):
    approved: bool
    who: str


async def judged(ctx: Context) -> str:
    """Wait for a verdict, not a HumanResponseEvent."""
    verdict = await ctx.wait_for_event(
        Verdict, waiter_event=InputRequiredEvent(prefix="Verdict?", who="judge")
    )
    return f"approved={verdict.approved} by {verdict.who}"


async def test_human_response_builds_the_event_a_workflow_waits_for() -> None:
    def script(messages: Sequence[ChatMessage]) -> ChatMessage | str:
        results = tool_outputs(messages)
        return results[-1] if results else call("judged", {}, "call_j")

    agent = FunctionAgent(name="judge", tools=[judged], llm=ScriptedLLM(script))
    adapter = LlamaIndexAdapter(
        agent, human_response=lambda asked, answer: Verdict(approved=answer["approved"], who=asked.who)
    )
    recording = await run_adapter(adapter, {"prompt": "go"}, answer=lambda i, r: {"approved": True})
    assert recording.output == "approved=True by judge", recording.error


def test_the_default_response_carries_the_asking_events_fields_but_its_prefix() -> None:
    answered = human_response(InputRequiredEvent(prefix="Name?", user_name="ann"), "Ann")
    assert isinstance(answered, HumanResponseEvent)
    assert dict(answered) == {"response": "Ann", "user_name": "ann"}


class AskName(InputRequiredEvent):
    """An InputRequiredEvent subclass with declared fields (LlamaIndex keeps those out of ``dict(event)``)."""

    prefix: str
    user_name: str


async def ask_name(ctx: Context) -> str:
    """Ask a name, with a declared event type."""
    answer = await ctx.wait_for_event(
        HumanResponseEvent,
        waiter_event=AskName(prefix="Name?", user_name="ann"),
        requirements={"user_name": "ann"},
    )
    return f"hello {answer.response}"


async def test_a_subclass_with_declared_fields_is_asked_with_them_and_answered() -> None:
    def script(messages: Sequence[ChatMessage]) -> ChatMessage | str:
        results = tool_outputs(messages)
        return results[-1] if results else call("ask_name", {}, "call_n")

    agent = FunctionAgent(name="namer", tools=[ask_name], llm=ScriptedLLM(script))
    recording = await run_adapter(agent, {"prompt": "go"}, answer=lambda i, r: "Ann")
    assert recording.output == "hello Ann", recording.error
    (asked,) = recording.of("interrupt")
    assert asked["request"] == {"message": "Name?", "input_required": {"prefix": "Name?", "user_name": "ann"}}
