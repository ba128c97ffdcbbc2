"""``ctx.interrupt`` and its spellings in the SDK, without a gateway: the event it emits, the schema it
sends, the answer converted to the requested type, answers given to an earlier attempt returned at once."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fastagentic import RunContext
from fastagentic.context import Caller, Decision, SamplingUnavailable


class Refund(msgspec.Struct):
    amount: int
    note: str = ""


def _context(answers: dict[str, Any] | None = None, reply: bytes = b"null") -> tuple[RunContext, list[Any]]:
    emitted: list[Any] = []

    def sink(kind: str, data: bytes, checkpoint: bytes | None) -> None:
        emitted.append((kind, msgspec.json.decode(data), checkpoint))

    async def asker(interrupt_id: str, data: bytes) -> bytes:
        sink("interrupt", data, None)
        return reply

    context = RunContext(
        run_id="run_1",
        attempt=1,
        endpoint="e",
        caller=Caller(principal="p", tenant="t"),
        sink=sink,
        answers=answers,
        asker=asker,
    )
    return context, emitted


async def test_an_interrupt_sends_its_request_and_schema_and_converts_the_answer() -> None:
    context, emitted = _context(reply=b'{"amount": 5}')
    answer = await context.interrupt({"question": "how much?"}, schema=Refund, checkpoint={"step": 2})
    assert answer == Refund(amount=5)
    assert context.resume_input == {"amount": 5}
    (kind, _, saved), (interrupt, data, _) = emitted
    assert kind == "checkpoint" and saved == b'{"step":2}'
    assert (
        interrupt == "interrupt"
        and data["id"] == "interrupt-1"
        and data["request"] == {"question": "how much?"}
    )
    assert data["schema"]["required"] == ["amount"] and data["schema"]["properties"]["note"]["default"] == ""


async def test_answers_given_to_an_earlier_attempt_return_at_once() -> None:
    context, emitted = _context(answers={"refund": {"decision": "reject", "reason": "too much"}})
    decision = await context.approve("refund", {"amount": 30}, id="refund")
    assert decision == Decision(decision="reject", reason="too much") and not decision.approved
    assert emitted == []


async def test_ids_count_interrupts_in_call_order_and_must_be_well_formed() -> None:
    context, emitted = _context()
    await context.elicit("name?")
    await context.interrupt("again")
    assert [data["id"] for _, data, _ in emitted] == ["interrupt-1", "interrupt-2"]
    assert emitted[0][1]["request"] == {"message": "name?"} and emitted[0][1]["schema"] is None
    with pytest.raises(ValueError, match="interrupt id"):
        await context.interrupt("x", id="has spaces")


async def test_an_interrupt_is_not_an_event_to_emit_by_hand_and_needs_a_gateway() -> None:
    context, _ = _context()
    with pytest.raises(ValueError, match=r"call ctx.interrupt"):
        await context.emit("interrupt", {"id": "x"})
    with pytest.raises(ValueError, match="emitted by the gateway"):
        await context.emit("input", {"id": "x"})
    alone = RunContext(run_id="r", attempt=1, endpoint="e", caller=Caller("p", "t"), sink=lambda *a: None)
    with pytest.raises(RuntimeError, match="needs a gateway"):
        await alone.interrupt("?")


# ---------------------------------------------------------------- ctx.sample


def _sampling_context(protocol: str, reply: bytes) -> tuple[RunContext, list[Any]]:
    context, emitted = _context(reply=reply)
    context.protocol = protocol
    return context, emitted


async def test_sample_sends_create_message_params_and_returns_the_result() -> None:
    reply = b'{"role":"assistant","content":[{"type":"text","text":"Hi "},{"type":"text","text":"there"}],"model":"m","stopReason":"endTurn"}'
    context, emitted = _sampling_context("mcp", reply)
    sample = await context.sample(
        ["hello", {"role": "assistant", "content": {"type": "text", "text": "yes?"}}],
        max_tokens=10,
        stop_sequences=["\n"],
        id="greeting",
    )
    assert (sample.role, sample.model, sample.stop_reason, sample.text) == (
        "assistant",
        "m",
        "endTurn",
        "Hi there",
    )
    ((kind, data, _),) = emitted
    assert kind == "interrupt" and data["id"] == "greeting"
    assert data["request"] == {
        "sampling": {
            "messages": [
                {"role": "user", "content": {"type": "text", "text": "hello"}},
                {"role": "assistant", "content": {"type": "text", "text": "yes?"}},
            ],
            "maxTokens": 10,
            "stopSequences": ["\n"],
        }
    }
    assert [option["required"] for option in data["schema"]["anyOf"]] == [
        ["role", "content"],
        ["unavailable"],
    ]


async def test_sample_raises_with_the_reason_a_client_could_not_answer() -> None:
    context, _ = _sampling_context("mcp", b'{"unavailable": "no sampling here"}')
    with pytest.raises(SamplingUnavailable, match="no sampling here"):
        await context.sample("hello")


@pytest.mark.parametrize("protocol", ["rest", "a2a"])
async def test_sample_over_another_protocol_raises_at_once_without_asking(protocol: str) -> None:
    context, emitted = _sampling_context(protocol, b"null")
    with pytest.raises(SamplingUnavailable, match=f"called over {protocol}"):
        await context.sample("hello")
    assert emitted == []


@pytest.mark.parametrize(
    ("messages", "options", "problem"),
    [
        ([], {}, "at least one message"),
        ([{"role": "system", "content": "x"}], {}, "each sampling message"),
        ([{"role": "user", "content": 5}], {}, "content must be"),
        ("hi", {"max_tokens": 0}, "max_tokens"),
    ],
)
async def test_sample_refuses_what_no_client_could_take(
    messages: Any, options: dict[str, Any], problem: str
) -> None:
    context, emitted = _sampling_context("mcp", b"null")
    with pytest.raises(ValueError, match=problem):
        await context.sample(messages, **options)
    assert emitted == []
