"""The endpoint registry: replicas, conflicts, validation of worker specs, URI templates."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fastagentic.v1 import worker_pb2 as pb
from fastagentic_gateway.runs.model import EndpointKind
from fastagentic_gateway.workers.connection import WorkerConnection
from fastagentic_gateway.workers.registry import EndpointRegistry, RegistrationError

INPUT = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
OTHER_INPUT = {"type": "object", "properties": {"text": {"type": "integer"}}, "required": ["text"]}
OUTPUT = {"type": "string"}


def spec(
    name: str = "echo",
    *,
    kind: int = pb.ENDPOINT_KIND_TOOL,
    input_schema: Any = INPUT,
    output_schema: Any = OUTPUT,
    durable: bool = False,
    **fields: Any,
) -> pb.EndpointSpec:
    return pb.EndpointSpec(
        name=name,
        kind=kind,
        input_schema=msgspec.json.encode(input_schema),
        output_schema=msgspec.json.encode(output_schema),
        durable=durable,
        **fields,
    )


def resource_spec(name: str, template: str, params: list[str]) -> pb.EndpointSpec:
    schema = {
        "type": "object",
        "properties": {param: {"type": "string"} for param in params},
        "required": params,
    }
    return spec(name, kind=pb.ENDPOINT_KIND_RESOURCE, input_schema=schema, uri_template=template)


def worker(worker_id: str = "w1") -> WorkerConnection:
    return WorkerConnection(worker_id, "app", 4, [])


@pytest.fixture
def registry() -> EndpointRegistry:
    return EndpointRegistry()


# ---------------------------------------------------------------- registering


def test_registered_endpoint_is_described_from_its_spec(registry: EndpointRegistry) -> None:
    registry.register(
        worker(),
        [
            spec(
                "echo",
                kind=pb.ENDPOINT_KIND_AGENT,
                durable=True,
                description="Echo it.",
                streams=True,
                scopes=["echo:run"],
                tags=["demo"],
                examples=msgspec.json.encode([{"text": "hi"}]),
            )
        ],
    )
    endpoint = registry.get("echo")
    assert endpoint is not None
    info = endpoint.info
    assert info.kind is EndpointKind.AGENT
    assert info.description == "Echo it."
    assert info.input_schema == INPUT
    assert info.output_schema == OUTPUT
    assert (info.streams, info.durable) == (True, True)
    assert (info.scopes, info.tags, info.examples) == (["echo:run"], ["demo"], [{"text": "hi"}])


def test_register_returns_the_endpoints_in_spec_order(registry: EndpointRegistry) -> None:
    registered = registry.register(worker(), [spec("b"), spec("a")])
    assert [endpoint.name for endpoint in registered] == ["b", "a"]


def test_empty_schemas_default_to_accept_anything(registry: EndpointRegistry) -> None:
    registry.register(worker(), [pb.EndpointSpec(name="free", kind=pb.ENDPOINT_KIND_TOOL)])
    endpoint = registry.get("free")
    assert endpoint is not None
    assert (endpoint.info.input_schema, endpoint.info.output_schema, endpoint.info.examples) == ({}, {}, [])


def test_unknown_name_is_not_found(registry: EndpointRegistry) -> None:
    assert registry.get("nobody") is None


# ---------------------------------------------------------------- replicas and conflicts


def test_replicas_with_identical_specs_share_one_endpoint(registry: EndpointRegistry) -> None:
    first, second = worker("w1"), worker("w2")
    [a] = registry.register(first, [spec()])
    [b] = registry.register(second, [spec()])
    assert a is b
    assert registry.get("echo") is a
    assert a.workers == [first, second]
    assert registry.served() == [a]


def test_replica_with_a_different_description_is_still_a_replica(registry: EndpointRegistry) -> None:
    first, second = worker("w1"), worker("w2")
    registry.register(first, [spec(description="old words")])
    [endpoint] = registry.register(second, [spec(description="new words")])
    assert endpoint.workers == [first, second]


@pytest.mark.parametrize(
    "different",
    [
        spec(input_schema=OTHER_INPUT),
        spec(output_schema={"type": "integer"}),
        spec(kind=pb.ENDPOINT_KIND_AGENT),
        spec(durable=True),
    ],
    ids=["input_schema", "output_schema", "kind", "durability"],
)
def test_differing_spec_is_refused_while_the_first_is_served(
    registry: EndpointRegistry, different: pb.EndpointSpec
) -> None:
    first = worker("w1")
    registry.register(first, [spec()])
    with pytest.raises(RegistrationError, match="'echo'"):
        registry.register(worker("w2"), [different])
    endpoint = registry.get("echo")
    assert endpoint is not None
    assert endpoint.info.input_schema == INPUT
    assert endpoint.info.kind is EndpointKind.TOOL
    assert endpoint.workers == [first]


def test_differing_uri_template_is_refused_while_the_first_is_served(registry: EndpointRegistry) -> None:
    registry.register(worker("w1"), [resource_spec("doc", "docs://{name}", ["name"])])
    with pytest.raises(RegistrationError, match="'doc'"):
        registry.register(worker("w2"), [resource_spec("doc", "files://{name}", ["name"])])


def test_differing_spec_is_accepted_after_the_first_worker_unregisters(registry: EndpointRegistry) -> None:
    first, second = worker("w1"), worker("w2")
    registry.register(first, [spec()])
    registry.unregister(first)
    [endpoint] = registry.register(second, [spec(input_schema=OTHER_INPUT, durable=True)])
    assert registry.get("echo") is endpoint
    assert endpoint.info.input_schema == OTHER_INPUT
    assert endpoint.info.durable is True
    assert endpoint.workers == [second]


def test_refused_registration_registers_none_of_its_endpoints(registry: EndpointRegistry) -> None:
    registry.register(worker("w1"), [spec("echo")])
    second = worker("w2")
    with pytest.raises(RegistrationError):
        registry.register(second, [spec("fresh"), spec("echo", input_schema=OTHER_INPUT)])
    assert registry.get("fresh") is None
    echo = registry.get("echo")
    assert echo is not None
    assert second not in echo.workers


def test_duplicate_names_in_one_registration_are_refused(registry: EndpointRegistry) -> None:
    with pytest.raises(RegistrationError, match="twice"):
        registry.register(worker(), [spec("echo"), spec("echo")])
    assert registry.get("echo") is None


# ---------------------------------------------------------------- invalid specs


@pytest.mark.parametrize("name", ["", "1echo", "_echo", "has space", "slash/name", "é", "a" * 129])
def test_invalid_endpoint_name_is_refused(registry: EndpointRegistry, name: str) -> None:
    with pytest.raises(RegistrationError, match="name"):
        registry.register(worker(), [spec(name)])


@pytest.mark.parametrize("name", ["a", "Echo", "my.agent-v2_beta", "a" * 128])
def test_valid_endpoint_name_is_accepted(registry: EndpointRegistry, name: str) -> None:
    registry.register(worker(), [spec(name)])
    assert registry.get(name) is not None


def test_invalid_json_schema_is_refused(registry: EndpointRegistry) -> None:
    with pytest.raises(RegistrationError, match="input_schema is not a valid JSON Schema"):
        registry.register(worker(), [spec(input_schema={"type": "nonsense"})])


def test_invalid_output_json_schema_is_refused(registry: EndpointRegistry) -> None:
    with pytest.raises(RegistrationError, match="output_schema is not a valid JSON Schema"):
        registry.register(worker(), [spec(output_schema={"minLength": "three"})])


def test_schema_that_is_not_json_is_refused(registry: EndpointRegistry) -> None:
    bad = pb.EndpointSpec(name="echo", kind=pb.ENDPOINT_KIND_TOOL, input_schema=b"{not json")
    with pytest.raises(RegistrationError, match="input_schema is not valid JSON"):
        registry.register(worker(), [bad])


def test_schema_that_is_json_but_not_an_object_is_refused(registry: EndpointRegistry) -> None:
    with pytest.raises(RegistrationError, match="input_schema must be a JSON Schema object"):
        registry.register(worker(), [spec(input_schema=[1, 2])])


def test_examples_that_are_not_an_array_are_refused(registry: EndpointRegistry) -> None:
    with pytest.raises(RegistrationError, match="examples"):
        registry.register(worker(), [spec(examples=msgspec.json.encode({"text": "hi"}))])


@pytest.mark.parametrize("kind", [pb.ENDPOINT_KIND_UNSPECIFIED, 99])
def test_unknown_kind_is_refused(registry: EndpointRegistry, kind: int) -> None:
    with pytest.raises(RegistrationError, match="unknown kind"):
        registry.register(worker(), [spec(kind=kind)])


def test_resource_without_scheme_is_refused(registry: EndpointRegistry) -> None:
    with pytest.raises(RegistrationError, match="scheme"):
        registry.register(worker(), [resource_spec("doc", "{name}", ["name"])])


@pytest.mark.parametrize(
    ("template", "params"),
    [("docs://{name}", []), ("docs://{name}", ["name", "extra"]), ("docs://{title}", ["name"])],
    ids=["undeclared-variable", "extra-property", "different-name"],
)
def test_resource_whose_template_variables_differ_from_its_input_properties_is_refused(
    registry: EndpointRegistry, template: str, params: list[str]
) -> None:
    # The SDK enforces this; the gateway must too, or the OpenAPI path parameters do not resolve.
    with pytest.raises(RegistrationError, match="'doc'"):
        registry.register(worker(), [resource_spec("doc", template, params)])


def test_nothing_changes_when_a_spec_is_invalid(registry: EndpointRegistry) -> None:
    with pytest.raises(RegistrationError):
        registry.register(worker(), [spec("good"), spec("bad", kind=pb.ENDPOINT_KIND_UNSPECIFIED)])
    assert registry.get("good") is None
    assert registry.version == 0


# ---------------------------------------------------------------- unregistering and versions


def test_unregistered_endpoint_stays_known_but_is_not_served(registry: EndpointRegistry) -> None:
    only = worker()
    registry.register(only, [spec()])
    registry.unregister(only)
    endpoint = registry.get("echo")
    assert endpoint is not None
    assert endpoint.workers == []
    assert registry.served() == []
    assert list(registry) == [endpoint]


def test_endpoint_stays_served_while_a_replica_remains(registry: EndpointRegistry) -> None:
    first, second = worker("w1"), worker("w2")
    registry.register(first, [spec()])
    registry.register(second, [spec()])
    registry.unregister(first)
    [endpoint] = registry.served()
    assert endpoint.workers == [second]


def test_version_bumps_on_register_and_unregister(registry: EndpointRegistry) -> None:
    only = worker()
    start = registry.version
    registry.register(only, [spec()])
    after_register = registry.version
    registry.unregister(only)
    assert start < after_register < registry.version


def test_version_does_not_bump_on_a_refused_registration(registry: EndpointRegistry) -> None:
    registry.register(worker("w1"), [spec()])
    before = registry.version
    with pytest.raises(RegistrationError):
        registry.register(worker("w2"), [spec(input_schema=OTHER_INPUT)])
    assert registry.version == before


def test_change_listeners_are_called_on_every_change(registry: EndpointRegistry) -> None:
    calls: list[int] = []
    registry.on_change(lambda: calls.append(registry.version))
    only = worker()
    registry.register(only, [spec()])
    registry.unregister(only)
    assert calls == [1, 2]


# ---------------------------------------------------------------- resources by URI


def test_resource_for_matches_a_template_and_extracts_its_variable(registry: EndpointRegistry) -> None:
    registry.register(worker(), [resource_spec("doc", "docs://{name}", ["name"])])
    found = registry.resource_for("docs://readme")
    assert found is not None
    endpoint, params = found
    assert endpoint.name == "doc"
    assert params == {"name": "readme"}


def test_resource_for_extracts_several_variables(registry: EndpointRegistry) -> None:
    registry.register(worker(), [resource_spec("file", "files://{folder}/{file}.txt", ["folder", "file"])])
    found = registry.resource_for("files://notes/today.txt")
    assert found is not None
    assert found[1] == {"folder": "notes", "file": "today"}


def test_resource_for_matches_a_fixed_uri_without_variables(registry: EndpointRegistry) -> None:
    registry.register(worker(), [resource_spec("status", "app://status", [])])
    assert registry.resource_for("app://status") is not None


@pytest.mark.parametrize(
    "uri", ["docs://", "docs://a/b", "other://readme", "docs://readme?x=1", "xdocs://readme"]
)
def test_resource_for_returns_none_when_no_template_matches(registry: EndpointRegistry, uri: str) -> None:
    registry.register(worker(), [resource_spec("doc", "docs://{name}", ["name"])])
    assert registry.resource_for(uri) is None


def test_resource_for_treats_template_text_literally(registry: EndpointRegistry) -> None:
    registry.register(worker(), [resource_spec("doc", "docs://a.b/{name}", ["name"])])
    assert registry.resource_for("docs://aXb/readme") is None
    assert registry.resource_for("docs://a.b/readme") is not None


def test_resource_for_ignores_tools(registry: EndpointRegistry) -> None:
    registry.register(worker(), [spec("docs")])
    assert registry.resource_for("docs://readme") is None


@pytest.mark.parametrize("scope", ["отчёты:чтение", 'a"b', "with space", "", "back\\slash"])
def test_a_scope_that_is_no_oauth_scope_token_is_refused(registry: EndpointRegistry, scope: str) -> None:
    """A scope must fit a WWW-Authenticate challenge: else every 403 of the endpoint would fail."""
    with pytest.raises(RegistrationError, match="is not an OAuth scope token"):
        registry.register(worker(), [spec(scopes=[scope])])


def test_an_endpoint_is_served_under_one_credential(registry: EndpointRegistry) -> None:
    first = WorkerConnection("w1", "app", 4, ["echo"], credential="wtk_a")
    registry.register(first, [spec()])
    registry.register(WorkerConnection("w2", "app", 4, ["echo"], credential="wtk_a"), [spec()])
    with pytest.raises(RegistrationError, match="another worker token"):
        registry.register(WorkerConnection("w3", "app", 4, ["echo"], credential="wtk_b"), [spec()])


def test_input_before_task_is_refused_on_what_does_not_run_as_a_task(registry: EndpointRegistry) -> None:
    with pytest.raises(RegistrationError, match="ask for input before their task"):
        registry.register(worker("w1"), [spec(input_before_task=True)])  # an ephemeral tool
    [agent] = registry.register(worker("w1"), [spec(kind=pb.ENDPOINT_KIND_AGENT, input_before_task=True)])
    assert agent.info.input_before_task is True


def test_replicas_must_agree_on_input_before_task(registry: EndpointRegistry) -> None:
    registry.register(worker("w1"), [spec(kind=pb.ENDPOINT_KIND_AGENT, input_before_task=True)])
    with pytest.raises(RegistrationError, match="'echo'"):
        registry.register(worker("w2"), [spec(kind=pb.ENDPOINT_KIND_AGENT)])
