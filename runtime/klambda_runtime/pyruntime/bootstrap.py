"""The built-in runtime's main loop: init once, then next -> handler -> response, forever."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from klambda_runtime.pyruntime import faults, logs
from klambda_runtime.pyruntime.client import Response, RuntimeApiUnavailable, RuntimeClient
from klambda_runtime.pyruntime.context import LambdaContext

UNHANDLED_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function "
    "code. However, in rare cases, a Lambda runtime update can cause unexpected function "
    "behavior. For functions using managed runtimes, runtime updates can be triggered by a "
    "function change, or can be applied automatically. To determine if the runtime has been "
    "updated, check the runtime version in the INIT_START log entry. If this error correlates "
    "with a change in the runtime version, you may be able to mitigate this error by "
    "temporarily rolling back to the previous runtime version. For more information, see "
    "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html\r"
)
# Python 3.12+ Lambda runtimes encode JSON responses with ensure_ascii=False.
_NON_ASCII_ENVS = {f"AWS_Lambda_python3.{minor}" for minor in range(12, 20)}


def _load_c_putenv() -> tuple[Callable[[Any], int], Callable[[int], Any]] | None:
    """libc's ``putenv(3)`` and a buffer maker, through ctypes (standard library; loaded
    at module import, so that templates forking runtimes load it once for all), or None
    (then ``os.putenv`` it is). ``putenv`` gets a ``create_string_buffer`` array, which
    ctypes passes as its address (no argtypes: their conversion costs ~100 ns); it is
    called holding the GIL (PyDLL), as ``os.putenv`` is."""
    try:
        import ctypes

        return ctypes.PyDLL(None).putenv, ctypes.create_string_buffer
    except (ImportError, OSError, AttributeError):
        return None


_c_functions = _load_c_putenv()


def _no_putenv(_: Any) -> int:
    raise AssertionError("ctypes' putenv is not in use")


class _TraceEnv:
    """Sets ``_X_AMZN_TRACE_ID`` for each invocation as ``os.environ[...] = value`` (or
    ``os.environ.pop``) does, C environment and ``os.environ`` alike, but cheaper and
    without growing the process.

    ``os.environ`` is CPython's mapping over an encoded dict (``_data``) plus
    ``os.putenv``; this writes that dict directly. ``os.putenv`` calls ``setenv(3)``,
    which copies every value and, in glibc, never frees a copy (it keeps them all in a
    search tree, so that what ``getenv`` returned stays valid): a new trace id per
    invocation cost a tree search and ~140 bytes that never came back (7 MB per 50,000
    invocations). Instead the C environment points (``putenv(3)``) at a buffer of ours,
    rewritten in place (C code holding what ``getenv`` returned earlier sees the new
    value, as after ``putenv``); every buffer ever handed to ``putenv`` is kept alive.
    Where ctypes or ``_data`` are missing, ``os.putenv`` / ``os.environ`` are used."""

    __slots__ = (
        "_buffer",
        "_buffers",
        "_capacity",
        "_data",
        "_encode",
        "_environ",
        "_key",
        "_make_buffer",
        "_prefix",
        "_putenv",
    )

    NAME = "_X_AMZN_TRACE_ID"

    def __init__(self) -> None:
        self._environ: object = None
        self._data: dict[bytes, bytes] | None = None
        self._encode: Callable[[str], bytes] = str.encode
        self._key = b""
        self._prefix = b""
        self._buffers: list[Any] = []
        self._buffer: Any = None
        self._capacity = 0  # of self._buffer; 0: no ctypes, os.putenv
        self._putenv: Callable[[Any], int] = _no_putenv
        self._make_buffer: Callable[[int], Any] = _no_putenv

    def set(self, value: str | None) -> None:
        environ = os.environ
        if environ is not self._environ:
            self._bind(environ)
        data = self._data
        if data is None:
            if value:
                environ[self.NAME] = value
            else:
                environ.pop(self.NAME, None)
        elif value:
            raw = self._encode(value)
            # a NUL inside: os.putenv raises "embedded null byte", as os.environ does
            if self._capacity and b"\0" not in raw:
                entry = self._prefix + raw
                if len(entry) >= self._capacity:  # room for the terminating NUL
                    self._grow(len(entry))
                buffer = self._buffer
                buffer.value = entry
                if self._putenv(buffer) != 0:
                    os.putenv(self._key, raw)
            else:
                os.putenv(self._key, raw)
            data[self._key] = raw
        elif self._key in data:
            del environ[self.NAME]

    def _grow(self, size: int) -> None:
        self._capacity = max(512, 2 * size)
        self._buffer = self._make_buffer(self._capacity)
        self._buffers.append(self._buffer)

    def _bind(self, environ: object) -> None:
        self._environ = environ
        data = getattr(environ, "_data", None)
        encode_key = getattr(environ, "encodekey", None)
        encode = getattr(environ, "encodevalue", None)
        if isinstance(data, dict) and encode_key is not None and encode is not None:
            self._data = data
            self._key = encode_key(self.NAME)
            self._prefix = self._key + b"="
            self._encode = encode
            if _c_functions is not None and not self._capacity:
                self._putenv, self._make_buffer = _c_functions
                self._grow(0)
        else:
            self._data = None


_trace_env = _TraceEnv()
_new_object = object.__new__
_init_context = LambdaContext.__init__


def _dumps(obj: Any) -> bytes:
    import json

    return json.dumps(obj).encode("utf-8")


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _prepare_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)


def _check(resp: Response, what: str) -> None:
    # A rejected post (e.g. 413 for an oversized response) is already reported to the
    # caller by the agent; the runtime keeps serving, like Lambda's own runtimes do not
    # need to. Anything else unexpected is logged to the function's log.
    if resp.status >= 300 and resp.status != 413:
        sys.stderr.write(f"klambda runtime: {what} answered {resp.status}: {resp.body!r}\n")


def _init(client: RuntimeClient, handler_name: str) -> faults.Handler | None:
    try:
        logs.setup_logging()
        return faults.load_handler(handler_name)
    except faults.Fault as fault:
        error = faults.fault_error(fault)
    except Exception as exc:  # noqa: BLE001 - user code failed at import time
        error = faults.exception_error(exc)
    logging.warning(UNHANDLED_WARNING)  # noqa: LOG015 - Lambda logs it on the root logger
    logs.log_error(error)
    _flush()
    client.post_init_error(_dumps(error), error["errorType"])
    return None


def _invoke(
    client: RuntimeClient, handler: faults.Handler, event: Response, *, ensure_ascii: bool
) -> None:
    get = event.headers.get
    request_id = get("lambda-runtime-aws-request-id", "")
    logs.RequestIdState.request_id = request_id
    _trace_env.set(get("lambda-runtime-trace-id"))
    error: dict[str, Any] | None = None
    try:
        raw_cc = get("lambda-runtime-client-context")
        raw_id = get("lambda-runtime-cognito-identity")
        # = LambdaContext(...), minus ~0.3 us: calling a class with keywords builds a
        # dict for them (type_call), calling __init__ on a bare instance does not
        context = _new_object(LambdaContext)
        _init_context(
            context,
            request_id=request_id,
            deadline_ms=int(get("lambda-runtime-deadline-ms", "0")),
            invoked_function_arn=get("lambda-runtime-invoked-function-arn", ""),
            client_context=faults.parse_json_header(raw_cc, "Client Context") if raw_cc else None,
            cognito_identity=faults.parse_json_header(raw_id, "Cognito Identity")
            if raw_id
            else None,
            tenant_id=get("lambda-runtime-aws-tenant-id"),
        )
        payload = faults.unmarshal_event(event.body, get("content-type", ""))
        result = handler(payload, context)
        body, content_type = faults.marshal_result(result, ensure_ascii=ensure_ascii)
    except faults.Fault as fault:
        error = faults.fault_error(fault, request_id)
    except Exception as exc:  # noqa: BLE001 - the handler's exception is the function's error
        error = faults.exception_error(exc, request_id)
    if error is not None:
        logs.log_error(error)
        _flush()
        _check(client.post_error(request_id, _dumps(error), error["errorType"]), "error")
    else:
        _flush()
        _check(client.post_response(request_id, body, content_type), "response")


def run(address: str, handler_name: str, *, unix: str = "") -> int:
    """Serve invocations until the agent goes away; the exit status of the runtime."""
    _prepare_streams()
    client = RuntimeClient(address, unix=unix)
    try:
        handler = _init(client, handler_name)
        if handler is None:
            return 1
        ensure_ascii = os.environ.get("AWS_EXECUTION_ENV", "") not in _NON_ASCII_ENVS
        while True:
            event = client.next_invocation()
            if event.status != 200:
                sys.stderr.write(
                    f"klambda runtime: /next answered {event.status}: {event.body!r}\n"
                )
                return 1
            _invoke(client, handler, event, ensure_ascii=ensure_ascii)
    except RuntimeApiUnavailable:
        return 0
    finally:
        _flush()


def main() -> int:
    env = os.environ
    task_root = env.get("LAMBDA_TASK_ROOT", os.getcwd())
    if task_root not in sys.path:
        sys.path.insert(0, task_root)
    return run(env["AWS_LAMBDA_RUNTIME_API"], env.get("_HANDLER", ""))
