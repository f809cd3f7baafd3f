"""The one module of the operator that talks to the Kubernetes API (besides Kopf itself).

A small generic client over kubernetes_asyncio's ApiClient: get / list / create /
server-side apply / delete / status merge-patch of any object given as a dict.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from klambda_operator.errors import KubeError
from klambda_operator.resources.meta import MANAGER

Obj = dict[str, Any]

PLURALS = {
    "ConfigMap": "configmaps",
    "Deployment": "deployments",
    "Pod": "pods",
    "ServiceAccount": "serviceaccounts",
    "Function": "functions",
    "FunctionVersion": "functionversions",
    "Layer": "layers",
    "Alias": "aliases",
    "EventSourceMapping": "eventsourcemappings",
    "CustomResourceDefinition": "customresourcedefinitions",
}
CLUSTER_SCOPED = {"CustomResourceDefinition"}


class KubeApi(Protocol):
    """What the reconcilers need (a real client here; an in-memory fake in unit tests)."""

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None: ...

    async def list(
        self, api_version: str, kind: str, namespace: str, labels: Mapping[str, str]
    ) -> list[Obj]: ...

    async def create(self, obj: Mapping[str, Any]) -> Obj: ...

    async def apply(self, obj: Mapping[str, Any]) -> Obj: ...

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None: ...

    async def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None: ...


def resource_path(api_version: str, kind: str, namespace: str, name: str = "") -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    plural = PLURALS[kind]
    path = (
        f"{base}/{plural}"
        if kind in CLUSTER_SCOPED
        else (f"{base}/namespaces/{namespace}/{plural}")
    )
    return f"{path}/{name}" if name else path


class Kube:
    """kubernetes_asyncio-backed implementation of :class:`KubeApi`."""

    def __init__(self, api: client.ApiClient, *, field_manager: str = MANAGER) -> None:
        self._api = api
        self._manager = field_manager

    @classmethod
    async def connect(cls) -> Kube:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            await config.load_kube_config()
        return cls(client.ApiClient())

    async def close(self) -> None:
        await self._api.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        try:
            result = await self._api.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body,
                response_types_map={200: "object", 201: "object", 202: "object"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=True,
            )
        except ApiException as exc:
            message = exc.reason or ""
            try:
                message = json.loads(exc.body or "{}").get("message", message)
            except (ValueError, AttributeError):
                pass
            raise KubeError(
                f"{method} {path}: {exc.status} {message}", status=int(exc.status or 0)
            ) from exc
        return result if isinstance(result, dict) else {}

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            return await self._call("GET", resource_path(api_version, kind, namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(
        self, api_version: str, kind: str, namespace: str, labels: Mapping[str, str]
    ) -> list[Obj]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        query = [("labelSelector", selector)] if selector else []
        result = await self._call("GET", resource_path(api_version, kind, namespace), query=query)
        items = result.get("items") or []
        for item in items:  # list items come without apiVersion/kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return sorted(items, key=lambda o: str(o["metadata"]["name"]))

    async def create(self, obj: Mapping[str, Any]) -> Obj:
        meta = obj["metadata"]
        path = resource_path(str(obj["apiVersion"]), str(obj["kind"]), meta.get("namespace", ""))
        return await self._call(
            "POST", path, body=dict(obj), query=[("fieldManager", self._manager)]
        )

    async def apply(self, obj: Mapping[str, Any]) -> Obj:
        """Server-side apply (force: the operator owns what it builds)."""
        meta = obj["metadata"]
        path = resource_path(
            str(obj["apiVersion"]), str(obj["kind"]), meta.get("namespace", ""), meta["name"]
        )
        return await self._call(
            "PATCH",
            path,
            body=dict(obj),
            query=[("fieldManager", self._manager), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        try:
            await self._call(
                "DELETE",
                resource_path(api_version, kind, namespace, name),
                body={"propagationPolicy": "Background"},
            )
        except KubeError as exc:
            if exc.status != 404:
                raise

    async def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        path = resource_path(api_version, kind, namespace, name) + "/status"
        await self._call(
            "PATCH",
            path,
            body={"status": dict(status)},
            content_type="application/merge-patch+json",
        )
