"""PydanticAI agents for the adapter's end-to-end tests, on scripted models: ``ticker`` runs a tool that
writes a line to a file every 50 ms until cancelled, ``failing`` a tool that raises, ``spender`` six model
requests (one tool call each) on "big-model" unless a budget hints "small-model"."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from fastagentic import App
from fastagentic.adapters import PydanticAIAdapter

app = App("pydantic-ai-tests")


def _prompt(messages: list[ModelMessage]) -> str:
    first = messages[0]
    assert isinstance(first, ModelRequest)
    return next(str(p.content) for p in first.parts if isinstance(p, UserPromptPart))


def _returns(messages: list[ModelMessage]) -> int:
    return sum(
        1 for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturnPart)
    )


def _unused(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart("streamed only")])


def _calls_once(tool: str, arguments: str):  # type: ignore[no-untyped-def]
    """A scripted model that calls ``tool`` once with ``arguments`` (str.format'ed with the prompt), then
    says it is done."""

    async def model(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        if not _returns(messages):
            args = arguments.format(prompt=_prompt(messages))
            yield {0: DeltaToolCall(name=tool, json_args=args, tool_call_id=f"call_{tool}")}
            return
        yield "done"

    return model


ticker = Agent(
    FunctionModel(_unused, stream_function=_calls_once("tick", '{{"path": "{prompt}"}}')), name="ticker"
)


@ticker.tool_plain
async def tick(path: str) -> int:
    """Write a line to ``path`` every 50 ms for a minute."""
    for count in range(1200):
        with Path(path).open("a") as marks:  # noqa: ASYNC230 (one short line)
            marks.write(f"{count}\n")
        await asyncio.sleep(0.05)
    return 1200


app.agent(ticker)

failing = Agent(
    FunctionModel(_unused, stream_function=_calls_once("lookup", '{{"order": 42}}')), name="failing"
)


@failing.tool_plain
def lookup(order: int) -> str:
    """Look an order up."""
    raise LookupError(f"no such order: {order}")


app.agent(failing)


async def spending_model(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls]:
    done = _returns(messages)
    steps = int((re.findall(r"\d+", _prompt(messages)) or ["6"])[0])
    if done < steps:
        yield {0: DeltaToolCall(name="pause", json_args="{}", tool_call_id=f"call_{done}")}
        return
    yield f"{steps} steps"


spender = Agent(
    FunctionModel(_unused, stream_function=spending_model, model_name="big-model"), name="spender"
)


@spender.tool_plain
async def pause() -> str:
    """Give the gateway time to count the usage (and send a model hint)."""
    await asyncio.sleep(0.3)
    return "ok"


small = FunctionModel(_unused, stream_function=spending_model, model_name="small-model")
app.agent(PydanticAIAdapter(spender, models={"small-model": small}))
