"""FastAgentic SDK: describe your agent's endpoints, and serve them through a FastAgentic gateway.

    from fastagentic import App, RunContext

    app = App("demo")

    @app.agent_endpoint
    async def echo(inp: EchoIn, ctx: RunContext) -> EchoOut: ...

Run it with ``fastagentic run module:app`` (or ``fastagentic dev module:app`` for a local gateway too).
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING

from .app import App, Endpoint
from .context import Caller, Question, RunContext

if TYPE_CHECKING:
    from .client import AsyncFastAgenticClient, FastAgenticClient

__all__ = [
    "App",
    "AsyncFastAgenticClient",
    "Caller",
    "Endpoint",
    "FastAgenticClient",
    "Question",
    "RunContext",
    "__version__",
]


def __getattr__(name: str) -> object:
    # The clients load on first use: a worker never pays for them (nor for httpx).
    if name in ("FastAgenticClient", "AsyncFastAgenticClient"):
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'fastagentic' has no attribute {name!r}")
