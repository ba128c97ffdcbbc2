"""A LangGraph agent graph served through FastAgentic, with no API key: a scripted chat model plays the LLM.

    pip install "fastagentic[langgraph]"
    fastagentic dev examples.langgraph_graph:app                      # a local gateway and this worker
    fastagentic run examples.langgraph_graph:app --gateway HOST:PORT  # against a running gateway

    curl -sN -X POST localhost:8000/v1/agents/calculator_graph/stream \\
         -d '{"messages": [{"role": "user", "content": "add 2 and 40"}]}'
    curl -s -X POST localhost:8000/v1/agents/ask/invoke -d '{"question": "add 2 and 40"}'

The graph is the classic agent loop: the ``agent`` node calls the chat model, which asks for the ``add``
tool; the ``tools`` node runs it; the model then states the result, streamed word by word. Its state is
checkpointed after every step in FastAgentic's store, so a run whose worker dies resumes at the next node.
``ask`` serves the same graph behind an input of its own (``@app.agent_endpoint(adapter=...)``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Annotated, Any

import msgspec
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import tool
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from typing_extensions import TypedDict  # pydantic describes typing.TypedDict only from Python 3.12

from fastagentic import App
from fastagentic.adapters import LangGraphAdapter

app = App("langgraph-example", description="A LangGraph agent loop on a scripted chat model")


class ScriptedChat(BaseChatModel):
    """A chat model that needs no provider: it asks for ``add`` with the numbers of the question, then
    answers with the tool's result, and reports token usage like a real provider does."""

    model: str = "scripted-chat"

    @property
    def _llm_type(self) -> str:
        return "scripted-chat"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChat:  # type: ignore[override]
        return self

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        usage = {
            "input_tokens": 20 * len(messages),
            "output_tokens": 6,
            "total_tokens": 20 * len(messages) + 6,
        }
        last = messages[-1]
        if isinstance(last, ToolMessage):
            return AIMessage(content=f"The sum is {last.content}.", usage_metadata=usage)  # type: ignore[arg-type]
        question = next((m.content for m in messages if isinstance(m, HumanMessage)), "")
        a, b = ([int(n) for n in re.findall(r"-?\d+", str(question))] + [0, 0])[:2]
        call = {"name": "add", "args": {"a": a, "b": b}, "id": "call_add", "type": "tool_call"}
        return AIMessage(content="", tool_calls=[call], usage_metadata=usage)  # type: ignore[arg-type, list-item]

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
        yield from self._chunks(self._reply(messages))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(self._reply(messages)):
            yield chunk

    def _chunks(self, reply: AIMessage) -> Iterator[ChatGenerationChunk]:
        words = str(reply.content).split(" ") if reply.content else []
        for index, word in enumerate(words):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word if index == 0 else " " + word))
        calls = [
            {"name": c["name"], "args": msgspec.json.encode(c["args"]).decode(), "id": c["id"], "index": i}
            for i, c in enumerate(reply.tool_calls)
        ]
        # The last chunk carries the tool calls and the usage, as providers send them.
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", tool_call_chunks=calls, usage_metadata=reply.usage_metadata)  # type: ignore[arg-type]
        )


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


model = ScriptedChat().bind_tools([add])


async def agent(state: State) -> dict[str, Any]:
    return {"messages": [await model.ainvoke(state["messages"])]}


builder = StateGraph(State)
builder.add_node("agent", agent)
builder.add_node("tools", ToolNode([add]))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", tools_condition)
builder.add_edge("tools", "agent")
graph = builder.compile(name="calculator_graph")

# One line: input and output schemas are the graph's own ({"messages": [...]}).
app.agent(graph, description="Adds the numbers in the last message with its add tool.")


class Question(msgspec.Struct):
    question: str


# Or an input of the endpoint's own, mapped to the graph's input; the output is still the graph's state.
@app.agent_endpoint(adapter=LangGraphAdapter(graph))
def ask(question: Question) -> dict[str, Any]:
    """Asks the calculator graph one question."""
    return {"messages": [{"role": "user", "content": question.question}]}
