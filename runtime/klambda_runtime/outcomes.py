"""What an invocation can end in, and the pure decisions that turn it into a Result."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime

from klambda_runtime import errors

RESETTING_KINDS = ("timeout", "exit", "oom")


@dataclass(slots=True, unsafe_hash=True)  # hot path: frozen's setattr per field costs 2.5x
class Invocation:
    request_id: str
    payload: bytes
    invoked_function_arn: str = ""
    client_context: str = ""
    cognito_identity: str = ""
    trace_id: str = ""


@dataclass(slots=True, unsafe_hash=True)  # hot path: frozen's setattr per field costs 2.5x
class InvocationResult:
    request_id: str
    payload: bytes
    function_error: str  # "" or "Unhandled"
    error_type: str
    duration_ms: float
    billed_duration_ms: int
    max_memory_used_mb: int
    init_duration_ms: float
    log_tail: bytes
    environment_reset: bool


@dataclass(frozen=True)
class InitOutcome:
    duration_ms: float
    error_type: str = ""  # "" = init succeeded
    error_body: bytes = b""  # the runtime's init error JSON (empty for exits and OOM)
    returncode: int | None = None  # the runtime exited before finishing init


@dataclass(slots=True, unsafe_hash=True)  # hot path: frozen's setattr per field costs 2.5x
class Outcome:
    kind: str  # response | error | too_large | timeout | exit | oom
    body: bytes = b""
    error_type: str = ""
    returncode: int = 0

    @property
    def resets(self) -> bool:
        """Timeout, crash and OOM throw the runtime away: the next invocation is cold."""
        return self.kind in RESETTING_KINDS


def decide(outcome: Outcome, request_id: str, *, timeout_s: float) -> tuple[str, str, bytes]:
    """``(function_error, error_type, payload)`` of the Result for ``outcome``."""
    if outcome.kind == "response":
        return "", "", outcome.body
    if outcome.kind == "error":
        return "Unhandled", outcome.error_type, outcome.body
    if outcome.kind == "too_large":
        return "Unhandled", errors.RESPONSE_TOO_LARGE_TYPE, errors.response_too_large_payload()
    if outcome.kind == "timeout":
        return (
            "Unhandled",
            errors.TIMEOUT_ERROR_TYPE,
            errors.timeout_payload(request_id, timeout_s=timeout_s),
        )
    if outcome.kind == "exit":
        return (
            "Unhandled",
            errors.EXIT_ERROR_TYPE,
            errors.exit_payload(request_id, returncode=outcome.returncode),
        )
    return "Unhandled", errors.OOM_ERROR_TYPE, errors.oom_payload(request_id)


def init_error_payload(init: InitOutcome, request_id: str) -> bytes:
    """The payload returned to the invocation that triggered a failed init."""
    if init.returncode is not None:
        return errors.exit_payload(request_id, returncode=init.returncode)
    if init.error_type == errors.OOM_ERROR_TYPE:
        return errors.oom_payload(request_id)
    return init.error_body


def invalid_entrypoint_payload(exc: BaseException) -> bytes:
    """No runtime process could be started at all (e.g. no executable ``bootstrap``)."""
    message = (
        f"cannot start the runtime: {exc}; for runtime 'provided' the code must contain an "
        "executable file named 'bootstrap'"
    )
    return json.dumps(
        {"errorType": errors.INVALID_ENTRYPOINT_TYPE, "errorMessage": message}
    ).encode()


def error_line(payload: bytes, *, now: datetime) -> str:
    """The log line a reset writes before END: ``<ISO time>Z <errorMessage>``."""
    try:
        message = json.loads(payload).get("errorMessage", "")
    except (ValueError, AttributeError):
        message = ""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return f"{stamp} {message}\n" if message else ""


def trace_id() -> str:
    """A fresh X-Ray-shaped trace header for invocations that arrive without one."""
    rand = os.urandom(20).hex()
    return f"Root=1-{int(time.time()):08x}-{rand[:24]};Parent={rand[24:40]};Sampled=0"
