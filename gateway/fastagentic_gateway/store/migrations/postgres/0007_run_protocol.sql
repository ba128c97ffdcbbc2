-- Run store schema, version 7: the protocol (front) a run was created through: rest, mcp, a2a. Runs
-- created before this version have ''.
-- Never edit a migration that has shipped: add the next file instead.

ALTER TABLE fastagentic_runs ADD COLUMN protocol TEXT NOT NULL DEFAULT '';
