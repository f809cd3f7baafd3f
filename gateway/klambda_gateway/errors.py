"""The gateway's exception hierarchy and the pure builders of Lambda error responses.

Each error knows its HTTP status and botocore error code, so
``client.exceptions.<Code>`` is raised by boto3 (reference §1 "Error responses").
"""

from __future__ import annotations

import json
from dataclasses import dataclass


class GatewayError(Exception):
    """Base of everything the gateway raises on purpose."""


@dataclass(frozen=True)
class ErrorResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class InvokeError(GatewayError):
    """A service-level error of the Invoke API (not a function error)."""

    status = 500
    code = "ServiceException"
    message_key = "message"  # botocore's modelled member casing differs per shape
    error_kind = "User"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def extra(self) -> dict[str, str]:
        return {}

    def response(self, request_id: str) -> ErrorResponse:
        return build_error_response(
            status=self.status,
            code=self.code,
            body={"Type": self.error_kind, self.message_key: self.message, **self.extra()},
            request_id=request_id,
            retry_after=self.retry_after,
        )


class ResourceNotFound(InvokeError):
    status = 404
    code = "ResourceNotFoundException"
    message_key = "Message"


class RequestTooLarge(InvokeError):
    # Real AWS sends the unmodelled RequestEntityTooLargeException; we send the
    # modelled code so botocore raises client.exceptions.RequestTooLargeException.
    status = 413
    code = "RequestTooLargeException"


class InvalidRequestContent(InvokeError):
    status = 400
    code = "InvalidRequestContentException"


class InvalidParameterValue(InvokeError):
    status = 400
    code = "InvalidParameterValueException"


class ServiceError(InvokeError):
    status = 500
    code = "ServiceException"
    message_key = "Message"
    error_kind = "Service"


class TooManyRequests(InvokeError):
    status = 429
    code = "TooManyRequestsException"

    def __init__(self, message: str, *, reason: str, retry_after: float | None = 1.0) -> None:
        super().__init__(message, retry_after=retry_after)
        self.reason = reason

    def extra(self) -> dict[str, str]:
        return {"Reason": self.reason}


# Reasons of TooManyRequestsException (botocore's ThrottleReason enum)
RESERVED_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_LIMIT = "ConcurrentInvocationLimitExceeded"
# no environment became available within the queue wait (burst limit, slow starts)
RATE_LIMIT = "FunctionInvocationRateLimitExceeded"


def build_error_response(
    *,
    status: int,
    code: str,
    body: dict[str, str],
    request_id: str,
    retry_after: float | None = None,
) -> ErrorResponse:
    """Pure: the status, headers and JSON body of one service error."""
    headers = {
        "Content-Type": "application/json",
        "X-Amzn-ErrorType": code,
        "x-amzn-RequestId": request_id,
    }
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
    return ErrorResponse(status, headers, json.dumps(body).encode())


def function_error_payload(*, error_type: str, message: str) -> bytes:
    """Pure: a platform error in the shape of reference §6 (returned with 200 + Unhandled)."""
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()
