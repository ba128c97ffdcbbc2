"""The MCP front (``/mcp``): see ``front.py``."""

from .front import McpFront

__all__ = ["McpFront"]
