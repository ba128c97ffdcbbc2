"""Property-based fuzzing of a real gateway on every front (REST, MCP, A2A): see tests/fuzz/harness.py."""
