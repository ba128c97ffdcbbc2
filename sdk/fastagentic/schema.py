"""Function signatures to JSON Schemas and JSON codecs.

`inspect_function` reads a function's annotations once and returns a `FunctionShape`: the input and
output JSON Schemas (2020-12, self-contained) plus a precompiled decoder that turns a JSON request body
into call arguments and an encoder for the return value.

msgspec does the work for every type it understands. Pydantic is optional: it is never imported here,
only used when the caller's own types already loaded it.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from .content import CONTENT_SCHEMA_MARKER, returns_content

__all__ = ["FieldError", "FunctionShape", "InputError", "inspect_function"]

_DEFS_PREFIX = "#/$defs/"
_MSGSPEC_REF_TEMPLATE = _DEFS_PREFIX + "{name}"
_PYDANTIC_REF_TEMPLATE = _DEFS_PREFIX + "{model}"

# msgspec reports the location as a suffix: "Expected `int`, got `str` - at `$.a`".
_AT_PATH = re.compile(r"(?s)(.*) - at `(\$.*)`")
# These two messages name a field that lives one level below the reported location.
_NAMED_FIELD = re.compile(r"Object (?:missing required|contains unknown) field `(.*)`")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Annotated metadata from these packages carries constraints only pydantic enforces.
_PYDANTIC_METADATA_MODULES = ("pydantic", "annotated_types")

_EMPTY = inspect.Parameter.empty


class FieldError(msgspec.Struct, frozen=True):
    """One offending field: its JSON path ("$" for the whole body) and what is wrong with it."""

    path: str
    message: str


class InputError(Exception):
    """Input that does not match the function's parameters."""

    errors: list[FieldError]

    def __init__(self, errors: list[FieldError]) -> None:
        if not errors:
            raise ValueError("InputError needs at least one FieldError")
        self.errors = errors
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in errors))


def _json_key(name: str) -> str:
    """Path segment for an object key: `.name`, or `["odd key"]` when it is not an identifier."""
    if _IDENTIFIER.fullmatch(name):
        return "." + name
    return "[" + msgspec.json.encode(name).decode() + "]"


def _msgspec_field_error(exc: msgspec.ValidationError) -> FieldError:
    text = str(exc)
    path = "$"
    at = _AT_PATH.fullmatch(text)
    if at is not None:
        text, path = at.group(1), at.group(2)
    named = _NAMED_FIELD.fullmatch(text)
    if named is not None:
        path += _json_key(named.group(1))
    return FieldError(path=path, message=text)


def _pydantic_field_errors(exc: Any, prefix: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for err in exc.errors(include_url=False):
        if err["type"] == "json_invalid":
            detail = err.get("ctx", {}).get("error", err["msg"])
            errors.append(FieldError(path="$", message=f"Malformed JSON: {detail}"))
            continue
        path = prefix
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else _json_key(str(part))
        errors.append(FieldError(path=path, message=str(err["msg"])))
    if not errors:
        errors.append(FieldError(path=prefix, message=str(exc)))
    return errors


def _encode_fallback(obj: Any) -> Any:
    """msgspec enc_hook: called only for objects msgspec cannot encode itself."""
    if _is_pydantic_class(type(obj)):
        # by_alias matches the output schema, which pydantic generates with aliases.
        return obj.model_dump(mode="json", by_alias=True)
    # TypeError is what msgspec itself raises for unsupported objects, so callers see one error type.
    raise TypeError(f"Encoding objects of type {type(obj).__qualname__} is unsupported")


# Encoder methods are thread-safe (msgspec >= 0.16), so sync functions run in threads can share one.
_ENCODER = msgspec.json.Encoder(enc_hook=_encode_fallback)


def _pydantic() -> Any:
    """The pydantic module if the application has imported it, else None; never imports it."""
    return sys.modules.get("pydantic")


def _strip_annotated(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    if typing.get_origin(tp) is typing.Annotated:
        args = typing.get_args(tp)
        return args[0], tuple(args[1:])
    return tp, ()


def _is_pydantic_class(tp: Any) -> bool:
    pyd = _pydantic()
    if pyd is None or not isinstance(tp, type):
        return False
    if issubclass(tp, pyd.BaseModel):
        return True
    # Pydantic dataclasses are also plain dataclasses, but only pydantic runs their validators.
    return dataclasses.is_dataclass(tp) and hasattr(tp, "__pydantic_validator__")


def _mentions_pydantic(tp: Any) -> bool:
    """True when pydantic must handle `tp`: a model or pydantic constraint anywhere inside it."""
    if _pydantic() is None:
        return False
    base, metadata = _strip_annotated(tp)
    for item in metadata:
        if type(item).__module__.split(".", 1)[0] in _PYDANTIC_METADATA_MODULES:
            return True
    if _is_pydantic_class(base):
        return True
    return any(_mentions_pydantic(arg) for arg in typing.get_args(base))


def _is_record(tp: Any) -> bool:
    base, _ = _strip_annotated(tp)
    cls = typing.get_origin(base) or base
    if not isinstance(cls, type):
        return False
    return (
        issubclass(cls, msgspec.Struct)
        or dataclasses.is_dataclass(cls)
        or typing.is_typeddict(cls)
        or _is_pydantic_class(cls)
    )


def _is_context(tp: Any, context_type: type) -> bool:
    base, _ = _strip_annotated(tp)
    return isinstance(base, type) and issubclass(base, context_type)


def _pydantic_adapter(tp: Any, where: str) -> Any | None:
    """A pydantic TypeAdapter when pydantic must handle `tp`, None when msgspec can."""
    if not _mentions_pydantic(tp):
        try:
            # Schema generation is the cheapest complete check that msgspec supports every nested type.
            msgspec.json.schema(tp)
        except TypeError as exc:
            if _pydantic() is None:
                raise TypeError(f"{where}: type {tp!r} is not supported: {exc}") from exc
        else:
            return None
    try:
        return _pydantic().TypeAdapter(tp)
    # Pydantic's schema-generation errors do not share a base with TypeError; report them as one.
    except Exception as exc:
        raise TypeError(f"{where}: type {tp!r} is not supported: {exc}") from exc


def _merge_defs(into: dict[str, Any], new: dict[str, Any], where: str) -> None:
    for name, schema in new.items():
        if name in into and into[name] != schema:
            raise TypeError(f"{where}: two different types both need the schema name {name!r}")
        into[name] = schema


def _schemas_for(
    types: dict[str, tuple[Any, Any | None]], mode: str, where: str
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Schemas for named types (each with its pydantic adapter or None), sharing one `$defs` table."""
    schemas: dict[str, dict[str, Any]] = {}
    defs: dict[str, Any] = {}
    native = [(key, tp) for key, (tp, adapter) in types.items() if adapter is None]
    if native:
        # One call for all types so shared nested definitions get a single consistent name.
        generated, components = msgspec.json.schema_components(
            [tp for _, tp in native], ref_template=_MSGSPEC_REF_TEMPLATE
        )
        schemas.update(zip([key for key, _ in native], generated, strict=True))
        _merge_defs(defs, dict(components), where)
    modelled = [(key, mode, adapter) for key, (_, adapter) in types.items() if adapter is not None]
    if modelled:
        generated_map, definitions = _pydantic().TypeAdapter.json_schemas(
            modelled, ref_template=_PYDANTIC_REF_TEMPLATE
        )
        for (key, _), schema in generated_map.items():
            schemas[key] = schema
        _merge_defs(defs, definitions.get("$defs", {}), where)
    return schemas, defs


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        found = set()
        for value in node:
            found |= _refs(value)
        return found
    return set()


def _document(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A self-contained schema document; a bare top-level `$ref` is inlined so the root has a "type"."""
    ref = schema.get("$ref")
    if len(schema) == 1 and isinstance(ref, str) and ref.startswith(_DEFS_PREFIX):
        name = ref[len(_DEFS_PREFIX) :]
        if name in defs:
            schema = defs[name]
            rest = {key: value for key, value in defs.items() if key != name}
            # Recursive types still point at their definition, so keep it when anything refers back.
            if ref in _refs(schema) or ref in _refs(rest):
                rest[name] = defs[name]
            defs = rest
    document = dict(schema)
    if defs:
        document["$defs"] = defs
    return document


def _json_default(value: Any) -> tuple[bool, Any]:
    """(True, JSON form of value) when the default can be shown in a schema, else (False, None)."""
    try:
        return True, msgspec.json.decode(_ENCODER.encode(value))
    except (TypeError, ValueError, msgspec.MsgspecError):
        return False, None


def _first_paragraph(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn) or ""
    paragraph = re.split(r"\n\s*\n", doc.strip(), maxsplit=1)[0]
    return " ".join(paragraph.split())


class _Param(msgspec.Struct, frozen=True):
    """How bind fills one parameter of the call."""

    name: str
    positional_only: bool
    is_context: bool
    default: Any
    adapter: Any  # pydantic TypeAdapter validating this parameter, or None when msgspec decodes it


_MISSING: Any = object()


class _NoPydanticError(Exception):
    """Stands in for pydantic's ValidationError when a function needs no pydantic; never raised."""


class FunctionShape:
    """Schemas and precompiled codecs for one function; built by `inspect_function`."""

    __slots__ = (
        "_params",
        "_pydantic_error",
        "_record_adapter",
        "_record_decoder",
        "_record_name",
        "_struct_decoder",
        "context_param",
        "description",
        "input_schema",
        "is_async",
        "is_record_input",
        "output_schema",
    )

    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    context_param: str | None
    is_async: bool
    is_record_input: bool
    description: str

    def __init__(
        self,
        *,
        input_schema: dict[str, Any],
        output_schema: dict[str, Any],
        context_param: str | None,
        is_async: bool,
        description: str,
        params: tuple[_Param, ...],
        struct_decoder: msgspec.json.Decoder[Any] | None,
        record_name: str | None,
        record_decoder: msgspec.json.Decoder[Any] | None,
    ) -> None:
        self.input_schema = input_schema
        self.output_schema = output_schema
        self.context_param = context_param
        self.is_async = is_async
        self.is_record_input = record_name is not None
        self.description = description
        self._params = params
        self._struct_decoder = struct_decoder
        self._record_name = record_name
        self._record_decoder = record_decoder
        self._record_adapter: Any = next((p.adapter for p in params if p.name == record_name), None)
        uses_pydantic = any(p.adapter is not None for p in params)
        self._pydantic_error: type[Exception] = (
            _pydantic().ValidationError if uses_pydantic else _NoPydanticError
        )

    def bind(self, payload: bytes, context: object) -> tuple[list[Any], dict[str, Any]]:
        """Decode the JSON request body into call arguments, injecting `context` into context_param."""
        # An empty body means "no arguments", the natural request for a function without parameters.
        if not payload or payload.isspace():
            payload = b"{}"
        values = self._decode(payload)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for param in self._params:
            value = context if param.is_context else values.get(param.name, _MISSING)
            if param.positional_only:
                # A later positional argument needs every earlier slot filled, defaults included.
                args.append(param.default if value is _MISSING else value)
            elif value is not _MISSING:
                kwargs[param.name] = value
        return args, kwargs

    def _decode(self, payload: bytes) -> dict[str, Any]:
        name = self._record_name
        try:
            if name is not None:
                if self._record_decoder is not None:
                    return {name: self._record_decoder.decode(payload)}
                return {name: self._record_adapter.validate_json(payload)}
            assert self._struct_decoder is not None
            decoded = self._struct_decoder.decode(payload)
        # ValidationError subclasses DecodeError, so it must be caught first.
        except msgspec.ValidationError as exc:
            raise InputError([_msgspec_field_error(exc)]) from None
        except msgspec.DecodeError as exc:
            raise InputError([FieldError(path="$", message=f"Malformed JSON: {exc}")]) from None
        except self._pydantic_error as exc:
            raise InputError(_pydantic_field_errors(exc, "$")) from None
        values: dict[str, Any] = {}
        errors: list[FieldError] = []
        for param in self._params:
            if param.is_context:
                continue
            value = getattr(decoded, param.name)
            if value is msgspec.UNSET:
                continue
            if param.adapter is not None:
                try:
                    value = param.adapter.validate_json(bytes(value))
                except self._pydantic_error as exc:
                    errors.extend(_pydantic_field_errors(exc, "$" + _json_key(param.name)))
                    continue
            values[param.name] = value
        if errors:
            raise InputError(errors)
        return values

    def encode_output(self, value: Any) -> bytes:
        """JSON bytes of the return value; pydantic models (also nested) go through model_dump."""
        return _ENCODER.encode(value)


def inspect_function(fn: Callable[..., Any], *, context_type: type, kind: str = "tool") -> FunctionShape:
    """Read `fn`'s signature once and build its schemas and codecs.

    Raises TypeError for signatures that cannot be served: *args/**kwargs, two context parameters,
    unresolvable or unsupported annotations.
    """
    where = f"{kind} {getattr(fn, '__qualname__', repr(fn))}"
    signature = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise TypeError(f"{where}: cannot resolve annotations: {exc}") from exc

    context_param: str | None = None
    params: list[_Param] = []
    types: dict[str, tuple[Any, Any | None]] = {}
    for p in signature.parameters.values():
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            star = "*" if p.kind is inspect.Parameter.VAR_POSITIONAL else "**"
            raise TypeError(
                f"{where}: {star}{p.name} is not supported; declare each argument as a named parameter"
            )
        tp = hints.get(p.name, Any)
        positional_only = p.kind is inspect.Parameter.POSITIONAL_ONLY
        if _is_context(tp, context_type):
            if context_param is not None:
                raise TypeError(f"{where}: both {context_param!r} and {p.name!r} ask for the context")
            context_param = p.name
            params.append(_Param(p.name, positional_only, True, p.default, None))
            continue
        adapter = _pydantic_adapter(tp, f"{where}, parameter {p.name!r}")
        types[p.name] = (tp, adapter)
        params.append(_Param(p.name, positional_only, False, p.default, adapter))

    schemas, defs = _schemas_for(types, "validation", where)
    record_name: str | None = None
    record_decoder: msgspec.json.Decoder[Any] | None = None
    struct_decoder: msgspec.json.Decoder[Any] | None = None
    if len(types) == 1 and _is_record(next(iter(types.values()))[0]):
        ((record_name, (record_type, record_adapter)),) = types.items()
        input_schema = _document(schemas[record_name], defs)
        if record_adapter is None:
            record_decoder = msgspec.json.Decoder(record_type)
    else:
        properties: dict[str, Any] = {}
        required: list[str] = []
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        for param in params:
            if param.is_context:
                continue
            prop = dict(schemas[param.name])
            # Raw defers pydantic-typed values to their adapter, keeping the body a single msgspec pass.
            field_type = msgspec.Raw if param.adapter is not None else types[param.name][0]
            if param.default is _EMPTY:
                required.append(param.name)
                fields.append((param.name, field_type))
            else:
                shown, value = _json_default(param.default)
                if shown:
                    prop["default"] = value
                # UNSET marks "not sent" so Python applies the real default object at call time.
                fields.append((param.name, field_type, msgspec.UNSET))
            properties[param.name] = prop
        body: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            body["required"] = required
        body["additionalProperties"] = False
        input_schema = _document(body, defs)
        arguments = msgspec.defstruct("Arguments", fields, kw_only=True, forbid_unknown_fields=True)
        struct_decoder = msgspec.json.Decoder(arguments)

    return FunctionShape(
        input_schema=input_schema,
        output_schema=_output_schema(hints, where),
        context_param=context_param,
        is_async=inspect.iscoroutinefunction(fn),
        description=_first_paragraph(fn),
        params=tuple(params),
        struct_decoder=struct_decoder,
        record_name=record_name,
        record_decoder=record_decoder,
    )


def _output_schema(hints: dict[str, Any], where: str) -> dict[str, Any]:
    returned = hints.get("return", Any)
    if returned is Any:
        return {}
    if returned is None or returned is type(None):
        return {"type": "null"}
    adapter = _pydantic_adapter(returned, f"{where}, return type")
    schemas, defs = _schemas_for({"return": (returned, adapter)}, "serialization", where)
    document = _document(schemas["return"], defs)
    if returns_content(returned):
        # Tells the gateway to serve the result as MCP content blocks rather than structured data.
        document[CONTENT_SCHEMA_MARKER] = True
    return document


class AnswerType:
    """A type an interrupt's answer must have (``ctx.interrupt(..., schema=T)``): its JSON Schema, sent to
    the gateway to validate answers, and the conversion of a validated answer to ``T``."""

    __slots__ = ("adapter", "schema", "tp")

    def __init__(self, tp: Any, where: str = "interrupt schema") -> None:
        self.tp = tp
        self.adapter = _pydantic_adapter(tp, where)
        schemas, defs = _schemas_for({"answer": (tp, self.adapter)}, "validation", where)
        self.schema = _document(schemas["answer"], defs)

    def convert(self, value: Any) -> Any:
        """``value`` (decoded JSON, already checked against ``schema`` by the gateway) as ``tp``."""
        if self.adapter is not None:
            return self.adapter.validate_python(value)
        return msgspec.convert(value, self.tp)
