-- Run store schema, version 1: runs, their event logs and checkpoints.
-- Applied by fastagentic_gateway.store.postgres inside one transaction under an advisory lock, and recorded
-- in fastagentic_schema_migrations. Never edit a migration that has shipped: add the next file instead.
--
-- Ids compare byte-wise (COLLATE "C"): run ids sort by creation time, and the `before` cursor of a listing
-- must order them exactly as the other stores do, whatever the database's locale.
-- Timestamps are float epoch seconds, as in the run model; JSON payloads are opaque bytes.

CREATE TABLE fastagentic_runs (
    id TEXT COLLATE "C" PRIMARY KEY,
    endpoint TEXT NOT NULL,
    kind TEXT NOT NULL,
    durable BOOLEAN NOT NULL,
    principal TEXT NOT NULL,
    tenant TEXT NOT NULL,
    input BYTEA NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    output BYTEA,
    error_type TEXT,
    error_message TEXT,
    idempotency_key TEXT,
    request_hash TEXT,
    worker_id TEXT,
    lease_expires_at DOUBLE PRECISION,
    deadline_at DOUBLE PRECISION,
    last_seq BIGINT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION
);

-- list(): a tenant's runs newest first, paged by id.
CREATE INDEX fastagentic_runs_tenant_id ON fastagentic_runs (tenant, id DESC);
-- expired() and queued(): running runs by lease, queued runs.
CREATE INDEX fastagentic_runs_status_lease ON fastagentic_runs (status, lease_expires_at);
-- renew_leases(): the runs one worker holds.
CREATE INDEX fastagentic_runs_worker ON fastagentic_runs (worker_id) WHERE worker_id IS NOT NULL;
-- delete_finished(): the oldest finished runs.
CREATE INDEX fastagentic_runs_finished ON fastagentic_runs (finished_at) WHERE finished_at IS NOT NULL;
-- create(): exactly one run per (tenant, Idempotency-Key).
CREATE UNIQUE INDEX fastagentic_runs_idempotency ON fastagentic_runs (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE fastagentic_events (
    run_id TEXT COLLATE "C" NOT NULL REFERENCES fastagentic_runs (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE fastagentic_checkpoints (
    run_id TEXT COLLATE "C" NOT NULL REFERENCES fastagentic_runs (id) ON DELETE CASCADE,
    id INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    attempt INTEGER NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    state BYTEA NOT NULL,
    PRIMARY KEY (run_id, id)
);
