"""The SDK's request-context builder and agent executor, over the gateway's one call path.

The builder turns a new message into a Call (``calls.make_call``: the endpoint's input schema, the
caller) and submits it to the RunService: the run id becomes the task id, so a message that does not fit
the endpoint is refused with a precise A2A error before any task exists. The executor then announces the
task and follows the run's events (``RunService.follow``) as A2A status and artifact updates, until the
task finishes or waits for input (``input-required``: the executor returns, as the SDK expects of an
interrupted task); cancelling it cancels the run, which tells the worker.

A message naming a task (``taskId``) answers the interrupt that task's run waits on: the builder takes
the answer from the message (``mapping.message_answer``) and gives it to ``RunService.resume``, which
validates it against the interrupt's schema, before the SDK goes on; the executor then announces the
task as of the answer and follows the run from there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from google.protobuf.json_format import MessageToDict

from a2a.server.agent_execution import AgentExecutor, RequestContext, RequestContextBuilder
from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue_v2 import EventQueue
from a2a.types.a2a_pb2 import Message, Part, Role, SendMessageRequest, Task, TaskState
from a2a.utils.errors import (
    ContentTypeNotSupportedError,
    InternalError,
    InvalidParamsError,
    TaskNotFoundError,
    UnsupportedOperationError,
)

from ...access.policy import visible
from ...access.principal import ANONYMOUS, Principal
from ...calls import Call, find_endpoint, make_call
from ...errors import Conflict, GatewayError, InvalidInput, NotFound, NoWorker
from ...runs.model import TERMINAL, EndpointKind, Run, RunStatus
from ...runs.service import RunService
from ...workers.registry import Endpoint, EndpointRegistry
from .mapping import (
    JSON,
    OUTPUT_MODES,
    RETURN_STATES,
    STATE_OF,
    TERMINAL_STATES,
    TEXT,
    EventMapper,
    context_of,
    encode_meta,
    fold,
    initial_task,
    message_answer,
    message_input,
    new_context,
)
from .store import RunTaskStore, agent_of, principal_in

log = logging.getLogger("fastagentic.a2a")

SKILL_METADATA = "skill"  # message.metadata key naming the skill (endpoint) on the gateway's own agent
# ServerCallContext.state key: the seq of the ``input`` event a follow-up message was stored as (the
# builder sets it, the executor follows the run from there).
RESUMED_AT = "a2a_resumed_at"
# How long a follow-up waits for a run whose interrupt is stored to show ``waiting_input`` (the worker's
# interrupt is published a moment before the run's state changes).
SETTLE_SECONDS = 3.0


class _Pending(msgspec.Struct):
    """The interrupt a waiting run's last event asks (``RunService`` keeps its own reading private)."""

    id: str
    schema: Any = None


def served_agents(registry: EndpointRegistry, principal: Principal = ANONYMOUS) -> list[Endpoint]:
    """The agent endpoints served now that ``principal`` may use."""
    return [e for e in registry.served() if e.info.kind is EndpointKind.AGENT and visible(principal, e.info)]


def named_skill(message: Message) -> str | None:
    """The skill a message to the gateway's agent names in its metadata, if any."""
    named = MessageToDict(message.metadata).get(SKILL_METADATA) if message.HasField("metadata") else None
    return named if isinstance(named, str) and named else None


class RunContextBuilder(RequestContextBuilder):
    def __init__(
        self,
        registry: EndpointRegistry,
        runs: RunService,
        store: RunTaskStore,
        retry_after: int,
        push_url_allowed: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.registry = registry
        self.runs = runs
        self.store = store
        self.retry_after = retry_after
        # The push URL policy, checked before an answer is given: the SDK checks a message's inline push
        # config only after this builder, and by then the answer would be stored.
        self.push_url_allowed = push_url_allowed

    async def build(
        self,
        context: ServerCallContext,
        params: SendMessageRequest | None = None,
        task_id: str | None = None,
        context_id: str | None = None,
        task: Task | None = None,
    ) -> RequestContext:
        request, _ = await self.start(context, params, task_id, context_id)
        return request

    async def start(
        self,
        context: ServerCallContext,
        params: SendMessageRequest | None,
        task_id: str | None = None,
        context_id: str | None = None,
    ) -> tuple[RequestContext, Run]:
        """``build``, also handing back the run it submitted (the fast path follows it itself)."""
        if params is None:
            raise InvalidParamsError(message="no message")
        if task_id:
            return await self._answer(context, params, task_id, context_id)
        run = await self.new_run(
            agent_of(context),
            principal_in(context),
            str(context.state.get("request_id_http", "")) if context is not None else "",
            params,
            context_id,
        )
        request = RequestContext(
            call_context=context, request=params, task_id=run.id, context_id=context_of(run)
        )
        return request, run

    async def new_run(
        self,
        agent: str | None,
        principal: Principal,
        request_id: str,
        params: SendMessageRequest,
        context_id: str | None = None,
    ) -> Run:
        """The run a new message (to the agent named in the URL, or the gateway's agent when None)
        starts, submitted: what ``build`` does for a message that names no task, without the SDK's call
        and request contexts (the fast path has neither)."""
        message = params.message
        endpoint = self._endpoint(agent, message, principal)
        accepted = list(params.configuration.accepted_output_modes)
        if accepted and not any(mode in (JSON, TEXT, "*/*", "application/*", "text/*") for mode in accepted):
            raise ContentTypeNotSupportedError(
                message=f"agent {endpoint.name!r} answers in {', '.join(OUTPUT_MODES)}, "
                f"none of the accepted output modes {accepted}"
            )
        value, mode = message_input(endpoint.info, message)
        task_context = new_context(context_id or message.context_id or None)
        # No idempotency key: A2A leaves deduplicating by messageId optional (spec 3.3.1, "MAY"), and a
        # client resending a messageId starts another task, as it did before.
        try:
            call = make_call(
                endpoint,
                value,
                principal=principal,
                protocol="a2a",
                context_id=task_context,
                meta=encode_meta(message.message_id, mode),
                request_id=request_id,
            )
        except InvalidInput as exc:
            raise invalid_params(exc) from exc
        run = await self._submit(call)
        self.store.creating.add(run.id)
        return run

    async def _answer(
        self, context: ServerCallContext, params: SendMessageRequest, task_id: str, context_id: str | None
    ) -> tuple[RequestContext, Run]:
        """A message to task ``task_id``: the answer to the interrupt its run waits on. The run must be one
        the caller may see through the agent addressed (as for GetTask: else "task not found") and wait
        for input; the answer is validated against the interrupt's schema and stored (``RunService.resume``)
        before the SDK goes on, so an invalid one is refused with nothing changed."""
        try:
            run = await self.store.run_of(task_id, context)
        except NoWorker as exc:
            raise _no_worker(exc, self.retry_after) from exc
        if run is None:
            raise TaskNotFoundError(message=f"Task {task_id} not found")
        task_context = context_of(run)
        if context_id and context_id != task_context:
            raise InvalidParamsError(
                message=f"Context {context_id} does not match context {task_context} of task {task_id}"
            )
        run = await self._settled(run, context)
        if run.status is not RunStatus.WAITING_INPUT:
            raise UnsupportedOperationError(message=_not_waiting(run))
        pending = await self._pending(run)
        answer = message_answer(pending.id, pending.schema, params.message)
        config = params.configuration
        if (
            self.push_url_allowed is not None
            and config.HasField("task_push_notification_config")
            and not await self.push_url_allowed(config.task_push_notification_config.url)
        ):
            raise InvalidParamsError(message="Invalid push notification URL")
        try:
            raw = msgspec.json.encode(answer)
            resumed = await self.runs.resume(
                run.id,
                principal_in(context),
                answer,
                raw,
                interrupt_id=pending.id,
                protocol="a2a",
                request_id=str(context.state.get("request_id_http", "")),
            )
        except InvalidInput as exc:
            raise invalid_params(exc) from exc
        except NotFound as exc:
            raise TaskNotFoundError(message=f"Task {task_id} not found") from exc
        except Conflict as exc:  # answered meanwhile, cancelled, past its deadline
            raise UnsupportedOperationError(
                message=f"task {task_id} takes no answer now: {exc.message}"
            ) from exc
        except NoWorker as exc:
            raise _no_worker(exc, self.retry_after) from exc
        except GatewayError as exc:
            raise refused(exc) from exc
        # The task as the SDK reads it next (its request's snapshot) stops at the answer; the executor
        # follows the run from there.
        self.store.hold_at(run.id, resumed.last_seq)
        context.state[RESUMED_AT] = resumed.last_seq
        request = RequestContext(
            call_context=context, request=params, task_id=run.id, context_id=task_context
        )
        return request, resumed

    async def _settled(self, run: Run, context: ServerCallContext) -> Run:
        """The run, once a stored interrupt shows as ``waiting_input`` (a moment after the event)."""
        deadline = time.monotonic() + SETTLE_SECONDS
        delay = 0.01
        while run.status is RunStatus.RUNNING and run.last_seq and time.monotonic() < deadline:
            last = await self.store.log_of(run).events(run.id, after_seq=run.last_seq - 1)
            if not last or last[-1].kind != "interrupt":
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
            fresh = await self.store.run_of(run.id, context)
            if fresh is None:
                break
            run = fresh
        return run

    async def _pending(self, run: Run) -> _Pending:
        last = await self.store.log_of(run).events(run.id, after_seq=max(run.last_seq - 1, 0))
        if last and last[-1].kind == "interrupt":
            try:
                return msgspec.json.decode(last[-1].data, type=_Pending)
            except msgspec.DecodeError:
                pass
        raise UnsupportedOperationError(message=f"task {run.id} is not waiting for an answer")

    def _endpoint(self, agent: str | None, message: Message, principal: Principal) -> Endpoint:
        if agent is None:
            # The gateway's agent routes by skill; a skill the caller may not use is not one of them.
            skills = served_agents(self.registry, principal)
            named = named_skill(message)
            if named is not None:
                agent = named
                known = self.registry.get(named)
                if known is not None and not visible(principal, known.info):
                    raise InvalidParamsError(message=f"no agent named {named!r}")
            elif len(skills) == 1:
                agent = skills[0].name
            else:
                raise InvalidParamsError(
                    message=f"name the skill in the message's metadata ({SKILL_METADATA!r}): one of "
                    + ", ".join(sorted(e.name for e in skills))
                )
        try:
            return find_endpoint(self.registry, EndpointKind.AGENT, agent, self.retry_after)
        except NotFound as exc:
            raise InvalidParamsError(message=f"no agent named {agent!r}") from exc
        except NoWorker as exc:
            raise _no_worker(exc, self.retry_after) from exc

    async def _submit(self, call: Call) -> Run:
        try:
            run, _ = await self.runs.submit(call)
        except GatewayError as exc:
            raise refused(exc) from exc
        return run


def invalid_params(exc: InvalidInput) -> InvalidParamsError:
    """The A2A error for input (or an answer) that does not match its schema: each field in its data."""
    return InvalidParamsError(
        message=f"{exc.message}: " + "; ".join(f"{e.path or '$'}: {e.message}" for e in exc.errors[:5]),
        data={"errors": [{"field": e.path or "$", "message": e.message} for e in exc.errors]},
    )


def refused(exc: GatewayError) -> InternalError:
    """A refusal (a rate limit, no worker, the store down) with its retry hint, as MCP gives it."""
    data: dict[str, Any] = {"type": exc.type}
    if "Retry-After" in exc.headers:
        data["retryAfter"] = int(exc.headers["Retry-After"])
    for name in ("rule", "budget", "resets_at"):  # which limit or budget refused, until when
        if name in exc.extra:
            data[name if name != "resets_at" else "resetsAt"] = exc.extra[name]
    for name in ("hook", "point", "reason"):  # which hook refused (HookRejected, HookFailed), and why
        if name in exc.extra:
            data[name] = exc.extra[name]
    return InternalError(message=exc.message, data=data)


def _no_worker(exc: NoWorker, retry_after: int) -> InternalError:
    return InternalError(
        message=f"{exc.message}; retry in {retry_after} s",
        data={"type": "no_worker", "retryAfter": retry_after},
    )


def _state_name(run: Run) -> str:
    return TaskState.Name(STATE_OF[run.status]).removeprefix("TASK_STATE_").lower().replace("_", "-")


def _not_waiting(run: Run) -> str:
    if run.status in TERMINAL:
        return (
            f"task {run.id} is {_state_name(run)}, a terminal state: it takes no further messages (send a new "
            "message without taskId, with the same contextId, to start another task)"
        )
    return (
        f"task {run.id} is {_state_name(run)}, not waiting for input: a message to a task answers the "
        "question it asks in input-required (send a new message without taskId to start another task)"
    )


class RunExecutor(AgentExecutor):
    def __init__(self, runs: RunService, store: RunTaskStore) -> None:
        self.runs = runs
        self.store = store
        self._mappers: dict[str, EventMapper] = {}

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Announce the task, then map the run's events until the task finishes or waits for input: a new
        task from its start, a task answered by a follow-up message as of that answer."""
        run_id = context.task_id or ""
        call = context.call_context
        resumed_at = call.state.get(RESUMED_AT) if call is not None else None
        run = await self.store.any_run(run_id)
        if run is None:
            self.store.creating.discard(run_id)
            raise InternalError(message=f"run {run_id} vanished")
        if isinstance(resumed_at, int):
            # The SDK read its snapshot of the task (as of the answer) before it called us.
            self.store.hold_at(run.id, None)
            task, mapper = fold(run, await self.store.log_of(run).events(run.id, limit=resumed_at))
            after = resumed_at
        else:
            task, mapper, after = initial_task(run), EventMapper(run), 0
        self._mappers[run.id] = mapper
        announced = False
        try:
            await event_queue.enqueue_event(task)
            # From here the task store un-hides a new run when the SDK saves that Task (not before: a run
            # that ends before the SDK's consumer got to its first event would otherwise be found
            # already finished, read back from the log, and the announced Task ignored).
            announced = True
            async for batch in self.runs.follow(run, after):
                for item in batch:
                    if mapper.state in TERMINAL_STATES:
                        return  # the cancel path announced the end already
                    for event in mapper.map_one(item):
                        await event_queue.enqueue_event(event)
                    if mapper.state in RETURN_STATES:
                        return  # finished, or waits for input: this request is done (spec 3.2.2)
        finally:
            if not announced:
                self.store.creating.discard(run.id)
            self._mappers.pop(run.id, None)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        run_id = context.task_id or ""
        run = await self.store.any_run(run_id)
        if run is None:
            return
        try:
            await self.runs.cancel(
                run.id, principal_in(context.call_context), reason=CANCEL_REASON, protocol="a2a"
            )
        except (Conflict, NotFound):
            return  # it ended meanwhile; the handler reads the task's final state
        mapper = self._mappers.get(run.id)
        if mapper is not None and mapper.state not in TERMINAL_STATES:
            # The follower is about to be cancelled: announce the end here, once (the state is set before
            # the await, so the follower stops mapping).
            message = Message(
                message_id=f"{run.id}-cancel",
                context_id=mapper.context_id,
                task_id=run.id,
                role=Role.ROLE_AGENT,
                parts=[Part(text=CANCEL_REASON)],
            )
            event = mapper.status(TaskState.TASK_STATE_CANCELED, time.time(), message)
            await event_queue.enqueue_event(event)


CANCEL_REASON = "cancelled by the A2A client"

__all__ = ["RESUMED_AT", "RunContextBuilder", "RunExecutor", "invalid_params", "refused", "served_agents"]
