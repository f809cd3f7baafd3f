from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message

DESCRIPTOR: _descriptor.FileDescriptor

class AgentMessage(_message.Message):
    __slots__ = ("draining", "ready", "register", "result")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    register: Register
    ready: Ready
    result: Result
    draining: Draining
    def __init__(self, register: Register | _Mapping | None = ..., ready: Ready | _Mapping | None = ..., result: Result | _Mapping | None = ..., draining: Draining | _Mapping | None = ...) -> None: ...

class GatewayMessage(_message.Message):
    __slots__ = ("invocation", "registered", "shutdown")
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_FIELD_NUMBER: _ClassVar[int]
    registered: Registered
    invocation: Invocation
    shutdown: Shutdown
    def __init__(self, registered: Registered | _Mapping | None = ..., invocation: Invocation | _Mapping | None = ..., shutdown: Shutdown | _Mapping | None = ...) -> None: ...

class Register(_message.Message):
    __slots__ = ("environment_id", "function_name", "initialization_type", "memory_size_mb", "namespace", "revision", "runtime", "version")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MEMORY_SIZE_MB_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    INITIALIZATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    function_name: str
    version: str
    environment_id: str
    memory_size_mb: int
    runtime: str
    initialization_type: str
    revision: str
    def __init__(self, namespace: str | None = ..., function_name: str | None = ..., version: str | None = ..., environment_id: str | None = ..., memory_size_mb: int | None = ..., runtime: str | None = ..., initialization_type: str | None = ..., revision: str | None = ...) -> None: ...

class Registered(_message.Message):
    __slots__ = ("environment_id",)
    ENVIRONMENT_ID_FIELD_NUMBER: _ClassVar[int]
    environment_id: str
    def __init__(self, environment_id: str | None = ...) -> None: ...

class Ready(_message.Message):
    __slots__ = ("init_duration_ms", "init_error_type")
    INIT_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    INIT_ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    init_duration_ms: float
    init_error_type: str
    def __init__(self, init_duration_ms: float | None = ..., init_error_type: str | None = ...) -> None: ...

class Invocation(_message.Message):
    __slots__ = ("client_context", "cognito_identity", "invoked_function_arn", "payload", "queued_ms", "request_id", "trace_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    INVOKED_FUNCTION_ARN_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    COGNITO_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUED_MS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    payload: bytes
    invoked_function_arn: str
    client_context: str
    cognito_identity: str
    trace_id: str
    queued_ms: float
    def __init__(self, request_id: str | None = ..., payload: bytes | None = ..., invoked_function_arn: str | None = ..., client_context: str | None = ..., cognito_identity: str | None = ..., trace_id: str | None = ..., queued_ms: float | None = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("billed_duration_ms", "duration_ms", "environment_reset", "error_type", "function_error", "init_duration_ms", "log_tail", "max_memory_used_mb", "payload", "request_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    BILLED_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MEMORY_USED_MB_FIELD_NUMBER: _ClassVar[int]
    INIT_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    LOG_TAIL_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_RESET_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    payload: bytes
    function_error: str
    error_type: str
    duration_ms: float
    billed_duration_ms: int
    max_memory_used_mb: int
    init_duration_ms: float
    log_tail: bytes
    environment_reset: bool
    def __init__(self, request_id: str | None = ..., payload: bytes | None = ..., function_error: str | None = ..., error_type: str | None = ..., duration_ms: float | None = ..., billed_duration_ms: int | None = ..., max_memory_used_mb: int | None = ..., init_duration_ms: float | None = ..., log_tail: bytes | None = ..., environment_reset: bool | None = ...) -> None: ...

class Draining(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Shutdown(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: str | None = ...) -> None: ...
