"""A worker for the limit tests: an ephemeral echo agent, and a tool whose author declares a rate."""

from __future__ import annotations

from fastagentic import App

app = App("limited")


@app.agent_endpoint(durable=False)
async def echo(text: str) -> dict[str, str]:
    return {"echo": text}


@app.tool(rate_limit="2/minute")
def quota(text: str) -> str:
    """A tool its author allows each caller twice a minute."""
    return text.upper()
