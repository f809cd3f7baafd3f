"""A small HTTP client (stdlib urllib) for the admin API and the Invoke API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ServiceError, UnreachableError

DEFAULT_ENDPOINT = "http://127.0.0.1:9000"
TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Client:
    endpoint: str = DEFAULT_ENDPOINT
    timeout: float = TIMEOUT_S
    extra_headers: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        ok_error: bool = False,
    ) -> Response:
        """Sends one request. Error statuses raise ServiceError unless ``ok_error``."""
        url = self.endpoint.rstrip("/") + path
        req = urllib.request.Request(url, data=body, method=method)
        for k, v in {**self.extra_headers, **(headers or {})}.items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return Response(resp.status, dict(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as exc:
            response = Response(exc.code, dict(exc.headers.items()), exc.read())
            if ok_error:
                return response
            raise service_error(response) from None
        except TimeoutError:
            raise ServiceError(
                status=0, code="Timeout",
                message=f"no answer from {self.endpoint} within {self.timeout:g} s",
            ) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise ServiceError(
                    status=0, code="Timeout",
                    message=f"no answer from {self.endpoint} within {self.timeout:g} s",
                ) from None
            raise UnreachableError(self.endpoint, exc.reason) from None
        except ConnectionError as exc:
            raise UnreachableError(self.endpoint, exc) from None

    def stream(self, path: str) -> Iterator[bytes]:
        """GET ``path`` and yield the body as it arrives (for logs -f)."""
        url = self.endpoint.rstrip("/") + path
        try:
            resp = urllib.request.urlopen(url, timeout=None)
        except urllib.error.HTTPError as exc:
            raise service_error(Response(exc.code, dict(exc.headers.items()), exc.read())) \
                from None
        except (urllib.error.URLError, ConnectionError) as exc:
            raise UnreachableError(self.endpoint, getattr(exc, "reason", exc)) from None
        with resp:
            while True:
                chunk = resp.read1(65536)
                if not chunk:
                    return
                yield chunk


def service_error(response: Response) -> ServiceError:
    """An error response of the admin API or the Invoke API -> ServiceError."""
    code = (response.headers.get("X-Amzn-ErrorType") or response.headers.get("x-amzn-ErrorType")
            or "").split(":")[0]
    message = response.body.decode(errors="replace").strip()
    errors: list[str] = []
    reason = ""
    try:
        data = json.loads(response.body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):  # admin API
            code = code or str(err.get("type", ""))
            message = str(err.get("message", message))
            errors = [str(e) for e in err.get("errors") or []]
        else:  # Invoke API (Lambda error shapes)
            message = str(data.get("message") or data.get("Message") or message)
            reason = str(data.get("Reason") or "")
    return ServiceError(
        status=response.status, code=code or f"HTTP {response.status}", message=message,
        errors=errors, reason=reason, retry_after=response.headers.get("Retry-After", ""),
    )
