"""LlamaIndex agents and engines served through FastAgentic, with no API key: a scripted LLM plays the model.

    pip install "fastagentic[llama-index]"
    fastagentic dev examples.llamaindex_agent:app                      # a local gateway and this worker
    fastagentic run examples.llamaindex_agent:app --gateway HOST:PORT  # against a running gateway

    curl -sN -X POST localhost:8000/v1/agents/calculator/stream -d '{"prompt": "add 2 and 40"}'
    curl -s -X POST localhost:8000/v1/agents/docs/invoke -d '{"prompt": "what does FastAgentic do?"}'
    curl -s -X POST localhost:8000/v1/agents/cleanup/runs -d '{"prompt": "clean /tmp/scratch"}'
    curl -s -X POST localhost:8000/v1/runs/RUN_ID/resume -d '{"answer": "yes"}'

``calculator`` is a ``FunctionAgent`` that calls its ``add`` tool, then streams its answer word by word;
``docs`` is a streaming query engine over a ``SummaryIndex`` of three documents; ``chat`` a
``SimpleChatEngine``; ``cleanup`` a ``FunctionAgent`` whose tool waits for a person (``InputRequiredEvent``, the
run's interrupt). ``ScriptedLLM`` is a subclass of LlamaIndex's own ``MockFunctionCallingLLM`` that answers
from the conversation, streams word by word and reports token usage the way the provider integrations do
(``additional_kwargs``: ``prompt_tokens`` / ``completion_tokens``); swap it for a real LLM
(``OpenAI(model="gpt-4o")``) and nothing else changes.
"""

# No `from __future__ import annotations`: LlamaIndex finds a tool's `ctx: Context` parameter by its
# annotation, which must be the class, not a string.
import re
from collections.abc import Callable, Sequence
from typing import Any

from llama_index.core import Document, SummaryIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    LLMMetadata,
    ToolCallBlock,
)
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.llms.callbacks import llm_chat_callback
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.workflow import Context, HumanResponseEvent, InputRequiredEvent
from pydantic import PrivateAttr

from fastagentic import App

app = App("llamaindex-example", description="LlamaIndex agents and engines on a scripted LLM")

#: ``script(messages)`` -> the assistant's reply: text, or a ChatMessage carrying ToolCallBlocks.
Script = Callable[[Sequence[ChatMessage]], ChatMessage | str]


class ScriptedLLM(MockFunctionCallingLLM):
    """A function-calling LLM that needs no provider: ``script(messages)`` gives the reply; text streams word
    by word, and every reply reports usage (10 prompt tokens a message, 6 completion tokens)."""

    _script: Script = PrivateAttr()
    _name: str = PrivateAttr()

    def __init__(self, script: Script, name: str = "scripted-llm") -> None:
        super().__init__()
        self._script = script
        self._name = name

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_function_calling_model=True, is_chat_model=True, model_name=self._name)

    def _reply(self, messages: Sequence[ChatMessage]) -> tuple[ChatMessage, dict[str, int]]:
        reply = self._script(messages)
        message = reply if isinstance(reply, ChatMessage) else ChatMessage(role="assistant", content=reply)
        return message, {"prompt_tokens": 10 * len(messages), "completion_tokens": 6}

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        message, usage = self._reply(messages)
        return ChatResponse(message=message, additional_kwargs=usage)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        message, usage = self._reply(messages)
        return ChatResponse(message=message, additional_kwargs=usage)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        message, usage = self._reply(messages)

        async def stream() -> ChatResponseAsyncGen:
            text = message.content or ""
            words = text.split(" ") if text else []
            so_far = ""
            for number, word in enumerate(words):
                delta = word if number == 0 else " " + word
                so_far += delta
                last = number == len(words) - 1
                yield ChatResponse(
                    message=message if last else ChatMessage(role="assistant", content=so_far),
                    delta=delta,
                    additional_kwargs=usage if last else {},
                )
            if not words:  # a reply of tool calls only
                yield ChatResponse(message=message, delta="", additional_kwargs=usage)

        return stream()


def call(name: str, arguments: dict[str, Any], call_id: str) -> ChatMessage:
    """An assistant message asking for one tool call."""
    return ChatMessage(
        role="assistant", blocks=[ToolCallBlock(tool_call_id=call_id, tool_name=name, tool_kwargs=arguments)]
    )


def tool_outputs(messages: Sequence[ChatMessage]) -> list[str]:
    """The tool results in the conversation so far."""
    return [m.content or "" for m in messages if m.role == "tool"]


def prompt_of(messages: Sequence[ChatMessage]) -> str:
    return next((m.content or "" for m in messages if m.role == "user"), "")


def numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"-?\d+", text)] or [0]


# ----------------------------------------------------------------------------------- calculator


def calculator_script(messages: Sequence[ChatMessage]) -> ChatMessage | str:
    """Asks for ``add`` with the prompt's numbers, then states the result."""
    results = tool_outputs(messages)
    if results:
        return f"The sum is {results[-1]}."
    a, b = [*numbers(prompt_of(messages)), 0][:2]
    return call("add", {"a": a, "b": b}, "call_add")


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


calculator = FunctionAgent(
    name="calculator",
    description="Adds the numbers in the prompt with its add tool, and says the result.",
    system_prompt="Add the numbers in the prompt with the add tool.",
    tools=[add],
    llm=ScriptedLLM(calculator_script, "scripted-calculator"),
)
app.agent(calculator)  # the adapter is found for the agent; the endpoint is named after it


# ----------------------------------------------------------------------------- query and chat engines

DOCUMENTS = [
    "FastAgentic serves agents over REST, MCP and A2A.",
    "Workers connect to the gateway over gRPC.",
    "Adapters map a framework's run to the event model.",
]


def docs_script(messages: Sequence[ChatMessage]) -> str:
    """Answers with the first document line found in the prompt the query engine built."""
    context = " ".join(m.content or "" for m in messages)
    found = next((line for line in DOCUMENTS if line in context), "nothing")
    return f"From the documents: {found}"


docs = SummaryIndex.from_documents([Document(text=text) for text in DOCUMENTS]).as_query_engine(
    llm=ScriptedLLM(docs_script, "scripted-docs"), streaming=True
)
app.agent(docs, name="docs", description="Answers questions from three documents about FastAgentic.")

chat = SimpleChatEngine.from_defaults(
    llm=ScriptedLLM(lambda messages: f"You said: {prompt_of(messages)}", "scripted-chat")
)
app.agent(chat, name="chat", description="Repeats what you said.")


# ------------------------------------------------------------------------------ human in the loop


def cleanup_script(messages: Sequence[ChatMessage]) -> ChatMessage | str:
    """Asks for ``delete_folder`` on the folder in the prompt, then reports what the tool said."""
    results = tool_outputs(messages)
    if results:
        return f"Cleanup: {results[-1]}."
    folder = (re.findall(r"/\S+", prompt_of(messages)) or ["/tmp/scratch"])[0]
    return call("delete_folder", {"folder": folder}, "call_delete")


async def delete_folder(ctx: Context, folder: str) -> str:
    """Delete a folder, once a person says yes."""
    question = f"Delete everything in {folder}? (yes/no)"
    answer = await ctx.wait_for_event(
        HumanResponseEvent,
        waiter_id=question,
        waiter_event=InputRequiredEvent(prefix=question, user_name="operator"),
        requirements={"user_name": "operator"},
    )
    if str(answer.response).strip().lower() != "yes":
        return f"{folder} kept"
    return f"{folder} deleted"  # a real tool would delete it here


cleanup = FunctionAgent(
    name="cleanup",
    description="Deletes a folder once a person confirms.",
    tools=[delete_folder],
    llm=ScriptedLLM(cleanup_script, "scripted-cleanup"),
)
app.agent(cleanup)  # its InputRequiredEvent is the run's interrupt; the answer is the HumanResponseEvent
