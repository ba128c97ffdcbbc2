"""The MCP front (``/mcp``): see ``front.py``."""

from .front import McpFront, caller_of

__all__ = ["McpFront", "caller_of"]
