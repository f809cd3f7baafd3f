"""Lambda's ``context`` object, attribute for attribute as the Python runtime provides it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

_CONTEXT_ENV = (
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",  # a string, as in Lambda's own Python runtime
    "AWS_LAMBDA_FUNCTION_VERSION",
)


class EnvReader:
    """``tuple(os.environ.get(name) for name in names)``, read anew on every call but
    without ``os.environ``'s per-item Python machinery (five gets cost ~1.7 us, this ~0.4).

    CPython's ``os.environ`` keeps the encoded environment in a dict (``_data``) and
    decodes on every access; this reads that dict directly and decodes a value only when
    its bytes changed. Elsewhere (no such dict) it falls back to ``os.environ.get``.
    """

    __slots__ = ("_decode", "_environ", "_get", "_keys", "_names", "_raws", "_values")

    def __init__(self, names: tuple[str, ...]) -> None:
        self._names = names
        self._environ: object = None
        self._get: Callable[[bytes], bytes | None] | None = None
        self._decode: Callable[[bytes], str] = bytes.decode
        self._keys: tuple[bytes, ...] = ()
        self._raws: tuple[bytes | None, ...] | None = None
        self._values: tuple[str | None, ...] = ()

    def read(self) -> tuple[str | None, ...]:
        environ = os.environ
        if environ is not self._environ:
            self._bind(environ)
        get = self._get
        if get is None:
            return tuple(environ.get(name) for name in self._names)
        raws = tuple(map(get, self._keys))
        if raws != self._raws:
            decode = self._decode
            self._values = tuple(None if raw is None else decode(raw) for raw in raws)
            self._raws = raws
        return self._values

    def _bind(self, environ: object) -> None:
        self._environ = environ
        self._raws = None
        data = getattr(environ, "_data", None)
        encode = getattr(environ, "encodekey", None)
        decode = getattr(environ, "decodevalue", None)
        if isinstance(data, dict) and encode is not None and decode is not None:
            self._get = data.get
            self._keys = tuple(encode(name) for name in self._names)
            self._decode = decode
        else:
            self._get = None


_context_env = EnvReader(_CONTEXT_ENV)


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, data: dict[str, Any] | None) -> None:
        if data:
            self.cognito_identity_id = data.get("cognitoIdentityId")
            self.cognito_identity_pool_id = data.get("cognitoIdentityPoolId")
        else:
            self.cognito_identity_id = None
            self.cognito_identity_pool_id = None

    def __repr__(self) -> str:
        return (
            f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
            f"cognito_identity_pool_id={self.cognito_identity_pool_id}])"
        )


class Client:
    __slots__ = (
        "app_package_name",
        "app_title",
        "app_version_code",
        "app_version_name",
        "installation_id",
    )

    def __init__(self, data: dict[str, Any]) -> None:
        for name in self.__slots__:
            setattr(self, name, data.get(name))

    def __repr__(self) -> str:
        fields = ",".join(f"{n}={getattr(self, n)}" for n in self.__slots__)
        return f"Client([{fields}])"


class ClientContext:
    __slots__ = ("client", "custom", "env")

    def __init__(self, data: dict[str, Any]) -> None:
        self.custom = data.get("custom")
        self.env = data.get("env")
        client = data.get("client")
        self.client = Client(client) if isinstance(client, dict) else None

    def __repr__(self) -> str:
        return f"ClientContext([custom={self.custom},env={self.env},client={self.client}])"


class LambdaContext:
    """What the handler receives as its second argument."""

    def __init__(
        self,
        *,
        request_id: str,
        deadline_ms: int,
        invoked_function_arn: str,
        client_context: dict[str, Any] | None,
        cognito_identity: dict[str, Any] | None,
        tenant_id: str | None = None,
    ) -> None:
        self.aws_request_id = request_id
        (
            self.log_group_name,
            self.log_stream_name,
            self.function_name,
            self.memory_limit_in_mb,
            self.function_version,
        ) = _context_env.read()
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id
        self.client_context = (
            ClientContext(client_context) if isinstance(client_context, dict) else None
        )
        self.identity = CognitoIdentity(cognito_identity)
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        remaining = self._deadline_ms - int(time.time() * 1000)
        return max(0, remaining)

    def log(self, msg: object) -> None:
        import sys

        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},"
            f"client_context={self.client_context},identity={self.identity}])"
        )
