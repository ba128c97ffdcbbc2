"""DSPy: a module or a compiled program as an agent endpoint (extra ``fastagentic[dspy]``).

The module runs once with ``acall(**inputs)`` (a module without ``aforward`` in a thread) under
``dspy.context`` with a callback and a usage tracker of the run's own: each LM call is ``llm_start`` (the LM's
``model``), ``message`` (the LM's reply, in DSPy's adapter format) and ``llm_end`` with the tokens the LM
reported to the usage tracker; each tool call (``dspy.ReAct``'s tools, ``finish`` included) is a
``tool_call`` / ``tool_result`` pair, a tool's exception its ``error`` (ReAct shows it to the model and goes on).
The input and output are the signature's fields, typed; the output is the prediction's output fields.

Central tool checks: the adapter wraps the ``func`` of the module's ``dspy.Tool`` s (``ReAct``'s and any
sub-module's ``tools``; in place, once; outside a FastAgentic run the wrapper calls the tool as before), so
each call goes through the run's ``check_tool_call`` and its result through ``check_tool_result`` before
DSPy reports it and the model sees it. A refused call never runs: it raises ``ToolRejected``, which ReAct
shows the model as the tool's error (and the run's ``tool_result`` carries). ``finish`` (ReAct's own
end marker, which runs nothing) is not checked. A tool called from a worker thread (a module without
``aforward``) waits there for the checks, which run on the run's event loop. The checks' call id is the
run's own (``<run>:<attempt>:tool-<n>``).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import typing
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import dspy  # type: ignore[import-untyped]
import pydantic
from dspy.utils.callback import BaseCallback  # type: ignore[import-untyped]
from dspy.utils.usage_tracker import UsageTracker  # type: ignore[import-untyped]

from ..context import RunContext
from . import events
from .base import BaseAdapter, _current
from .guard import checked_in_thread, guarded

__all__ = ["DSPyAdapter", "signature_of"]

_END: Any = object()


def signature_of(module: dspy.Module) -> type[dspy.Signature] | None:
    """The signature a module answers: its own (``Predict``, ``ReAct``) or its predictor's
    (``ChainOfThought``, whose predictor adds ``reasoning``); None for a custom module."""
    candidate = getattr(module, "signature", None)
    if isinstance(module, dspy.ChainOfThought):
        candidate = module.predict.signature
    if isinstance(candidate, type) and issubclass(candidate, dspy.Signature):
        return candidate
    return None


def _model(name: str, fields: dict[str, tuple[Any, Any]]) -> type[pydantic.BaseModel]:
    return pydantic.create_model(name, __config__=pydantic.ConfigDict(extra="forbid"), **fields)  # type: ignore[call-overload]


def _fields(infos: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    described: dict[str, tuple[Any, Any]] = {}
    for name, info in infos.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        desc = extra.get("desc")
        description = desc if isinstance(desc, str) and desc != f"${{{name}}}" else None
        described[name] = (info.annotation, pydantic.Field(description=description))
    return described


def _forward_fields(module: dspy.Module) -> dict[str, tuple[Any, Any]]:
    """A custom module's inputs: the parameters of its ``forward`` (str when not annotated)."""
    forward = type(module).forward
    hints = typing.get_type_hints(forward)
    described: dict[str, tuple[Any, Any]] = {}
    for parameter in list(inspect.signature(forward).parameters.values())[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        default = ... if parameter.default is parameter.empty else parameter.default
        described[parameter.name] = (hints.get(parameter.name, str), default)
    return described


def _is_async(module: dspy.Module) -> bool:
    return any("aforward" in vars(cls) for cls in type(module).__mro__ if cls is not dspy.Module)


@dataclass
class _Run:
    """What one run's callbacks reported (``queue``) and what is open."""

    loop: asyncio.AbstractEventLoop
    tracker: UsageTracker
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    thread: int = field(default_factory=threading.get_ident)
    models: dict[str, tuple[str, int]] = field(
        default_factory=dict
    )  # open LM calls: id -> (model, entries seen)
    tools: dict[str, str] = field(default_factory=dict)  # open tool calls: id -> name

    def put(self, item: Any) -> None:
        if threading.get_ident() == self.thread:
            self.queue.put_nowait(item)
        else:  # a module run in a thread, or DSPy's own worker threads
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


class _Callback(BaseCallback):
    """DSPy's callbacks of one run, passed on to its queue in the order they happen."""

    def __init__(self, run: _Run) -> None:
        self.run = run

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.run.put(("lm_start", call_id, str(getattr(instance, "model", "") or type(instance).__name__)))

    def on_lm_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
        self.run.put(("lm_end", call_id, outputs, exception))

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        arguments = inputs.get("kwargs", inputs) if isinstance(inputs, dict) else inputs
        self.run.put(("tool_start", call_id, str(getattr(instance, "name", "") or "tool"), arguments))

    def on_tool_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
        self.run.put(("tool_end", call_id, outputs, exception))


def _text(outputs: Any) -> str:
    parts = []
    for output in outputs if isinstance(outputs, list) else [outputs]:
        if isinstance(output, str):
            parts.append(output)
        elif isinstance(output, dict) and isinstance(output.get("text"), str):
            parts.append(output["text"])
    return "\n".join(parts)


def usage_since(tracker: UsageTracker, model: str, seen: int) -> tuple[int | None, int | None]:
    """The tokens the LM ``model`` reported to ``tracker`` after its first ``seen`` entries."""
    entries = tracker.usage_data.get(model, [])[seen:]
    if not entries:
        return None, None
    prompt = sum(int(e.get("prompt_tokens") or 0) for e in entries)
    completion = sum(int(e.get("completion_tokens") or 0) for e in entries)
    return prompt, completion


class DSPyAdapter(BaseAdapter):
    """Runs a DSPy module (``Predict``, ``ChainOfThought``, ``ReAct``, a custom ``dspy.Module``, a compiled
    program). Input: the signature's input fields (a custom module's: its ``forward`` parameters); output:
    the signature's output fields (a custom module's: the prediction, any fields).

    ``lm``: the LM for each run (None: the one configured with ``dspy.configure``). ``signature``: the
    signature to publish when the module has none of its own."""

    def __init__(
        self,
        module: dspy.Module,
        *,
        name: str | None = None,
        description: str | None = None,
        lm: Any = None,
        signature: type[dspy.Signature] | None = None,
    ) -> None:
        if not isinstance(module, dspy.Module):
            raise TypeError(f"DSPyAdapter runs a dspy.Module, not {type(module).__name__}")
        self.module = module
        _guard_tools(module)
        self.lm = lm
        self.signature = signature or signature_of(module)
        label = type(module).__name__
        self.name = name
        if self.signature is not None:
            doc = self.signature.instructions or ""
            self.description = description if description is not None else doc
            self.input_type = _model(f"{label}Input", _fields(self.signature.input_fields))
            self.output_type = _model(f"{label}Output", _fields(self.signature.output_fields))
        else:
            self.description = description if description is not None else (inspect.getdoc(module) or "")
            self.input_type = _model(f"{label}Input", _forward_fields(module))
            self.output_type = dict[str, Any]

    @classmethod
    def accepts(cls, obj: object) -> bool:
        return isinstance(obj, dspy.Module)

    async def run(self, input: pydantic.BaseModel, ctx: RunContext) -> Any:
        kwargs = {name: getattr(input, name) for name in type(input).model_fields}
        run = _Run(asyncio.get_running_loop(), UsageTracker())
        settings: dict[str, Any] = {"callbacks": [_Callback(run)], "usage_tracker": run.tracker}
        if self.lm is not None:
            settings["lm"] = self.lm

        async def work() -> Any:
            try:
                if _is_async(self.module):
                    return await self.module.acall(**kwargs)
                return await asyncio.to_thread(self.module, **kwargs)  # the thread inherits the context
            finally:
                run.put(_END)

        loop_token = _loop.set(run.loop)  # for tools called from a worker thread
        try:
            with dspy.context(**settings):
                task = asyncio.ensure_future(work())  # the task copies the context: DSPy's settings go along
        finally:
            _loop.reset(loop_token)
        try:
            while (item := await run.queue.get()) is not _END:
                await _translate(item, run, ctx)
            prediction = await task
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        except Exception as exc:
            await _close_all(run, ctx, exc)
            raise
        return self._output(prediction)

    def _output(self, prediction: Any) -> Any:
        if self.signature is None:
            items = prediction.toDict() if hasattr(prediction, "toDict") else dict(prediction)
            return events.jsonable(items)
        values = {name: prediction[name] for name in self.signature.output_fields}
        return self.output_type(**values)


#: The run's event loop, for the checks of a tool called from a worker thread.
_loop: ContextVar[asyncio.AbstractEventLoop | None] = ContextVar("fastagentic_dspy_loop", default=None)
#: ReAct's end marker: a tool that runs nothing.
_FINISH = "finish"


def _guard_tools(module: dspy.Module) -> None:
    """Wrap the ``func`` of every ``dspy.Tool`` in the ``tools`` of ``module`` and its sub-modules, once."""
    modules = [module, *(sub for _, sub in module.named_sub_modules())]
    for one in modules:
        tools = getattr(one, "tools", None)
        found = tools.values() if isinstance(tools, dict) else tools if isinstance(tools, list) else ()
        for tool in found:
            guarded_already = getattr(getattr(tool, "func", None), "__fastagentic_guarded__", False)
            if isinstance(tool, dspy.Tool) and tool.name != _FINISH and not guarded_already:
                tool.func = _guarded_func(tool.name, tool.func)


def _guarded_func(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def func(**arguments: Any) -> Any:
        ctx = _current.get()
        if ctx is None:  # not in a FastAgentic run
            return original(**arguments)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return checked_in_thread(ctx, _loop.get(), name, original, arguments)

        # On the event loop (Tool.acall): a coroutine, which acall awaits.
        async def invoke(checked: dict[str, Any]) -> Any:
            result = original(**checked)
            return await result if inspect.isawaitable(result) else result

        return guarded(ctx, name, arguments, invoke)

    func.__fastagentic_guarded__ = True  # type: ignore[attr-defined]
    func.__name__ = getattr(original, "__name__", name)
    func.__doc__ = getattr(original, "__doc__", None)
    return func


async def _translate(item: tuple[Any, ...], run: _Run, ctx: RunContext) -> None:
    kind, call_id = item[0], item[1]
    if kind == "lm_start":
        model = item[2]
        run.models[call_id] = (model, len(run.tracker.usage_data.get(model, [])))
        await events.llm_start(ctx, model)
    elif kind == "lm_end":
        if call_id not in run.models:
            return
        model, seen = run.models.pop(call_id)
        text = _text(item[2])
        if text:
            await events.message(ctx, text)
        await events.llm_end(ctx, model, *usage_since(run.tracker, model, seen))
    elif kind == "tool_start":
        run.tools[call_id] = item[2]
        await events.tool_call(ctx, call_id, item[2], item[3])
    elif kind == "tool_end":
        name = run.tools.pop(call_id, None)
        if name is None:
            return
        outputs, exception = item[2], item[3]
        if exception is not None:
            await events.tool_result(ctx, call_id, name, error=exception)
        else:
            await events.tool_result(ctx, call_id, name, outputs)


async def _close_all(run: _Run, ctx: RunContext, error: BaseException) -> None:
    """The run failed: the tool calls and LM calls it left open end with the error."""
    while not run.queue.empty():  # what the callbacks reported before the failure
        item = run.queue.get_nowait()
        if item is not _END:
            await _translate(item, run, ctx)
    for call_id, name in list(run.tools.items()):
        await events.tool_result(ctx, call_id, name, error=error)
    run.tools.clear()
    for model, _seen in list(run.models.values()):
        await events.llm_end(ctx, model)
    run.models.clear()
