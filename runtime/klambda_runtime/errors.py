"""Errors of the runtime component and the Lambda-shaped error payloads the agent emits.

Two different things live here:

* :class:`RuntimeComponentError` and subclasses: *our* failures (bad settings, a launcher
  that cannot start an environment). Their messages say what was wrong and what to do.
* Pure builders of the platform error payloads Lambda returns to a caller when the
  *function* fails in a way the runtime itself cannot report (timeout, crash, OOM,
  oversized response). Shapes follow lambda-wire.md §6 exactly.
"""

from __future__ import annotations

import json
import os
import signal

MAX_RESPONSE_BYTES = 6_291_556  # sync response limit (Runtime API answers 413 above it)

TIMEOUT_ERROR_TYPE = "Sandbox.Timedout"
EXIT_ERROR_TYPE = "Runtime.ExitError"
OOM_ERROR_TYPE = "Runtime.OutOfMemory"
RESPONSE_TOO_LARGE_TYPE = "Function.ResponseSizeTooLarge"
UNKNOWN_ERROR_TYPE = "Runtime.Unknown"
INVALID_ENTRYPOINT_TYPE = "Runtime.InvalidEntrypoint"


class RuntimeComponentError(Exception):
    """Base class of every error raised by klambda_runtime itself."""


class SettingsError(RuntimeComponentError):
    """The environment description (KLAMBDA_ENV_* / EnvironmentSpec) is unusable."""


class LaunchError(RuntimeComponentError):
    """A launcher could not start an environment."""


class ForkServerError(RuntimeComponentError):
    """A template (zygote or per-environment runtime template) stopped answering."""


# Go's names for signals, because Lambda's messages come from Go's os/exec ExitError.
_GO_SIGNAL_NAMES = {
    signal.SIGKILL: "killed",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGTERM: "terminated",
    signal.SIGBUS: "bus error",
    signal.SIGILL: "illegal instruction",
    signal.SIGFPE: "floating point exception",
    signal.SIGINT: "interrupt",
    signal.SIGHUP: "hangup",
    signal.SIGPIPE: "broken pipe",
    signal.SIGQUIT: "quit",
    signal.SIGUSR1: "user defined signal 1",
    signal.SIGUSR2: "user defined signal 2",
    signal.SIGALRM: "alarm clock",
}


def describe_exit(returncode: int) -> str:
    """``exit status N`` or ``signal: killed`` from a Popen-style return code (<0 = signal)."""
    if returncode >= 0:
        return f"exit status {returncode}"
    signum = -returncode
    try:
        name = _GO_SIGNAL_NAMES.get(signal.Signals(signum), f"signal {signum}")
    except ValueError:
        name = f"signal {signum}"
    return f"signal: {name}"


def returncode_from_waitstatus(status: int) -> int:
    """Popen-style return code (negative signal number when killed) from a wait status."""
    try:
        return os.waitstatus_to_exitcode(status)
    except ValueError:  # stopped/continued is not an exit; report it as a failure
        return 255


def _payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def timeout_payload(request_id: str, *, timeout_s: float) -> bytes:
    return _payload(
        TIMEOUT_ERROR_TYPE,
        f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds",
    )


def exit_payload(request_id: str, *, returncode: int) -> bytes:
    return _payload(
        EXIT_ERROR_TYPE,
        f"RequestId: {request_id} Error: Runtime exited with error: {describe_exit(returncode)}",
    )


def oom_payload(request_id: str) -> bytes:
    return _payload(
        OOM_ERROR_TYPE, f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
    )


def response_too_large_payload() -> bytes:
    return _payload(
        RESPONSE_TOO_LARGE_TYPE,
        f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
    )


def error_type_of(payload: bytes, header_type: str = "") -> str:
    """The error type of an error posted by a runtime: the header if sent, else the body's.

    awslambdaric sends no ``Lambda-Runtime-Function-Error-Type`` header for handler
    exceptions, so the body's ``errorType`` is the authority then.
    """
    if header_type:
        return header_type
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return UNKNOWN_ERROR_TYPE
    if isinstance(body, dict) and isinstance(body.get("errorType"), str) and body["errorType"]:
        return str(body["errorType"])
    return UNKNOWN_ERROR_TYPE
