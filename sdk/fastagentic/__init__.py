"""FastAgentic SDK: describe your agent's endpoints, and serve them through a FastAgentic gateway.

    from fastagentic import App, RunContext

    app = App("demo")

    @app.agent_endpoint
    async def echo(inp: EchoIn, ctx: RunContext) -> EchoOut: ...

Run it with ``fastagentic run module:app`` (or ``fastagentic dev module:app`` for a local gateway too).
"""

__version__ = "0.1.0"

from .app import App, Endpoint
from .context import Caller, RunContext

__all__ = ["App", "Caller", "Endpoint", "RunContext", "__version__"]
