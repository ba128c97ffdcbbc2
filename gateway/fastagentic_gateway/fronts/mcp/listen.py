"""``subscriptions/listen`` (2026-07-28) with the tasks extension's task status notifications.

A listen request without ``notifications.taskIds`` is the SDK's ``ListenHandler`` (list-change and
resource-update events from the subscription bus), its ``resourceSubscriptions`` narrowed to the URIs of
resources the caller may read (at most ``MAX_RESOURCE_URIS``; the acknowledgement names those honored). One with ``taskIds`` (the ``io.modelcontextprotocol/tasks`` extension)
must declare the extension (else ``-32021``); the acknowledgement echoes the task ids honored (the caller's
tasks that exist and have not expired, at most ``MAX_TASK_IDS``), and the stream then carries, besides the
requested list changes, one ``notifications/tasks`` per honored task when it ends (at once for a task that
already has): the ``DetailedTask`` that ``tasks/get`` would answer, stamped with the subscription id.
Only the end is reported: a task going to ``input_required`` (or back to ``working``) shows in
``tasks/get``, not on this stream yet.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, Literal

import anyio
import anyio.streams.memory
import mcp_types as types
from mcp_types import (
    INVALID_PARAMS,
    SubscriptionFilter,
    SubscriptionsAcknowledgedNotification,
    SubscriptionsAcknowledgedNotificationParams,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
)
from pydantic import ConfigDict, SerializerFunctionWrapHandler, model_serializer

from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import SUBSCRIPTION_ID_META_KEY, ListenHandler, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ServerEvent, event_matches, event_to_notification

from ...runs.model import TERMINAL, Run
from .tasks import Tasks, declares_tasks, missing_tasks_extension

log = logging.getLogger("fastagentic.mcp")

#: Task ids one listen request may follow.
MAX_TASK_IDS = 100
MAX_BUFFERED = 1024
#: Resource URIs one listen request may subscribe to.
MAX_RESOURCE_URIS = 1000


class TaskStatusParams(types.NotificationParams):
    """``notifications/tasks`` params: a ``DetailedTask`` (the extension's shape, camelCase as on the wire)."""

    model_config = ConfigDict(extra="allow")

    @model_serializer(mode="wrap")
    def _keep_null_ttl(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        data.setdefault("ttlMs", None)  # required by the extension; null is unlimited (the SDK drops nulls)
        return data


class TaskStatusNotification(types.Notification[TaskStatusParams, Literal["notifications/tasks"]]):
    method: Literal["notifications/tasks"] = "notifications/tasks"
    params: TaskStatusParams


class Listen:
    def __init__(
        self,
        bus: SubscriptionBus,
        tasks: Tasks,
        readable: Callable[[ServerRequestContext[Any, Any], str], bool] = lambda ctx, uri: True,
    ) -> None:
        self.bus = bus
        self.tasks = tasks
        #: whether the caller may read (so subscribe to) the resource at a URI
        self.readable = readable
        self.plain = ListenHandler(bus)

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        subscriptions = params.notifications.resource_subscriptions
        if subscriptions:
            if len(subscriptions) > MAX_RESOURCE_URIS:
                raise MCPError(
                    INVALID_PARAMS,
                    f"at most {MAX_RESOURCE_URIS} resourceSubscriptions per subscriptions/listen",
                )
            honored_uris = [uri for uri in dict.fromkeys(subscriptions) if self.readable(ctx, uri)]
            wanted = params.notifications.model_copy(update={"resource_subscriptions": honored_uris or None})
            params = params.model_copy(update={"notifications": wanted})
        requested = (params.notifications.model_extra or {}).get("taskIds")
        if requested is None:
            return await self.plain(ctx, params)
        if not declares_tasks(ctx):
            raise missing_tasks_extension()
        if not isinstance(requested, list) or not all(isinstance(i, str) for i in requested):
            raise MCPError(INVALID_PARAMS, "notifications.taskIds must be a list of task ids")
        if len(requested) > MAX_TASK_IDS:
            raise MCPError(INVALID_PARAMS, f"at most {MAX_TASK_IDS} task ids per subscriptions/listen")
        subscription_id = ctx.request_id
        if subscription_id is None:
            raise MCPError(types.INVALID_REQUEST, "subscriptions/listen requires a request id")
        runs = [
            run for task_id in dict.fromkeys(requested) if (run := await self.tasks.visible(ctx, task_id))
        ]
        wanted = params.notifications
        honored = SubscriptionFilter.model_validate(
            {
                "toolsListChanged": True if wanted.tools_list_changed else None,
                "promptsListChanged": True if wanted.prompts_list_changed else None,
                "resourcesListChanged": True if wanted.resources_list_changed else None,
                "resourceSubscriptions": wanted.resource_subscriptions or None,
                "taskIds": [run.id for run in runs],  # the extension's key (the filter keeps unknown keys)
            }
        )
        uris = frozenset(honored.resource_subscriptions or ())
        meta: dict[str, Any] = {SUBSCRIPTION_ID_META_KEY: subscription_id}
        send, receive = anyio.create_memory_object_stream[ServerEvent | Run](MAX_BUFFERED)

        def deliver(event: ServerEvent) -> None:
            if event_matches(honored, uris, event):
                # Dropped when the stream is ending, or its client stopped reading (it re-listens, refetches).
                with contextlib.suppress(anyio.ClosedResourceError, anyio.WouldBlock):
                    send.send_nowait(event)

        unsubscribe = self.bus.subscribe(deliver)
        try:
            async with anyio.create_task_group() as watchers:
                try:
                    acknowledged = SubscriptionsAcknowledgedNotificationParams(
                        notifications=honored, _meta=meta
                    )
                    await ctx.session.send_notification(
                        SubscriptionsAcknowledgedNotification(params=acknowledged),
                        related_request_id=subscription_id,
                    )
                    for run in runs:
                        watchers.start_soon(self._watch, run, send)
                    async for item in receive:
                        if isinstance(item, Run):
                            task = {**self.tasks.modern_task(item), "_meta": meta}
                            notification: Any = TaskStatusNotification(
                                params=TaskStatusParams.model_validate(task)
                            )
                        else:
                            notification = event_to_notification(item, meta)
                        await ctx.session.send_notification(notification, related_request_id=subscription_id)
                finally:
                    watchers.cancel_scope.cancel()
        finally:
            unsubscribe()
            send.close()
            receive.close()
        return SubscriptionsListenResult(_meta=meta)

    async def _watch(
        self, run: Run, send: anyio.streams.memory.MemoryObjectSendStream[ServerEvent | Run]
    ) -> None:
        """Queue the task's final state once its run ends."""
        try:
            final = run if run.status in TERMINAL else await self.tasks.runs.wait(run)
            await send.send(final)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        except Exception:
            log.debug("task status notification for %s not sent", run.id, exc_info=True)

    def close(self) -> None:
        self.plain.close()
