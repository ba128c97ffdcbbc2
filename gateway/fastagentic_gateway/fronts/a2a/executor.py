"""The SDK's request-context builder and agent executor, over the gateway's one call path.

The builder turns a new message into a Call (``calls.make_call``: the endpoint's input schema, the
caller) and submits it to the RunService: the run id becomes the task id, so a message that does not fit
the endpoint is refused with a precise A2A error before any task exists. The executor then announces the
task and follows the run's events (``RunService.follow``) as A2A status and artifact updates; cancelling
it cancels the run, which tells the worker.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from google.protobuf.json_format import MessageToDict

from a2a.server.agent_execution import AgentExecutor, RequestContext, RequestContextBuilder
from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue_v2 import EventQueue
from a2a.types.a2a_pb2 import Message, Part, Role, SendMessageRequest, Task, TaskState
from a2a.utils.errors import (
    ContentTypeNotSupportedError,
    InternalError,
    InvalidParamsError,
    UnsupportedOperationError,
)

from ...access.policy import visible
from ...access.principal import ANONYMOUS, Principal
from ...calls import Call, find_endpoint, make_call
from ...errors import Conflict, GatewayError, InvalidInput, NotFound, NoWorker
from ...runs.model import EndpointKind, Run
from ...runs.service import RunService
from ...workers.registry import Endpoint, EndpointRegistry
from .mapping import (
    JSON,
    OUTPUT_MODES,
    TERMINAL_STATES,
    TEXT,
    EventMapper,
    encode_meta,
    initial_task,
    message_input,
    new_context,
)
from .store import RunTaskStore, agent_of, principal_in

log = logging.getLogger("fastagentic.a2a")

SKILL_METADATA = "skill"  # message.metadata key naming the skill (endpoint) on the gateway's own agent


def served_agents(registry: EndpointRegistry, principal: Principal = ANONYMOUS) -> list[Endpoint]:
    """The agent endpoints served now that ``principal`` may use."""
    return [e for e in registry.served() if e.info.kind is EndpointKind.AGENT and visible(principal, e.info)]


def named_skill(message: Message) -> str | None:
    """The skill a message to the gateway's agent names in its metadata, if any."""
    named = MessageToDict(message.metadata).get(SKILL_METADATA) if message.HasField("metadata") else None
    return named if isinstance(named, str) and named else None


class RunContextBuilder(RequestContextBuilder):
    def __init__(
        self, registry: EndpointRegistry, runs: RunService, store: RunTaskStore, retry_after: int
    ) -> None:
        self.registry = registry
        self.runs = runs
        self.store = store
        self.retry_after = retry_after

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
            raise UnsupportedOperationError(
                message=f"task {task_id} takes no further messages: each message starts a new task (send it "
                "without taskId, with the same contextId); interrupts and resume are not built yet"
            )
        message = params.message
        endpoint = self._endpoint(agent_of(context), message, principal_in(context))
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
                principal=principal_in(context),
                protocol="a2a",
                context_id=task_context,
                meta=encode_meta(message.message_id, mode),
                request_id=str(context.state.get("request_id_http", "")) if context is not None else "",
            )
        except InvalidInput as exc:
            raise InvalidParamsError(
                message=f"{exc.message}: "
                + "; ".join(f"{e.path or '$'}: {e.message}" for e in exc.errors[:5]),
                data={"errors": [{"field": e.path or "$", "message": e.message} for e in exc.errors]},
            ) from exc
        run = await self._submit(call)
        self.store.creating.add(run.id)
        request = RequestContext(
            call_context=context, request=params, task_id=run.id, context_id=task_context
        )
        return request, run

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
            raise InternalError(
                message=f"{exc.message}; retry in {self.retry_after} s",
                data={"type": "no_worker", "retryAfter": self.retry_after},
            ) from exc

    async def _submit(self, call: Call) -> Run:
        try:
            run, _ = await self.runs.submit(call)
        except GatewayError as exc:
            # A refusal (a rate limit, no worker, the store down) with its retry hint, as MCP gives it.
            data: dict[str, Any] = {"type": exc.type}
            if "Retry-After" in exc.headers:
                data["retryAfter"] = int(exc.headers["Retry-After"])
            for name in ("rule", "budget", "resets_at"):  # which limit or budget refused, until when
                if name in exc.extra:
                    data[name if name != "resets_at" else "resetsAt"] = exc.extra[name]
            raise InternalError(message=exc.message, data=data) from exc
        return run


class RunExecutor(AgentExecutor):
    def __init__(self, runs: RunService, store: RunTaskStore) -> None:
        self.runs = runs
        self.store = store
        self._mappers: dict[str, EventMapper] = {}

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        run_id = context.task_id or ""
        run = await self.store.any_run(run_id)
        if run is None:
            self.store.creating.discard(run_id)
            raise InternalError(message=f"run {run_id} vanished")
        mapper = self._mappers[run.id] = EventMapper(run)
        announced = False
        try:
            await event_queue.enqueue_event(initial_task(run))
            # From here the task store un-hides the run when the SDK saves that Task (not before: a run
            # that ends before the SDK's consumer got to its first event would otherwise be found
            # already finished, read back from the log, and the announced Task ignored).
            announced = True
            async for batch in self.runs.follow(run):
                for item in batch:
                    if mapper.state in TERMINAL_STATES:
                        return  # the cancel path announced the end already
                    for event in mapper.map_one(item):
                        await event_queue.enqueue_event(event)
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

__all__ = ["RunContextBuilder", "RunExecutor", "served_agents"]
