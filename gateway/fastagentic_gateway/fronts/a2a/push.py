"""Push notifications: each task update POSTed to the task's webhooks with httpx, in order, in the
background (a slow receiver never holds the task's stream up), with a timeout per delivery and retries
with exponential backoff. URLs that point at loopback, link-local or private addresses are refused,
when a config is created and again before each delivery, unless ``a2a_push_allow_private`` is set.

The configs live with the task's run (``RunPushConfigStore``): in the durable store for a durable run,
so they survive a restart and every replica sees them, in memory for an ephemeral one; they are deleted
with the run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from typing import Any

import httpx
import msgspec
from google.protobuf.json_format import MessageToDict, ParseDict

from a2a.server.context import ServerCallContext
from a2a.server.tasks.push_notification_config_store import (
    PushNotificationConfigStore,
    normalize_push_notification_config,
)
from a2a.server.tasks.push_notification_sender import PushNotificationEvent, PushNotificationSender
from a2a.types.a2a_pb2 import TaskArtifactUpdateEvent, TaskPushNotificationConfig
from a2a.utils.errors import TaskNotFoundError
from a2a.utils.proto_utils import to_stream_response
from a2a.utils.push_url_validator import validate_push_notification_url

from ...runs.model import PushConfig, Run
from ...settings import Settings
from ...store.base import RunStore
from .mapping import STREAM_ARTIFACT
from .store import principal_in

log = logging.getLogger("fastagentic.a2a.push")

TOKEN_HEADER = "X-A2A-Notification-Token"
MAX_BACKOFF = 10.0
QUEUE_LIMIT = 1000  # notifications waiting per task; beyond it the oldest wait and new ones are dropped


class RunPushConfigStore(PushNotificationConfigStore):
    """The SDK's push config store over the run stores: a task's configs are its run's
    (``RunStore.put_push_config``), as JSON. The handler checked the caller may see the task before it
    calls any of these; they check the tenant again."""

    def __init__(self, durable: RunStore, ephemeral: RunStore) -> None:
        self.durable = durable
        self.ephemeral = ephemeral

    async def _run(self, task_id: str, context: ServerCallContext | None) -> tuple[Run, RunStore] | None:
        run = await self.ephemeral.get(task_id)
        store = self.ephemeral
        if run is None:
            run, store = await self.durable.get(task_id), self.durable
        if run is None:
            return None
        # Push configs belong to their task's tenant: another tenant's task is not found.
        if context is not None and run.caller.tenant != principal_in(context).tenant:
            return None
        return run, store

    async def set_info(
        self, task_id: str, notification_config: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        stored = normalize_push_notification_config(task_id, notification_config)
        found = await self._run(task_id, context)
        if found is None or not await found[1].put_push_config(
            task_id, stored.id, msgspec.json.encode(MessageToDict(stored))
        ):
            raise TaskNotFoundError
        return stored

    async def get_info(self, task_id: str, context: ServerCallContext) -> list[TaskPushNotificationConfig]:
        found = await self._run(task_id, context)
        return [] if found is None else _configs(await found[1].push_configs(task_id))

    async def for_run(self, run: Run) -> list[TaskPushNotificationConfig]:
        """``get_info_for_dispatch`` for a run at hand: its own store asked, without reading the run."""
        return _configs(await (self.durable if run.durable else self.ephemeral).push_configs(run.id))

    async def get_info_for_dispatch(self, task_id: str) -> list[TaskPushNotificationConfig]:
        # Every event but token chunks asks: a dict lookup for an ephemeral run, one read otherwise.
        if await self.ephemeral.get(task_id) is not None:
            return _configs(await self.ephemeral.push_configs(task_id))
        return _configs(await self.durable.push_configs(task_id))

    async def delete_info(
        self, task_id: str, context: ServerCallContext, config_id: str | None = None
    ) -> None:
        found = await self._run(task_id, context)
        if found is not None:
            await found[1].delete_push_config(task_id, config_id)


def _configs(stored: list[PushConfig]) -> list[TaskPushNotificationConfig]:
    return [
        ParseDict(msgspec.json.decode(item.config), TaskPushNotificationConfig(), ignore_unknown_fields=True)
        for item in stored
    ]


class PushUrlPolicy:
    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    async def __call__(self, url: str) -> bool:
        """True when ``url`` may receive notifications: http(s), and a public address unless private
        addresses are allowed."""
        try:
            parsed = urllib.parse.urlparse(url)
        except ValueError:
            return False
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            return False
        if self.allow_private:
            return True
        return await validate_push_notification_url(url)


class PushSender(PushNotificationSender):
    def __init__(self, settings: Settings, configs: PushNotificationConfigStore) -> None:
        self.configs = configs
        self.policy = PushUrlPolicy(settings.a2a_push_allow_private)
        self.timeout = settings.a2a_push_timeout
        self.max_attempts = settings.a2a_push_max_attempts
        self.backoff = settings.a2a_push_backoff
        self._client: httpx.AsyncClient | None = None
        self._queues: dict[str, asyncio.Queue[tuple[TaskPushNotificationConfig, dict[str, Any]]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        return self._client

    async def send_notification(self, task_id: str, event: PushNotificationEvent) -> None:
        if isinstance(event, TaskArtifactUpdateEvent) and event.artifact.artifact_id == STREAM_ARTIFACT:
            return  # token chunks: the stream is for streaming clients; the output artifact is pushed
        self._enqueue(task_id, event, await self.configs.get_info_for_dispatch(task_id))

    async def send_json_for_run(self, run: Run, kind: str, body: dict[str, Any]) -> None:
        """``send_notification`` for the fast path, which holds the run and its events as JSON: ``body``
        under its StreamResponse key ``kind`` (``task``, ``statusUpdate``, ``artifactUpdate``) is the
        payload (``body`` is not changed afterwards: it is sent later), and the configs are read from the
        run's own store (``RunPushConfigStore.for_run``) rather than after looking the run up."""
        if kind == "artifactUpdate" and body["artifact"].get("artifactId") == STREAM_ARTIFACT:
            return
        if isinstance(self.configs, RunPushConfigStore):
            configs = await self.configs.for_run(run)
        else:
            configs = await self.configs.get_info_for_dispatch(run.id)
        if configs:
            self._enqueue_payload(run.id, {kind: body}, configs)

    def _enqueue(
        self, task_id: str, event: PushNotificationEvent, configs: list[TaskPushNotificationConfig]
    ) -> None:
        if configs:
            self._enqueue_payload(task_id, MessageToDict(to_stream_response(event)), configs)

    def _enqueue_payload(
        self, task_id: str, payload: dict[str, Any], configs: list[TaskPushNotificationConfig]
    ) -> None:
        queue = self._queues.get(task_id)
        if queue is None:
            queue = self._queues[task_id] = asyncio.Queue(QUEUE_LIMIT)
            self._workers[task_id] = asyncio.create_task(self._deliver_all(task_id, queue))
        for config in configs:
            try:
                queue.put_nowait((config, payload))
            except asyncio.QueueFull:
                log.warning("push notifications for task %s are backed up; dropping one", task_id)

    async def _deliver_all(
        self, task_id: str, queue: asyncio.Queue[tuple[TaskPushNotificationConfig, dict[str, Any]]]
    ) -> None:
        try:
            while True:
                try:
                    config, payload = await asyncio.wait_for(queue.get(), timeout=30)
                except TimeoutError:
                    if queue.empty():
                        return
                    continue
                await self.deliver(config, payload)
        finally:
            if self._queues.get(task_id) is queue:
                del self._queues[task_id]
                self._workers.pop(task_id, None)

    async def deliver(self, config: TaskPushNotificationConfig, payload: dict[str, Any]) -> bool:
        """POST one notification, retrying network errors, 429 and 5xx with exponential backoff."""
        if not await self.policy(config.url):
            log.warning(
                "push notification for task %s not sent: URL %s is not allowed", config.task_id, config.url
            )
            return False
        headers = {}
        if config.token:
            headers[TOKEN_HEADER] = config.token
        if config.HasField("authentication") and config.authentication.scheme:
            scheme, credentials = config.authentication.scheme, config.authentication.credentials
            headers["Authorization"] = f"{scheme} {credentials}" if credentials else scheme
        delay = self.backoff
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = await self.client.post(
                    config.url, json=payload, headers=headers, timeout=self.timeout
                )
                if response.status_code < 300:
                    return True
                retry = response.status_code == 429 or response.status_code >= 500
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                retry, problem = True, f"{type(exc).__name__}: {exc}"
            if not retry or attempt == self.max_attempts:
                log.warning(
                    "push notification for task %s to %s failed after %d attempt(s): %s",
                    config.task_id,
                    config.url,
                    attempt,
                    problem,
                )
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)
        return False

    async def close(self) -> None:
        for worker in list(self._workers.values()):
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if self._client is not None:
            await self._client.aclose()
            self._client = None


__all__ = ["PushSender", "PushUrlPolicy", "RunPushConfigStore"]
