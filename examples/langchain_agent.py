"""LangChain agents and a chain served through FastAgentic, with no API key: a scripted chat model plays the LLM.

    pip install "fastagentic[langchain]"
    fastagentic dev examples.langchain_agent:app                      # a local gateway and this worker
    fastagentic run examples.langchain_agent:app --gateway HOST:PORT  # against a running gateway

    curl -sN -X POST localhost:8000/v1/agents/calculator/stream \\
         -d '{"messages": [{"role": "user", "content": "add 2 and 40"}]}'
    curl -s -X POST localhost:8000/v1/agents/quote/invoke \\
         -d '{"messages": [{"role": "user", "content": "3 widgets"}]}'
    curl -s -X POST localhost:8000/v1/agents/explain/invoke -d '{"question": "why is the sky blue?"}'

``calculator`` is a ``create_agent`` agent that calls its ``add`` tool, then streams its answer word by
word; ``quote`` answers with a structured ``Quote`` (``response_format``), in its output's
``structured_response``; ``explain`` is a plain LCEL chain (prompt | model | parser). Swap
``ScriptedChatModel`` for a real chat model (``"openai:gpt-4o"``, ``ChatAnthropic(...)``) and nothing else
changes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from fastagentic import App

app = App("langchain-example", description="LangChain agents on a scripted chat model")


class ScriptedChatModel(GenericFakeChatModel):
    """LangChain's fake chat model, made to answer from the conversation (``script(messages)`` returns the
    reply) and to stream like a provider: the text word by word, then a last chunk with the tool calls and
    the token usage (the stock fake drops both when streaming, and has no ``bind_tools``)."""

    script: Callable[[list[BaseMessage]], AIMessage]
    messages: Iterator[Any] = Field(default_factory=lambda: iter(()))  # unused: the script answers
    model_name: str = "scripted-chat"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
        return self

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        reply = self.script(messages)
        if reply.usage_metadata is None:  # as a provider would report it
            reply.usage_metadata = {
                "input_tokens": 20 * len(messages),
                "output_tokens": 6,
                "total_tokens": 20 * len(messages) + 6,
            }
        return reply

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._reply(messages)
        words = str(reply.content).split(" ") if reply.content else []
        for index, word in enumerate(words):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word if index == 0 else " " + word))
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
        calls = [
            {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
            for i, c in enumerate(reply.tool_calls)
        ]
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                tool_call_chunks=calls,  # type: ignore[arg-type]
                usage_metadata=reply.usage_metadata,
                chunk_position="last",
            )
        )


def _question(messages: list[BaseMessage]) -> str:
    return next((str(m.content) for m in messages if isinstance(m, HumanMessage)), "")


def _numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"-?\d+", text)] or [0]


def _call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
    return AIMessage(
        content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}]
    )


# ----------------------------------------------------------------------------------- calculator


def calculator_script(messages: list[BaseMessage]) -> AIMessage:
    """Asks for ``add`` with the question's numbers, then states the tool's result."""
    last = messages[-1]
    if isinstance(last, ToolMessage):
        return AIMessage(content=f"The sum is {last.content}.")
    a, b = [*_numbers(_question(messages)), 0][:2]
    return _call("add", {"a": a, "b": b}, "call_add")


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


calculator = create_agent(
    ScriptedChatModel(script=calculator_script),
    [add],
    system_prompt="Add the numbers in the question with the add tool.",
    name="calculator",
)
# One line: the agent's input and output schemas ({"messages": [...]}), named after the agent.
app.agent(calculator, description="Adds the numbers in the question with its add tool.")


# ---------------------------------------------------------------------------------------- quote


class Quote(BaseModel):
    """A price quote."""

    item: str
    quantity: int
    total_cents: int


def quote_script(messages: list[BaseMessage]) -> AIMessage:
    """Asks for the unit price, then answers through the ``Quote`` tool (structured output)."""
    last = messages[-1]
    if not isinstance(last, ToolMessage):
        return _call("unit_price", {"item": "widget"}, "call_price")
    quantity = _numbers(_question(messages))[0]
    answer = {"item": "widget", "quantity": quantity, "total_cents": quantity * int(str(last.content))}
    return _call("Quote", answer, "call_quote")


@tool
def unit_price(item: str) -> int:
    """The unit price of an item, in cents."""
    return {"widget": 250}.get(item, 100)


quote = create_agent(
    ScriptedChatModel(script=quote_script, model_name="scripted-quote"),
    [unit_price],
    response_format=Quote,
    name="quote",
)
app.agent(quote, description="Quotes a price for the quantity in the question.")


# -------------------------------------------------------------------------------------- explain


def explain_script(messages: list[BaseMessage]) -> AIMessage:
    return AIMessage(content=f"You asked: {_question(messages)} Light scatters.")


explain = (
    ChatPromptTemplate.from_messages([("system", "Explain briefly."), ("human", "{question}")])
    | ScriptedChatModel(script=explain_script, model_name="scripted-explain")
    | StrOutputParser()
)
# A chain has no name of its own: give one. Its input is the prompt's ({"question": str}).
app.agent(explain, name="explain", description="Explains, briefly.")
