"""A worker serving the fixtures of the official MCP conformance suite's server scenarios
(``npx @modelcontextprotocol/conformance server``), written only on the public SDK surface.

The names, texts and shapes follow the suite's reference server (``examples/servers/typescript/
everything-server.ts`` of github.com/modelcontextprotocol/conformance): tools, resources and prompts of the
2025-11-25 scenarios, the ``test_input_required_result_*`` tools and prompt of the 2026-07-28 scenarios
(each interrupt named as the reference server keys its input request), and the tasks fixtures (``greet``,
``slow_compute``, ``failing_job``, ``confirm_delete``, ``test_tool_with_task``), and
``test_trigger_tool_change`` / ``test_trigger_prompt_change``, which start or stop a second worker (``extra``)
so that the lists change. Where the reference server sends a request itself
(``elicitation/create``, ``sampling/createMessage``), this worker asks with ``ctx.elicit`` / ``ctx.sample``
and the gateway puts the question to the client.

``tests/e2e/test_mcp_prompt_interrupts.py`` also uses its prompt and resource that ask.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Annotated, Any, Literal

import msgspec

from fastagentic import App, Question, RunContext
from fastagentic.content import Audio, EmbeddedResource, Image, Text
from fastagentic.context import SamplingUnavailable
from fastagentic.worker import Worker

app = App("conformance")

#: A 1x1 PNG and a tiny WAV, as the reference server's test content.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
WAV = base64.b64decode("UklGRiQAAABXQVZFZm10IBAAAAABAAEARKwAAIhYAQACABAAZGF0YQAAAAA=")


# ---------------------------------------------------------------- tools (2025-11-25 and 2026-07-28)


@app.tool
def test_simple_text() -> list[Text]:
    """Tests simple text content response"""
    return [Text("This is a simple text response for testing.")]


@app.tool
def test_image_content() -> list[Image]:
    """Tests image content response"""
    return [Image(PNG, "image/png")]


@app.tool
def test_audio_content() -> list[Audio]:
    """Tests audio content response"""
    return [Audio(WAV, "audio/wav")]


@app.tool
def test_embedded_resource() -> list[EmbeddedResource]:
    """Tests embedded resource content response"""
    return [
        EmbeddedResource.of_text(
            "test://embedded-resource", "This is an embedded resource content.", "text/plain"
        )
    ]


@app.tool
def test_multiple_content_types() -> list[Text | Image | EmbeddedResource]:
    """Tests response with multiple content types (text, image, resource)"""
    data = json.dumps({"test": "data", "value": 123})
    return [
        Text("Multiple content types test:"),
        Image(PNG, "image/png"),
        EmbeddedResource.of_text("test://mixed-content-resource", data, "application/json"),
    ]


@app.tool
async def test_tool_with_logging(ctx: RunContext) -> list[Text]:
    """Tests tool that emits log messages during execution"""
    for message in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.log(message, level="info")
        await asyncio.sleep(0.05)
    return [Text("Tool with logging executed successfully")]


@app.tool
async def test_tool_with_progress(ctx: RunContext) -> list[Text]:
    """Tests tool that reports progress notifications"""
    for step in (0, 50, 100):
        await ctx.progress(step, total=100, message=f"Completed step {step} of 100")
        await asyncio.sleep(0.05)
    return [Text("progress reported")]


@app.tool
def test_error_handling() -> str:
    """Tests error response handling"""
    raise RuntimeError("This tool intentionally returns an error for testing")


@app.agent_endpoint(durable=False)
async def test_sampling(
    prompt: Annotated[str, msgspec.Meta(description="The prompt to send to the LLM")], ctx: RunContext
) -> list[Text]:
    """Tests server-initiated sampling (LLM completion request)"""
    sample = await ctx.sample(prompt, max_tokens=100)
    return [Text(f"LLM response: {sample.text}")]


class Response(msgspec.Struct):
    response: Annotated[str, msgspec.Meta(description="User's response")]


@app.agent_endpoint(durable=False)
async def test_elicitation(
    message: Annotated[str, msgspec.Meta(description="The message to show the user")], ctx: RunContext
) -> list[Text]:
    """Tests server-initiated elicitation (user input request)"""
    answer = await ctx.elicit(message, schema=Response)
    content = json.dumps({"response": answer.response})
    return [Text(f"User response: action=accept, content={content}")]


class Defaults(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(description="User name")] = "John Doe"
    age: Annotated[int, msgspec.Meta(description="User age")] = 30
    score: Annotated[float, msgspec.Meta(description="User score")] = 95.5
    status: Annotated[Literal["active", "inactive", "pending"], msgspec.Meta(description="User status")] = (
        "active"
    )
    verified: Annotated[bool, msgspec.Meta(description="Verification status")] = True


@app.agent_endpoint(durable=False)
async def test_elicitation_sep1034_defaults(ctx: RunContext) -> list[Text]:
    """Tests elicitation with default values per SEP-1034"""
    answer = await ctx.elicit("Please review and update the form fields with defaults", schema=Defaults)
    return [Text(f"Elicitation completed: action=accept, content={json.dumps(msgspec.to_builtins(answer))}")]


_TITLED = [
    {"const": "value1", "title": "First Option"},
    {"const": "value2", "title": "Second Option"},
    {"const": "value3", "title": "Third Option"},
]
_TITLED_CHOICES = [
    {"const": "value1", "title": "First Choice"},
    {"const": "value2", "title": "Second Choice"},
    {"const": "value3", "title": "Third Choice"},
]
Choice = Literal["option1", "option2", "option3"]


class Enums(msgspec.Struct):
    untitledSingle: Annotated[Choice | None, msgspec.Meta(description="Select one option")] = None
    titledSingle: Annotated[
        Literal["value1", "value2", "value3"] | None,
        msgspec.Meta(description="Select one option with titles", extra_json_schema={"oneOf": _TITLED}),
    ] = None
    legacyEnum: Annotated[
        Literal["opt1", "opt2", "opt3"] | None,
        msgspec.Meta(
            description="Select one option (legacy)",
            extra_json_schema={"enumNames": ["Option One", "Option Two", "Option Three"]},
        ),
    ] = None
    untitledMulti: (
        Annotated[
            list[Choice], msgspec.Meta(description="Select multiple options", min_length=1, max_length=3)
        ]
        | None
    ) = None
    titledMulti: (
        Annotated[
            list[
                Annotated[
                    Literal["value1", "value2", "value3"],
                    msgspec.Meta(extra_json_schema={"anyOf": _TITLED_CHOICES}),
                ]
            ],
            msgspec.Meta(description="Select multiple options with titles", min_length=1, max_length=3),
        ]
        | None
    ) = None


@app.agent_endpoint(durable=False)
async def test_elicitation_sep1330_enums(ctx: RunContext) -> list[Text]:
    """Tests elicitation with enum schema improvements per SEP-1330"""
    answer = await ctx.elicit("Please select options from the enum fields", schema=Enums)
    content = json.dumps({k: v for k, v in msgspec.to_builtins(answer).items() if v is not None})
    return [Text(f"Elicitation completed: action=accept, content={content}")]


class Address(msgspec.Struct):
    street: str | None = None
    city: str | None = None


@app.tool
def json_schema_2020_12_tool(name: str | None = None, address: Address | None = None) -> list[Text]:
    """Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)"""
    args = msgspec.to_builtins({"name": name, "address": address})
    return [Text(f"JSON Schema 2020-12 tool called with: {json.dumps(args)}")]


# ---------------------------------------------------------------- 2026-07-28: input-required results


class Name(msgspec.Struct):
    name: str


class Confirm(msgspec.Struct):
    ok: bool


class ConfirmDelete(msgspec.Struct):
    confirm: bool


class Color(msgspec.Struct):
    color: str


class Value(msgspec.Struct):
    value: str


class Context(msgspec.Struct):
    context: str


@app.agent_endpoint(durable=False)
async def test_input_required_result_elicitation(ctx: RunContext) -> list[Text]:
    """MRTR: returns InputRequiredResult with elicitation request"""
    answer = await ctx.elicit("What is your name?", schema=Name, id="user_name")
    return [Text(f"Hello, {answer.name}!")]


@app.agent_endpoint(durable=False)
async def test_input_required_result_sampling(ctx: RunContext) -> list[Text]:
    """MRTR: returns InputRequiredResult with sampling request"""
    sample = await ctx.sample("What is the capital of France?", max_tokens=100, id="sample_request")
    return [Text(f"Sampling result: {sample.text}")]


@app.agent_endpoint(durable=False)
async def test_input_required_result_request_state(ctx: RunContext) -> list[Text]:
    """MRTR: returns InputRequiredResult with requestState"""
    await ctx.elicit("Please confirm", schema=Confirm, id="confirm")
    return [Text("state-ok: requestState validated")]


@app.agent_endpoint(durable=False)
async def test_input_required_result_multi_round(ctx: RunContext) -> list[Text]:
    """MRTR: multi-round InputRequiredResult workflow"""
    name = await ctx.elicit("Step 1: What is your name?", schema=Name, id="step1")
    color = await ctx.elicit("Step 2: What is your favorite color?", schema=Color, id="step2")
    return [Text(f"Multi-round complete for {name.name} who likes {color.color}")]


@app.agent_endpoint(durable=False)
async def test_input_required_result_tampered_state(ctx: RunContext) -> list[Text]:
    """MRTR: HMAC-signed requestState integrity test"""
    await ctx.elicit("Please confirm", schema=Confirm, id="confirm")
    return [Text("integrity-ok: state verified")]


@app.agent_endpoint(durable=False)
async def test_input_required_result_capabilities(ctx: RunContext) -> list[Text]:
    """MRTR: respects client capabilities in inputRequests"""
    # The reference server asks what the client declared it can answer. An agent cannot see the client's
    # capabilities; it asks its model first (answered "unavailable" for a client without sampling), then
    # a person.
    try:
        await ctx.sample("Sample request", max_tokens=50, id="sample_input")
    except SamplingUnavailable:
        await ctx.elicit("Elicitation input", schema=Value, id="elicit_input")
        return [Text("capabilities-ok: received elicit_input")]
    return [Text("capabilities-ok: received sample_input")]


@app.agent_endpoint(durable=False)
async def test_input_required_result_list_roots(ctx: RunContext) -> list[Text]:
    """MRTR: returns InputRequiredResult with roots/list request"""
    roots = await ctx.roots(id="client_roots")
    return [Text("Roots: " + ", ".join(f"{root.name or ''} ({root.uri})" for root in roots))]


@app.agent_endpoint(durable=False)
async def test_input_required_result_multiple_inputs(ctx: RunContext) -> list[Text]:
    """MRTR: returns InputRequiredResult with multiple inputRequests"""
    answers = await ctx.ask_many(
        {
            "user_name": Question.elicit("What is your name?", schema=Name),
            "greeting": Question.sample("Say hello", max_tokens=50),
            "client_roots": Question.roots(),
        }
    )
    roots = ", ".join(root.uri for root in answers["client_roots"])
    return [Text(f"Hello {answers['user_name'].name}: {answers['greeting'].text} (roots: {roots})")]


@app.agent_endpoint(durable=False)
async def test_missing_capability(ctx: RunContext) -> list[Text]:
    """Test tool requiring sampling"""
    sample = await ctx.sample("Say 'Success'.", max_tokens=10)  # SamplingUnavailable fails the call
    return [Text(sample.text)]


@app.tool
async def test_streaming_elicitation(ctx: RunContext) -> list[Text]:
    """Diagnostic tool validating response progress streams"""
    await ctx.progress(50, total=100)
    return [Text("Streaming complete")]


@app.tool
async def test_logging_tool(ctx: RunContext) -> list[Text]:
    """Diagnostic logging validator tool"""
    await ctx.log("a log message the client only gets when it asked for logs", level="info")
    return [Text("Logging complete")]


@app.prompt(
    name="test_input_required_result_prompt", description="MRTR: prompt that requires elicitation input"
)
async def input_required_prompt(ctx: RunContext) -> str:
    answer = await ctx.elicit("What context should the prompt use?", schema=Context, id="user_context")
    return f"Prompt with context: {answer.context}"


@app.resource(
    "test://asking/{topic}",
    name="test_asking_resource",
    mime_type="text/plain",
    description="A resource whose read asks the caller which section to render",
)
async def asking_resource(topic: str, ctx: RunContext) -> str:
    answer = await ctx.elicit(f"Which section of {topic}?", schema=Value, id="section")
    return f"{topic}: section {answer.value}"


# ---------------------------------------------------------------- resources


@app.resource(
    "test://static-text",
    name="static-text",
    mime_type="text/plain",
    description="A static text resource for testing",
)
def static_text() -> str:
    return "This is the content of the static text resource."


@app.resource(
    "test://static-binary",
    name="static-binary",
    mime_type="image/png",
    description="A static binary resource (image) for testing",
)
def static_binary() -> bytes:
    return PNG


@app.resource(
    "test://template/{id}/data",
    name="template",
    mime_type="application/json",
    description="A resource template with parameter substitution",
)
def template(id: str) -> dict[str, Any]:
    return {"id": id, "templateTest": True, "data": f"Data for ID: {id}"}


@app.resource(
    "test://watched-resource",
    name="watched-resource",
    mime_type="text/plain",
    description="A resource that changes when test_update_watched_resource runs",
)
def watched_resource() -> str:
    return "Watched resource content"


# ---------------------------------------------------------------- lists that change at run time

#: A second app, served by a second worker this one starts and stops (``test_trigger_*_change``): the
#: gateway's lists change as workers come and go, and it says so (``list_changed``).
extra = App("conformance-extra")


@extra.tool
def dynamic_tool() -> str:
    """A tool that comes and goes with the extra worker."""
    return "here for now"


@extra.prompt(description="A prompt that comes and goes with the extra worker")
def dynamic_prompt() -> str:
    return "here for now"


_extra_worker: list[tuple[Worker, asyncio.Task[None]]] = []


async def _toggle_extra() -> str:
    """Start the extra worker (its tool and prompt join the lists), or stop it (they leave)."""
    if _extra_worker:
        worker, task = _extra_worker.pop()
        worker.stop()
        await task
        return "removed dynamic_tool and dynamic_prompt"
    worker = Worker(extra)  # FASTAGENTIC_GATEWAY: the gateway this worker serves
    task = asyncio.create_task(worker.run())
    _extra_worker.append((worker, task))
    await asyncio.wait_for(worker.connected.wait(), 10)
    return "added dynamic_tool and dynamic_prompt"


@app.tool
async def test_trigger_tool_change() -> list[Text]:
    """Changes the tool list (SEP-2575 list_changed on subscriptions)"""
    return [Text(await _toggle_extra())]


@app.tool
async def test_trigger_prompt_change() -> list[Text]:
    """Changes the prompt list (SEP-2575 list_changed on subscriptions)"""
    return [Text(await _toggle_extra())]


# ---------------------------------------------------------------- prompts


@app.prompt(description="A simple prompt without arguments")
def test_simple_prompt() -> str:
    return "This is a simple prompt for testing."


@app.prompt(description="A prompt with required arguments")
def test_prompt_with_arguments(
    arg1: Annotated[str, msgspec.Meta(description="First test argument")],
    arg2: Annotated[str, msgspec.Meta(description="Second test argument")],
) -> str:
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@app.prompt(description="A prompt that includes an embedded resource")
def test_prompt_with_embedded_resource(
    resourceUri: Annotated[str, msgspec.Meta(description="URI of the resource to embed")],
) -> list[dict[str, Any]]:
    resource = {
        "uri": resourceUri,
        "mimeType": "text/plain",
        "text": "Embedded resource content for testing.",
    }
    return [
        {"role": "user", "content": {"type": "resource", "resource": resource}},
        {"role": "user", "content": "Please process the embedded resource above."},
    ]


@app.prompt(description="A prompt that includes image content")
def test_prompt_with_image() -> list[dict[str, Any]]:
    image = {"type": "image", "data": base64.b64encode(PNG).decode(), "mimeType": "image/png"}
    return [
        {"role": "user", "content": image},
        {"role": "user", "content": "Please analyze the image above."},
    ]


# ---------------------------------------------------------------- tasks extension fixtures


@app.tool
def greet(name: str) -> str:
    """Says hello (sync-only)."""
    return f"Hello, {name}!"


@app.agent_endpoint
async def slow_compute(seconds: float = 1.0, label: str = "") -> str:
    """Sleeps ``seconds``, then answers (runs as a task)."""
    await asyncio.sleep(seconds)
    return f"{label or 'computed'} after {seconds} s"


@app.agent_endpoint(task_required=True)
async def failing_job() -> str:
    """Fails after about a second (runs only as a task)."""
    await asyncio.sleep(1.0)
    raise RuntimeError("failing_job always fails")


@app.agent_endpoint
async def confirm_delete(filename: str, ctx: RunContext) -> str:
    """Asks for confirmation before deleting ``filename`` (runs as a task)."""
    answer = await ctx.elicit(f"Delete {filename}?", schema=ConfirmDelete, id="confirm")
    await asyncio.sleep(0.3)  # deleting takes a moment: the task shows working again before it ends
    return f"deleted {filename}" if answer.confirm else f"kept {filename}"


@app.agent_endpoint(task_required=True, input_before_task=True)
async def test_tool_with_task(ctx: RunContext) -> list[Text]:
    """Asks the caller's name on the call itself, then works on as a task (SEP-2663 with SEP-2322)."""
    answer = await ctx.elicit("What is your name?", schema=Name, id="user_name")
    await asyncio.sleep(0.3)  # the work the task stands for
    return [Text(f"Hello, {answer.name}, from a task!")]


@app.agent_endpoint
async def multi_input(ctx: RunContext) -> str:
    """Asks two questions at once (runs as a task): both stay open until each is answered."""
    answers = await ctx.ask_many(
        {
            "name": Question.elicit("Your name?", schema=Name),
            "confirm": Question.elicit("Go ahead?", schema=ConfirmDelete),
        }
    )
    return f"{answers['name'].name}: {'confirmed' if answers['confirm'].confirm else 'not confirmed'}"
