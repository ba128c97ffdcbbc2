"""A client of a FastAgentic gateway's REST API: ``FastAgenticClient`` and its asyncio twin
``AsyncFastAgenticClient`` (httpx and msgspec only; nothing of the gateway).

    from fastagentic.client import FastAgenticClient

    with FastAgenticClient("http://127.0.0.1:8000", api_key="fa_key_…") as client:
        print(client.invoke("answer", {"text": "what is FastAgentic?"}).output)
        for event in client.stream("answer", {"text": "and why?"}):
            print(event.text, end="")

See docs/guides/client.md and docs/reference/client.md.
"""

from ._async import AsyncEventStream, AsyncFastAgenticClient
from ._calls import DEFAULT
from ._errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    FastAgenticError,
    FieldError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RunFailedError,
    ServerError,
    UnavailableError,
    ValidationError,
)
from ._models import (
    Checkpoint,
    Endpoint,
    Interrupt,
    PromptMessage,
    ReplayOf,
    Resource,
    Run,
    RunError,
    RunPage,
    RunRequest,
    RunResponse,
    RunStatus,
    RunUsage,
    StreamEvent,
    StreamEventType,
    ToolCall,
    ToolResult,
    UsageTotals,
)
from ._retry import Retries
from ._sync import EventStream, FastAgenticClient

__all__ = [
    "DEFAULT",
    "APIConnectionError",
    "APITimeoutError",
    "AsyncEventStream",
    "AsyncFastAgenticClient",
    "AuthenticationError",
    "BadRequestError",
    "Checkpoint",
    "ConflictError",
    "Endpoint",
    "EventStream",
    "FastAgenticClient",
    "FastAgenticError",
    "FieldError",
    "Interrupt",
    "NotFoundError",
    "PermissionDeniedError",
    "PromptMessage",
    "RateLimitError",
    "ReplayOf",
    "Resource",
    "Retries",
    "Run",
    "RunError",
    "RunFailedError",
    "RunPage",
    "RunRequest",
    "RunResponse",
    "RunStatus",
    "RunUsage",
    "ServerError",
    "StreamEvent",
    "StreamEventType",
    "ToolCall",
    "ToolResult",
    "UnavailableError",
    "UsageTotals",
    "ValidationError",
]
