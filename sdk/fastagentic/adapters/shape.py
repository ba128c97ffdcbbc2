"""An adapter as an endpoint function: the function the worker calls for each run, and its shape (input and
output schemas, the input decoder), from the adapter's types or from a function mapping the endpoint's own
input to the adapter's."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from ..context import RunContext
from ..schema import FieldError, FunctionShape, InputError, inspect_function
from .base import Adapter, Schema, _current

__all__ = ["adapter_function", "output_schema"]

# The context parameter added to a mapping function that does not ask for the context itself.
_INJECTED = "_fastagentic_run_context"
_decode_json = msgspec.json.Decoder()


class _JsonInputShape(FunctionShape):
    """The shape of an adapter whose input is a ``Schema``: the body, decoded as JSON, is the input."""

    __slots__ = ()

    def __init__(self, input_schema: dict[str, Any], output_schema: dict[str, Any], description: str) -> None:
        # The base class compiles decoders for typed parameters; this shape has none, so it sets only the
        # public attributes the App and the worker read and decodes in bind.
        self.input_schema = input_schema
        self.output_schema = output_schema
        self.context_param = "ctx"
        self.is_async = True
        self.is_record_input = True
        self.description = description

    def bind(self, payload: bytes, context: object) -> tuple[list[Any], dict[str, Any]]:
        if not payload or payload.isspace():
            payload = b"{}"
        try:
            value = _decode_json.decode(payload)
        except msgspec.DecodeError as exc:
            raise InputError([FieldError(path="$", message=f"Malformed JSON: {exc}")]) from None
        return [value, context], {}


def _output(adapter: Adapter) -> tuple[Any, dict[str, Any] | None]:
    """The return annotation for the endpoint function, and the output schema when it is given as JSON."""
    output_type = adapter.output_type
    if isinstance(output_type, Schema):
        return Any, dict(output_type.json_schema)
    return output_type, None


def output_schema(returns: Any) -> dict[str, Any]:
    def probe() -> None: ...

    probe.__annotations__ = {"return": returns}
    return inspect_function(probe, context_type=RunContext, kind="agent").output_schema


def _runner(adapter: Adapter) -> Callable[..., Any]:
    async def run(input: Any, ctx: RunContext) -> Any:
        token = _current.set(ctx)
        try:
            return await adapter.run(input, ctx)
        finally:
            _current.reset(token)

    return run


def _mapped_runner(adapter: Adapter, mapper: Callable[..., Any], returns: Any) -> Callable[..., Any]:
    """A function with ``mapper``'s parameters (plus the run context when it does not ask for it) that maps
    the endpoint's input with ``mapper`` and runs the adapter on the result."""
    where = f"agent {getattr(mapper, '__qualname__', repr(mapper))}"
    signature = inspect.signature(mapper)
    try:
        hints = typing.get_type_hints(mapper, include_extras=True)
    except Exception as exc:
        raise TypeError(f"{where}: cannot resolve annotations: {exc}") from exc
    asks_context = any(
        isinstance(hints.get(p.name), type) and issubclass(hints[p.name], RunContext)
        for p in signature.parameters.values()
    )
    parameters = [
        p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
    ]
    annotations = {p.name: hints[p.name] for p in signature.parameters.values() if p.name in hints}
    if not asks_context:
        parameters.append(inspect.Parameter(_INJECTED, inspect.Parameter.KEYWORD_ONLY, annotation=RunContext))
        annotations[_INJECTED] = RunContext
    annotations["return"] = returns

    async def run(*args: Any, **kwargs: Any) -> Any:
        injected = kwargs.pop(_INJECTED, None)
        ctx = injected or next(v for v in (*args, *kwargs.values()) if isinstance(v, RunContext))
        token = _current.set(ctx)
        try:
            value = mapper(*args, **kwargs)
            if inspect.isawaitable(value):
                value = await value
            return await adapter.run(value, ctx)
        finally:
            _current.reset(token)

    run.__signature__ = signature.replace(parameters=parameters, return_annotation=returns)  # type: ignore[attr-defined]
    run.__annotations__ = annotations
    for attribute in ("__name__", "__qualname__", "__doc__", "__module__"):
        setattr(run, attribute, getattr(mapper, attribute, None) or getattr(run, attribute))
    return run


def adapter_function(
    adapter: Adapter, mapper: Callable[..., Any] | None = None
) -> tuple[Callable[..., Any], FunctionShape]:
    """The endpoint function serving ``adapter`` and its shape.

    Without ``mapper`` the endpoint's input is the adapter's ``input_type``. With one, the endpoint's input
    is ``mapper``'s parameters (described like any endpoint function's) and ``mapper``'s result, sync or
    async, is what the adapter runs on. Either way the output is the adapter's ``output_type``."""
    returns, given_schema = _output(adapter)
    if mapper is not None:
        fn = _mapped_runner(adapter, mapper, returns)
        shape = inspect_function(fn, context_type=RunContext, kind="agent")
    else:
        fn = _runner(adapter)
        if isinstance(adapter.input_type, Schema):
            shape = _JsonInputShape(
                dict(adapter.input_type.json_schema), output_schema(returns), adapter.description
            )
        else:
            fn.__annotations__ = {"input": adapter.input_type, "ctx": RunContext, "return": returns}
            shape = inspect_function(fn, context_type=RunContext, kind="agent")
    if given_schema is not None:
        shape.output_schema = given_schema
    return fn, shape
