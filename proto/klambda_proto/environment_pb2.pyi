from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentMessage(_message.Message):
    __slots__ = ("register", "ready", "result", "draining")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    register: Register
    ready: Ready
    result: Result
    draining: Draining
    def __init__(self, register: _Optional[_Union[Register, _Mapping]] = ..., ready: _Optional[_Union[Ready, _Mapping]] = ..., result: _Optional[_Union[Result, _Mapping]] = ..., draining: _Optional[_Union[Draining, _Mapping]] = ...) -> None: ...

class GatewayMessage(_message.Message):
    __slots__ = ("registered", "invocation", "shutdown")
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_FIELD_NUMBER: _ClassVar[int]
    registered: Registered
    invocation: Invocation
    shutdown: Shutdown
    def __init__(self, registered: _Optional[_Union[Registered, _Mapping]] = ..., invocation: _Optional[_Union[Invocation, _Mapping]] = ..., shutdown: _Optional[_Union[Shutdown, _Mapping]] = ...) -> None: ...

class Register(_message.Message):
    __slots__ = ("namespace", "function_name", "version", "environment_id", "memory_size_mb", "runtime", "initialization_type", "revision")
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
    def __init__(self, namespace: _Optional[str] = ..., function_name: _Optional[str] = ..., version: _Optional[str] = ..., environment_id: _Optional[str] = ..., memory_size_mb: _Optional[int] = ..., runtime: _Optional[str] = ..., initialization_type: _Optional[str] = ..., revision: _Optional[str] = ...) -> None: ...

class Registered(_message.Message):
    __slots__ = ("environment_id",)
    ENVIRONMENT_ID_FIELD_NUMBER: _ClassVar[int]
    environment_id: str
    def __init__(self, environment_id: _Optional[str] = ...) -> None: ...

class Ready(_message.Message):
    __slots__ = ("init_duration_ms", "init_error_type")
    INIT_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    INIT_ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    init_duration_ms: float
    init_error_type: str
    def __init__(self, init_duration_ms: _Optional[float] = ..., init_error_type: _Optional[str] = ...) -> None: ...

class Invocation(_message.Message):
    __slots__ = ("request_id", "payload", "invoked_function_arn", "client_context", "cognito_identity", "trace_id", "queued_ms")
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
    def __init__(self, request_id: _Optional[str] = ..., payload: _Optional[bytes] = ..., invoked_function_arn: _Optional[str] = ..., client_context: _Optional[str] = ..., cognito_identity: _Optional[str] = ..., trace_id: _Optional[str] = ..., queued_ms: _Optional[float] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("request_id", "payload", "function_error", "error_type", "duration_ms", "billed_duration_ms", "max_memory_used_mb", "init_duration_ms", "log_tail", "environment_reset")
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
    def __init__(self, request_id: _Optional[str] = ..., payload: _Optional[bytes] = ..., function_error: _Optional[str] = ..., error_type: _Optional[str] = ..., duration_ms: _Optional[float] = ..., billed_duration_ms: _Optional[int] = ..., max_memory_used_mb: _Optional[int] = ..., init_duration_ms: _Optional[float] = ..., log_tail: _Optional[bytes] = ..., environment_reset: _Optional[bool] = ...) -> None: ...

class Draining(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Shutdown(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...
