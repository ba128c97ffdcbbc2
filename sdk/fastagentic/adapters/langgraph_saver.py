"""A LangGraph checkpointer backed by FastAgentic's durable checkpoints.

Each run is a LangGraph thread (``thread_id`` = the run id). The saver keeps the thread's latest checkpoint
per namespace in memory and saves it with ``ctx.checkpoint`` after every superstep, so the state survives
the worker: the next attempt of the run starts with it in ``ctx.checkpoint_state``, the saver is seeded
from it, and the graph continues with the next superstep. Only the latest checkpoint is kept (no time
travel); pending writes are saved with it when they carry an interrupt.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.types import INTERRUPT, RESUME

from ..context import RunContext

__all__ = ["CHECKPOINT_FORMAT", "RunCheckpointSaver"]

#: Marks FastAgentic's checkpoints of a LangGraph run.
CHECKPOINT_FORMAT = "langgraph.checkpoints/1"
#: Seconds a sync save (a graph run with invoke in a worker thread) waits for the run's event loop.
SYNC_SAVE_TIMEOUT = 10.0
# Writes worth a save of their own: what a resumed interrupt needs.
_SAVED_WITH_WRITES = {INTERRUPT, RESUME}


def _pack(typed: tuple[str, bytes]) -> list[str]:
    return [typed[0], base64.b64encode(typed[1]).decode()]


def _unpack(packed: Sequence[str]) -> tuple[str, bytes]:
    return packed[0], base64.b64decode(packed[1])


@dataclass
class _Namespace:
    """The latest checkpoint of one checkpoint namespace ("" is the graph; subgraphs have their own)."""

    checkpoint: list[str]  # the checkpoint without its channel values, serialized
    metadata: list[str]
    parent_id: str | None
    channels: dict[str, list[Any]] = field(default_factory=dict)  # channel -> [version, type, base64]
    # "task_id/idx" -> [task_id, channel, type, base64, idx, task_path]
    writes: dict[str, list[Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "metadata": self.metadata,
            "parent_id": self.parent_id,
            "channels": self.channels,
            "writes": self.writes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Namespace:
        return cls(
            checkpoint=data["checkpoint"],
            metadata=data["metadata"],
            parent_id=data.get("parent_id"),
            channels=dict(data.get("channels") or {}),
            writes=dict(data.get("writes") or {}),
        )


@dataclass
class _Thread:
    ctx: RunContext
    namespaces: dict[str, _Namespace] = field(default_factory=dict)
    loop: asyncio.AbstractEventLoop | None = None  # the run's loop: events are emitted on it


class RunCheckpointSaver(BaseCheckpointSaver[Any]):
    """The checkpointer the LangGraph adapter compiles into the graph: one thread per run in flight."""

    def __init__(self) -> None:
        super().__init__()
        self._threads: dict[str, _Thread] = {}

    # ------------------------------------------------------------------ runs

    def open(self, ctx: RunContext) -> bool:
        """Start serving the thread of ``ctx``'s run, seeded from its checkpoint state; True when the state
        had a checkpoint to resume from."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        thread = _Thread(ctx, loop=loop)
        state = ctx.checkpoint_state
        if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
            thread.namespaces = {
                ns: _Namespace.from_json(data) for ns, data in (state.get("namespaces") or {}).items()
            }
        self._threads[ctx.run_id] = thread
        return "" in thread.namespaces

    def close(self, ctx: RunContext) -> None:
        thread = self._threads.get(ctx.run_id)
        if thread is not None and thread.ctx is ctx:
            del self._threads[ctx.run_id]

    def _thread(self, config: RunnableConfig) -> _Thread:
        thread_id = str(config["configurable"]["thread_id"])
        thread = self._threads.get(thread_id)
        if thread is None:
            raise LookupError(
                f"thread {thread_id!r} is no run in flight: this checkpointer serves the runs of its adapter"
            )
        return thread

    def _save_from_thread(self, thread: _Thread) -> None:
        """Save from a sync call (a graph run with ``invoke`` in a worker thread): on the run's loop, whose
        event log is not thread-safe, waiting for it. From the loop's own thread that would deadlock."""
        loop = thread.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            raise RuntimeError(
                "a sync checkpoint on the run's event loop would block it: run the graph with ainvoke / astream "
                "there, or invoke it in a worker thread (a sync endpoint)"
            )
        try:
            asyncio.run_coroutine_threadsafe(self._save(thread), loop).result(SYNC_SAVE_TIMEOUT)
        except TimeoutError:
            raise RuntimeError(
                f"the run's event loop did not take the checkpoint within {SYNC_SAVE_TIMEOUT:g} s: a graph run "
                "with invoke on that loop would block it; use ainvoke / astream there"
            ) from None

    async def _save(self, thread: _Thread) -> None:
        state = {
            "format": CHECKPOINT_FORMAT,
            "namespaces": {ns: saved.to_json() for ns, saved in thread.namespaces.items()},
        }
        await thread.ctx.checkpoint(state)

    # ------------------------------------------------------------------ reading

    def _tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id = str(config["configurable"]["thread_id"])
        ns = str(config["configurable"].get("checkpoint_ns", ""))
        saved = self._thread(config).namespaces.get(ns)
        if saved is None:
            return None
        checkpoint: Checkpoint = self.serde.loads_typed(_unpack(saved.checkpoint))
        wanted = get_checkpoint_id(config)
        if wanted and wanted != checkpoint["id"]:
            return None  # only the latest checkpoint is kept
        versions = checkpoint["channel_versions"]
        values = {}
        for channel, (version, kind, data) in saved.channels.items():
            if kind != "empty" and versions.get(channel) == version:
                values[channel] = self.serde.loads_typed(_unpack([kind, data]))
        writes = sorted(saved.writes.values(), key=lambda w: writes_sort_key(w[5], w[0], w[4]))
        configurable = {"thread_id": thread_id, "checkpoint_ns": ns}
        return CheckpointTuple(
            config={"configurable": {**configurable, "checkpoint_id": checkpoint["id"]}},
            checkpoint={**checkpoint, "channel_values": values},
            metadata=self.serde.loads_typed(_unpack(saved.metadata)),
            parent_config=(
                {"configurable": {**configurable, "checkpoint_id": saved.parent_id}}
                if saved.parent_id
                else None
            ),
            pending_writes=[(w[0], w[1], self.serde.loads_typed(_unpack(w[2:4]))) for w in writes],
        )

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._tuple(config)

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._tuple(config)

    def _list(self, config: RunnableConfig | None) -> list[CheckpointTuple]:
        if config is None:
            return []
        thread = self._thread(config)
        wanted = config["configurable"].get("checkpoint_ns")
        found = []
        for ns in thread.namespaces:
            if wanted is None or ns == wanted:
                one = self._tuple({"configurable": {**config["configurable"], "checkpoint_ns": ns}})
                if one is not None:
                    found.append(one)
        return found

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        yield from self._list(config)[:limit]

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for one in self._list(config)[:limit]:
            yield one

    # ------------------------------------------------------------------ writing

    def _put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[_Thread, RunnableConfig]:
        thread = self._thread(config)
        ns = str(config["configurable"].get("checkpoint_ns", ""))
        copy = dict(checkpoint)
        values: dict[str, Any] = copy.pop("channel_values", {})  # type: ignore[assignment]
        previous = thread.namespaces.get(ns)
        channels = dict(previous.channels) if previous is not None else {}
        for channel, version in new_versions.items():
            kind, data = self.serde.dumps_typed(values[channel]) if channel in values else ("empty", b"")
            channels[channel] = [version, *_pack((kind, data))]
        thread.namespaces[ns] = _Namespace(
            checkpoint=_pack(self.serde.dumps_typed(copy)),
            metadata=_pack(self.serde.dumps_typed(get_checkpoint_metadata(config, metadata))),
            parent_id=config["configurable"].get("checkpoint_id"),
            channels=channels,
        )
        saved: RunnableConfig = {
            "configurable": {
                "thread_id": config["configurable"]["thread_id"],
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }
        return thread, saved

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        thread, saved = self._put(config, checkpoint, metadata, new_versions)
        await self._save(thread)
        return saved

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        thread, saved = self._put(config, checkpoint, metadata, new_versions)
        self._save_from_thread(thread)
        return saved

    def _put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
    ) -> tuple[_Thread, bool]:
        thread = self._thread(config)
        ns = str(config["configurable"].get("checkpoint_ns", ""))
        saved = thread.namespaces.get(ns)
        checkpoint_id = config["configurable"].get("checkpoint_id")
        if saved is None or checkpoint_id != self.serde.loads_typed(_unpack(saved.checkpoint))["id"]:
            return thread, False  # writes of a checkpoint that is no longer the latest
        worth_saving = False
        for index, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, index)
            key = f"{task_id}/{idx}"
            if idx >= 0 and key in saved.writes:
                continue  # a regular write is kept as first written
            saved.writes[key] = [task_id, channel, *_pack(self.serde.dumps_typed(value)), idx, task_path]
            worth_saving = worth_saving or channel in _SAVED_WITH_WRITES
        return thread, worth_saving

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        thread, worth_saving = self._put_writes(config, writes, task_id, task_path)
        if worth_saving:
            await self._save(thread)

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        thread, worth_saving = self._put_writes(config, writes, task_id, task_path)
        if worth_saving:
            self._save_from_thread(thread)

    async def adelete_thread(self, thread_id: str) -> None:
        thread = self._threads.get(thread_id)
        if thread is not None:
            thread.namespaces.clear()

    def delete_thread(self, thread_id: str) -> None:
        thread = self._threads.get(thread_id)
        if thread is not None:
            thread.namespaces.clear()
