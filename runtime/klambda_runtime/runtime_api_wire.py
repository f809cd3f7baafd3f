"""The Runtime API's wire format (pure): the paths, every fixed answer with the status
codes and error bodies of lambda-wire.md §3, and the head of a ``/next`` answer."""

from __future__ import annotations

import json

from klambda_runtime.errors import MAX_RESPONSE_BYTES

PREFIX = b"/2018-06-01/runtime/"
MAX_HEAD = 64 * 1024


def _response(status: str, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 "
        + status.encode()
        + b"\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def _error(status: str, error_type: str, message: str) -> bytes:
    body = json.dumps({"errorMessage": message, "errorType": error_type}).encode()
    return _response(status, body)


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
ACCEPTED = _response("202 Accepted", b'{"status":"OK"}')
TOO_LARGE = _response(
    "413 Request Entity Too Large",
    json.dumps(
        {
            "errorMessage": f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
            "errorType": "RequestEntityTooLarge",
        }
    ).encode(),
)
INVALID_ID = _error("400 Bad Request", "InvalidRequestID", "Invalid request ID")
ALREADY_ANSWERED = _error(
    "403 Forbidden", "InvalidStateTransition", "Invalid state transition: request already answered"
)
NEXT_WHILE_BUSY = _error(
    "403 Forbidden",
    "InvalidStateTransition",
    "Invalid state transition: the current invocation has not been answered",
)
INIT_ERROR_LATE = _error(
    "403 Forbidden", "InvalidStateTransition", "Invalid state transition: init already finished"
)
NOT_FOUND = _error("404 Not Found", "NotFound", "Unknown Runtime API path")
BAD_METHOD = _error("405 Method Not Allowed", "MethodNotAllowed", "Method not allowed")
BAD_REQUEST = _error("400 Bad Request", "InvalidRequest", "Malformed HTTP request")


def _clean_header(value: str) -> bytes:
    """Header values must be one line; compact JSON if the caller sent it pretty-printed."""
    if "\r" in value or "\n" in value:
        try:
            value = json.dumps(json.loads(value), separators=(",", ":"))
        except ValueError:
            value = value.replace("\r", " ").replace("\n", " ")
    return value.encode("utf-8")


def event_head(
    *,
    request_id: str,
    deadline_ms: int,
    invoked_function_arn: str,
    trace_id: str,
    client_context: str,
    cognito_identity: str,
    body_length: int,
) -> bytes:
    """The status line and headers of a ``/next`` answer (pure)."""
    parts = [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: ",
        request_id.encode(),
        b"\r\nLambda-Runtime-Deadline-Ms: ",
        str(deadline_ms).encode(),
        b"\r\nLambda-Runtime-Invoked-Function-Arn: ",
        _clean_header(invoked_function_arn),
        b"\r\n",
    ]
    if trace_id:
        parts += [b"Lambda-Runtime-Trace-Id: ", _clean_header(trace_id), b"\r\n"]
    if client_context:
        parts += [b"Lambda-Runtime-Client-Context: ", _clean_header(client_context), b"\r\n"]
    if cognito_identity:
        parts += [b"Lambda-Runtime-Cognito-Identity: ", _clean_header(cognito_identity), b"\r\n"]
    parts += [b"Content-Length: ", str(body_length).encode(), b"\r\n\r\n"]
    return b"".join(parts)
