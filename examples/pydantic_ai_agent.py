"""PydanticAI agents served through FastAgentic, with no API key: a scripted ``FunctionModel`` plays the LLM.

    pip install "fastagentic[pydantic-ai]"
    fastagentic dev examples.pydantic_ai_agent:app                      # a local gateway and this worker
    fastagentic run examples.pydantic_ai_agent:app --gateway HOST:PORT  # against a running gateway

    curl -sN -X POST localhost:8000/v1/agents/calculator/stream -d '{"prompt": "add 2 and 40"}'
    curl -s -X POST localhost:8000/v1/agents/quote/invoke -d '{"prompt": "3 widgets"}'
    curl -s -X POST localhost:8000/v1/agents/refunds/runs -d '{"prompt": "refund 30 on order A-17"}'
    curl -s -X POST localhost:8000/v1/runs/RUN_ID/resume -d '{"answer": {"decision": "approve"}}'
    curl -s -X POST localhost:8000/v1/runs/RUN_ID/resume -d '{"answer": {"result": "booked for 9:00"}}'

``calculator`` calls its ``add`` tool, then streams its answer word by word; ``quote`` answers with a
structured ``Quote`` (its output schema is the model's); ``refunds`` calls a tool that needs a person's
approval and an external tool (deferred tools), so its run waits for two answers. Swap the
``FunctionModel`` for a real model ("openai:gpt-4o", ...) and nothing else changes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from pydantic import BaseModel
from pydantic_ai import Agent, CallDeferred
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from fastagentic import App
from fastagentic.adapters import PydanticAIAdapter

app = App("pydantic-ai-example", description="PydanticAI agents on scripted models")


def _prompt(messages: list[ModelMessage]) -> str:
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    return ""


def _tool_results(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    last = messages[-1]
    if not isinstance(last, ModelRequest):
        return []
    return [part for part in last.parts if isinstance(part, ToolReturnPart)]


def _numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"-?\d+", text)] or [0]


# ----------------------------------------------------------------------------------- calculator


async def calculator_model(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls]:
    """The scripted LLM: first asks for ``add`` with the prompt's numbers, then states the result."""
    results = _tool_results(messages)
    if not results:
        a, b = ([*_numbers(_prompt(messages)), 0])[:2]
        yield {0: DeltaToolCall(name="add", json_args=f'{{"a": {a}, "b": {b}}}', tool_call_id="call_add")}
        return
    for index, word in enumerate(f"The sum is {results[0].content}.".split(" ")):
        yield word if index == 0 else " " + word


def _unused(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    # The adapter always streams; a FunctionModel still needs a function for non-streamed requests.
    return ModelResponse(parts=[TextPart("streamed only")])


calculator = Agent(
    FunctionModel(_unused, stream_function=calculator_model, model_name="scripted-calculator"),
    name="calculator",
    description="Adds the numbers in the prompt with its add tool, and says the result.",
)


@calculator.tool_plain
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


# A budget past its downgrade threshold hints "small-model": the next request uses this one.
small = FunctionModel(_unused, stream_function=calculator_model, model_name="small-model")
app.agent(PydanticAIAdapter(calculator, models={"small-model": small}))


# ---------------------------------------------------------------------------------------- quote


class Quote(BaseModel):
    """A price quote."""

    item: str
    quantity: int
    total_cents: int


async def quote_model(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
    """Asks for the unit price, then answers through the output tool (structured output)."""
    results = _tool_results(messages)
    prompt = _prompt(messages)
    if not results:
        yield {0: DeltaToolCall(name="unit_price", json_args='{"item": "widget"}', tool_call_id="call_price")}
        return
    quantity = _numbers(prompt)[0]
    total = quantity * int(results[0].content)
    arguments = f'{{"item": "widget", "quantity": {quantity}, "total_cents": {total}}}'
    yield {0: DeltaToolCall(name=info.output_tools[0].name, json_args=arguments, tool_call_id="call_out")}


quote = Agent(
    FunctionModel(_unused, stream_function=quote_model, model_name="scripted-quote"),
    name="quote",
    output_type=Quote,
    description="Quotes a price for the quantity in the prompt.",
)


@quote.tool_plain
def unit_price(item: str) -> int:
    """The unit price of an item, in cents."""
    return {"widget": 250}.get(item, 100)


app.agent(quote)  # the adapter is found for the agent; the endpoint is named after it


# -------------------------------------------------------------------------------------- refunds


async def refunds_model(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
    """Asks for a refund (needs approval) and a courier pickup (run outside the agent), then reports."""
    results = _tool_results(messages)
    if not results and not any(isinstance(m, ModelResponse) for m in messages):
        prompt = _prompt(messages)
        order = (re.findall(r"[A-Z]-\d+", prompt) or ["A-1"])[0]
        amount = _numbers(prompt)[0]
        refund_args = f'{{"order": "{order}", "amount": {amount}}}'
        yield {
            0: DeltaToolCall(name="refund", json_args=refund_args, tool_call_id="call_refund"),
            1: DeltaToolCall(name="pickup", json_args=f'{{"order": "{order}"}}', tool_call_id="call_pickup"),
        }
        return
    answers = {part.tool_name: part.content for part in results}
    retries = {part.tool_name: part.content for part in _retries(messages)}
    refund = answers.get("refund", retries.get("refund", "no answer"))
    pickup = answers.get("pickup", retries.get("pickup", "no answer"))
    for index, word in enumerate(f"Refund: {refund}. Pickup: {pickup}.".split(" ")):
        yield word if index == 0 else " " + word


def _retries(messages: list[ModelMessage]) -> list[RetryPromptPart]:
    last = messages[-1]
    if not isinstance(last, ModelRequest):
        return []
    return [part for part in last.parts if isinstance(part, RetryPromptPart)]


refunds = Agent(
    FunctionModel(_unused, stream_function=refunds_model, model_name="scripted-refunds"),
    name="refunds",
    description="Refunds an order once a person approves, and books the courier pickup.",
)


@refunds.tool_plain(requires_approval=True)
def refund(order: str, amount: int) -> str:
    """Refund ``amount`` on ``order`` (a person approves, or edits the amount, first)."""
    return f"refunded {amount} on {order}"


@refunds.tool_plain
def pickup(order: str) -> str:
    """Book the courier pickup of the returned goods: done outside the agent, its result is given back."""
    raise CallDeferred(metadata={"queue": "courier"})


app.agent(refunds)  # its deferred tools are the run's interrupts
