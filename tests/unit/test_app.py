"""App: decorators fill one app's registry of endpoints, each described for the gateway."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import pytest

from fastagentic import App, RunContext
from fastagentic.app import PROMPT_OUTPUT_SCHEMA, RESOURCE_OUTPUT_SCHEMA, completion_values
from fastagentic.v1 import worker_pb2 as pb


class Question(msgspec.Struct):
    text: str
    urgent: bool = False


class Answer(msgspec.Struct):
    text: str


@pytest.fixture
def app() -> App:
    return App("demo")


def decode(raw: bytes) -> Any:
    return msgspec.json.decode(raw)


# ---------------------------------------------------------------- decorators


def test_bare_decorator_registers_under_the_function_name_and_returns_it(app: App) -> None:
    def add(a: int, b: int) -> int:
        return a + b

    assert app.tool(add) is add
    assert app.endpoint("add").fn is add
    assert app.endpoint("add").kind == "tool"


def test_decorator_with_arguments_registers_under_the_given_name(app: App) -> None:
    @app.tool(name="plus", description="Adds.", scopes=["math"], tags=["demo"], examples=[{"a": 1, "b": 2}])
    def add(a: int, b: int) -> int:
        return a + b

    endpoint = app.endpoint("plus")
    assert endpoint.fn is add
    assert (endpoint.description, endpoint.scopes, endpoint.tags) == ("Adds.", ("math",), ("demo",))
    assert endpoint.examples == ({"a": 1, "b": 2},)
    assert "add" not in app.endpoints


def test_every_kind_supports_both_decorator_forms(app: App) -> None:
    @app.agent_endpoint
    async def a1(q: Question) -> Answer: ...

    @app.agent_endpoint(name="a2")
    async def agent_two(q: Question) -> Answer: ...

    @app.prompt
    def p1(who: str) -> str:
        return who

    @app.prompt(name="p2")
    def prompt_two(who: str) -> str:
        return who

    assert [(name, e.kind) for name, e in app.endpoints.items()] == [
        ("a1", "agent"),
        ("a2", "agent"),
        ("p1", "prompt"),
        ("p2", "prompt"),
    ]


def test_description_defaults_to_the_docstrings_first_paragraph(app: App) -> None:
    @app.tool
    def add(a: int, b: int) -> int:
        """Add two
        numbers.

        Long details nobody reads.
        """
        return a + b

    assert app.endpoint("add").description == "Add two numbers."


def test_empty_description_overrides_the_docstring(app: App) -> None:
    @app.tool(description="")
    def add(a: int) -> int:
        """Docstring."""
        return a

    assert app.endpoint("add").description == ""


def test_endpoints_is_a_copy(app: App) -> None:
    @app.tool
    def add(a: int) -> int:
        return a

    app.endpoints.clear()
    assert list(app.endpoints) == ["add"]


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["1st", "has space", "_private", "a/b", "a" * 129])
def test_invalid_endpoint_name_is_refused(app: App, name: str) -> None:
    def fn(a: int) -> int:
        return a

    with pytest.raises(ValueError, match="must match"):
        app.tool(name=name)(fn)
    assert app.endpoints == {}


@pytest.mark.parametrize("name", ["", "9apps", "my app"])
def test_invalid_app_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="must match"):
        App(name)


def test_duplicate_endpoint_name_is_refused(app: App) -> None:
    @app.tool
    def add(a: int) -> int:
        return a

    def other(a: int) -> int:
        return a

    with pytest.raises(ValueError, match="already registered"):
        app.agent_endpoint(name="add")(other)
    assert app.endpoint("add").fn is add


# ---------------------------------------------------------------- defaults per kind


def test_agent_endpoints_are_durable_and_streaming_by_default(app: App) -> None:
    @app.agent_endpoint
    async def ask(q: Question, ctx: RunContext) -> Answer: ...

    endpoint = app.endpoint("ask")
    assert (endpoint.durable, endpoint.streams) == (True, True)


def test_agent_endpoint_can_be_ephemeral(app: App) -> None:
    @app.agent_endpoint(durable=False, streams=False)
    async def ask(q: Question) -> Answer: ...

    endpoint = app.endpoint("ask")
    assert (endpoint.durable, endpoint.streams) == (False, False)


def test_tools_are_ephemeral_and_do_not_stream_by_default(app: App) -> None:
    @app.tool
    def add(a: int) -> int:
        return a

    endpoint = app.endpoint("add")
    assert (endpoint.durable, endpoint.streams) == (False, False)


def test_tool_can_be_durable(app: App) -> None:
    @app.tool(durable=True)
    def add(a: int) -> int:
        return a

    assert app.endpoint("add").durable is True


def test_prompts_and_resources_are_ephemeral(app: App) -> None:
    @app.prompt
    def greet(who: str) -> str:
        return who

    @app.resource("docs://{name}")
    def doc(name: str) -> str:
        return name

    assert not app.endpoint("greet").durable
    assert not app.endpoint("doc").durable


# ---------------------------------------------------------------- resources


def test_resource_registers_its_template_and_media_type(app: App) -> None:
    def doc(name: str) -> str:
        return name

    assert app.resource("docs://{name}", mime_type="text/markdown")(doc) is doc
    endpoint = app.endpoint("doc")
    assert (endpoint.kind, endpoint.uri_template, endpoint.mime_type) == (
        "resource",
        "docs://{name}",
        "text/markdown",
    )


def test_resource_template_variables_equal_to_the_parameters_are_accepted(app: App) -> None:
    @app.resource("files://{folder}/{file}")
    def read(folder: str, file: str) -> str:
        return folder + file

    assert app.endpoint("read").uri_template == "files://{folder}/{file}"


@pytest.mark.parametrize(
    "template",
    ["docs://{name}/{extra}", "docs://static", "docs://{other}"],
    ids=["extra", "none", "different"],
)
def test_resource_template_variables_must_equal_the_parameters(app: App, template: str) -> None:
    def doc(name: str) -> str:
        return name

    with pytest.raises(ValueError, match="template variables"):
        app.resource(template)(doc)
    assert app.endpoints == {}


def test_resource_template_without_scheme_is_refused(app: App) -> None:
    with pytest.raises(ValueError, match="scheme"):
        app.resource("{name}")


def test_resource_context_parameter_is_not_a_template_variable(app: App) -> None:
    @app.resource("docs://{name}")
    def doc(name: str, ctx: RunContext) -> str:
        return name

    assert app.endpoint("doc").shape.context_param == "ctx"


def test_resource_without_mime_type_answers_str_as_plain_text(app: App) -> None:
    @app.resource("docs://{name}")
    def doc(name: str) -> str:
        return name

    assert decode(app.endpoint("doc").encode_output("hello")) == {"mime_type": "text/plain", "text": "hello"}


def test_resource_str_keeps_its_declared_mime_type(app: App) -> None:
    @app.resource("docs://{name}", mime_type="text/markdown")
    def doc(name: str) -> str:
        return name

    assert decode(app.endpoint("doc").encode_output("# hi")) == {"mime_type": "text/markdown", "text": "# hi"}


def test_resource_bytes_are_a_base64_blob(app: App) -> None:
    @app.resource("blobs://{name}")
    def blob(name: str) -> bytes:
        return b""

    content = decode(app.endpoint("blob").encode_output(b"\x00\xffdata"))
    assert content["mime_type"] == "application/octet-stream"
    assert base64.b64decode(content["blob"]) == b"\x00\xffdata"
    assert "text" not in content


def test_resource_other_values_are_json_text(app: App) -> None:
    @app.resource("items://{name}")
    def item(name: str) -> Answer:
        return Answer(text=name)

    content = decode(app.endpoint("item").encode_output(Answer(text="hi")))
    assert content["mime_type"] == "application/json"
    assert decode(content["text"].encode()) == {"text": "hi"}


def test_resource_output_schema_is_the_content_shape(app: App) -> None:
    @app.resource("items://{name}")
    def item(name: str) -> Answer:
        return Answer(text=name)

    assert app.endpoint("item").output_schema == RESOURCE_OUTPUT_SCHEMA


# ---------------------------------------------------------------- prompts


@pytest.fixture
def prompt(app: App) -> Any:
    @app.prompt
    def greet(who: str) -> str:
        return f"Hello {who}"

    return app.endpoint("greet")


def test_prompt_str_becomes_one_user_text_message(prompt: Any) -> None:
    assert decode(prompt.encode_output("Hello")) == {
        "messages": [{"role": "user", "content": {"type": "text", "text": "Hello"}}]
    }


def test_prompt_messages_with_str_content_get_text_content(prompt: Any) -> None:
    value = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    assert decode(prompt.encode_output(value)) == {
        "messages": [
            {"role": "user", "content": {"type": "text", "text": "Hi"}},
            {"role": "assistant", "content": {"type": "text", "text": "Hello!"}},
        ]
    }


def test_prompt_messages_with_structured_content_pass_through(prompt: Any) -> None:
    image = {"type": "image", "data": "AAAA", "mimeType": "image/png"}
    assert decode(prompt.encode_output([{"role": "user", "content": image}])) == {
        "messages": [{"role": "user", "content": image}]
    }


def test_prompt_messages_drop_extra_keys(prompt: Any) -> None:
    value = [{"role": "user", "content": "Hi", "name": "bob"}]
    assert decode(prompt.encode_output(value))["messages"] == [
        {"role": "user", "content": {"type": "text", "text": "Hi"}}
    ]


@pytest.mark.parametrize("value", [42, None, {"role": "user", "content": "Hi"}], ids=["int", "none", "dict"])
def test_prompt_returning_neither_str_nor_list_is_a_type_error(prompt: Any, value: Any) -> None:
    with pytest.raises(TypeError, match="a prompt returns"):
        prompt.encode_output(value)


@pytest.mark.parametrize(
    "value",
    [["just text"], [{"role": "user"}], [{"content": "Hi"}]],
    ids=["str-item", "no-content", "no-role"],
)
def test_prompt_list_with_a_malformed_message_is_a_type_error(prompt: Any, value: Any) -> None:
    with pytest.raises(TypeError, match="a prompt returns"):
        prompt.encode_output(value)


def test_prompt_output_schema_is_the_messages_shape(prompt: Any) -> None:
    assert prompt.output_schema == PROMPT_OUTPUT_SCHEMA


def test_tool_output_is_the_json_of_the_return_value(app: App) -> None:
    @app.tool
    def answer(q: Question) -> Answer:
        return Answer(text=q.text)

    assert decode(app.endpoint("answer").encode_output(Answer(text="hi"))) == {"text": "hi"}


# ---------------------------------------------------------------- spec()


def test_spec_describes_the_endpoint_for_the_gateway(app: App) -> None:
    @app.agent_endpoint(scopes=["ask"], tags=["qa"], examples=[{"text": "why?"}])
    async def ask(q: Question, ctx: RunContext) -> Answer:
        """Answer a question."""
        return Answer(text=q.text)

    endpoint = app.endpoint("ask")
    spec = endpoint.spec()
    assert isinstance(spec, pb.EndpointSpec)
    assert spec.name == "ask"
    assert spec.kind == pb.ENDPOINT_KIND_AGENT
    assert spec.description == "Answer a question."
    assert (spec.durable, spec.streams) == (True, True)
    assert (list(spec.scopes), list(spec.tags)) == (["ask"], ["qa"])
    assert decode(spec.examples) == [{"text": "why?"}]


def test_spec_schemas_decode_to_the_inspected_schemas(app: App) -> None:
    @app.agent_endpoint
    async def ask(q: Question, ctx: RunContext) -> Answer:
        return Answer(text=q.text)

    endpoint = app.endpoint("ask")
    spec = endpoint.spec()
    assert decode(spec.input_schema) == endpoint.shape.input_schema
    assert decode(spec.output_schema) == endpoint.shape.output_schema
    assert decode(spec.input_schema)["properties"]["text"] == {"type": "string"}


def test_spec_survives_the_wire(app: App) -> None:
    @app.tool
    def add(a: int, b: int = 2) -> int:
        return a + b

    spec = app.endpoint("add").spec()
    assert pb.EndpointSpec.FromString(spec.SerializeToString()) == spec


@pytest.mark.parametrize(
    ("decorate", "kind"),
    [
        (lambda app: app.agent_endpoint, pb.ENDPOINT_KIND_AGENT),
        (lambda app: app.tool, pb.ENDPOINT_KIND_TOOL),
        (lambda app: app.prompt, pb.ENDPOINT_KIND_PROMPT),
        (lambda app: app.resource("docs://{name}"), pb.ENDPOINT_KIND_RESOURCE),
    ],
    ids=["agent", "tool", "prompt", "resource"],
)
def test_spec_kind_matches_the_decorator(app: App, decorate: Any, kind: int) -> None:
    def name_fn(name: str) -> str:
        return name

    decorate(app)(name_fn)
    assert app.endpoint("name_fn").spec().kind == kind


def test_resource_spec_carries_template_media_type_and_content_schema(app: App) -> None:
    @app.resource("docs://{name}", mime_type="text/markdown")
    def doc(name: str) -> str:
        return name

    spec = app.endpoint("doc").spec()
    assert (spec.uri_template, spec.mime_type) == ("docs://{name}", "text/markdown")
    assert decode(spec.output_schema) == RESOURCE_OUTPUT_SCHEMA
    assert decode(spec.input_schema)["properties"] == {"name": {"type": "string"}}


def test_prompt_spec_output_schema_is_the_messages_shape(prompt: Any) -> None:
    assert decode(prompt.spec().output_schema) == PROMPT_OUTPUT_SCHEMA


# ---------------------------------------------------------------- isolation


def test_two_apps_keep_separate_registries() -> None:
    first, second = App("first"), App("second")

    @first.tool
    def add(a: int) -> int:
        return a

    @second.tool(name="add")
    def other_add(a: int) -> int:
        return a

    assert first.endpoint("add").fn is add
    assert second.endpoint("add").fn is other_add
    assert list(first.endpoints) == list(second.endpoints) == ["add"]


def test_registering_in_one_app_leaves_another_empty() -> None:
    first, second = App("first"), App("second")

    @first.tool
    def add(a: int) -> int:
        return a

    assert second.endpoints == {}


def test_resource_parameters_must_be_text() -> None:
    app = App("typed")
    with pytest.raises(ValueError, match="must be str"):

        @app.resource("items://{item_id}")
        def item(item_id: int) -> str:
            return str(item_id)


# ---------------------------------------------------------------- completers


def test_prompt_and_resource_completers_are_advertised_in_the_spec(app: App) -> None:
    def cities(value: str) -> list[str]:
        return ["Paris"]

    async def names(value: str, arguments: dict[str, str]) -> list[str]:
        return []

    @app.prompt(complete={"city": cities})
    def trip(city: str, days: int = 1) -> str:
        return city

    @app.resource("notes://{name}", complete={"name": names})
    def note(name: str) -> str:
        return name

    assert list(app.endpoint("trip").spec().completions) == ["city"]
    assert list(app.endpoint("note").spec().completions) == ["name"]
    completer = app.endpoint("trip").completers["city"]
    assert (completer.is_async, completer.with_arguments) == (False, False)
    assert completer.args("P", {"days": "2"}) == ("P",)
    completer = app.endpoint("note").completers["name"]
    assert (completer.is_async, completer.with_arguments) == (True, True)
    assert completer.args("g", {"x": "1"}) == ("g", {"x": "1"})


def test_an_endpoint_without_completers_advertises_none(app: App) -> None:
    @app.prompt
    def plain(topic: str) -> str:
        return topic

    assert list(app.endpoint("plain").spec().completions) == []


def test_a_completer_for_an_argument_the_prompt_lacks_is_refused(app: App) -> None:
    with pytest.raises(ValueError, match="cannot complete 'town'"):

        @app.prompt(complete={"town": lambda value: []})
        def trip(city: str) -> str:
            return city


def test_a_completer_must_be_callable(app: App) -> None:
    with pytest.raises(TypeError, match="must be callable"):

        @app.prompt(complete={"city": ["Paris"]})  # type: ignore[dict-item]
        def trip(city: str) -> str:
            return city


def test_completion_values_are_bounded() -> None:
    values, total, more = completion_values(f"v{n}" for n in range(150))
    assert (len(values), total, more) == (100, 150, True)
    values, total, more = completion_values(["a", "a", "b", "x" * 1001])
    assert (values, total, more) == (["a", "b"], 2, False)  # duplicates and overlong values dropped
    with pytest.raises(TypeError):
        completion_values("abc")
