"""The operator's exception hierarchy. Every message says what was wrong and what to do;
the handlers copy it into the resource's Ready condition."""

from __future__ import annotations


class OperatorError(Exception):
    """Base class. ``reason`` is the CamelCase reason of the Ready condition."""

    reason = "ReconcileFailed"

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        if reason:
            self.reason = reason

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidCode(OperatorError):
    """The code or layer content cannot be turned into files (bad base64, bad zip, too big)."""

    reason = "InvalidCode"


class ChecksumMismatch(OperatorError):
    reason = "CodeChecksumMismatch"


class FetchFailed(OperatorError):
    reason = "CodeFetchFailed"


class UnknownLayer(OperatorError):
    reason = "UnknownLayer"


class MissingConfigMap(OperatorError):
    reason = "ConfigMapNotFound"


class MissingServiceAccount(OperatorError):
    reason = "ServiceAccountNotFound"


class UnknownFunction(OperatorError):
    reason = "FunctionNotFound"


class UnknownVersion(OperatorError):
    reason = "VersionNotFound"


class KubeError(OperatorError):
    """The API server refused a request (status and message included)."""

    reason = "ApiError"

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message, reason=reason)
        self.status = status
