"""A tiny synchronous Kubernetes API client (urllib + ssl) for the test harness and node agent.

Test infrastructure, not product code. It understands the kubeconfigs the harness writes
(client certificate files or a bearer token, CA file or inline CA data).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

JSON = dict[str, Any]


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, *, status: int, method: str, path: str, body: str) -> None:
        self.status = status
        self.body = body
        try:
            self.reason = str(json.loads(body).get("reason", ""))
        except (ValueError, AttributeError):
            self.reason = ""
        super().__init__(f"{method} {path} -> HTTP {status}: {body[:500]}")


@dataclass(frozen=True)
class Credentials:
    server: str
    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None


def _materialise(data_b64: str, suffix: str) -> str:
    """Write inline kubeconfig data to a content-addressed file (ssl wants file paths)."""
    data = base64.b64decode(data_b64)
    path = os.path.join(
        tempfile.gettempdir(), f"kubeapi-{hashlib.sha256(data).hexdigest()[:20]}{suffix}"
    )
    if not os.path.exists(path):
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return path


def load_kubeconfig(path: str) -> Credentials:
    """Read the current context of a kubeconfig (only the fields the harness writes)."""
    with open(path) as f:
        cfg = yaml.safe_load(f)
    ctx_name = cfg.get("current-context")
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
    ca = cluster.get("certificate-authority") or _materialise(
        cluster["certificate-authority-data"], ".crt"
    )
    cert = user.get("client-certificate")
    if cert is None and "client-certificate-data" in user:
        cert = _materialise(user["client-certificate-data"], ".crt")
    key = user.get("client-key")
    if key is None and "client-key-data" in user:
        key = _materialise(user["client-key-data"], ".key")
    return Credentials(
        server=cluster["server"], ca_file=ca, cert_file=cert, key_file=key, token=user.get("token")
    )


class KubeClient:
    """Synchronous JSON client. Paths are API paths such as /api/v1/namespaces/x/pods."""

    def __init__(self, creds: Credentials, *, timeout: float = 30.0) -> None:
        self.creds = creds
        self.timeout = timeout
        ctx = ssl.create_default_context(cafile=creds.ca_file)
        if creds.cert_file and creds.key_file:
            ctx.load_cert_chain(creds.cert_file, creds.key_file)
        self._ssl = ctx

    @classmethod
    def from_kubeconfig(cls, path: str, *, timeout: float = 30.0) -> KubeClient:
        return cls(load_kubeconfig(path), timeout=timeout)

    def _open(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Any:
        url = self.creds.server.rstrip("/") + path
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        if self.creds.token:
            req.add_header("Authorization", f"Bearer {self.creds.token}")
        try:
            return urllib.request.urlopen(req, context=self._ssl, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as e:
            raise ApiError(
                status=e.code, method=method, path=path, body=e.read().decode(errors="replace")
            ) from None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        with self._open(method, path, body=body, params=params, content_type=content_type) as r:
            raw = r.read()
        return json.loads(raw) if raw else {}

    def get(self, path: str, **params: Any) -> JSON:
        return self.request("GET", path, params=params or None)

    def get_or_none(self, path: str) -> JSON | None:
        try:
            return self.get(path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def create(self, path: str, body: JSON) -> JSON:
        return self.request("POST", path, body=body)

    def replace(self, path: str, body: JSON) -> JSON:
        return self.request("PUT", path, body=body)

    def merge_patch(self, path: str, body: JSON) -> JSON:
        return self.request("PATCH", path, body=body, content_type="application/merge-patch+json")

    def json_patch(self, path: str, ops: list[JSON]) -> JSON:
        return self.request("PATCH", path, body=ops, content_type="application/json-patch+json")

    def delete(self, path: str, body: JSON | None = None, *, missing_ok: bool = True) -> JSON:
        try:
            return self.request("DELETE", path, body=body)
        except ApiError as e:
            if missing_ok and e.status == 404:
                return {}
            raise

    def watch(
        self, path: str, *, resource_version: str, timeout_seconds: int = 30, **params: Any
    ) -> Iterator[JSON]:
        """Yield watch events until the server ends the stream (after timeout_seconds)."""
        q = dict(
            params,
            watch="true",
            resourceVersion=resource_version,
            timeoutSeconds=timeout_seconds,
            allowWatchBookmarks="true",
        )
        with self._open("GET", path, params=q, timeout=timeout_seconds + 15) as r:
            for line in r:
                if line.strip():
                    yield json.loads(line)


def kubeconfig_yaml(
    *,
    server: str,
    ca_pem: bytes,
    user: str,
    token: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
) -> str:
    """A single-context kubeconfig (CA inline, credentials as token or client-cert files)."""
    user_entry: JSON = {}
    if token is not None:
        user_entry["token"] = token
    if cert_file is not None:
        user_entry["client-certificate"] = cert_file
        user_entry["client-key"] = key_file
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "klambda-test",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": user, "context": {"cluster": "klambda-test", "user": user}}],
        "current-context": user,
    }
    return str(yaml.safe_dump(cfg, sort_keys=False))
