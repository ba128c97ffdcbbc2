"""The adapter seam without any framework: registration (``app.agent``, ``agent_endpoint(adapter=...)``),
schemas from an adapter's types or JSON Schema, discovery through entry points, ``SimpleAdapter``,
``run_context``, and the contract kit catching adapters that break the contract."""

from __future__ import annotations

import asyncio
import textwrap
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from fastagentic import App, RunContext
from fastagentic.adapters import (
    ENTRY_POINT_GROUP,
    BaseAdapter,
    Event,
    Result,
    Schema,
    SimpleAdapter,
    adapter_for,
    events,
    run_context,
)
from fastagentic.testing import (
    ContractViolation,
    check_adapter,
    check_cancellation,
    check_event_order,
    check_resume,
    run_adapter,
)


class Ask(msgspec.Struct):
    text: str


class Answer(msgspec.Struct):
    text: str
    words: int


class Echo(BaseAdapter):
    """Streams the words of the input back, one tool call on the way."""

    name = "echo"
    description = "Echoes."
    input_type = Ask
    output_type = Answer

    async def run(self, input: Ask, ctx: RunContext) -> Answer:
        await events.llm_start(ctx, "echo-model")
        for word in input.text.split():
            await ctx.token(word)
        await events.llm_end(ctx, "echo-model", 3, len(input.text.split()))
        await events.tool_call(ctx, "c1", "count", {"text": input.text})
        await events.tool_result(ctx, "c1", "count", len(input.text.split()))
        return Answer(input.text, len(input.text.split()))


# ----------------------------------------------------------------------------------- registration


def test_app_agent_registers_an_adapter_with_its_schemas_name_and_description() -> None:
    app = App("seam")
    adapter = Echo()
    assert app.agent(adapter) is adapter
    endpoint = app.endpoint("echo")
    assert endpoint.kind == "agent" and endpoint.durable and endpoint.streams
    assert endpoint.description == "Echoes."
    assert endpoint.shape.input_schema["required"] == ["text"]
    assert endpoint.output_schema["required"] == ["text", "words"]


def test_app_agent_options_override_the_adapters() -> None:
    app = App("seam")
    app.agent(
        Echo(), name="other", description="Another.", durable=False, scopes=["a:b"], rate_limit="5/minute"
    )
    endpoint = app.endpoint("other")
    assert (endpoint.description, endpoint.durable, endpoint.scopes, endpoint.rate_limit) == (
        "Another.",
        False,
        ("a:b",),
        "5/minute",
    )


def test_an_adapter_without_a_name_needs_one() -> None:
    adapter = Echo()
    adapter.name = None
    with pytest.raises(ValueError, match="pass name="):
        App("seam").agent(adapter)


async def test_the_endpoint_function_decodes_the_body_and_runs_the_adapter() -> None:
    recording = await run_adapter(Echo(), {"text": "hello adapter world"})
    assert recording.error is None
    assert recording.output == {"text": "hello adapter world", "words": 3}
    assert recording.of("token") == [{"text": "hello"}, {"text": "adapter"}, {"text": "world"}]
    assert recording.of("llm_end") == [{"model": "echo-model", "input_tokens": 3, "output_tokens": 3}]
    check_event_order(recording)


async def test_agent_endpoint_with_an_adapter_maps_its_own_input_to_the_adapters() -> None:
    app = App("seam")

    @app.agent_endpoint(adapter=Echo())
    def shout(words: list[str], times: int = 1) -> Ask:
        """Echoes the words, louder."""
        return Ask(" ".join(w.upper() for w in words * times))

    endpoint = app.endpoint("shout")
    assert endpoint.shape.input_schema["required"] == ["words"]
    assert endpoint.output_schema["required"] == ["text", "words"]  # the adapter's output
    assert endpoint.description == "Echoes the words, louder."
    assert shout(["a"]) == Ask("A")  # the decorated function stays plain Python
    output = await _call(app, "shout", {"words": ["hi", "there"], "times": 2})
    assert output == {"text": "HI THERE HI THERE", "words": 4}


async def test_a_mapping_function_may_be_async_and_ask_for_the_context() -> None:
    app = App("seam")

    @app.agent_endpoint(adapter=Echo(), name="tagged")
    async def tag(text: str, ctx: RunContext) -> Ask:
        await asyncio.sleep(0)
        return Ask(f"{text} {ctx.run_id}")

    assert app.endpoint("tagged").shape.input_schema["required"] == ["text"]
    assert await _call(app, "tagged", {"text": "run"}) == {"text": "run run_unit", "words": 2}


def test_agent_endpoint_refuses_what_is_not_an_adapter() -> None:
    with pytest.raises(TypeError, match="adapter= takes an adapter"):
        App("seam").agent_endpoint(adapter=object())  # type: ignore[arg-type]


class Graphish(BaseAdapter):
    """An adapter whose framework describes its types only as JSON Schema."""

    name = "graphish"
    input_type = Schema({"type": "object", "properties": {"n": {"type": "integer"}}})
    output_type = Schema({"type": "object", "properties": {"seen": {}}})

    async def run(self, input: Any, ctx: RunContext) -> Any:
        return {"seen": input}


async def test_a_json_schema_input_reaches_run_as_the_decoded_body() -> None:
    app = App("seam")
    app.agent(Graphish())
    endpoint = app.endpoint("graphish")
    assert endpoint.shape.input_schema == {"type": "object", "properties": {"n": {"type": "integer"}}}
    assert endpoint.output_schema == {"type": "object", "properties": {"seen": {}}}
    assert await _call(app, "graphish", {"n": 3, "extra": [1]}) == {"seen": {"n": 3, "extra": [1]}}
    assert await _call(app, "graphish", None) == {"seen": {}}  # an empty body is {}


async def _call(app: App, name: str, body: Any) -> Any:
    from fastagentic.context import Caller

    endpoint = app.endpoint(name)
    ctx = RunContext(
        run_id="run_unit", attempt=1, endpoint=name, caller=Caller("p", "t"), sink=lambda *a: None
    )
    payload = b"" if body is None else msgspec.json.encode(body)
    args, kwargs = endpoint.shape.bind(payload, ctx)
    return msgspec.json.decode(endpoint.encode_output(await endpoint.fn(*args, **kwargs)))


# ------------------------------------------------------------------------------------ discovery


def test_adapter_for_returns_an_adapter_as_is_and_wraps_a_callable() -> None:
    echo = Echo()
    assert adapter_for(echo) is echo

    async def plain(ask: Ask) -> str:
        return ask.text

    wrapped = adapter_for(plain)
    assert isinstance(wrapped, SimpleAdapter) and wrapped.name == "plain"


def test_adapter_for_names_the_ways_out_when_nothing_fits() -> None:
    with pytest.raises(TypeError, match=f"no adapter for .*{ENTRY_POINT_GROUP}"):
        adapter_for(42)


def test_a_community_adapter_is_found_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An installed distribution, as pip leaves it: a package with the framework and one with its adapter.
    (tmp_path / "toyframe").mkdir()
    (tmp_path / "toyframe" / "__init__.py").write_text("class Crew:\n    name = 'toy-crew'\n")
    (tmp_path / "toyframe_fastagentic.py").write_text(
        textwrap.dedent(
            """
            import toyframe
            from fastagentic.adapters import BaseAdapter

            class ToyAdapter(BaseAdapter):
                input_type = str
                output_type = str

                def __init__(self, crew):
                    self.crew = crew
                    self.name = crew.name

                @classmethod
                def accepts(cls, obj):
                    return isinstance(obj, toyframe.Crew)

                async def run(self, input, ctx):
                    return input.upper()
            """
        )
    )
    info = tmp_path / "toyframe_fastagentic-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyframe-fastagentic\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ntoyframe = toyframe_fastagentic:ToyAdapter\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import toyframe  # type: ignore[import-not-found]

    app = App("seam")
    adapter = app.agent(toyframe.Crew())
    assert type(adapter).__name__ == "ToyAdapter"
    assert app.endpoint("toy-crew").shape.input_schema["properties"] == {"input": {"type": "string"}}


# ---------------------------------------------------------------------------------- SimpleAdapter


async def test_simple_adapter_streams_an_async_iterators_text_events_and_result() -> None:
    async def chat(ask: Ask, ctx: RunContext) -> AsyncIterator[Any]:
        yield Event("llm_start", {"model": "m"})
        for word in ask.text.split():
            yield word + " "
        yield Event("llm_end", {"model": "m"})
        yield Result({"said": ask.text, "run": ctx.run_id})

    recording = await run_adapter(SimpleAdapter(chat, output_type=dict), {"text": "a b"})
    assert recording.kinds == ["llm_start", "token", "token", "llm_end"]
    assert recording.output == {"said": "a b", "run": "run_contract"}


async def test_simple_adapter_runs_a_sync_generator_in_a_thread_and_returns_its_text() -> None:
    threads: list[str] = []

    def words(ask: Ask) -> Iterator[str]:
        for word in ask.text.split():
            threads.append(threading.current_thread().name)
            yield word

    recording = await run_adapter(SimpleAdapter(words), {"text": "x y z"})
    assert recording.output == "xyz" and recording.of("token") == [
        {"text": "x"},
        {"text": "y"},
        {"text": "z"},
    ]
    assert threads and threading.main_thread().name not in threads


async def test_simple_adapter_returns_a_plain_functions_value() -> None:
    def count(ask: Ask) -> int:
        return len(ask.text)

    adapter = SimpleAdapter(count)
    assert adapter.input_type is Ask and adapter.output_type is int
    assert (await run_adapter(adapter, {"text": "four"})).output == 4


def test_simple_adapter_needs_one_input_parameter() -> None:
    def two(a: int, b: int) -> int:
        return a + b

    with pytest.raises(TypeError, match="one input parameter"):
        SimpleAdapter(two)


async def test_run_context_is_the_runs_inside_the_adapter_and_an_error_outside() -> None:
    seen: list[str] = []

    async def probe(ask: Ask) -> str:
        seen.append(run_context().model_hint)
        return ask.text

    await run_adapter(SimpleAdapter(probe), {"text": "t"}, model_hint="mini")
    assert seen == ["mini"]
    with pytest.raises(LookupError):
        run_context()


# ----------------------------------------------------------------------------------- contract kit


class Scrambled(Echo):
    """Answers a tool call it never made."""

    async def run(self, input: Ask, ctx: RunContext) -> Answer:
        await events.tool_result(ctx, "c9", "count", 1)
        return Answer(input.text, 1)


class Stubborn(Echo):
    """Swallows cancellation and keeps going."""

    async def run(self, input: Ask, ctx: RunContext) -> Answer:
        for _ in range(3):
            try:
                await ctx.token("tick")
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue
        return Answer(input.text, 0)


class Leaky(Echo):
    """Leaves its work running in a task of its own when cancelled."""

    async def run(self, input: Ask, ctx: RunContext) -> Answer:
        async def work() -> None:
            await asyncio.sleep(5)

        task = asyncio.get_running_loop().create_task(work())
        await ctx.token("started")
        await asyncio.shield(task)
        return Answer(input.text, 0)


class Steps(Echo):
    """Three steps, checkpointing after each; with ``resumes`` it starts after the checkpointed ones."""

    def __init__(self, resumes: bool) -> None:
        self.resumes = resumes

    async def run(self, input: Ask, ctx: RunContext) -> Answer:
        done = (ctx.checkpoint_state or {}).get("done", 0) if self.resumes else 0
        for step in range(done, 3):
            await events.node_enter(ctx, f"s{step}")
            await asyncio.sleep(0.02)
            await events.node_exit(ctx, f"s{step}")
            await ctx.checkpoint({"done": step + 1})
        return Answer(input.text, 3)


async def test_the_kit_passes_a_well_behaved_adapter() -> None:
    await check_adapter(Steps(resumes=True), {"text": "ok"}, stop_when=lambda r: len(r.checkpoints) == 2)


async def test_the_kit_catches_a_result_without_its_call() -> None:
    recording = await run_adapter(Scrambled(), {"text": "x"})
    with pytest.raises(ContractViolation, match="answers no open tool_call"):
        check_event_order(recording)


async def test_the_kit_catches_an_adapter_that_swallows_cancellation() -> None:
    with pytest.raises(ContractViolation, match="did not end with CancelledError"):
        await check_cancellation(Stubborn(), {"text": "x"})


async def test_the_kit_catches_work_left_running_after_cancellation() -> None:
    with pytest.raises(ContractViolation, match="tasks still running"):
        await check_cancellation(Leaky(), {"text": "x"}, quiet=0.1)


async def test_the_kit_catches_a_resume_that_starts_over() -> None:
    with pytest.raises(ContractViolation, match="redid work"):
        await check_resume(Steps(resumes=False), {"text": "x"}, stop_when=lambda r: len(r.checkpoints) == 2)
