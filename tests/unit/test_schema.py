# The future import is deliberate: every annotation below is a string that inspect_function must resolve.
from __future__ import annotations

import dataclasses
import enum
import json
import subprocess
import sys
import textwrap
from typing import Annotated, Any, Literal, Optional, TypedDict

import msgspec
import pydantic
import pytest

from fastagentic.schema import FieldError, InputError, inspect_function


class Ctx:
    """Stands in for the runtime's context type."""


class SubCtx(Ctx):
    pass


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Item(msgspec.Struct):
    name: str
    qty: int = 1


class Order(msgspec.Struct, forbid_unknown_fields=True):
    id: int
    items: list[Item]
    note: str | None = None


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0


class Movie(TypedDict):
    title: str
    year: int


class Address(pydantic.BaseModel):
    street: str


class User(pydantic.BaseModel):
    name: str
    age: int
    address: Address


class TreeNode(msgspec.Struct):
    value: int
    children: list[TreeNode] = []


class Opaque:
    """A type neither msgspec nor pydantic can describe."""


def shape_of(fn: Any) -> Any:
    return inspect_function(fn, context_type=Ctx)


def bind_errors(fn: Any, payload: bytes) -> list[FieldError]:
    with pytest.raises(InputError) as caught:
        shape_of(fn).bind(payload, Ctx())
    return caught.value.errors


def order_tool(order: Order) -> None:
    pass


def sum_tool(a: int, b: int = 2, label: str = "sum") -> int:
    return a + b


def items_tool(items: list[Item], limit: int) -> None:
    pass


# --- input schema: a single record parameter is the body --------------------------------------------


def test_struct_record_is_the_input_schema() -> None:
    shape = shape_of(order_tool)
    assert shape.is_record_input
    assert shape.input_schema == {
        "title": "Order",
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        },
        "required": ["id", "items"],
        "additionalProperties": False,
        "$defs": {
            "Item": {
                "title": "Item",
                "type": "object",
                "properties": {"name": {"type": "string"}, "qty": {"type": "integer", "default": 1}},
                "required": ["name"],
            }
        },
    }


def test_dataclass_record_is_the_input_schema() -> None:
    def tool(point: Point) -> None:
        pass

    shape = shape_of(tool)
    assert shape.is_record_input
    assert shape.input_schema["type"] == "object"
    assert shape.input_schema["properties"] == {
        "x": {"type": "number"},
        "y": {"type": "number", "default": 0.0},
    }
    assert shape.input_schema["required"] == ["x"]


def test_typeddict_record_is_the_input_schema() -> None:
    def tool(movie: Movie) -> None:
        pass

    shape = shape_of(tool)
    assert shape.is_record_input
    assert shape.input_schema["properties"] == {"title": {"type": "string"}, "year": {"type": "integer"}}
    assert sorted(shape.input_schema["required"]) == ["title", "year"]


def test_pydantic_record_is_the_input_schema() -> None:
    def tool(user: User) -> None:
        pass

    shape = shape_of(tool)
    assert shape.is_record_input
    assert shape.input_schema["type"] == "object"
    assert shape.input_schema["required"] == ["name", "age", "address"]
    assert shape.input_schema["properties"]["address"] == {"$ref": "#/$defs/Address"}
    assert shape.input_schema["$defs"]["Address"]["properties"]["street"]["type"] == "string"


def test_record_plus_context_is_still_a_record_input() -> None:
    def tool(ctx: Ctx, point: Point) -> None:
        pass

    assert shape_of(tool).is_record_input


def test_record_body_binds_to_a_struct_instance() -> None:
    args, kwargs = shape_of(order_tool).bind(b'{"id": 7, "items": [{"name": "pen"}]}', Ctx())
    assert args == []
    assert kwargs == {"order": Order(id=7, items=[Item(name="pen")])}


def test_record_body_binds_to_a_pydantic_model() -> None:
    def tool(user: User) -> None:
        pass

    _, kwargs = shape_of(tool).bind(b'{"name": "ada", "age": 36, "address": {"street": "x"}}', Ctx())
    assert kwargs == {"user": User(name="ada", age=36, address=Address(street="x"))}


def test_recursive_record_keeps_its_definition() -> None:
    def tool(tree: TreeNode) -> None:
        pass

    schema = shape_of(tool).input_schema
    assert schema["properties"]["children"]["items"] == {"$ref": "#/$defs/TreeNode"}
    assert schema["$defs"]["TreeNode"]["title"] == "TreeNode"


# --- input schema: several parameters form an object ------------------------------------------------


def test_multi_param_schema_lists_required_and_defaults() -> None:
    shape = shape_of(sum_tool)
    assert not shape.is_record_input
    assert shape.input_schema == {
        "type": "object",
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": "integer", "default": 2},
            "label": {"type": "string", "default": "sum"},
        },
        "required": ["a"],
        "additionalProperties": False,
    }


def test_single_primitive_param_is_wrapped_in_an_object() -> None:
    def tool(query: str) -> None:
        pass

    shape = shape_of(tool)
    assert not shape.is_record_input
    assert shape.input_schema["properties"] == {"query": {"type": "string"}}


def test_unannotated_param_accepts_anything() -> None:
    def tool(anything):  # type: ignore[no-untyped-def]
        pass

    shape = shape_of(tool)
    assert shape.input_schema["properties"] == {"anything": {}}
    assert shape.bind(b'{"anything": [1, {"a": null}]}', Ctx()) == ([], {"anything": [1, {"a": None}]})


def test_optional_param_schema_allows_null() -> None:
    def tool(note: Optional[str]) -> None:  # noqa: UP045 - the typing.Optional spelling is under test
        pass

    prop = shape_of(tool).input_schema["properties"]["note"]
    assert prop == {"anyOf": [{"type": "string"}, {"type": "null"}]}


def test_literal_param_schema_is_an_enum() -> None:
    def tool(mode: Literal["fast", "slow"]) -> None:
        pass

    assert shape_of(tool).input_schema["properties"]["mode"] == {"enum": ["fast", "slow"]}


def test_enum_param_schema_refs_the_enum_values() -> None:
    def tool(color: Color) -> None:
        pass

    schema = shape_of(tool).input_schema
    assert schema["properties"]["color"] == {"$ref": "#/$defs/Color"}
    assert schema["$defs"]["Color"]["enum"] == ["blue", "red"]


def test_enum_param_binds_to_the_member() -> None:
    def tool(color: Color) -> None:
        pass

    assert shape_of(tool).bind(b'{"color": "red"}', Ctx()) == ([], {"color": Color.RED})


def test_nested_record_param_is_a_ref_into_defs() -> None:
    def tool(order: Order, dry_run: bool = False) -> None:
        pass

    schema = shape_of(tool).input_schema
    assert schema["properties"]["order"] == {"$ref": "#/$defs/Order"}
    assert set(schema["$defs"]) == {"Order", "Item"}


def test_list_of_records_binds_to_instances() -> None:
    _, kwargs = shape_of(items_tool).bind(
        b'{"items": [{"name": "a"}, {"name": "b", "qty": 3}], "limit": 5}', Ctx()
    )
    assert kwargs == {"items": [Item(name="a"), Item(name="b", qty=3)], "limit": 5}


def test_msgspec_constraints_reach_schema_and_bind() -> None:
    def tool(count: Annotated[int, msgspec.Meta(ge=0)]) -> None:
        pass

    shape = shape_of(tool)
    assert shape.input_schema["properties"]["count"] == {"type": "integer", "minimum": 0}
    assert bind_errors(tool, b'{"count": -1}') == [FieldError("$.count", "Expected `int` >= 0")]


def test_pydantic_param_alongside_primitives() -> None:
    def tool(user: User, limit: int = 10) -> None:
        pass

    shape = shape_of(tool)
    assert not shape.is_record_input
    assert shape.input_schema["properties"]["user"] == {"$ref": "#/$defs/User"}
    assert shape.input_schema["properties"]["limit"] == {"type": "integer", "default": 10}
    assert set(shape.input_schema["$defs"]) == {"User", "Address"}
    _, kwargs = shape.bind(b'{"user": {"name": "ada", "age": 36, "address": {"street": "x"}}}', Ctx())
    assert kwargs == {"user": User(name="ada", age=36, address=Address(street="x"))}


def test_pydantic_list_param_binds_each_model() -> None:
    def tool(addresses: list[Address], verbose: bool) -> None:
        pass

    shape = shape_of(tool)
    assert shape.input_schema["properties"]["addresses"] == {
        "type": "array",
        "items": {"$ref": "#/$defs/Address"},
    }
    _, kwargs = shape.bind(b'{"addresses": [{"street": "a"}], "verbose": true}', Ctx())
    assert kwargs == {"addresses": [Address(street="a")], "verbose": True}


def test_pydantic_field_constraint_in_annotated_is_enforced() -> None:
    def tool(size: Annotated[int, pydantic.Field(gt=0)], name: str) -> None:
        pass

    assert shape_of(tool).input_schema["properties"]["size"]["exclusiveMinimum"] == 0
    assert bind_errors(tool, b'{"size": 0, "name": "x"}') == [
        FieldError("$.size", "Input should be greater than 0")
    ]


def test_default_that_is_not_json_is_left_out_of_the_schema() -> None:
    sentinel = object()

    def tool(value: Any = sentinel) -> None:
        pass

    assert shape_of(tool).input_schema["properties"]["value"] == {}


def test_missing_optional_params_use_the_python_default() -> None:
    default_list: list[int] = [1, 2]

    def tool(numbers: list[int] = default_list) -> None:
        pass

    _, kwargs = shape_of(tool).bind(b"{}", Ctx())
    assert kwargs == {}


def test_positional_only_params_bind_as_args() -> None:
    def tool(a: int, b: int = 5, /, *, c: int = 0) -> None:
        pass

    assert shape_of(tool).bind(b'{"a": 1, "c": 3}', Ctx()) == ([1, 5], {"c": 3})


def test_empty_body_means_no_arguments() -> None:
    def tool() -> None:
        pass

    assert shape_of(tool).bind(b"", Ctx()) == ([], {})


def test_future_annotations_are_resolved() -> None:
    assert sum_tool.__annotations__["a"] == "int"
    assert shape_of(sum_tool).input_schema["properties"]["a"] == {"type": "integer"}


def test_unresolvable_annotation_is_a_type_error() -> None:
    def tool(x: NotDefinedAnywhere) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(TypeError, match="cannot resolve annotations"):
        shape_of(tool)


def test_unsupported_param_type_is_a_type_error() -> None:
    def tool(thing: Opaque) -> None:
        pass

    with pytest.raises(TypeError, match="parameter 'thing'"):
        shape_of(tool)


# --- the context parameter ---------------------------------------------------------------------------


def test_context_param_is_excluded_from_the_schema() -> None:
    def tool(ctx: Ctx, query: str) -> None:
        pass

    shape = shape_of(tool)
    assert shape.context_param == "ctx"
    assert list(shape.input_schema["properties"]) == ["query"]
    assert shape.input_schema["required"] == ["query"]


def test_context_is_injected_by_bind() -> None:
    def tool(query: str, ctx: Ctx) -> None:
        pass

    context = Ctx()
    assert shape_of(tool).bind(b'{"query": "q"}', context) == ([], {"query": "q", "ctx": context})


def test_context_subclass_annotation_is_the_context_param() -> None:
    def tool(ctx: SubCtx) -> None:
        pass

    assert shape_of(tool).context_param == "ctx"


def test_body_cannot_supply_the_context() -> None:
    def tool(ctx: Ctx) -> None:
        pass

    assert bind_errors(tool, b'{"ctx": 1}') == [FieldError("$.ctx", "Object contains unknown field `ctx`")]


def test_two_context_params_are_rejected() -> None:
    def tool(a: Ctx, b: Ctx) -> None:
        pass

    with pytest.raises(TypeError, match="context"):
        shape_of(tool)


def test_no_context_param_is_none() -> None:
    assert shape_of(sum_tool).context_param is None


# --- bind errors -------------------------------------------------------------------------------------


def test_bind_error_path_for_wrong_type_nested_in_a_list() -> None:
    errors = bind_errors(items_tool, b'{"items": [{"name": "a"}, {"name": 2}], "limit": 1}')
    assert errors == [FieldError("$.items[1].name", "Expected `str`, got `int`")]


def test_bind_error_for_missing_required_param() -> None:
    assert bind_errors(sum_tool, b'{"b": 1}') == [FieldError("$.a", "Object missing required field `a`")]


def test_bind_error_for_missing_field_in_a_nested_record() -> None:
    errors = bind_errors(items_tool, b'{"items": [{}], "limit": 1}')
    assert errors == [FieldError("$.items[0].name", "Object missing required field `name`")]


def test_bind_error_for_unknown_param() -> None:
    errors = bind_errors(sum_tool, b'{"a": 1, "bogus": 2}')
    assert errors == [FieldError("$.bogus", "Object contains unknown field `bogus`")]


def test_bind_error_for_malformed_json() -> None:
    (error,) = bind_errors(sum_tool, b'{"a": ')
    assert error.path == "$"
    assert error.message.startswith("Malformed JSON: ")


def test_bind_error_for_a_body_that_is_not_an_object() -> None:
    assert bind_errors(sum_tool, b"[1, 2]") == [FieldError("$", "Expected `object`, got `array`")]


def test_bind_error_for_an_invalid_enum_value() -> None:
    def tool(color: Color) -> None:
        pass

    assert bind_errors(tool, b'{"color": "green"}') == [FieldError("$.color", "Invalid enum value 'green'")]


def test_bind_error_paths_for_a_pydantic_param_start_at_the_param() -> None:
    def tool(user: User, verbose: bool = False) -> None:
        pass

    errors = bind_errors(tool, b'{"user": {"name": "ada", "age": "old", "address": {}}}')
    assert [e.path for e in errors] == ["$.user.age", "$.user.address.street"]
    assert errors[1].message == "Field required"


def test_bind_error_for_malformed_json_in_a_pydantic_record() -> None:
    def tool(user: User) -> None:
        pass

    (error,) = bind_errors(tool, b'{"name": ')
    assert error.path == "$"
    assert error.message.startswith("Malformed JSON: ")


def test_input_error_message_names_each_path() -> None:
    error = InputError([FieldError("$.a", "bad"), FieldError("$.b", "worse")])
    assert str(error) == "$.a: bad; $.b: worse"


# --- output ------------------------------------------------------------------------------------------


def test_output_schema_of_none_is_null() -> None:
    assert shape_of(order_tool).output_schema == {"type": "null"}


def test_output_schema_of_any_is_empty() -> None:
    def tool() -> Any:
        pass

    assert shape_of(tool).output_schema == {}


def test_output_schema_without_annotation_is_empty() -> None:
    def tool():  # type: ignore[no-untyped-def]
        pass

    assert shape_of(tool).output_schema == {}


def test_output_schema_of_a_primitive() -> None:
    assert shape_of(sum_tool).output_schema == {"type": "integer"}


def test_output_schema_of_a_record_is_inlined() -> None:
    def tool() -> Order:
        raise NotImplementedError

    schema = shape_of(tool).output_schema
    assert schema["title"] == "Order"
    assert set(schema["$defs"]) == {"Item"}


def test_output_schema_of_a_pydantic_model_is_inlined() -> None:
    def tool() -> User:
        raise NotImplementedError

    schema = shape_of(tool).output_schema
    assert schema["title"] == "User"
    assert set(schema["$defs"]) == {"Address"}


def test_encode_output_of_a_struct() -> None:
    encoded = shape_of(order_tool).encode_output(Order(id=1, items=[Item(name="a")]))
    assert json.loads(encoded) == {"id": 1, "items": [{"name": "a", "qty": 1}], "note": None}


def test_encode_output_of_a_dataclass() -> None:
    assert json.loads(shape_of(sum_tool).encode_output(Point(x=1.5))) == {"x": 1.5, "y": 0.0}


def test_encode_output_of_a_typeddict() -> None:
    movie: Movie = {"title": "Heat", "year": 1995}
    assert json.loads(shape_of(sum_tool).encode_output(movie)) == {"title": "Heat", "year": 1995}


def test_encode_output_of_a_pydantic_model() -> None:
    user = User(name="ada", age=36, address=Address(street="x"))
    assert json.loads(shape_of(sum_tool).encode_output(user)) == {
        "name": "ada",
        "age": 36,
        "address": {"street": "x"},
    }


def test_encode_output_of_pydantic_models_nested_in_containers() -> None:
    value = {"found": [Address(street="a")], "point": Point(x=1.0)}
    assert json.loads(shape_of(sum_tool).encode_output(value)) == {
        "found": [{"street": "a"}],
        "point": {"x": 1.0, "y": 0.0},
    }


def test_encode_output_of_primitives_and_enums() -> None:
    shape = shape_of(sum_tool)
    assert shape.encode_output(3) == b"3"
    assert shape.encode_output(None) == b"null"
    assert shape.encode_output(Color.BLUE) == b'"blue"'


def test_encode_output_of_an_unknown_object_fails() -> None:
    with pytest.raises(TypeError):
        shape_of(sum_tool).encode_output(Opaque())


# --- signature handling ------------------------------------------------------------------------------


def test_var_positional_is_rejected() -> None:
    def tool(*args: int) -> None:
        pass

    with pytest.raises(TypeError, match=r"\*args"):
        shape_of(tool)


def test_var_keyword_is_rejected() -> None:
    def tool(**kwargs: int) -> None:
        pass

    with pytest.raises(TypeError, match=r"\*\*kwargs"):
        shape_of(tool)


def test_description_is_the_first_docstring_paragraph() -> None:
    def tool() -> None:
        """Search the catalogue
        for matching items.

        Args are described here.
        """

    assert shape_of(tool).description == "Search the catalogue for matching items."


def test_description_is_empty_without_docstring() -> None:
    assert shape_of(sum_tool).description == ""


def test_async_functions_are_flagged() -> None:
    async def tool() -> int:
        return 1

    shape = shape_of(tool)
    assert shape.is_async
    assert shape.output_schema == {"type": "integer"}


def test_sync_functions_are_not_flagged_async() -> None:
    assert not shape_of(sum_tool).is_async


def test_schema_module_works_without_pydantic() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["pydantic"] = None  # makes `import pydantic` fail, as if it were not installed
        import msgspec
        from fastagentic.schema import inspect_function

        class Ctx:
            pass

        class Item(msgspec.Struct):
            name: str

        def tool(item: Item, ctx: Ctx) -> Item:
            return item

        shape = inspect_function(tool, context_type=Ctx)
        args, kwargs = shape.bind(b'{"name": "a"}', Ctx())
        print(shape.encode_output(kwargs["item"]).decode())
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '{"name":"a"}'
