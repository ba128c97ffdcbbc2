"""The audit log: who did what, when, through which protocol; durable in the run store.

Records are buffered and written in batches off the request path (at most ``interval`` seconds late, or
at once when ``batch`` are waiting); a store outage keeps them in memory, bounded, until it is back.
Records never hold a credential: only a key's id, an issuer, a subject.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from ..store.base import AccessStore
from .model import AuditRecord
from .principal import Principal, principal_of, request_id_of

log = logging.getLogger("fastagentic.audit")

MAX_PENDING = 100_000
MAX_DETAIL = 300


class AuditLog:
    def __init__(
        self, store: AccessStore, *, retention: float = 0.0, interval: float = 1.0, batch: int = 500
    ) -> None:
        self.store = store
        self.retention = retention
        self.interval = interval
        self.batch = batch
        self._pending: list[AuditRecord] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._dropped = 0

    def record(
        self,
        action: str,
        *,
        outcome: str = "ok",
        principal: Principal | None = None,
        subject: str = "",
        tenant: str = "",
        protocol: str = "",
        request_id: str = "",
        target: str = "",
        detail: str = "",
    ) -> None:
        if principal is not None:
            subject = subject or principal.subject
            tenant = tenant or principal.tenant
        if len(self._pending) >= MAX_PENDING:
            self._dropped += 1
            return
        self._pending.append(
            AuditRecord(
                ts=time.time(),
                action=action,
                outcome=outcome,
                principal=subject,
                tenant=tenant,
                protocol=protocol,
                request_id=request_id,
                target=target,
                detail=detail[:MAX_DETAIL],
            )
        )
        if len(self._pending) >= self.batch:
            self._wake.set()

    def denied(self, scope: Any, protocol: str, target: str, detail: str) -> None:
        """An authorization denial (403) of the request ``scope`` (an ASGI scope)."""
        self.record(
            "access.denied",
            outcome="denied",
            principal=principal_of(scope),
            protocol=protocol,
            request_id=request_id_of(scope),
            target=target[:200],
            detail=detail,
        )

    def start(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_forever(), name="audit-writer")

    async def _write_forever(self) -> None:
        last_sweep = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            await self.flush()
            now = time.time()
            if self.retention and now - last_sweep > 60:
                last_sweep = now
                try:
                    await self.store.delete_audit(now - self.retention)
                except Exception as exc:
                    log.warning("cannot delete old audit records: %s", exc)

    async def flush(self) -> None:
        if self._dropped:
            log.error("the audit log dropped %d record(s): the store was unreachable too long", self._dropped)
            self._dropped = 0
        while self._pending:
            records, self._pending = self._pending[: self.batch], self._pending[self.batch :]
            try:
                await self.store.append_audit(records)
            except Exception as exc:
                self._pending[:0] = records
                log.warning("cannot write %d audit record(s) yet: %s", len(self._pending), exc)
                return

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        await self.flush()


__all__ = ["AuditLog"]
