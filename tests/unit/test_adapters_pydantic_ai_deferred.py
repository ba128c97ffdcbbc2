"""PydanticAI deferred tools as the run's interrupts, in process through the contract kit, on scripted
FunctionModels: a call that needs approval asks what ``ctx.approve`` asks (approve, edit, reject), an
external call (``CallDeferred``) asks for its result or error, the run goes on in place; a new attempt given
the answers (a durable run handed back while it waited) does not ask again; a call deferred again after its
answer is asked about as an external call; a tool that asks for approval for ever is stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic_ai import Agent, ApprovalRequired, CallDeferred
from pydantic_ai import RunContext as AgentContext
from pydantic_ai.messages import ModelMessage, ModelRequest, RetryPromptPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.tools import DeferredToolRequests

from examples.pydantic_ai_agent import refunds
from fastagentic.adapters import adapter_for
from fastagentic.adapters.pydantic_ai import _interrupt_id
from fastagentic.context import INTERRUPT_ID
from fastagentic.testing import Unanswered, check_event_order, run_adapter

REFUND = {"prompt": "refund 30 on order A-17"}
APPROVE = "pydantic-ai-approve-call_refund"
PICKUP = "pydantic-ai-call-call_pickup"


class _Answers:
    """A person answering the run's interrupts, and what they were asked."""

    def __init__(self, approval: Any, pickup: Any = None) -> None:
        self.given = {
            APPROVE: approval,
            PICKUP: pickup if pickup is not None else {"result": "booked for 9:00"},
        }
        self.asked: list[tuple[str, Any]] = []

    def __call__(self, interrupt_id: str, request: Any) -> Any:
        self.asked.append((interrupt_id, request))
        return self.given[interrupt_id]


async def test_an_approval_and_an_external_call_are_the_runs_interrupts_and_the_run_goes_on() -> None:
    answer = _Answers({"decision": "approve"})
    recording = await run_adapter(refunds, REFUND, answer=answer)
    assert recording.error is None, recording.error
    assert recording.output == "Refund: refunded 30 on A-17. Pickup: booked for 9:00."
    assert answer.asked == [
        (APPROVE, {"approval": {"action": "refund", "details": {"order": "A-17", "amount": 30}}}),
        (
            PICKUP,
            {
                "tool_call": {
                    "id": "call_pickup",
                    "name": "pickup",
                    "arguments": {"order": "A-17"},
                    "kind": "external",
                    "metadata": {"queue": "courier"},
                }
            },
        ),
    ]
    approval, external = recording.of("interrupt")
    # The approval's answer schema is ctx.approve's Decision, its edited payload an object of arguments.
    assert approval["schema"]["properties"]["decision"]["enum"] == ["approve", "edit", "reject"]
    assert {"type": "object"} in approval["schema"]["properties"]["payload"]["anyOf"]
    # The external call's answer: {"result": ...} or {"error": "..."}, nothing else.
    assert len(external["schema"]["anyOf"]) == 2
    check_event_order(recording)
    # Each call shown once, its interrupt between its tool_call and its tool_result; one model call after.
    kinds = [k for k in recording.kinds if k not in ("checkpoint", "token", "message")]
    assert kinds == [
        "llm_start",
        "llm_end",
        "tool_call",
        "tool_call",
        "interrupt",
        "input",
        "interrupt",
        "input",
        "tool_result",
        "tool_result",
        "llm_start",
        "llm_end",
    ], kinds
    results = {r["id"]: r for r in recording.of("tool_result")}
    assert results["call_refund"]["result"] == "refunded 30 on A-17"
    assert results["call_pickup"]["result"] == "booked for 9:00"


async def test_a_rejected_approval_tells_the_model_why_and_the_tool_does_not_run() -> None:
    answer = _Answers({"decision": "reject", "reason": "over the limit"})
    recording = await run_adapter(refunds, REFUND, answer=answer)
    assert recording.output == "Refund: over the limit. Pickup: booked for 9:00."
    results = {r["id"]: r for r in recording.of("tool_result")}
    assert results["call_refund"]["error"] == {"type": "denied", "message": "over the limit"}
    check_event_order(recording)


async def test_an_edited_approval_runs_the_tool_with_the_edited_arguments() -> None:
    answer = _Answers({"decision": "edit", "payload": {"amount": 20}})
    recording = await run_adapter(refunds, REFUND, answer=answer)
    assert recording.output == "Refund: refunded 20 on A-17. Pickup: booked for 9:00."
    # "edit" without a payload approves the arguments as they are.
    unchanged = await run_adapter(refunds, REFUND, answer=_Answers({"decision": "edit"}))
    assert unchanged.output == "Refund: refunded 30 on A-17. Pickup: booked for 9:00."


async def test_an_external_calls_error_is_the_tool_results_error_and_the_model_sees_it() -> None:
    answer = _Answers({"decision": "approve"}, {"error": "no courier today"})
    recording = await run_adapter(refunds, REFUND, answer=answer)
    assert recording.output == "Refund: refunded 30 on A-17. Pickup: no courier today."
    results = {r["id"]: r for r in recording.of("tool_result")}
    assert results["call_pickup"]["error"] == {"type": "failed", "message": "no courier today"}


async def test_a_new_attempt_given_the_answers_does_not_ask_again() -> None:
    # Nobody answers in place (a durable run handed back): the run stops at the first interrupt.
    waiting = await run_adapter(refunds, REFUND)
    assert isinstance(waiting.error, Unanswered)
    assert [i["id"] for i in waiting.of("interrupt")] == [APPROVE]
    assert len(waiting.of("llm_end")) == 1
    assert {r["error"]["type"] for r in waiting.of("tool_result")} == {"Unanswered"}  # no tool ran
    # Attempt 2 from the checkpoint (the model's response), given the first answer: it asks the next one.
    second = await run_adapter(
        refunds,
        REFUND,
        attempt=2,
        checkpoint_state=waiting.checkpoints[-1],
        answers={APPROVE: {"decision": "approve"}},
    )
    assert isinstance(second.error, Unanswered)
    assert [i["id"] for i in second.of("interrupt")] == [PICKUP]
    assert second.of("llm_end") == []  # the model is not asked again for the calls
    # Attempt 3, given both answers: nothing is asked, the tools and then the model run once.
    third = await run_adapter(
        refunds,
        REFUND,
        attempt=3,
        checkpoint_state=second.checkpoints[-1] if second.checkpoints else waiting.checkpoints[-1],
        answers={APPROVE: {"decision": "approve"}, PICKUP: {"result": "booked"}},
    )
    assert third.error is None, third.error
    assert third.of("interrupt") == []
    assert third.output == "Refund: refunded 30 on A-17. Pickup: booked."
    assert len(third.of("llm_end")) == 1 and len(third.of("tool_result")) == 2
    check_event_order(third)


def _one_call(tool: str) -> FunctionModel:
    async def model(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        answered = [
            p.content
            for m in messages
            if isinstance(m, ModelRequest)
            for p in m.parts
            if isinstance(p, ToolReturnPart | RetryPromptPart)
        ]
        if not answered:
            yield {0: DeltaToolCall(name=tool, json_args='{"amount": 5}', tool_call_id="call_1")}
            return
        yield f"answered: {answered[0]}"

    return FunctionModel(stream_function=model)


async def test_a_call_deferred_again_after_its_approval_is_asked_as_an_external_call() -> None:
    # The PydanticAI docs' way: DeferredToolRequests among the output types. The adapter answers them, so
    # the endpoint's output is the rest.
    agent = Agent(_one_call("pay"), name="payer", output_type=[str, DeferredToolRequests])

    @agent.tool
    def pay(ctx: AgentContext[Any], amount: int) -> str:
        if not ctx.tool_call_approved:
            raise ApprovalRequired()
        raise CallDeferred()  # approved: the payment itself runs elsewhere

    assert adapter_for(agent).output_type is str

    def answer(interrupt_id: str, request: Any) -> Any:
        return {"decision": "approve"} if "approve" in interrupt_id else {"result": "paid"}

    recording = await run_adapter(agent, {"prompt": "pay"}, answer=answer)
    assert recording.error is None, recording.error
    assert recording.output == "answered: paid"
    assert [i["id"] for i in recording.of("interrupt")] == [
        "pydantic-ai-approve-call_1",
        "pydantic-ai-call-call_1",
    ]
    check_event_order(recording)


async def test_a_tool_that_asks_for_approval_again_after_it_was_approved_is_stopped() -> None:
    agent = Agent(_one_call("pay"), name="nagging", output_type=[str, DeferredToolRequests])

    @agent.tool_plain
    def pay(amount: int) -> str:
        raise ApprovalRequired()  # never checks ctx.tool_call_approved

    recording = await run_adapter(agent, {"prompt": "pay"}, answer=lambda i, r: {"decision": "approve"})
    assert isinstance(recording.error, RuntimeError)
    assert "deferred call 'call_1' again after it was answered" in str(recording.error)
    assert len(recording.of("interrupt")) == 1


@pytest.mark.parametrize(
    "tool_call_id", ["call_abc", "toolu_01A09q90qw90lq917835lq9", "a/b c", "x" * 80, "pyd_ai_" + "f" * 40]
)
def test_interrupt_ids_are_valid_stable_and_distinct(tool_call_id: str) -> None:
    approve, call = _interrupt_id("approve", tool_call_id), _interrupt_id("call", tool_call_id)
    assert INTERRUPT_ID.fullmatch(approve) and INTERRUPT_ID.fullmatch(call)
    assert approve != call and approve == _interrupt_id("approve", tool_call_id)
    assert _interrupt_id("approve", tool_call_id + "1") != approve
