-- Run store schema, version 3: a run's context (A2A contextId) and what its front remembers about it;
-- push notification configs (A2A webhooks), which go with their run.
-- Never edit a migration that has shipped: add the next file instead.

-- A conversation (grouping) id a front may give its runs, and the front's own small JSON about the run.
ALTER TABLE fastagentic_runs ADD COLUMN context_id TEXT;
ALTER TABLE fastagentic_runs ADD COLUMN protocol_meta BYTEA;

-- list() with a context: a tenant's runs of one context, newest first, paged by id.
CREATE INDEX fastagentic_runs_tenant_context ON fastagentic_runs (tenant, context_id, id DESC)
    WHERE context_id IS NOT NULL;

-- A run's push notification configs, deleted with the run (retention).
CREATE TABLE fastagentic_push_configs (
    run_id TEXT COLLATE "C" NOT NULL REFERENCES fastagentic_runs (id) ON DELETE CASCADE,
    config_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    config BYTEA NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, config_id)
);
