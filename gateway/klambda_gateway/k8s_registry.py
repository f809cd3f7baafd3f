"""Desired state from the Kubernetes API: a watch of the klambda CRDs as a ``Registry``.

One of the two gateway modules that talk to the Kubernetes API (the other is
:mod:`klambda_gateway.k8s_scaler`). Functions, FunctionVersions (published versions, made by
the operator) and Aliases are listed, then watched; every change rebuilds an immutable
snapshot and bumps ``generation``. A Function becomes visible once the operator has
reconciled it (``status.latestRevision``), so the revision the gateway expects is exactly the
one in the pods' environment. The conversions are pure functions (``*_from_object``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from klambda_gateway.registry import (
    LATEST,
    AliasConfig,
    Destination,
    EventInvokeConfig,
    FunctionConfig,
    FunctionVersion,
)

log = logging.getLogger(__name__)

GROUP = "klambda.io"
VERSION = "v1alpha1"
CODE_DIR = "/var/task"
OPT_DIR = "/opt"
PLURALS = ("functions", "functionversions", "aliases")

Obj = Mapping[str, Any]


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)


def _destination(raw: Mapping[str, Any] | None) -> Destination | None:
    if not raw:
        return None
    return Destination(function=str(raw.get("function") or ""), arn=str(raw.get("arn") or ""))


def event_invoke_config_from_spec(raw: Mapping[str, Any] | None) -> EventInvokeConfig:
    raw = raw or {}
    dest = raw.get("destinationConfig") or {}
    return EventInvokeConfig(
        maximum_retry_attempts=int(raw.get("maximumRetryAttempts", 2)),
        maximum_event_age_seconds=int(raw.get("maximumEventAgeInSeconds", 21600)),
        on_success=_destination(dest.get("onSuccess")),
        on_failure=_destination(dest.get("onFailure")),
    )


def latest_from_object(obj: Obj) -> FunctionVersion | None:
    """$LATEST of a Function object, or None until the operator has reconciled it."""
    status = obj.get("status") or {}
    revision = str(status.get("latestRevision") or "")
    if not revision:
        return None
    spec = obj.get("spec") or {}
    meta = obj["metadata"]
    return FunctionVersion(
        namespace=str(meta["namespace"]),
        function_name=str(meta["name"]),
        version=LATEST,
        revision=revision,
        runtime=str(spec.get("runtime", "python3.12")),
        handler=str(spec.get("handler") or ""),
        memory_size=int(spec.get("memorySize", 128)),
        timeout=int(spec.get("timeout", 3)),
        environment=dict((spec.get("environment") or {}).get("variables") or {}),
        code_dir=CODE_DIR,
        opt_dir=OPT_DIR if spec.get("layers") else "",
        image=str((spec.get("code") or {}).get("image") or ""),
        role=str(spec.get("role") or ""),
    )


def version_from_object(obj: Obj) -> FunctionVersion:
    """A published version from a FunctionVersion object (its immutable snapshot)."""
    spec = obj["spec"]
    snap = spec["snapshot"]
    return FunctionVersion(
        namespace=str(obj["metadata"]["namespace"]),
        function_name=str(spec["functionName"]),
        version=str(spec["version"]),
        revision=str(spec["revision"]),
        runtime=str(snap.get("runtime", "python3.12")),
        handler=str(snap.get("handler") or ""),
        memory_size=int(snap.get("memorySize", 128)),
        timeout=int(snap.get("timeout", 3)),
        environment={str(k): str(v) for k, v in (snap.get("environment") or {}).items()},
        code_dir=CODE_DIR,
        opt_dir=OPT_DIR if snap.get("layers") else "",
        image=str((snap.get("code") or {}).get("image") or ""),
        role=str(snap.get("role") or ""),
    )


def alias_from_object(obj: Obj) -> AliasConfig:
    spec = obj["spec"]
    weights = (spec.get("routingConfig") or {}).get("additionalVersionWeights") or {}
    return AliasConfig(
        namespace=str(obj["metadata"]["namespace"]),
        function_name=str(spec["functionName"]),
        name=str(spec.get("name") or obj["metadata"]["name"]),
        function_version=str(spec["functionVersion"]),
        additional_version_weights={str(k): float(v) for k, v in weights.items()},
        provisioned_concurrency=int(spec.get("provisionedConcurrency") or 0),
    )


@dataclass(frozen=True)
class Snapshot:
    functions: Mapping[tuple[str, str], FunctionConfig] = field(default_factory=dict)
    versions: Mapping[tuple[str, str, str], FunctionVersion] = field(default_factory=dict)
    aliases: Mapping[tuple[str, str, str], AliasConfig] = field(default_factory=dict)


def build_snapshot(objects: Mapping[str, Mapping[tuple[str, str], Obj]]) -> Snapshot:
    """Pure: the registry's view of the listed/watched objects (by plural, (ns, name))."""
    versions: dict[tuple[str, str, str], FunctionVersion] = {}
    published: dict[tuple[str, str], list[str]] = {}
    uids = {
        key: str(obj["metadata"].get("uid") or "")
        for key, obj in objects.get("functions", {}).items()
    }
    for obj in objects.get("functionversions", {}).values():
        owners = {str(r.get("uid")) for r in obj["metadata"].get("ownerReferences") or []}
        fn_uid = uids.get((obj["metadata"]["namespace"], str(obj["spec"].get("functionName"))))
        if owners and fn_uid and fn_uid not in owners:
            continue  # left over from a deleted Function of the same name (GC pending)
        try:
            fv = version_from_object(obj)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring malformed FunctionVersion %s: %s", obj["metadata"]["name"], exc)
            continue
        versions[(fv.namespace, fv.function_name, fv.version)] = fv
        published.setdefault((fv.namespace, fv.function_name), []).append(fv.version)
    functions: dict[tuple[str, str], FunctionConfig] = {}
    for obj in objects.get("functions", {}).values():
        latest = latest_from_object(obj)
        if latest is None:
            continue
        spec = obj.get("spec") or {}
        key = (latest.namespace, latest.function_name)
        reserved = spec.get("reservedConcurrency")
        functions[key] = FunctionConfig(
            namespace=latest.namespace,
            name=latest.function_name,
            latest=latest,
            reserved_concurrency=None if reserved is None else int(reserved),
            event_invoke_config=event_invoke_config_from_spec(spec.get("eventInvokeConfig")),
            published_versions=tuple(sorted(published.get(key, []), key=_version_key)),
        )
        versions[(latest.namespace, latest.function_name, LATEST)] = latest
    # Versions of functions that are gone (or not reconciled yet) are not served.
    versions = {k: v for k, v in versions.items() if (k[0], k[1]) in functions}
    aliases = {}
    for obj in objects.get("aliases", {}).values():
        alias = alias_from_object(obj)
        if (alias.namespace, alias.function_name) in functions:
            aliases[(alias.namespace, alias.function_name, alias.name)] = alias
    return Snapshot(functions=functions, versions=versions, aliases=aliases)


class K8sRegistry:
    """``Registry`` backed by list + watch of the klambda CRDs."""

    def __init__(self, api: client.ApiClient, *, namespaces: tuple[str, ...] = ()) -> None:
        self._custom = client.CustomObjectsApi(api)
        self._namespaces = namespaces
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {p: {} for p in PLURALS}
        self._snapshot = Snapshot()
        self._generation = 0
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Lists everything once (so the first requests see the state), then watches: one
        list + watch per kind and namespace ("" = cluster-wide)."""
        scopes = [(plural, ns) for plural in PLURALS for ns in self._namespaces or ("",)]
        versions: dict[tuple[str, str], str] = {}
        for plural, ns in scopes:
            try:
                versions[(plural, ns)] = await self._list(plural, ns)
            except ApiException as exc:  # e.g. CRDs just created or missing: keep trying
                log.warning(
                    "cannot list %s.%s yet (%s %s); is the klambda chart's CRD installed? "
                    "retrying in the background",
                    plural,
                    GROUP,
                    exc.status,
                    exc.reason,
                )
                versions[(plural, ns)] = ""
        self._rebuild()
        self._tasks = [
            asyncio.create_task(self._watch(plural, ns, versions[(plural, ns)]))
            for plural, ns in scopes
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _call(self, plural: str, ns: str) -> tuple[Any, tuple[str, ...]]:
        if ns:
            return self._custom.list_namespaced_custom_object, (GROUP, VERSION, ns, plural)
        return self._custom.list_cluster_custom_object, (GROUP, VERSION, plural)

    async def _list(self, plural: str, ns: str) -> str:
        """Replaces what is known of ``plural`` in ``ns`` (all namespaces for "")."""
        func, args = self._call(plural, ns)
        result = await func(*args)
        items = {
            (o["metadata"]["namespace"], o["metadata"]["name"]): o for o in result.get("items", [])
        }
        known = self._objects[plural]
        for key in [k for k in known if not ns or k[0] == ns]:
            if key not in items:
                del known[key]
        known.update(items)
        return str(result.get("metadata", {}).get("resourceVersion", ""))

    async def _watch(self, plural: str, ns: str, resource_version: str) -> None:
        rv = resource_version
        while True:
            try:
                if not rv:
                    rv = await self._list(plural, ns)
                    self._rebuild()
                rv = await self._watch_once(plural, ns, rv)
            except asyncio.CancelledError:
                raise
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("watch of %s failed: %s; re-listing", plural, exc.reason)
                    await asyncio.sleep(1.0)
                rv = ""
            except Exception as exc:  # noqa: BLE001  (network errors: back off, re-list)
                log.warning("watch of %s failed: %s; re-listing", plural, exc)
                await asyncio.sleep(1.0)
                rv = ""

    async def _watch_once(self, plural: str, ns: str, rv: str) -> str:
        w = watch.Watch()
        func, args = self._call(plural, ns)
        try:
            async with w.stream(
                func,
                *args,
                resource_version=rv,
                timeout_seconds=240,
                allow_watch_bookmarks=True,
            ) as stream:
                async for event in stream:
                    kind, obj = event["type"], event["raw_object"]
                    if kind == "ERROR":
                        raise ApiException(status=int(obj.get("code", 500)), reason="watch error")
                    meta = obj.get("metadata", {})
                    rv = str(meta.get("resourceVersion", rv))
                    if kind == "BOOKMARK":
                        continue
                    key = (meta["namespace"], meta["name"])
                    if kind == "DELETED":
                        self._objects[plural].pop(key, None)
                    else:
                        self._objects[plural][key] = obj
                    self._rebuild()
        finally:
            await w.close()
        return rv

    def _rebuild(self) -> None:
        snapshot = build_snapshot(self._objects)
        if snapshot == self._snapshot:
            return
        self._snapshot = snapshot
        self._generation += 1
        self._changed.set()
        self._changed = asyncio.Event()

    # -------------------------------------------------------------- Registry
    @property
    def generation(self) -> int:
        return self._generation

    def function(self, namespace: str, name: str) -> FunctionConfig | None:
        return self._snapshot.functions.get((namespace, name))

    def version(self, namespace: str, name: str, version: str) -> FunctionVersion | None:
        return self._snapshot.versions.get((namespace, name, version))

    def alias(self, namespace: str, function_name: str, name: str) -> AliasConfig | None:
        return self._snapshot.aliases.get((namespace, function_name, name))

    def aliases(self) -> list[AliasConfig]:
        return [self._snapshot.aliases[k] for k in sorted(self._snapshot.aliases)]

    def functions(self) -> list[FunctionConfig]:
        return [self._snapshot.functions[k] for k in sorted(self._snapshot.functions)]

    async def wait_changed(self, generation: int) -> int:
        while self._generation == generation:
            await self._changed.wait()
        return self._generation
