"""The CLI's exceptions and exit codes.

Exit codes (documented in ``klambda --help``):

* 0 success
* 1 the function ran and failed (invoke: X-Amz-Function-Error)
* 2 usage error: bad arguments, unreadable files, invalid manifests
* 3 service error: the platform is unreachable or answered with an error
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXIT_OK = 0
EXIT_FUNCTION_ERROR = 1
EXIT_USAGE = 2
EXIT_SERVICE = 3


class CliError(Exception):
    """Base of the CLI's errors; ``exit_code`` is what the process exits with."""

    exit_code = EXIT_SERVICE


class UsageError(CliError):
    exit_code = EXIT_USAGE

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class UnreachableError(CliError):
    exit_code = EXIT_SERVICE

    def __init__(self, endpoint: str, reason: object) -> None:
        self.endpoint = endpoint
        super().__init__(
            f"cannot reach the klambda platform at {endpoint} ({reason}) — is `klambda up` "
            "running? (set --endpoint or KLAMBDA_ENDPOINT for another address)"
        )


@dataclass
class ServiceError(CliError):
    status: int
    code: str
    message: str
    errors: list[str] = field(default_factory=list)
    reason: str = ""
    retry_after: str = ""

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return EXIT_USAGE if self.errors and self.status == 400 else EXIT_SERVICE

    def render(self) -> str:
        if self.errors:
            lines = [(f"{len(self.errors)} problem{'s' if len(self.errors) != 1 else ''} "
                     "(nothing was changed):")]
            lines += [f"  - {e}" for e in self.errors]
            return "\n".join(lines)
        text = f"{self.code}: {self.message}"
        if self.reason:
            text += f" (reason: {self.reason})"
        if self.retry_after:
            text += f" — retry after {self.retry_after}s"
        return text
