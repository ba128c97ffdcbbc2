-- Run store schema, version 4: identity and access. API keys and worker tokens (credentials), of which only
-- the SHA-256 of the secret is stored, and the audit log. Neither refers to runs, so run retention
-- (delete_finished) never touches them; credentials are revoked, never deleted.
-- Never edit a migration that has shipped: add the next file instead.

CREATE TABLE fastagentic_credentials (
    id TEXT COLLATE "C" PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    tenant TEXT NOT NULL,
    scopes TEXT[] NOT NULL,
    roles TEXT[] NOT NULL,
    endpoints TEXT[] NOT NULL,
    secret_hash BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    created_by TEXT NOT NULL,
    expires_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION,
    last_used_at DOUBLE PRECISION
);

-- credentials(): the keys or the worker tokens of a tenant.
CREATE INDEX fastagentic_credentials_kind_tenant ON fastagentic_credentials (kind, tenant);

-- The audit log. Ids come from the identity's sequence: they only increase, also across retention.
CREATE TABLE fastagentic_audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    principal TEXT NOT NULL,
    tenant TEXT NOT NULL,
    protocol TEXT NOT NULL,
    request_id TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);

-- audit(): a tenant's records newest first, paged by id.
CREATE INDEX fastagentic_audit_tenant_id ON fastagentic_audit (tenant, id DESC);
-- delete_audit() and time-bounded queries: the oldest records.
CREATE INDEX fastagentic_audit_ts ON fastagentic_audit (ts);
