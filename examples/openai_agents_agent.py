"""OpenAI Agents SDK agents served through FastAgentic, with no API key: a scripted model plays the LLM.

    pip install "fastagentic[openai-agents]"
    fastagentic dev examples.openai_agents_agent:app                      # a local gateway and this worker
    fastagentic run examples.openai_agents_agent:app --gateway HOST:PORT  # against a running gateway

    curl -sN -X POST localhost:8000/v1/agents/calculator/stream -d '{"prompt": "add 2 and 40"}'
    curl -s -X POST localhost:8000/v1/agents/triage/invoke -d '{"prompt": "quote 3 widgets"}'

``calculator`` calls its ``add`` tool, then streams its answer word by word; ``triage`` hands off to
``billing``, which answers with a structured ``Quote`` (its ``output_type``; the endpoint's output schema is
text or a Quote, as either agent may answer). ``ScriptedModel`` is a
subclass of the SDK's ``Model`` interface that answers from the conversation and streams in the Responses
format, as the SDK's own tests do; swap it for a real model (``model="gpt-4o"``) and nothing else changes.
Tracing is off, so nothing leaves the machine.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from agents import Agent, ModelSettings, function_tool, set_tracing_disabled
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import ModelResponse, TResponseInputItem, TResponseOutputItem, TResponseStreamEvent
from agents.models.interface import Model, ModelTracing
from agents.tool import Tool
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseUsage,
)
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails
from pydantic import BaseModel

from fastagentic import App

set_tracing_disabled(True)  # the SDK would export traces to the OpenAI platform when a key is set

app = App("openai-agents-example", description="OpenAI Agents SDK agents on a scripted model")

Script = Callable[[list[Any]], list[TResponseOutputItem]]


class ScriptedModel(Model):
    """A model that needs no provider: ``script(items)`` gives the output items for the conversation so far
    (the input items, the prompt first); text streams word by word, and each response reports token usage
    (20 input tokens an item, 6 output tokens) like a provider does."""

    def __init__(self, script: Script, name: str = "scripted-model") -> None:
        self.script = script
        self.name = name

    def _response(self, input: str | list[TResponseInputItem]) -> Response:
        items: list[Any] = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        usage = ResponseUsage(
            input_tokens=20 * len(items),
            output_tokens=6,
            total_tokens=20 * len(items) + 6,
            input_tokens_details=InputTokensDetails.model_validate(
                {"cached_tokens": 0, "cache_write_tokens": 0}
            ),
            output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
        )
        return Response(
            id=f"resp_{len(items)}",
            created_at=0,
            model=self.name,
            object="response",
            output=self.script(items),
            tool_choice="auto",
            tools=[],
            parallel_tool_calls=False,
            status="completed",
            usage=usage,
        )

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: Any = None,
    ) -> ModelResponse:
        response = self._response(input)
        assert response.usage is not None
        usage = Usage(
            requests=1,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            total_tokens=response.usage.total_tokens,
        )
        return ModelResponse(output=response.output, usage=usage, response_id=response.id)

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: Any = None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        response = self._response(input)
        started = response.model_copy(update={"output": [], "status": "in_progress", "usage": None})
        yield ResponseCreatedEvent(type="response.created", response=started, sequence_number=0)
        sequence = 1
        for index, item in enumerate(response.output):
            if isinstance(item, ResponseOutputMessage):
                text = "".join(c.text for c in item.content if isinstance(c, ResponseOutputText))
                for number, word in enumerate(text.split(" ")):
                    yield ResponseTextDeltaEvent(
                        type="response.output_text.delta",
                        item_id=item.id,
                        output_index=index,
                        content_index=0,
                        delta=word if number == 0 else " " + word,
                        logprobs=[],
                        sequence_number=sequence,
                    )
                    sequence += 1
        # The Runner builds the turn from the completed response: its output items and its usage.
        yield ResponseCompletedEvent(type="response.completed", response=response, sequence_number=sequence)


def say(text: str) -> ResponseOutputMessage:
    content = ResponseOutputText(type="output_text", text=text, annotations=[], logprobs=[])
    return ResponseOutputMessage(
        id="msg_1", type="message", role="assistant", status="completed", content=[content]
    )


def call(name: str, arguments: dict[str, Any], call_id: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        id=call_id, call_id=call_id, type="function_call", name=name, arguments=json.dumps(arguments)
    )


def prompt_of(items: list[Any]) -> str:
    first = items[0] if items else {}
    return str(first.get("content", "")) if isinstance(first, dict) else ""


def outputs_of(items: list[Any]) -> list[str]:
    """The tool outputs in the conversation so far."""
    return [
        str(i["output"]) for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"
    ]


def numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"-?\d+", text)] or [0]


# ----------------------------------------------------------------------------------- calculator


def calculator_script(items: list[Any]) -> list[TResponseOutputItem]:
    """Asks for ``add`` with the prompt's numbers, then states the result."""
    results = outputs_of(items)
    if results:
        return [say(f"The sum is {results[-1]}.")]
    a, b = [*numbers(prompt_of(items)), 0][:2]
    return [call("add", {"a": a, "b": b}, "call_add")]


@function_tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


calculator = Agent(
    name="calculator",
    handoff_description="Adds the numbers in the prompt with its add tool, and says the result.",
    instructions="Add the numbers in the prompt with the add tool.",
    model=ScriptedModel(calculator_script, "scripted-calculator"),
    tools=[add],
)
app.agent(calculator)  # the adapter is found for the agent; the endpoint is named after it


# ------------------------------------------------------------------------------ triage -> billing


class Quote(BaseModel):
    """A price quote."""

    item: str
    quantity: int
    total_cents: int


def billing_script(items: list[Any]) -> list[TResponseOutputItem]:
    """Asks for the unit price, then answers with the quote as JSON (the agent's output_type)."""
    results = outputs_of(items)
    if len(results) < 2:  # the handoff's own output is the first
        return [call("unit_price", {"item": "widget"}, "call_price")]
    quantity = numbers(prompt_of(items))[0]
    quote = {"item": "widget", "quantity": quantity, "total_cents": quantity * int(results[-1])}
    return [say(json.dumps(quote))]


@function_tool
def unit_price(item: str) -> int:
    """The unit price of an item, in cents."""
    return {"widget": 250}.get(item, 100)


billing = Agent(
    name="billing",
    handoff_description="Quotes prices.",
    model=ScriptedModel(billing_script, "scripted-billing"),
    tools=[unit_price],
    output_type=Quote,
)


def triage_script(items: list[Any]) -> list[TResponseOutputItem]:
    return [call("transfer_to_billing", {}, "call_handoff")]


triage = Agent(
    name="triage",
    handoff_description="Sends each question to the right agent.",
    model=ScriptedModel(triage_script, "scripted-triage"),
    handoffs=[billing],
)
app.agent(triage)
