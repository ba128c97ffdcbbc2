"""A CrewAI crew served through FastAgentic, with no API key: a scripted LLM plays the model.

CrewAI goes in the worker's own virtual environment (its pins cannot sit beside the gateway's):

    python -m venv .venv-crewai && .venv-crewai/bin/pip install "fastagentic[crewai]"
    .venv-crewai/bin/fastagentic run examples.crewai_agent:app --gateway HOST:PORT

    curl -sN -X POST localhost:8000/v1/agents/research/stream -d '{"topic": "owls"}'

``research`` is a sequential crew of two agents: a researcher that looks the topic up with the ``lookup``
tool, then a writer that streams a one-line summary. ``ScriptedLLM`` is a ``crewai.llms.base_llm.BaseLLM``
(CrewAI's own base class for custom LLMs) answering in CrewAI's ReAct text, computed from the conversation,
and reporting usage like a provider (10 tokens a message in, 6 out); swap it for ``LLM("openai/gpt-4o-mini")``
and nothing else changes.
"""

from __future__ import annotations

import os

# CrewAI phones home (telemetry, traces, a version check) unless told not to.
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
os.environ.setdefault("CREWAI_DISABLE_VERSION_CHECK", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")

import json
from collections.abc import Callable
from typing import Any

from crewai import Agent, Crew, Process, Task
from crewai.events.types.llm_events import LLMCallType
from crewai.llms.base_llm import BaseLLM, llm_call_context
from crewai.tools import tool

from fastagentic import App

app = App("crewai-example", description="A CrewAI crew on a scripted LLM")

#: ``script(messages)`` -> the LLM's reply text.
Script = Callable[[list[dict[str, Any]]], str]


class ScriptedLLM(BaseLLM):
    """An offline LLM for CrewAI: answers ``script(messages)``, emits CrewAI's LLM events (streamed chunks
    when ``stream=True``) and reports 10 input tokens a message and 6 output tokens a call."""

    script: Any  # a Script

    def call(
        self,
        messages: str | list[Any],
        tools: list[dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> str:
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        with llm_call_context():
            self._emit_call_started_event(
                messages=messages, tools=tools, from_task=from_task, from_agent=from_agent
            )
            try:
                text = str(self.script(messages))
            except Exception as exc:
                self._emit_call_failed_event(error=str(exc), from_task=from_task, from_agent=from_agent)
                raise
            if self.stream:
                for index, word in enumerate(text.split(" ")):
                    chunk = word if index == 0 else f" {word}"
                    self._emit_stream_chunk_event(chunk, from_task=from_task, from_agent=from_agent)
            usage = {
                "prompt_tokens": 10 * len(messages),
                "completion_tokens": 6,
                "total_tokens": 10 * len(messages) + 6,
            }
            self._track_token_usage_internal(usage)
            self._emit_call_completed_event(
                response=text,
                call_type=LLMCallType.LLM_CALL,
                from_task=from_task,
                from_agent=from_agent,
                messages=messages,
                usage=usage,
            )
        return text

    async def acall(
        self,
        messages: str | list[Any],
        tools: list[dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> str:
        return self.call(
            messages, tools, callbacks, available_functions, from_task, from_agent, response_model
        )

    def supports_function_calling(self) -> bool:
        return False  # CrewAI's ReAct text: "Action: <tool>" / "Action Input: {...}" / "Final Answer: ..."


def observed(messages: list[dict[str, Any]]) -> str | None:
    """The last tool observation CrewAI gave the agent, if any (after the system prompt and the task, which
    describe the format)."""
    for message in reversed(messages[2:]):
        content = str(message.get("content") or "")
        if "Observation:" in content:
            seen = content.split("Observation:", 1)[1].strip()
            return seen.split("\n")[0].strip()  # a tool's error is followed by CrewAI's reminders
    return None


def between(text: str, start: str, end: str) -> str:
    head = text.split(start, 1)[1] if start in text else text
    return head.split(end, 1)[0].strip()


def react_call(tool_name: str, arguments: dict[str, Any]) -> str:
    return f"Thought: I should use {tool_name}.\nAction: {tool_name}\nAction Input: {json.dumps(arguments)}"


# ----------------------------------------------------------------------------------------- research

FACTS = {"owls": "Owls hunt at night and can turn their heads 270 degrees."}


@tool("lookup")
def lookup(topic: str) -> str:
    """Look up a fact about a topic."""
    return FACTS.get(topic.lower(), f"Nothing is known about {topic}.")


def researcher_script(messages: list[dict[str, Any]]) -> str:
    seen = observed(messages)
    if seen is not None:
        return f"Thought: I have the fact.\nFinal Answer: {seen}"
    topic = between(str(messages[-1].get("content") or ""), "Research the topic:", "\n")
    return react_call("lookup", {"topic": topic})


def writer_script(messages: list[dict[str, Any]]) -> str:
    prompt = str(messages[-1].get("content") or "")
    fact = between(prompt, "This is the context you're working with:", "\n\n")
    return f"Thought: I can write it now.\nFinal Answer: In one line: {fact}"


researcher = Agent(
    role="Researcher",
    goal="Find one fact about {topic}",
    backstory="You look things up before you speak.",
    llm=ScriptedLLM(model="scripted-researcher", script=researcher_script),
    tools=[lookup],
)
writer = Agent(
    role="Writer",
    goal="Summarize what was found about {topic} in one line",
    backstory="You write short and plain.",
    llm=ScriptedLLM(model="scripted-writer", script=writer_script, stream=True),
)
research_task = Task(
    name="research",
    description="Research the topic: {topic}\nUse the lookup tool.",
    expected_output="One fact about {topic}.",
    agent=researcher,
)
write_task = Task(
    name="write",
    description="Write a one-line summary about {topic}.",
    expected_output="One line.",
    agent=writer,
    context=[research_task],
)
crew = Crew(
    name="research",
    agents=[researcher, writer],
    tasks=[research_task, write_task],
    process=Process.sequential,
)
app.agent(crew)  # the CrewAI adapter is found for the crew, named after crew.name
