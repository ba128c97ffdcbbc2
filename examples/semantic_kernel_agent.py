"""A Semantic Kernel agent and a kernel function served through FastAgentic, with no API key: a scripted chat
completion service plays the model.

Semantic Kernel goes in the worker's own virtual environment (its pins cannot sit beside the gateway's):

    python -m venv .venv-sk && .venv-sk/bin/pip install "fastagentic[semantic-kernel]"
    .venv-sk/bin/fastagentic run examples.semantic_kernel_agent:app --gateway HOST:PORT

    curl -sN -X POST localhost:8000/v1/agents/facts/stream -d '{"prompt": "owls"}'
    curl -s -X POST localhost:8000/v1/agents/summarize/invoke -d '{"topic": "owls"}'

``facts`` is a ``ChatCompletionAgent`` with the ``Facts`` plugin: the model calls ``Facts-lookup``, then
streams a one-line answer. ``summarize`` is a prompt function on a kernel with the same plugin and service,
auto-invoking functions. ``ScriptedChatService`` is a ``ChatCompletionClientBase`` (SK's own base class for
chat services, ``SUPPORTS_FUNCTION_CALLING = True``) answering with text or a ``FunctionCallContent``, computed
from the chat history, and reporting usage like a provider (``metadata["usage"]``: 10 tokens a message in, 6
out); swap it for ``OpenAIChatCompletion(ai_model_id="gpt-4o-mini")`` and nothing else changes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from typing import Annotated, Any

from semantic_kernel import Kernel
from semantic_kernel.agents import ChatCompletionAgent
from semantic_kernel.connectors.ai import FunctionChoiceBehavior, PromptExecutionSettings
from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase
from semantic_kernel.connectors.ai.completion_usage import CompletionUsage
from semantic_kernel.contents import (
    AuthorRole,
    ChatHistory,
    ChatMessageContent,
    FunctionCallContent,
    FunctionResultContent,
    StreamingChatMessageContent,
)
from semantic_kernel.functions import kernel_function

from fastagentic import App
from fastagentic.adapters import SemanticKernelAdapter

app = App("semantic-kernel-example", description="A Semantic Kernel agent on a scripted chat service")


class Call:
    """What a script returns to call a function: ``Call("Facts-lookup", topic="owls")``."""

    def __init__(self, name: str, **arguments: Any) -> None:
        self.name = name
        self.arguments = arguments


#: ``script(history)`` -> the model's reply: text, or a ``Call``.
Script = Callable[[ChatHistory], "str | Call"]


class ScriptedChatService(ChatCompletionClientBase):
    """An offline chat completion service: answers ``script(history)`` (text, streamed a word a chunk, or a
    function call) and reports 10 input tokens a message and 6 output tokens a call."""

    SUPPORTS_FUNCTION_CALLING = True
    script: Any  # a Script
    calls: int = 0

    def _reply(self, history: ChatHistory) -> tuple[str | Call, dict[str, Any]]:
        self.calls += 1
        usage = CompletionUsage(prompt_tokens=10 * len(history.messages), completion_tokens=6)
        return self.script(history), {"usage": usage}

    def _call_content(self, call: Call) -> FunctionCallContent:
        return FunctionCallContent(
            id=f"call-{self.calls}", name=call.name, arguments=json.dumps(call.arguments), index=0
        )

    async def _inner_get_chat_message_contents(
        self, chat_history: ChatHistory, settings: PromptExecutionSettings
    ) -> list[ChatMessageContent]:
        reply, metadata = self._reply(chat_history)
        if isinstance(reply, Call):
            message = ChatMessageContent(
                role=AuthorRole.ASSISTANT, items=[self._call_content(reply)], ai_model_id=self.ai_model_id
            )
        else:
            message = ChatMessageContent(
                role=AuthorRole.ASSISTANT, content=reply, ai_model_id=self.ai_model_id
            )
        message.metadata.update(metadata)
        return [message]

    async def _inner_get_streaming_chat_message_contents(
        self, chat_history: ChatHistory, settings: PromptExecutionSettings, function_invoke_attempt: int = 0
    ) -> AsyncGenerator[list[StreamingChatMessageContent], Any]:
        reply, metadata = self._reply(chat_history)

        def chunk(**given: Any) -> StreamingChatMessageContent:
            return StreamingChatMessageContent(
                role=AuthorRole.ASSISTANT,
                choice_index=0,
                ai_model_id=self.ai_model_id,
                function_invoke_attempt=function_invoke_attempt,
                **given,
            )

        if isinstance(reply, Call):
            yield [chunk(items=[self._call_content(reply)], metadata=metadata)]
            return
        for index, word in enumerate(reply.split(" ")):
            yield [chunk(content=word if index == 0 else f" {word}")]
        yield [chunk(content="", metadata=metadata)]


def last_result(history: ChatHistory) -> Any:
    """The result of the last function the model called, if the history ends with one."""
    items = history.messages[-1].items if history.messages else []
    results = [item.result for item in items if isinstance(item, FunctionResultContent)]
    return results[-1] if results else None


# ----------------------------------------------------------------------------------------- facts

FACTS = {"owls": "Owls hunt at night and can turn their heads 270 degrees."}


class Facts:
    @kernel_function(description="Look up a fact about a topic.")
    def lookup(self, topic: Annotated[str, "the topic"]) -> str:
        return FACTS.get(topic.lower(), f"Nothing is known about {topic}.")


def facts_script(history: ChatHistory) -> str | Call:
    found = last_result(history)
    if found is not None:
        return f"In one line: {found}"
    return Call("Facts-lookup", topic=str(history.messages[-1].content).split()[-1])


facts = ChatCompletionAgent(
    name="facts",
    description="Answers with one fact about a topic",
    instructions="Look the topic up, then answer in one line.",
    service=ScriptedChatService(ai_model_id="scripted-facts", script=facts_script),
    plugins=[Facts()],
    function_choice_behavior=FunctionChoiceBehavior.Auto(),
)
app.agent(facts)  # the Semantic Kernel adapter is found for the agent, named after agent.name

# ----------------------------------------------------------------------------------------- summarize

kernel = Kernel()
kernel.add_service(ScriptedChatService(ai_model_id="scripted-summary", script=facts_script))
kernel.add_plugin(Facts(), plugin_name="Facts")
summarize = kernel.add_function(
    plugin_name="Writer",
    function_name="summarize",
    description="Summarize what is known about a topic in one line",
    prompt="Summarize what is known about: {{$topic}}",
    prompt_execution_settings=PromptExecutionSettings(function_choice_behavior=FunctionChoiceBehavior.Auto()),
)
app.agent(SemanticKernelAdapter(summarize, kernel=kernel))  # a kernel function: give its kernel
