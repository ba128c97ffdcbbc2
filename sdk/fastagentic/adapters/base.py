"""The adapter seam: what an adapter is, and the run it serves.

An adapter runs one framework object (a PydanticAI agent, a LangGraph graph, ...) for one run and maps
what happens inside it to the event model through the run's ``RunContext``. The SDK turns an adapter into
an agent endpoint: its ``input_type`` and ``output_type`` give the endpoint's schemas, its ``run`` serves
each run.
"""

from __future__ import annotations

import abc
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..context import RunContext

__all__ = ["Adapter", "BaseAdapter", "Interrupted", "Schema", "run_context"]

_current: ContextVar[RunContext | None] = ContextVar("fastagentic_run_context", default=None)


def run_context() -> RunContext:
    """The ``RunContext`` of the run the calling code serves, from inside a framework run (a LangGraph node,
    a PydanticAI tool): read ``model_hint`` before a model call, or emit ``progress`` and custom events.

    Raises LookupError outside a run served through an adapter."""
    ctx = _current.get()
    if ctx is None:
        raise LookupError("run_context() is only available inside a run served through an adapter")
    return ctx


@dataclass(frozen=True, slots=True)
class Schema:
    """A JSON Schema standing in for a Python type, for frameworks that describe their input or output only
    as JSON Schema. As an ``input_type`` the request body reaches ``run`` as decoded JSON (a dict for an
    object); as an ``output_type`` it is published as the output schema and the result is encoded as is."""

    json_schema: dict[str, Any] = field(default_factory=dict)


class Interrupted(Exception):
    """The framework paused a step for outside input (a LangGraph ``interrupt()``): what the step opened is
    closed with this error while the run waits (``ctx.interrupt``); the step runs again once answered."""


@runtime_checkable
class Adapter(Protocol):
    """What the SDK needs of an adapter.

    ``input_type`` / ``output_type``: Python types (msgspec Struct, pydantic model, dataclass, TypedDict,
    primitives) or ``Schema``; ``run`` receives the decoded input and returns the output. ``name`` is the
    default endpoint name (None: the caller must give one) and ``description`` the default description.
    """

    name: str | None
    description: str
    input_type: Any
    output_type: Any

    async def run(self, input: Any, ctx: RunContext) -> Any: ...


class BaseAdapter(abc.ABC):
    """A base class for adapters. A subclass sets the four attributes (here or in ``__init__``) and
    implements ``run``; for discovery through the ``fastagentic.adapters`` entry point group it also
    implements ``accepts``, and ``wrap`` when its constructor takes more than the framework object."""

    name: str | None = None
    description: str = ""
    input_type: Any = Any
    output_type: Any = Any

    @classmethod
    def accepts(cls, obj: object) -> bool:
        """True when this adapter can run ``obj`` (``app.agent(obj)`` asks each candidate in turn)."""
        return False

    @classmethod
    def wrap(cls, obj: Any) -> BaseAdapter:
        """The adapter for ``obj`` with default options."""
        return cls(obj)  # type: ignore[call-arg]

    @abc.abstractmethod
    async def run(self, input: Any, ctx: RunContext) -> Any:
        """Run the framework object once for ``input``, mapping what happens to ``ctx``'s events."""


def is_adapter(obj: object) -> bool:
    """True for anything shaped like an adapter (an ``Adapter`` by duck typing: a framework agent that has a
    ``run`` method is not one unless it also declares its input and output types)."""
    return isinstance(obj, BaseAdapter) or (
        isinstance(obj, Adapter) and not isinstance(obj, type) and callable(getattr(obj, "run", None))
    )


def hinted_model(models: Any, hint: str) -> Any:
    """The model for a budget's hint (``ctx.model_hint``): none without a hint; the hint itself (a model
    name the framework resolves) without ``models``; else ``models(hint)`` or ``models.get(hint)``."""
    if not hint:
        return None
    if models is None:
        return hint
    if callable(models):
        return models(hint)
    return models.get(hint)
