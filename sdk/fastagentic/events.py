"""The event model shared by the SDK and the gateway: which kinds exist and which the gateway owns."""

from __future__ import annotations

import re

#: Kinds named by the event model. Endpoint code may also emit other kinds matching the pattern.
EVENT_KINDS = frozenset(
    {
        "run.started",
        "token",
        "message",
        "tool_call",
        "tool_result",
        "llm_start",
        "llm_end",
        "node_enter",
        "node_exit",
        "progress",
        "checkpoint",
        "interrupt",
        "input",
        "artifact",
        "log",
        "run.completed",
        "run.failed",
        "run.cancelled",
        "hook.rejected",
    }
)

#: Emitted only by the gateway, as runs change state (``input``: the answer to an interrupt).
RESERVED_KINDS = frozenset(
    {"run.started", "input", "run.completed", "run.failed", "run.cancelled", "hook.rejected"}
)

#: Safe in an SSE ``event:`` line and as a metric label.
EVENT_KIND_PATTERN = re.compile(r"[a-z][a-z0-9_.]{0,63}")
