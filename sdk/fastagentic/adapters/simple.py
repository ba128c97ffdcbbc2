"""SimpleAdapter: any callable, or a function producing an (async) iterator, as an adapter.

The shortest way to bring a framework the SDK has no adapter for: wrap the call that runs it. Text the
iterator yields streams as ``token`` events, ``Event`` items become events of their kind, and a ``Result``
item sets the run's output (else the output is the text streamed).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import typing
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..context import RunContext
from .base import BaseAdapter

__all__ = ["Event", "Result", "SimpleAdapter"]

_UNSET: Any = object()
_END: Any = object()


@dataclass(frozen=True, slots=True)
class Event:
    """Yielded by a wrapped iterator: an event of the event model (``Event("tool_call", {...})``)."""

    kind: str
    data: Any = None


@dataclass(frozen=True, slots=True)
class Result:
    """Yielded by a wrapped iterator: the run's output."""

    value: Any


class SimpleAdapter(BaseAdapter):
    """Wraps ``fn(input)`` or ``fn(input, ctx)`` (a parameter annotated ``RunContext`` gets the context).

    ``fn`` may return a value, an awaitable, or an iterator / async iterator of ``str`` (streamed as
    tokens), ``Event`` and ``Result`` items. Sync functions and sync iterators run in a thread, so they may
    block. ``input_type`` defaults to the annotation of ``fn``'s first other parameter, ``output_type`` to
    its return annotation (``str`` for generator functions)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        input_type: Any = _UNSET,
        output_type: Any = _UNSET,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"SimpleAdapter wraps a callable, not {type(fn).__name__}")
        self.fn = fn
        self.name = name if name is not None else getattr(fn, "__name__", None)
        doc = inspect.getdoc(fn) or ""
        self.description = description if description is not None else doc.split("\n\n")[0].strip()
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except Exception as exc:
            raise TypeError(f"SimpleAdapter({fn!r}): cannot resolve annotations: {exc}") from exc
        parameters = list(inspect.signature(fn).parameters.values())
        self._context_param: str | None = None
        inputs: list[inspect.Parameter] = []
        for parameter in parameters:
            hint = hints.get(parameter.name)
            if isinstance(hint, type) and issubclass(hint, RunContext):
                self._context_param = parameter.name
            else:
                inputs.append(parameter)
        if len(inputs) != 1:
            raise TypeError(
                f"SimpleAdapter({getattr(fn, '__qualname__', fn)!r}) wraps a function of one input parameter "
                f"(and optionally a RunContext one), not {len(inputs)}"
            )
        if input_type is _UNSET:
            if inputs[0].name not in hints:
                raise TypeError(f"SimpleAdapter: annotate {inputs[0].name!r} or pass input_type=")
            input_type = hints[inputs[0].name]
        streams = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
        if output_type is _UNSET:
            output_type = str if streams else hints.get("return", Any)
        self.input_type = input_type
        self.output_type = output_type
        self._in_thread = not (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn))

    @classmethod
    def accepts(cls, obj: object) -> bool:
        return callable(obj) and not isinstance(obj, type)

    async def run(self, input: Any, ctx: RunContext) -> Any:
        kwargs = {self._context_param: ctx} if self._context_param else {}
        if self._in_thread:
            result = await asyncio.to_thread(self.fn, input, **kwargs)
        else:
            result = self.fn(input, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, AsyncIterator):
            return await self._stream(_aiter(result), ctx)
        if isinstance(result, Iterator):
            return await self._stream(_threaded(result), ctx)
        return result

    async def _stream(self, items: AsyncIterator[Any], ctx: RunContext) -> Any:
        text: list[str] = []
        output: Any = _UNSET
        async for item in items:
            if isinstance(item, str):
                text.append(item)
                await ctx.token(item)
            elif isinstance(item, Event):
                await ctx.emit(item.kind, item.data)
            elif isinstance(item, Result):
                output = item.value
            else:
                raise TypeError(
                    f"{self.name}: a wrapped iterator yields str, Event or Result, not {type(item).__name__}"
                )
        return "".join(text) if output is _UNSET else output


async def _aiter(items: AsyncIterator[Any]) -> AsyncIterator[Any]:
    try:
        async for item in items:
            yield item
    finally:
        close = getattr(items, "aclose", None)
        if close is not None:
            await close()


async def _threaded(items: Iterator[Any]) -> AsyncIterator[Any]:
    """A sync iterator's items, each produced in a thread so a blocking iterator holds up no other run."""
    try:
        while True:
            item = await asyncio.to_thread(next, items, _END)
            if item is _END:
                return
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            # A generator still running in its thread (the run was cancelled) cannot be closed; it ends
            # at its next item, which nobody asks for.
            with contextlib.suppress(ValueError):
                close()
