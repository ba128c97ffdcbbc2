"""The FastAgentic gateway: REST + SSE and MCP (A2A to come) in front of workers that dial in over gRPC."""

from fastagentic import __version__

__all__ = ["__version__"]
