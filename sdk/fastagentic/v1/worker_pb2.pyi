from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EndpointKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENDPOINT_KIND_UNSPECIFIED: _ClassVar[EndpointKind]
    ENDPOINT_KIND_AGENT: _ClassVar[EndpointKind]
    ENDPOINT_KIND_TOOL: _ClassVar[EndpointKind]
    ENDPOINT_KIND_RESOURCE: _ClassVar[EndpointKind]
    ENDPOINT_KIND_PROMPT: _ClassVar[EndpointKind]
ENDPOINT_KIND_UNSPECIFIED: EndpointKind
ENDPOINT_KIND_AGENT: EndpointKind
ENDPOINT_KIND_TOOL: EndpointKind
ENDPOINT_KIND_RESOURCE: EndpointKind
ENDPOINT_KIND_PROMPT: EndpointKind

class WorkerFrame(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[WorkerMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[WorkerMessage, _Mapping]]] = ...) -> None: ...

class GatewayFrame(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[GatewayMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[GatewayMessage, _Mapping]]] = ...) -> None: ...

class WorkerMessage(_message.Message):
    __slots__ = ("hello", "events", "done", "heartbeat", "credit", "release", "completion", "resource_changed", "tool_check")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_CHANGED_FIELD_NUMBER: _ClassVar[int]
    TOOL_CHECK_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    events: Events
    done: Done
    heartbeat: Heartbeat
    credit: Credit
    release: Release
    completion: Completion
    resource_changed: ResourceChanged
    tool_check: ToolCheck
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., events: _Optional[_Union[Events, _Mapping]] = ..., done: _Optional[_Union[Done, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., credit: _Optional[_Union[Credit, _Mapping]] = ..., release: _Optional[_Union[Release, _Mapping]] = ..., completion: _Optional[_Union[Completion, _Mapping]] = ..., resource_changed: _Optional[_Union[ResourceChanged, _Mapping]] = ..., tool_check: _Optional[_Union[ToolCheck, _Mapping]] = ...) -> None: ...

class EndpointSpec(_message.Message):
    __slots__ = ("name", "kind", "description", "input_schema", "output_schema", "streams", "durable", "scopes", "tags", "examples", "uri_template", "mime_type", "completions", "rate_limit", "task_required", "require_approval", "input_before_task")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    DURABLE_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    URI_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    TASK_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_APPROVAL_FIELD_NUMBER: _ClassVar[int]
    INPUT_BEFORE_TASK_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: EndpointKind
    description: str
    input_schema: bytes
    output_schema: bytes
    streams: bool
    durable: bool
    scopes: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    examples: bytes
    uri_template: str
    mime_type: str
    completions: _containers.RepeatedScalarFieldContainer[str]
    rate_limit: str
    task_required: bool
    require_approval: bool
    input_before_task: bool
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[EndpointKind, str]] = ..., description: _Optional[str] = ..., input_schema: _Optional[bytes] = ..., output_schema: _Optional[bytes] = ..., streams: _Optional[bool] = ..., durable: _Optional[bool] = ..., scopes: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., examples: _Optional[bytes] = ..., uri_template: _Optional[str] = ..., mime_type: _Optional[str] = ..., completions: _Optional[_Iterable[str]] = ..., rate_limit: _Optional[str] = ..., task_required: _Optional[bool] = ..., require_approval: _Optional[bool] = ..., input_before_task: _Optional[bool] = ...) -> None: ...

class HeldRun(_message.Message):
    __slots__ = ("run_id", "attempt")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("worker_id", "sdk_version", "protocol_version", "app_name", "endpoints", "slots", "held", "token", "features")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    SDK_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    APP_NAME_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    sdk_version: str
    protocol_version: int
    app_name: str
    endpoints: _containers.RepeatedCompositeFieldContainer[EndpointSpec]
    slots: int
    held: _containers.RepeatedCompositeFieldContainer[HeldRun]
    token: str
    features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, worker_id: _Optional[str] = ..., sdk_version: _Optional[str] = ..., protocol_version: _Optional[int] = ..., app_name: _Optional[str] = ..., endpoints: _Optional[_Iterable[_Union[EndpointSpec, _Mapping]]] = ..., slots: _Optional[int] = ..., held: _Optional[_Iterable[_Union[HeldRun, _Mapping]]] = ..., token: _Optional[str] = ..., features: _Optional[_Iterable[str]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("kind", "data", "ts_ms", "checkpoint")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TS_MS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    data: bytes
    ts_ms: int
    checkpoint: bytes
    def __init__(self, kind: _Optional[str] = ..., data: _Optional[bytes] = ..., ts_ms: _Optional[int] = ..., checkpoint: _Optional[bytes] = ...) -> None: ...

class Events(_message.Message):
    __slots__ = ("run_id", "attempt", "first_seq", "events")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    first_seq: int
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., first_seq: _Optional[int] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class RunError(_message.Message):
    __slots__ = ("type", "message")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Done(_message.Message):
    __slots__ = ("run_id", "attempt", "last_seq", "output", "error", "cancelled")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    last_seq: int
    output: bytes
    error: RunError
    cancelled: bool
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., last_seq: _Optional[int] = ..., output: _Optional[bytes] = ..., error: _Optional[_Union[RunError, _Mapping]] = ..., cancelled: _Optional[bool] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("free_slots",)
    FREE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    free_slots: int
    def __init__(self, free_slots: _Optional[int] = ...) -> None: ...

class Credit(_message.Message):
    __slots__ = ("slots",)
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    slots: int
    def __init__(self, slots: _Optional[int] = ...) -> None: ...

class Release(_message.Message):
    __slots__ = ("run_id", "attempt", "reason")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    reason: str
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Completion(_message.Message):
    __slots__ = ("request_id", "values", "total", "has_more", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    values: _containers.RepeatedScalarFieldContainer[str]
    total: int
    has_more: bool
    error: str
    def __init__(self, request_id: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ..., total: _Optional[int] = ..., has_more: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class ResourceChanged(_message.Message):
    __slots__ = ("uri",)
    URI_FIELD_NUMBER: _ClassVar[int]
    uri: str
    def __init__(self, uri: _Optional[str] = ...) -> None: ...

class ToolCheck(_message.Message):
    __slots__ = ("run_id", "attempt", "check_id", "point", "tool", "data")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    POINT_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    check_id: str
    point: str
    tool: str
    data: bytes
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., check_id: _Optional[str] = ..., point: _Optional[str] = ..., tool: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class GatewayMessage(_message.Message):
    __slots__ = ("welcome", "assign", "cancel", "drain", "reject", "complete", "hint", "answer", "tool_verdict")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ASSIGN_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    REJECT_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    TOOL_VERDICT_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    assign: Assign
    cancel: Cancel
    drain: Drain
    reject: Reject
    complete: Complete
    hint: Hint
    answer: Answer
    tool_verdict: ToolVerdict
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., assign: _Optional[_Union[Assign, _Mapping]] = ..., cancel: _Optional[_Union[Cancel, _Mapping]] = ..., drain: _Optional[_Union[Drain, _Mapping]] = ..., reject: _Optional[_Union[Reject, _Mapping]] = ..., complete: _Optional[_Union[Complete, _Mapping]] = ..., hint: _Optional[_Union[Hint, _Mapping]] = ..., answer: _Optional[_Union[Answer, _Mapping]] = ..., tool_verdict: _Optional[_Union[ToolVerdict, _Mapping]] = ...) -> None: ...

class HeldRunStatus(_message.Message):
    __slots__ = ("run_id", "attempt", "keep", "next_seq")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQ_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    keep: bool
    next_seq: int
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., keep: _Optional[bool] = ..., next_seq: _Optional[int] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("gateway_id", "heartbeat_interval_ms", "lease_ttl_ms", "max_message_bytes", "held", "interrupt_hold_ms", "interrupt_timeout_ms", "features", "tool_checks", "tool_check_timeout_ms")
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    INTERRUPT_HOLD_MS_FIELD_NUMBER: _ClassVar[int]
    INTERRUPT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    TOOL_CHECKS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CHECK_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    gateway_id: str
    heartbeat_interval_ms: int
    lease_ttl_ms: int
    max_message_bytes: int
    held: _containers.RepeatedCompositeFieldContainer[HeldRunStatus]
    interrupt_hold_ms: int
    interrupt_timeout_ms: int
    features: _containers.RepeatedScalarFieldContainer[str]
    tool_checks: _containers.RepeatedScalarFieldContainer[str]
    tool_check_timeout_ms: int
    def __init__(self, gateway_id: _Optional[str] = ..., heartbeat_interval_ms: _Optional[int] = ..., lease_ttl_ms: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., held: _Optional[_Iterable[_Union[HeldRunStatus, _Mapping]]] = ..., interrupt_hold_ms: _Optional[int] = ..., interrupt_timeout_ms: _Optional[int] = ..., features: _Optional[_Iterable[str]] = ..., tool_checks: _Optional[_Iterable[str]] = ..., tool_check_timeout_ms: _Optional[int] = ...) -> None: ...

class Caller(_message.Message):
    __slots__ = ("principal", "tenant")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    principal: str
    tenant: str
    def __init__(self, principal: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class Assign(_message.Message):
    __slots__ = ("run_id", "attempt", "endpoint", "input", "caller", "trace_context", "deadline_unix_ms", "next_seq", "checkpoint", "resume_input", "model_hint", "protocol")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQ_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    RESUME_INPUT_FIELD_NUMBER: _ClassVar[int]
    MODEL_HINT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    endpoint: str
    input: bytes
    caller: Caller
    trace_context: _containers.ScalarMap[str, str]
    deadline_unix_ms: int
    next_seq: int
    checkpoint: bytes
    resume_input: bytes
    model_hint: str
    protocol: str
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., endpoint: _Optional[str] = ..., input: _Optional[bytes] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ..., trace_context: _Optional[_Mapping[str, str]] = ..., deadline_unix_ms: _Optional[int] = ..., next_seq: _Optional[int] = ..., checkpoint: _Optional[bytes] = ..., resume_input: _Optional[bytes] = ..., model_hint: _Optional[str] = ..., protocol: _Optional[str] = ...) -> None: ...

class Answer(_message.Message):
    __slots__ = ("run_id", "attempt", "interrupt_id", "data", "next_seq")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    INTERRUPT_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQ_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    interrupt_id: str
    data: bytes
    next_seq: int
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., interrupt_id: _Optional[str] = ..., data: _Optional[bytes] = ..., next_seq: _Optional[int] = ...) -> None: ...

class Hint(_message.Message):
    __slots__ = ("run_id", "attempt", "model_hint")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MODEL_HINT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    model_hint: str
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., model_hint: _Optional[str] = ...) -> None: ...

class ToolVerdict(_message.Message):
    __slots__ = ("run_id", "attempt", "check_id", "action", "data", "reason", "hook", "retry_after_ms")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HOOK_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    check_id: str
    action: str
    data: bytes
    reason: str
    hook: str
    retry_after_ms: int
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., check_id: _Optional[str] = ..., action: _Optional[str] = ..., data: _Optional[bytes] = ..., reason: _Optional[str] = ..., hook: _Optional[str] = ..., retry_after_ms: _Optional[int] = ...) -> None: ...

class Cancel(_message.Message):
    __slots__ = ("run_id", "attempt", "reason")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    reason: str
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Drain(_message.Message):
    __slots__ = ("grace_ms", "reason")
    GRACE_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    grace_ms: int
    reason: str
    def __init__(self, grace_ms: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Reject(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Complete(_message.Message):
    __slots__ = ("request_id", "endpoint", "argument", "value", "arguments")
    class ArgumentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    ARGUMENT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    endpoint: str
    argument: str
    value: str
    arguments: _containers.ScalarMap[str, str]
    def __init__(self, request_id: _Optional[str] = ..., endpoint: _Optional[str] = ..., argument: _Optional[str] = ..., value: _Optional[str] = ..., arguments: _Optional[_Mapping[str, str]] = ...) -> None: ...
