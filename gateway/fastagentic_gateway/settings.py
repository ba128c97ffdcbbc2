"""Gateway settings: defaults, then a TOML config file, then ``FASTAGENTIC_*`` environment variables.

The Settings struct is the single source: docs/reference/configuration.md is generated from it
(``python -m fastagentic_gateway.settings``) and a test fails when the two disagree.
"""

from __future__ import annotations

import os
import sys
import tomllib
import typing
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from .access.oidc import IssuerConfig
from .approvals.config import ApprovalChannel, ApprovalRule, check_approvals
from .hooks.config import HookConfig, check_hooks
from .limits.rules import BudgetRule, ConcurrencyRule, LimitRule

ENV_PREFIX = "FASTAGENTIC_"


def _doc(text: str, **constraints: Any) -> Meta:
    return Meta(description=text, **constraints)


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    http_host: Annotated[str, _doc("Address the HTTP server (REST, MCP, A2A) binds.")] = "127.0.0.1"
    http_port: Annotated[int, _doc("Port of the HTTP server.", ge=0, le=65535)] = 8000
    grpc_host: Annotated[str, _doc("Address the worker gRPC server binds.")] = "127.0.0.1"
    grpc_port: Annotated[int, _doc("Port workers dial.", ge=0, le=65535)] = 50051
    metrics_host: Annotated[str, _doc("Address the Prometheus metrics server binds.")] = "127.0.0.1"
    metrics_port: Annotated[
        int,
        _doc(
            "Port of the Prometheus metrics server (`/metrics`), apart from the API so it is not exposed with "
            "it. 0: no metrics server.",
            ge=0,
            le=65535,
        ),
    ] = 0
    metrics_label_values: Annotated[
        int,
        _doc(
            "The most distinct values each metric label fed by callers or workers keeps (`tenant`, `model`, "
            "`endpoint`); later values are counted under `other`, so a flood of new tenants or model names "
            "cannot grow the series without bound.",
            ge=1,
            le=10000,
        ),
    ] = 100
    data_dir: Annotated[str, _doc("Directory for the embedded store and other local state.")] = ".fastagentic"
    store_url: Annotated[
        str,
        _doc(
            "Where durable runs live. Empty: a SQLite file `runs.sqlite3` in the data directory. "
            "`sqlite:///abs/path.db` or `sqlite://relative.db`: that file. `memory://`: nothing persisted. "
            "`postgresql://user:password@host:5432/dbname` (or `postgres://`): PostgreSQL; optional "
            "`pool_min_size` / `pool_max_size` query parameters size its connection pool (1 / 10)."
        ),
    ] = ""
    bus_url: Annotated[
        str,
        _doc(
            "How gateway replicas talk to each other. Empty: in-process (one gateway). `nats://host:4222` "
            "(comma-separate several servers of one NATS cluster): NATS with JetStream, so replicas sharing it "
            "and one PostgreSQL run store behave as one gateway."
        ),
    ] = ""
    bus_prefix: Annotated[
        str,
        _doc(
            "Prefix of every NATS subject and JetStream stream name this deployment uses; deployments sharing "
            "one NATS need different prefixes.",
            pattern=r"^[A-Za-z0-9_-]{1,64}$",
        ),
    ] = "fastagentic"
    replica_id: Annotated[
        str,
        _doc(
            "This replica's name in the cluster, unique among replicas (letters, digits, `_`, `.`, `-`). "
            "Empty: host name, process id and a random suffix.",
            pattern=r"^[A-Za-z0-9_.-]{0,128}$",
        ),
    ] = ""
    migrate_on_start: Annotated[
        bool,
        _doc(
            "Apply pending run store schema migrations when the gateway starts. When false, a gateway on "
            "PostgreSQL refuses to start until `fastagentic-gateway migrate` has brought the schema up. "
            "A SQLite file is always migrated when opened."
        ),
    ] = True
    max_body_bytes: Annotated[int, _doc("Largest accepted HTTP request body; larger gets 413.", ge=1)] = (
        1_048_576
    )
    max_message_bytes: Annotated[
        int, _doc("Largest gRPC message between gateway and worker, both directions.", ge=65_536)
    ] = 16_777_216
    max_checkpoint_bytes: Annotated[
        int,
        _doc(
            "Largest checkpoint state a worker may save; a larger one fails the run (`CheckpointTooLarge`) "
            "and the worker is told to stop it. At most `max_message_bytes`.",
            ge=1,
        ),
    ] = 1_048_576
    run_timeout: Annotated[
        float,
        _doc(
            "Seconds a run (any kind, any front) may take from its creation, queued time included, when the request has no "
            "`Run-Timeout` header; past it the run ends `timed_out`. 0: no deadline.",
            ge=0,
        ),
    ] = 0.0
    max_run_timeout: Annotated[
        float,
        _doc("Largest `Run-Timeout` a request may ask for, in seconds; more gets 400.", gt=0),
    ] = 86_400.0
    lease_ttl: Annotated[
        float,
        _doc("Seconds a worker holds a run without a heartbeat before the run is requeued.", gt=0),
    ] = 30.0
    heartbeat_interval: Annotated[
        float, _doc("Seconds between worker heartbeats (told to workers at connect).", gt=0)
    ] = 5.0
    max_attempts: Annotated[
        int, _doc("Attempts of a run (first included) before a lost worker fails it.", ge=1)
    ] = 3
    ephemeral_retention: Annotated[
        int,
        _doc("Finished ephemeral runs kept in memory for status queries (oldest evicted first).", ge=1000),
    ] = 10_000
    retention: Annotated[
        float,
        _doc(
            "Seconds a finished durable run (with its events and checkpoints) is kept before it is deleted; "
            "0 keeps runs forever.",
            ge=0,
        ),
    ] = 604_800.0
    worker_token: Annotated[
        str,
        _doc(
            "A shared secret workers may present in their Hello instead of a worker token of their own, "
            "allowed to serve `worker_token_endpoints`. For a worker beside its gateway in one pod (the "
            "Helm chart sets it from a Secret); separate deployments of workers get their own tokens "
            '(`fastagentic-gateway workers create-token`). With `auth = "none"` and this empty, '
            "workers connect without one."
        ),
    ] = ""
    worker_token_endpoints: Annotated[
        list[str],
        _doc("The endpoint names a worker presenting `worker_token` may serve; `*`: any. Comma-separated."),
    ] = msgspec.field(default_factory=lambda: ["*"])
    tls_cert_file: Annotated[
        str,
        _doc(
            "PEM certificate (chain) the gateway serves HTTPS and the worker gRPC port with, for the sidecar "
            "case or a gateway facing the network itself; with `tls_key_file`. Empty: plain HTTP and gRPC "
            "(behind a TLS-terminating ingress or mesh, or on loopback)."
        ),
    ] = ""
    tls_key_file: Annotated[str, _doc("PEM private key of `tls_cert_file`.")] = ""
    worker_ca_file: Annotated[
        str,
        _doc(
            "PEM CA certificate(s): the worker port then requires client certificates they signed (mTLS), "
            "and a worker whose certificate is named in `worker_certificates` needs no token. Needs "
            "`tls_cert_file`."
        ),
    ] = ""
    worker_certificates: Annotated[
        dict[str, list[str]],
        _doc(
            "Client certificate name (its subject CN, or a DNS name it holds) -> the endpoint names a "
            "worker presenting it may serve (`*`: any). In the environment: a JSON object."
        ),
    ] = {}
    auth: Annotated[
        str,
        _doc(
            '`"required"`: every request and every worker authenticates (API keys, `oidc_issuers`, worker '
            'tokens). `"none"`: nobody does and every caller may do everything (local development: warned '
            "at every start). Empty: `serve` refuses to start until one of the two is chosen."
        ),
    ] = ""
    oidc_issuers: Annotated[
        list[IssuerConfig],
        _doc(
            "OpenID Connect / JWT issuers whose bearer tokens are accepted, each a table: `issuer`, "
            "`audiences`, and optionally `jwks_url` (else discovery), `algorithms`, `tenant_claim` or "
            "`tenant`, `subject_claim`, `scope_claims`, `role_claims` (see the security guide). In the "
            "environment: a JSON array of objects."
        ),
    ] = []
    auth_roles: Annotated[
        dict[str, list[str]],
        _doc(
            'Scopes each role grants, e.g. `{analyst = ["reports:read"]}`; roles come from tokens '
            "(`role_claims`) and API keys. In the environment: a JSON object."
        ),
    ] = {}
    admin_scope: Annotated[
        str,
        _doc(
            "The scope that allows the admin routes (`GET /v1/audit`, `GET /v1/usage`, `GET /v1/stats`).",
            min_length=1,
        ),
    ] = "fastagentic:admin"
    jwt_leeway: Annotated[
        float, _doc("Seconds of clock skew allowed on `exp`, `nbf` and `iat`.", ge=0, le=600)
    ] = 60.0
    jwks_refresh_interval: Annotated[
        float,
        _doc(
            "Least seconds between two fetches of an issuer's keys for unknown `kid`s (a flood of bad "
            "tokens cannot hammer the identity provider).",
            gt=0,
        ),
    ] = 30.0
    jwt_cache_size: Annotated[
        int,
        _doc(
            "Bearer tokens whose signature verified, remembered so a token sent again is not verified "
            "again (its `exp` is still checked on every request; the cache empties when an issuer's keys "
            "change). 0: verify every signature on every request.",
            ge=0,
        ),
    ] = 10_000
    credential_cache_ttl: Annotated[
        float,
        _doc(
            "Seconds a verified API key or worker token is trusted without asking the store again: a "
            "revoked or expired one stops working within this time on every replica.",
            ge=0,
        ),
    ] = 10.0
    public_url: Annotated[
        str,
        _doc(
            "The URL clients reach this gateway at (`https://agents.example.com`): the MCP resource "
            "(RFC 9728 metadata, RFC 8707 audience) and card URLs. Empty: taken from each request."
        ),
    ] = ""
    mcp_authorization_servers: Annotated[
        list[str],
        _doc(
            "Authorization servers named in `/.well-known/oauth-protected-resource`. Empty: the "
            "`issuer` of each of `oidc_issuers`. In the environment: comma-separated."
        ),
    ] = []
    audit_retention: Annotated[
        float,
        _doc("Seconds an audit record is kept; 0 keeps them forever.", ge=0),
    ] = 7_776_000.0
    limits: Annotated[
        list[LimitRule],
        _doc(
            "Request rate limits, each a table: `name`, `rate` (`60/minute`), and optionally `burst`, "
            "`per` (`principal`, `tenant`, `endpoint`), `endpoints`, `endpoint_rates`, `roles`, `scopes` "
            "(see the limits guide). Every rule that applies to a call must admit it. Reloaded on SIGHUP. "
            "In the environment: a JSON array of objects."
        ),
    ] = []
    concurrency: Annotated[
        list[ConcurrencyRule],
        _doc(
            "Concurrency limits, each a table: `name`, `max` (runs at once), and optionally `per` "
            "(`principal`, `tenant` (the default), `endpoint`), `endpoints`, `roles`, `scopes`, `when_full` "
            "(`queue`, the default: runs past `max` wait their turn, fairly across tenants; `refuse`: 429). "
            "In a cluster the replicas hold `max` together, through slot claims in NATS (see the limits "
            "guide). Reloaded on SIGHUP. In the environment: a JSON array of objects."
        ),
    ] = []
    limits_fail: Annotated[
        str,
        _doc(
            '`"open"`: calls are admitted unchecked while the shared limit counter (a cluster\'s NATS) '
            'is unreachable; `"closed"`: they are refused with 503. Logged and shown in `/readyz` either way.'
        ),
    ] = "open"
    limits_url: Annotated[
        str,
        _doc(
            "NATS holding the shared limit counters, so replicas count together. Empty: `bus_url`; "
            "with neither, a gateway counts alone, in memory."
        ),
    ] = ""
    budgets: Annotated[
        list[BudgetRule],
        _doc(
            "Spending caps, each a table: `name`, `period` (`day`, `month` or `run`), `tokens` and/or `cost`, "
            "and optionally `per` (`principal`, `tenant`, `endpoint`), `endpoints`, `roles`, `scopes`, "
            "`alert_at`, `downgrade_at` + `downgrade_to` (see the limits guide). A spent day or month budget "
            "refuses new runs (429 `budget_exceeded`); a run past its run budget is stopped (`BudgetExceeded`). "
            "Reloaded on SIGHUP. In the environment: a JSON array of objects."
        ),
    ] = []
    budget_refresh: Annotated[
        float,
        _doc(
            "Seconds a replica trusts what it read of a key's spending before it reads the store again: in a "
            "cluster, a day or month budget may be overspent by what other replicas counted within it.",
            gt=0,
            le=3600,
        ),
    ] = 5.0
    budget_webhook: Annotated[
        str,
        _doc(
            "URL that budget alerts (`budget.alert` past `alert_at`, `budget.exhausted`) are POSTed to as JSON, "
            "once per budget, key and period for the cluster. Empty: alerts go to the log and the audit log only."
        ),
    ] = ""
    interrupt_hold: Annotated[
        float,
        _doc(
            "Seconds a durable run that called `ctx.interrupt` waits for its answer on its worker before the "
            "worker hands it back (an answer then starts a new attempt on any worker, from its checkpoint). "
            "Ephemeral runs wait in place, up to `interrupt_timeout`.",
            gt=0,
            le=86400,
        ),
    ] = 30.0
    interrupt_timeout: Annotated[
        float,
        _doc(
            "Seconds an ephemeral run waits in place for the answer to its interrupt before it fails with "
            "error type `InterruptTimeout` (durable runs wait, handed back, until their deadline).",
            gt=0,
            le=604800,
        ),
    ] = 3600.0
    approval_required: Annotated[
        list[str],
        _doc(
            "Endpoints whose every call waits for a person's decision before any worker runs it, as names or "
            'shell-style patterns (`["refund", "admin_*"]`): the run is accepted `waiting_input` on the '
            "interrupt `gateway.approval`, which only principals with `approver_scope` may answer (approve, "
            "edit the input, or reject). Reloaded on SIGHUP (calls made after it). In the environment: "
            "comma-separated."
        ),
    ] = []
    approver_scope: Annotated[
        str,
        _doc(
            "The scope a principal needs to decide calls that require approval (`approval_required`). "
            "Reloaded on SIGHUP.",
            min_length=1,
        ),
    ] = "fastagentic:approve"
    # ---- approval channels (approvals/): people told when a run waits, answering by signed links ----
    approval_channels: Annotated[
        list[ApprovalChannel],
        _doc(
            "Where people are told that a run waits for input, each a table: `name`, `type` (`webhook`: signed "
            "JSON, with `url` and `secret`; `slack`: an incoming webhook `url`; `email`: `to`, a list of "
            "addresses, sent through `approval_smtp_host`), optionally `recipient` (see the approvals guide). "
            "In the environment: a JSON array of objects."
        ),
    ] = []
    approval_rules: Annotated[
        list[ApprovalRule],
        _doc(
            "Which channels hear of which interrupt, each a table: `name`, `channels`, and optionally "
            "`endpoints`, `tenants`, `kinds` (`approval`, `question`), `timeout` (seconds), `on_timeout` "
            "(`reject`, `approve`, `escalate`), `escalate_to`. The first that matches applies; none: the "
            "interrupt notifies nobody. Empty with channels set: every interrupt goes to every channel. In "
            "the environment: a JSON array of objects."
        ),
    ] = []
    approval_secret: Annotated[
        str,
        _doc(
            "Secret (at least 32 characters) signing the answer links of approval notifications; needed "
            "when `approval_channels` has any. Replicas must share it. Changing it invalidates the links "
            "already sent (the runs keep waiting: answer them over the API)."
        ),
    ] = ""
    approval_previous_secret: Annotated[
        str,
        _doc(
            "While rotating `approval_secret`: the secret it replaces. Links signed with it are still "
            "accepted (new links use `approval_secret`); empty it once they have expired (`approval_link_ttl`)."
        ),
    ] = ""
    approval_url: Annotated[
        str,
        _doc(
            "Base URL of the answer links (`https://agents.example.com`). Empty: `public_url`, else "
            "`http://{http_host}:{http_port}`."
        ),
    ] = ""
    approval_link_ttl: Annotated[
        float,
        _doc(
            "Seconds an answer link is valid after it is sent; past it, it answers 410.", gt=0, le=2_592_000
        ),
    ] = 86_400.0
    approval_sweep_interval: Annotated[
        float,
        _doc(
            "Seconds between two looks at the runs waiting for input, for the `timeout` of the approval "
            "rules (a timeout fires at most this late).",
            gt=0,
            le=3600,
        ),
    ] = 15.0
    approval_delivery_attempts: Annotated[
        int,
        _doc("Attempts to deliver one notification (network errors, 429 and 5xx retry).", ge=1, le=20),
    ] = 5
    approval_delivery_backoff: Annotated[
        float, _doc("Seconds before the first retry of a notification; doubles each retry.", gt=0)
    ] = 1.0
    approval_delivery_timeout: Annotated[
        float, _doc("Seconds one notification delivery (HTTP POST or SMTP session) may take.", gt=0)
    ] = 10.0
    approval_smtp_host: Annotated[str, _doc("SMTP server of the `email` approval channels.")] = ""
    approval_smtp_port: Annotated[
        int, _doc("Port of `approval_smtp_host` (587 for STARTTLS, 465 for TLS).", ge=1, le=65535)
    ] = 587
    approval_smtp_security: Annotated[
        str,
        _doc(
            '`"starttls"` (upgrade the connection, refuse a server that cannot), `"tls"` (TLS from the '
            'start) or `"none"` (plain: a relay on the local machine or network only).'
        ),
    ] = "starttls"
    approval_smtp_username: Annotated[str, _doc("SMTP AUTH user; empty: no authentication.")] = ""
    approval_smtp_password: Annotated[str, _doc("SMTP AUTH password, with `approval_smtp_username`.")] = ""
    approval_smtp_from: Annotated[str, _doc("The sender address of approval emails.")] = ""
    # ---- end of approval channels ----
    # ---- hooks (hooks/): the gateway's guardrails on requests, responses, tool calls and events ----
    hooks: Annotated[
        list[HookConfig],
        _doc(
            "Gateway hooks, in chain order, each a table: `name`, `points` (`on_request`, `on_response`, "
            "`on_tool_call`, `on_tool_result`, `on_llm_start`, ..., `on_event`: every event a worker sends), one "
            "of `module` (`package.module:attribute`: a hook, or a factory called with `options`), `url` (a hook "
            "server, with `secret`) or `type` (a built-in), and optionally `options`, `timeout` (seconds, 1), "
            "`fail` (`closed` or `open`), `mode` (`inline` or `audit`), conditions `endpoints`, `tenants`, "
            "`scopes`, `tools`, `protocols`, `event_kinds` (shell-style patterns). See the hooks reference. "
            "Reloaded on SIGHUP. In the environment: a JSON array of objects."
        ),
    ] = []
    # ---- end of hooks ----
    sse_keepalive: Annotated[float, _doc("Seconds between SSE comment lines on an idle stream.", gt=0)] = 15.0
    retry_after: Annotated[int, _doc("Retry-After seconds sent with 503 when no worker serves.", ge=1)] = 5
    shutdown_grace: Annotated[float, _doc("Seconds to finish in-flight HTTP requests on SIGTERM.", ge=0)] = (
        10.0
    )
    mcp_allowed_origins: Annotated[
        list[str],
        _doc(
            "Origins a browser may call `/mcp` from; a request with any other `Origin` header gets 403 "
            "(requests without one, like every non-browser client, pass). Exact origins, `scheme://host:*` for "
            "any port, or `*` for any origin. Empty: the local machine only "
            "(`http(s)://localhost`, `127.0.0.1`, `[::1]`, any port). In the environment: comma-separated."
        ),
    ] = []
    mcp_allowed_hosts: Annotated[
        list[str],
        _doc(
            "`Host` header values `/mcp` answers; any other gets 421 (DNS-rebinding protection). `host`, "
            "`host:port`, `host:*` for any port, or `*`. Empty: the loopback names when `http_host` is a "
            "loopback address, any host otherwise. In the environment: comma-separated."
        ),
    ] = []
    mcp_session_idle_timeout: Annotated[
        float, _doc("Seconds a 2025-11-25 MCP session may stay idle before it is closed.", gt=0)
    ] = 1800.0
    mcp_max_sessions: Annotated[
        int, _doc("2025-11-25 MCP sessions open at once; more get 503 until one ends.", ge=1)
    ] = 10_000
    mcp_resume_events: Annotated[
        int,
        _doc(
            "Events kept per 2025-11-25 MCP session so a dropped SSE stream resumes after `Last-Event-ID`.",
            ge=0,
        ),
    ] = 1000
    mcp_fast_path: Annotated[
        bool,
        _doc(
            "Serve the commonest MCP requests (`tools/call`, `tools/list`: 2026-07-28, and 2025-11-25 in a "
            "session) without the `mcp` package's transport, with the same answers byte for byte; everything "
            "else goes to the package. Off: every request goes to the package (a comparison switch)."
        ),
    ] = True
    a2a_default_agent: Annotated[
        str,
        _doc(
            "The agent endpoint `/.well-known/agent-card.json` describes. Empty: the only agent endpoint when "
            "exactly one is served, otherwise the gateway's own agent at `/a2a`, with every agent endpoint as "
            "a skill (a message names its skill in `metadata.skill`)."
        ),
    ] = ""
    a2a_card_max_age: Annotated[
        int, _doc("`Cache-Control: max-age` seconds of the A2A agent cards (they also carry ETag).", ge=0)
    ] = 60
    a2a_push_allow_private: Annotated[
        bool,
        _doc(
            "Allow A2A push notification URLs on loopback, link-local and private addresses. Off: such URLs "
            "are refused when the config is created and never delivered to."
        ),
    ] = False
    a2a_push_timeout: Annotated[float, _doc("Seconds one A2A push notification delivery may take.", gt=0)] = (
        10.0
    )
    a2a_push_max_attempts: Annotated[
        int, _doc("Attempts to deliver one A2A push notification (network errors, 429 and 5xx retry).", ge=1)
    ] = 5
    a2a_push_backoff: Annotated[
        float, _doc("Seconds before the first retry of an A2A push notification; doubles each retry.", gt=0)
    ] = 0.5
    mcp_completion_timeout: Annotated[
        float,
        _doc(
            "Seconds MCP `completion/complete` waits for a worker's completer; past it the answer falls "
            "back to the values the argument's schema enumerates.",
            gt=0,
        ),
    ] = 5.0
    mcp_task_ttl: Annotated[
        float,
        _doc(
            "Longest MCP task TTL in seconds: a task is kept at most this long after its creation (a client "
            "may ask for less; 2025-11-25 `task.ttl`), then forgotten by `tasks/*` (the run itself follows "
            "`retention`). 0: no limit; tasks live as long as their runs.",
            ge=0,
        ),
    ] = 0.0
    mcp_questions_within: Annotated[
        float,
        _doc(
            "Seconds a 2026-07-28 call that makes a task waits for the first question of an endpoint declared "
            "`input_before_task` (asked on the call, before the task) when the run asks nothing sooner: then "
            "the call answers with the task, and a later question is asked within it.",
            gt=0,
        ),
    ] = 5.0
    mcp_state_secret: Annotated[
        str,
        _doc(
            "Secret (at least 32 characters) signing the `requestState` of MCP 2026-07-28 input-required "
            "results, so a client's retry can prove which run and question it answers. Empty: a random one "
            "made once and kept in the data directory (`mcp_state_secret`). Replicas of one gateway must "
            "share it: set the same value on each. Changing it invalidates the questions in flight."
        ),
    ] = ""
    mcp_state_ttl: Annotated[
        float,
        _doc(
            "Seconds an MCP 2026-07-28 client has to answer an input-required result (its `requestState` "
            "expires). An ephemeral run still waiting on that question then fails `InterruptTimeout`, freeing "
            "its worker slot; a durable run keeps waiting (with no worker) until its deadline.",
            gt=0,
        ),
    ] = 3600.0
    prices: Annotated[
        dict[
            Annotated[str, Meta(min_length=1, max_length=200)],
            Annotated[
                dict[
                    typing.Literal["input_per_million", "output_per_million"],
                    Annotated[float, Meta(ge=0, le=1_000_000)],
                ],
                Meta(min_length=2),
            ],
        ],
        _doc(
            "Price table turning tokens into cost when a worker reports usage (`llm_end`) without one: model "
            "name -> `{input_per_million, output_per_million}` (both required, each 0 to 1e6, in your "
            'currency per million tokens), e.g. `{"gpt-4o-mini" = {input_per_million = 0.15, '
            "output_per_million = 0.6}}`. A model not listed and reported without a cost counts as unpriced. "
            "In the environment: a JSON object."
        ),
    ] = {}
    debug: Annotated[
        bool, _doc("Include tracebacks of gateway errors in responses. Never in production.")
    ] = False
    log_level: Annotated[str, _doc("debug, info, warning or error.")] = "info"
    log_format: Annotated[
        str,
        _doc(
            "text, or json: one JSON object per line with the request id, run id, trace id and span id "
            "where known (docs/guides/observability.md)."
        ),
    ] = "text"
    tracing: Annotated[
        bool,
        _doc(
            "OpenTelemetry traces from the client's request to the worker's LLM and tool calls, exported as the "
            "standard OTEL_* environment variables say (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT, "
            "OTEL_EXPORTER_OTLP_PROTOCOL grpc or http/protobuf, OTEL_SERVICE_NAME...). Off: no span is made."
        ),
    ] = False

    def __post_init__(self) -> None:
        if self.heartbeat_interval >= self.lease_ttl:
            raise ValueError(
                f"heartbeat_interval ({self.heartbeat_interval}) must be shorter than lease_ttl ({self.lease_ttl})"
            )
        if self.max_checkpoint_bytes > self.max_message_bytes:
            raise ValueError(
                f"max_checkpoint_bytes ({self.max_checkpoint_bytes}) must not exceed max_message_bytes "
                f"({self.max_message_bytes}): a checkpoint travels inside one worker message"
            )
        if self.run_timeout > self.max_run_timeout:
            raise ValueError(
                f"run_timeout ({self.run_timeout}) must not exceed max_run_timeout ({self.max_run_timeout})"
            )
        if self.bus_url and not self.bus_url.startswith(("nats://", "tls://")):
            raise ValueError(f"bus_url must be empty or a nats:// (or tls://) URL, not {self.bus_url!r}")
        if self.bus_url and not self.store_url.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "bus_url (several replicas) needs a run store they share: set store_url to a postgresql:// URL"
            )
        if self.auth not in ("", "none", "required"):
            raise ValueError(f'auth must be "required" or "none", not {self.auth!r}')
        if self.mcp_state_secret and len(self.mcp_state_secret) < 32:
            raise ValueError("mcp_state_secret must be at least 32 characters (a random secret)")
        if self.worker_token and len(self.worker_token) < 16 and self.auth == "required":
            raise ValueError("worker_token must be at least 16 characters (a random secret)")
        issuers = [config.issuer for config in self.oidc_issuers]
        if len(set(issuers)) != len(issuers):
            raise ValueError("oidc_issuers: each issuer may be configured once")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file go together: set both or neither")
        if self.worker_ca_file and not self.tls_cert_file:
            raise ValueError("worker_ca_file (mTLS on the worker port) needs tls_cert_file and tls_key_file")
        for name in ("tls_cert_file", "tls_key_file", "worker_ca_file"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ValueError(f"{name}: {path} is not a readable file")
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise ValueError(f"public_url must be an http:// or https:// URL, not {self.public_url!r}")
        if self.limits_fail not in ("open", "closed"):
            raise ValueError(f'limits_fail must be "open" or "closed", not {self.limits_fail!r}')
        if self.limits_url and not self.limits_url.startswith(("nats://", "tls://")):
            raise ValueError(
                f"limits_url must be empty or a nats:// (or tls://) URL, not {self.limits_url!r}"
            )
        names = [rule.name for rule in self.limits]
        if len(set(names)) != len(names):
            raise ValueError("limits: each rule name may be used once")
        names = [rule.name for rule in self.concurrency]
        if len(set(names)) != len(names):
            raise ValueError("concurrency: each rule name may be used once")
        names = [rule.name for rule in self.budgets]
        if len(set(names)) != len(names):
            raise ValueError("budgets: each budget name may be used once")
        if self.budget_webhook and not self.budget_webhook.startswith(("http://", "https://")):
            raise ValueError(
                f"budget_webhook must be empty or an http:// or https:// URL, not {self.budget_webhook!r}"
            )
        check_approvals(self)  # approval channels (approvals/config.py)
        check_hooks(self.hooks)  # gateway hooks (hooks/config.py)
        if self.log_level.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError(f"log_level must be debug, info, warning or error, not {self.log_level!r}")
        if self.log_format not in {"text", "json"}:
            raise ValueError(f"log_format must be text or json, not {self.log_format!r}")


class SettingsError(Exception):
    pass


def _fields() -> dict[str, Any]:
    return {f.name: f for f in msgspec.structs.fields(Settings)}


def _bare(annotation: Any) -> Any:
    return typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Annotated else annotation


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(_bare(annotation)) is list


def _is_json(annotation: Any) -> bool:
    """Settings given as JSON in the environment: tables, and lists of tables."""
    bare = _bare(annotation)
    if typing.get_origin(bare) is dict:
        return True
    args = typing.get_args(bare)
    return (
        typing.get_origin(bare) is list
        and bool(args)
        and isinstance(args[0], type)
        and issubclass(args[0], msgspec.Struct)
    )


def load(config_file: str | None = None, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Defaults, then the TOML file (``config_file`` or ``$FASTAGENTIC_CONFIG``), then the environment,
    then ``overrides`` (command-line flags). Unknown keys and bad values raise SettingsError naming them."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    path = config_file or environ.get(f"{ENV_PREFIX}CONFIG")
    if path:
        try:
            with Path(path).open("rb") as handle:
                values.update(tomllib.load(handle))
        except FileNotFoundError as exc:
            raise SettingsError(f"config file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
        unknown = sorted(set(values) - set(_fields()))
        if unknown:
            raise SettingsError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    for name, field in _fields().items():
        key = f"{ENV_PREFIX}{name.upper()}"
        if key in environ:
            value: Any = environ[key]
            if _is_json(field.type):
                try:
                    value = msgspec.json.decode(value)
                except msgspec.DecodeError as exc:
                    raise SettingsError(f"{key} must be JSON: {exc}") from exc
            elif _is_list(field.type):
                value = [item.strip() for item in value.split(",") if item.strip()]
            values[name] = value
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        # strict=False parses "8000" and "true" from environment strings.
        return msgspec.convert(values, Settings, strict=False)
    except (msgspec.ValidationError, ValueError) as exc:
        raise SettingsError(f"invalid setting: {exc}") from exc


def reference_markdown() -> str:
    """The configuration reference, generated from the Settings struct."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- generated by `python -m fastagentic_gateway.settings`; do not edit by hand -->",
        "",
        "Settings come from defaults, then a TOML file (`--config PATH` or `FASTAGENTIC_CONFIG`), then",
        "environment variables `FASTAGENTIC_<NAME>`, then command-line flags. Unknown keys and invalid",
        "values stop the gateway with a message naming them.",
        "",
        "| setting | environment | default | meaning |",
        "|---|---|---|---|",
    ]
    defaults = Settings()
    for name, field in _fields().items():
        description = ""
        for meta in getattr(field.type, "__metadata__", ()):
            if isinstance(meta, Meta) and meta.description:
                description = meta.description
        default = getattr(defaults, name)
        lines.append(f"| `{name}` | `{ENV_PREFIX}{name.upper()}` | `{default!r}` | {description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference_markdown())
