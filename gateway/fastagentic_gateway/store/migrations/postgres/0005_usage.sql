-- Run store schema, version 5: token and cost accounting (fastagentic_gateway.usage).
-- A run's usage per model goes with its run (ON DELETE CASCADE); the run's usage_seq is the seq of the last
-- usage report counted for it, so a report is counted once. The aggregates per tenant, UTC day, principal,
-- endpoint and model are kept whatever happens to the runs (ephemeral runs, which are never stored here,
-- add to them too).
-- Never edit a migration that has shipped: add the next file instead.

ALTER TABLE fastagentic_runs ADD COLUMN usage_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE fastagentic_run_usage (
    run_id TEXT COLLATE "C" NOT NULL REFERENCES fastagentic_runs (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost DOUBLE PRECISION NOT NULL,
    calls BIGINT NOT NULL,
    unpriced_calls BIGINT NOT NULL,
    PRIMARY KEY (run_id, model)
);

-- usage(): filtered by tenant and a range of days first (the limiter's usage_since, the admin route).
CREATE TABLE fastagentic_usage_daily (
    tenant TEXT NOT NULL,
    day DATE NOT NULL,
    principal TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost DOUBLE PRECISION NOT NULL,
    calls BIGINT NOT NULL,
    unpriced_calls BIGINT NOT NULL,
    PRIMARY KEY (tenant, day, principal, endpoint, model)
);

-- usage() across tenants, by day.
CREATE INDEX fastagentic_usage_daily_day ON fastagentic_usage_daily (day);
