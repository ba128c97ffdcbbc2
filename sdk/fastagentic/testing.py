"""The adapter contract kit: run an adapter in process, as the worker would, and check it keeps the
contract of the event model. An adapter author calls these from their own tests (any test runner):

    from fastagentic.testing import check_adapter

    async def test_my_adapter_keeps_the_contract():
        await check_adapter(MyAdapter(agent), {"prompt": "add 2 and 3"}, slow_input={"prompt": "wait"})

Each ``check_*`` raises ``ContractViolation`` (an AssertionError) saying what is wrong. Run adapters with
a deterministic fake model: the resume check compares a resumed run with an uninterrupted one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .adapters.discovery import adapter_for
from .adapters.shape import adapter_function
from .context import Caller, RunContext
from .events import EVENT_KIND_PATTERN, RESERVED_KINDS
from .hooks import Checker, WorkerHook

__all__ = [
    "ContractViolation",
    "Recording",
    "check_adapter",
    "check_cancellation",
    "check_event_order",
    "check_resume",
    "run_adapter",
    "start_adapter",
]

#: Events that stand for work done: a resumed run must not redo what its checkpoint covers.
WORK_KINDS = ("llm_end", "tool_result", "node_exit")


class ContractViolation(AssertionError):
    """An adapter broke the contract; the message says how."""


@dataclass
class RecordedEvent:
    kind: str
    data: Any
    checkpoint: Any = None  # the saved state, for checkpoint events
    after_end: bool = False  # emitted after the run had returned, raised or been cancelled


@dataclass
class Recording:
    """One run of an adapter: its events, and how it ended."""

    events: list[RecordedEvent] = field(default_factory=list)
    output: Any = None
    error: BaseException | None = None
    cancelled: bool = False
    finished: bool = False
    context: RunContext | None = None

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def of(self, kind: str) -> list[Any]:
        """The data of every event of ``kind``."""
        return [e.data for e in self.events if e.kind == kind]

    @property
    def checkpoints(self) -> list[Any]:
        return [e.checkpoint for e in self.events if e.kind == "checkpoint"]

    def work(self, before: int | None = None) -> int:
        """How many work events (model calls ended, tool results, nodes left) the first ``before`` events hold."""
        return sum(1 for e in self.events[:before] if e.kind in WORK_KINDS)


@dataclass
class RunningAdapter:
    """A run started with ``start_adapter``: its recording and its task."""

    recording: Recording
    task: asyncio.Task[None]

    async def wait_for(self, condition: Callable[[Recording], bool], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not condition(self.recording):
            if self.task.done():
                await self.task
                raise ContractViolation(
                    f"the run ended before the awaited condition held: {self.recording.kinds}"
                )
            if time.monotonic() > deadline:
                raise ContractViolation(f"timed out after {within}s; events so far: {self.recording.kinds}")
            await asyncio.sleep(0.005)

    async def cancel(self) -> None:
        """Cancel as the worker does when the gateway cancels the run."""
        assert self.recording.context is not None
        self.recording.context._cancel()
        self.task.cancel("cancelled")
        await asyncio.gather(self.task, return_exceptions=True)


class Unanswered(Exception):
    """An interrupt of a run under the contract kit that no ``answer`` callable answered."""


def start_adapter(
    adapter: Any,
    body: Any,
    *,
    run_id: str = "run_contract",
    attempt: int = 1,
    checkpoint_state: Any = None,
    resume_input: Any = None,
    model_hint: str = "",
    on_event: Callable[[Recording], None] | None = None,
    answers: dict[str, Any] | None = None,
    answer: Callable[[str, Any], Any] | None = None,
    hooks: Mapping[str, Sequence[WorkerHook]] | None = None,
    checker: Checker | None = None,
) -> RunningAdapter:
    """Start one run of ``adapter`` (or of the object an adapter is found for) on ``body``, the request body
    as a client sends it (JSON-able), decoded by the endpoint's own input schema as the worker does.
    ``on_event`` is called with the recording as each event is recorded, inside the run (to change
    ``recording.context.model_hint`` at an exact point, say). Interrupts: ``answers`` (interrupt id ->
    answer) are those an earlier attempt was given; ``answer(id, request)`` answers the others as a person
    would (without it, an interrupt nobody answers ends the run with ``Unanswered``). Tool checks:
    ``hooks`` are worker-side hooks (``App.hooks``), ``checker`` stands in for the gateway's tool chains
    (``(point, tool, payload JSON) -> Verdict | None``, as the worker's round trip answers)."""
    function, shape = adapter_function(adapter_for(adapter))
    recording = Recording()

    def sink(kind: str, data: bytes, checkpoint: bytes | None) -> None:
        decoded = None if checkpoint is None else msgspec.json.decode(checkpoint)
        ended = recording.finished or recording.cancelled
        recording.events.append(RecordedEvent(kind, msgspec.json.decode(data), decoded, ended))
        if on_event is not None:
            on_event(recording)

    async def ask(interrupt_id: str, data: bytes) -> bytes:
        sink("interrupt", data, None)
        if answer is None:
            raise Unanswered(f"interrupt {interrupt_id!r} was not answered")
        given = answer(interrupt_id, msgspec.json.decode(data).get("request"))
        recording.events.append(
            RecordedEvent("input", {"id": interrupt_id, "answer": given}, None, recording.finished)
        )
        return msgspec.json.encode(given)

    context = RunContext(
        run_id=run_id,
        attempt=attempt,
        endpoint="contract",
        caller=Caller(principal="contract", tenant="default"),
        sink=sink,
        checkpoint_state=checkpoint_state,
        resume_input=resume_input,
        model_hint=model_hint,
        answers=answers,
        asker=ask,
        checker=checker,
        hooks=hooks,
    )
    recording.context = context
    args, kwargs = shape.bind(msgspec.json.encode(body), context)

    async def run() -> None:
        try:
            result = await function(*args, **kwargs)
            # As the endpoint encodes it: what a client would get.
            recording.output = msgspec.json.decode(shape.encode_output(result))
        except asyncio.CancelledError:
            recording.cancelled = True
            raise
        except Exception as exc:
            recording.error = exc
        finally:
            recording.finished = True

    return RunningAdapter(recording, asyncio.get_running_loop().create_task(run()))


async def run_adapter(adapter: Any, body: Any, **options: Any) -> Recording:
    """Run ``adapter`` on ``body`` to its end; options as for ``start_adapter``. The output is as the
    endpoint would encode it (JSON builtins)."""
    running = start_adapter(adapter, body, **options)
    await asyncio.gather(running.task, return_exceptions=True)
    return running.recording


def _violation(message: str, recording: Recording) -> ContractViolation:
    return ContractViolation(f"{message}\nevents: {recording.kinds}")


def _require(condition: bool, message: str, recording: Recording) -> None:
    if not condition:
        raise _violation(message, recording)


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def check_event_order(recording: Recording, *, complete: bool | None = None) -> None:
    """The events of one run keep the event model's rules: known shapes, every ``tool_result`` answers an
    earlier ``tool_call`` of the same id and name, every ``llm_end`` closes an ``llm_start``, every
    ``node_exit`` closes a ``node_enter`` of the same node and step, nothing after the run ended, and (when
    the run ``complete``d, by default when it succeeded) nothing left open."""
    complete = (recording.error is None and not recording.cancelled) if complete is None else complete
    calls: dict[str, str] = {}  # open tool calls: id -> name
    answered: set[str] = set()
    models = 0
    nodes: list[tuple[Any, Any]] = []
    for index, event in enumerate(recording.events):
        where = f"event {index + 1} ({event.kind})"
        data = event.data
        _require(not event.after_end, f"{where} came after the run ended", recording)
        an_answer = event.kind == "input" and index > 0 and recording.events[index - 1].kind == "interrupt"
        _require(
            bool(EVENT_KIND_PATTERN.fullmatch(event.kind))
            and (event.kind not in RESERVED_KINDS or an_answer),
            f"{where}: not a kind an endpoint may emit",
            recording,
        )
        if event.kind == "token":
            _require(
                isinstance(data, dict) and isinstance(data.get("text"), str),
                f"{where}: data {data!r}",
                recording,
            )
        elif event.kind == "message":
            _require(
                isinstance(data, dict) and _is_str(data.get("role")) and isinstance(data.get("text"), str),
                f"{where}: a message is {{role, text}}, not {data!r}",
                recording,
            )
        elif event.kind == "tool_call":
            ok = isinstance(data, dict) and _is_str(data.get("id")) and _is_str(data.get("name"))
            _require(
                ok and "arguments" in data, f"{where}: a tool_call is {{id, name, arguments}}", recording
            )
            _require(
                data["id"] not in calls and data["id"] not in answered,
                f"{where}: id {data['id']!r} reused",
                recording,
            )
            calls[data["id"]] = data["name"]
        elif event.kind == "tool_result":
            ok = isinstance(data, dict) and _is_str(data.get("id")) and _is_str(data.get("name"))
            _require(ok, f"{where}: a tool_result is {{id, name, result | error}}", recording)
            _require(
                ("result" in data) != ("error" in data),
                f"{where}: exactly one of result and error",
                recording,
            )
            if "error" in data:
                error = data["error"]
                _require(
                    isinstance(error, dict)
                    and _is_str(error.get("type"))
                    and isinstance(error.get("message"), str),
                    f"{where}: an error is {{type, message}}",
                    recording,
                )
            _require(data["id"] in calls, f"{where} answers no open tool_call (id {data['id']!r})", recording)
            _require(
                calls[data["id"]] == data["name"], f"{where}: name differs from its tool_call's", recording
            )
            del calls[data["id"]]
            answered.add(data["id"])
        elif event.kind == "llm_start":
            _require(isinstance(data, dict) and _is_str(data.get("model")), f"{where}: {{model}}", recording)
            models += 1
        elif event.kind == "llm_end":
            _require(
                isinstance(data, dict) and _is_str(data.get("model")), f"{where}: {{model, ...}}", recording
            )
            for name in ("input_tokens", "output_tokens"):
                count = data.get(name, 0)
                _require(
                    isinstance(count, int) and not isinstance(count, bool) and count >= 0,
                    f"{where}: {name} {count!r}",
                    recording,
                )
            _require(models > 0, f"{where} closes no llm_start", recording)
            models -= 1
        elif event.kind == "node_enter":
            _require(
                isinstance(data, dict) and _is_str(data.get("node")), f"{where}: {{node, step?}}", recording
            )
            nodes.append((data["node"], data.get("step")))
        elif event.kind == "node_exit":
            _require(
                isinstance(data, dict) and _is_str(data.get("node")), f"{where}: {{node, step?}}", recording
            )
            key = (data["node"], data.get("step"))
            _require(key in nodes, f"{where} closes no node_enter of {key}", recording)
            nodes.remove(key)
        elif event.kind == "interrupt":
            _require(
                isinstance(data, dict)
                and isinstance(data.get("id"), str)
                and "request" in data
                and "schema" in data,
                f"{where}: {{id, request, schema}}",
                recording,
            )
        elif event.kind == "checkpoint":
            _require(event.checkpoint is not None, f"{where} saved no state", recording)
    if complete:
        _require(not calls, f"tool calls never answered: {sorted(calls)}", recording)
        _require(models == 0, f"{models} llm_start without llm_end", recording)
        _require(not nodes, f"nodes never left: {nodes}", recording)


async def check_cancellation(
    adapter: Any,
    body: Any,
    *,
    started: Callable[[Recording], bool] | None = None,
    progress: Callable[[], Any] | None = None,
    quiet: float = 0.5,
    within: float = 10.0,
) -> Recording:
    """Cancelling a run reaches the framework: the run ends with CancelledError (not a result, not another
    error), emits nothing more, and leaves no task of its own running. ``body`` must start a run that lasts
    (a slow tool or node). ``started``: when to cancel (default: at the first event). ``progress``: a probe
    of the framework's side effects (a counter) that must not change once the run was cancelled."""
    before = asyncio.all_tasks()
    running = start_adapter(adapter, body)
    await running.wait_for(started or (lambda r: bool(r.events)), within)
    await running.cancel()
    recording = running.recording
    _require(
        recording.cancelled,
        f"the run did not end with CancelledError (error: {recording.error!r})",
        recording,
    )
    settled = progress() if progress is not None else None
    await asyncio.sleep(quiet)
    _require(not any(e.after_end for e in recording.events), "events after the cancellation", recording)
    if progress is not None:
        _require(
            progress() == settled,
            f"the framework went on after the cancellation: {settled!r} -> {progress()!r}",
            recording,
        )
    leftover = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    _require(not leftover, f"tasks still running after the cancellation: {leftover}", recording)
    return recording


async def check_resume(
    adapter: Any,
    body: Any,
    *,
    stop_when: Callable[[Recording], bool],
    compare: Callable[[Any], Any] = lambda output: output,
) -> tuple[Recording, Recording]:
    """A run resumes from its checkpoint: attempt 1 is stopped (its worker lost) as soon as ``stop_when`` holds,
    after at least one checkpoint; attempt 2 starts with the last checkpoint's state and must succeed with the
    output of an uninterrupted run (``compare`` maps outputs before comparing, e.g. dropping generated ids),
    without redoing the work the checkpoint covers and without leaving any undone. Returns both attempts."""
    reference = await run_adapter(adapter, body)
    _require(reference.error is None, f"the uninterrupted run failed: {reference.error!r}", reference)
    lost: list[int] = []

    def lose_the_worker(recording: Recording) -> None:
        # Checked as each event is recorded, so a fast run is stopped exactly there. Cancelling is the
        # closest an in-process test comes to a lost worker; what the run emits after this point is lost.
        if not lost and stop_when(recording):
            lost.append(len(recording.events))
            assert recording.context is not None
            recording.context._cancel()
            task.cancel("worker lost")

    first = start_adapter(adapter, body, attempt=1, on_event=lose_the_worker)
    task = first.task
    await asyncio.gather(task, return_exceptions=True)
    _require(bool(lost), "stop_when never held: the run ended first", first.recording)
    lost_at = lost[0]
    marks = [i for i, e in enumerate(first.recording.events[:lost_at]) if e.kind == "checkpoint"]
    _require(bool(marks), "attempt 1 saved no checkpoint before it was stopped", first.recording)
    saved = first.recording.events[marks[-1]].checkpoint
    second = await run_adapter(adapter, body, attempt=2, checkpoint_state=saved)
    _require(second.error is None, f"the resumed run failed: {second.error!r}", second)
    check_event_order(second)
    _require(
        compare(second.output) == compare(reference.output),
        f"the resumed run's output differs: {second.output!r} != {reference.output!r}",
        second,
    )
    done_before = first.recording.work(marks[-1])
    if done_before:
        _require(
            second.work() <= reference.work() - done_before,
            f"the resumed run redid work its checkpoint covers ({second.work()} work events; the uninterrupted "
            f"run had {reference.work()}, {done_before} of them before the checkpoint)",
            second,
        )
    _require(
        done_before + second.work() >= reference.work(),
        "the resumed run skipped work the checkpoint did not cover",
        second,
    )
    return first.recording, second


async def check_adapter(
    adapter: Any,
    body: Any,
    *,
    slow_input: Any = None,
    stop_when: Callable[[Recording], bool] | None = None,
    compare: Callable[[Any], Any] = lambda output: output,
) -> Recording:
    """The whole contract: a run on ``body`` succeeds with well-ordered events; with ``slow_input``, the
    cancellation check; with ``stop_when``, the resume check. Returns the first run's recording."""
    recording = await run_adapter(adapter, body)
    _require(recording.error is None, f"the run failed: {recording.error!r}", recording)
    check_event_order(recording)
    if slow_input is not None:
        await check_cancellation(adapter, slow_input)
    if stop_when is not None:
        await check_resume(adapter, body, stop_when=stop_when, compare=compare)
    return recording


def events_of(recording: Recording, *kinds: str) -> list[tuple[str, Any]]:
    """(kind, data) of the events of the given kinds, in order: a compact view for assertions."""
    wanted = set(kinds)
    return [(e.kind, e.data) for e in recording.events if not wanted or e.kind in wanted]


def last_checkpoint(recording: Recording) -> Mapping[str, Any] | Any:
    states = recording.checkpoints
    return states[-1] if states else None
