"""A worker for the concurrency-limit tests: a slow agent that records when each run starts and ends, and
for which tenant, so a test can tell how many of a tenant's runs ran at once (the worker's own record)."""

from __future__ import annotations

import asyncio
import json
import os
import time

from fastagentic import App, RunContext

app = App("concurrency")


def _record(log: str, event: str, ctx: RunContext) -> None:
    line = json.dumps({"event": event, "run": ctx.run_id, "tenant": ctx.caller.tenant, "at": time.time()})
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())  # one write per line: lines of concurrent runs never mix
    finally:
        os.close(fd)


@app.agent_endpoint
async def slow(pause: float, log: str, ctx: RunContext) -> dict[str, str]:
    """Waits ``pause`` seconds, recording its start and end in the file ``log``."""
    _record(log, "start", ctx)
    try:
        await asyncio.sleep(pause)
    finally:
        _record(log, "end", ctx)
    return {"tenant": ctx.caller.tenant}
