"""Kopf handlers: thin adapters from events to the reconcilers in :mod:`reconcile`.

Every handler runs the same idempotent reconcile (create, update, resume and a periodic
timer share one path), writes the status with a ``Ready`` condition whose message says what
to do, and retries failures after ``retry_seconds``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from klambda_operator import reconcile
from klambda_operator.errors import InvalidCode, KubeError, OperatorError
from klambda_operator.kube import Kube
from klambda_operator.resources.crds import GROUP, VERSION
from klambda_operator.resources.meta import LABEL_FUNCTION, LABEL_MANAGED_BY, MANAGER
from klambda_operator.resources.pods import pod_problem
from klambda_operator.resources.status import failed_status, ready_condition
from klambda_operator.settings import OperatorSettings
from klambda_operator.verify import UrlVerifier

log = logging.getLogger("klambda_operator")

READY_MESSAGES = {
    "Function": "code and Deployments are in place; invoke it through the gateway",
    "Layer": "layer version published; reference it from spec.layers of a Function",
    "Alias": "alias resolved; invoke it as function:alias",
    "EventSourceMapping": "poller running",
}


def _now() -> datetime:
    return datetime.now(UTC)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = "klambda.io/kopf-finalizer"
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    if "settings" not in memo:
        memo["settings"] = OperatorSettings.from_env()
    memo["kube"] = await Kube.connect()
    memo["verifier"] = UrlVerifier()  # remembers verified (URL, sha256) pairs


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    kube = memo.get("kube")
    if kube is not None:
        await kube.close()


Reconciler = Callable[
    [Kube, Mapping[str, Any], OperatorSettings, UrlVerifier | None], Awaitable[dict[str, Any]]
]


async def _status(
    kind: str, reconciler: Reconciler, body: Mapping[str, Any], memo: kopf.Memo
) -> tuple[dict[str, Any], OperatorError | None]:
    """Reconciles ``body``; returns the whole status to write (with its Ready condition) and
    the user-facing error, if any."""
    kube: Kube = memo["kube"]
    settings: OperatorSettings = memo["settings"]
    meta = body["metadata"]
    generation = int(meta.get("generation") or 0)
    previous = list((body.get("status") or {}).get("conditions") or [])
    try:
        verifier: UrlVerifier | None = memo["verifier"] if settings.verify_urls else None
        status = await reconciler(kube, body, settings, verifier)
    except OperatorError as exc:
        failed = failed_status(
            previous, reason=exc.reason, message=exc.message, generation=generation, now=_now()
        )
        return failed, exc
    problem = status.pop("problem", None)
    status["observedGeneration"] = generation
    status["conditions"] = ready_condition(
        previous,
        ready=problem is None,
        reason=problem["reason"] if problem else "Reconciled",
        message=problem["message"] if problem else READY_MESSAGES[kind],
        generation=generation,
        now=_now(),
    )
    return status, None


async def _run(
    kind: str,
    reconciler: Reconciler,
    *,
    body: kopf.Body,
    memo: kopf.Memo,
    patch: kopf.Patch,
) -> None:
    kube: Kube = memo["kube"]
    settings: OperatorSettings = memo["settings"]
    status, error = await _status(kind, reconciler, body, memo)
    if error is not None:
        await kube.patch_status(
            str(body["apiVersion"]),
            kind,
            body.metadata.namespace or "",
            body.metadata.name,
            status,
        )
        log.warning("%s %s/%s: %s", kind, body.metadata.namespace, body.metadata.name, error)
        if isinstance(error, InvalidCode):
            raise kopf.PermanentError(error.message) from error
        if isinstance(error, KubeError) and error.status == 409:
            raise kopf.TemporaryError(error.message, delay=1) from error
        raise kopf.TemporaryError(error.message, delay=settings.retry_seconds) from error
    for key, value in status.items():
        patch.status[key] = value
    previous_latest = str((body.get("status") or {}).get("latestVersion") or "")
    if kind in ("Function", "Layer") and status.get("latestVersion", "") != previous_latest:
        await _refresh_dependents(kind, body, memo)


async def _refresh_dependents(kind: str, body: Mapping[str, Any], memo: kopf.Memo) -> None:
    """A new function or layer version: reconcile what refers to it now (aliases of the
    function; functions using the layer without a pinned version) instead of at their next
    retry or resync."""
    kube: Kube = memo["kube"]
    namespace, name = str(body["metadata"]["namespace"]), str(body["metadata"]["name"])
    if kind == "Function":
        targets = [
            ("Alias", _alias, a)
            for a in await kube.list(f"{GROUP}/{VERSION}", "Alias", namespace, {})
            if (a.get("spec") or {}).get("functionName") == name
        ]
    else:
        targets = [
            ("Function", _function, f)
            for f in await kube.list(f"{GROUP}/{VERSION}", "Function", namespace, {})
            if name in ((f.get("spec") or {}).get("layers") or [])
        ]
    for dep_kind, reconciler, obj in targets:
        status, _ = await _status(dep_kind, reconciler, obj, memo)
        try:
            await kube.patch_status(
                f"{GROUP}/{VERSION}", dep_kind, namespace, obj["metadata"]["name"], status
            )
        except KubeError as exc:  # deleted meanwhile: nothing to refresh
            log.info("refreshing %s %s failed: %s", dep_kind, obj["metadata"]["name"], exc)


async def _function(
    kube: Kube, body: Mapping[str, Any], s: OperatorSettings, v: UrlVerifier | None
) -> dict[str, Any]:
    return await reconcile.reconcile_function(kube, body, settings=s.deployment, verifier=v)


async def _layer(
    kube: Kube, body: Mapping[str, Any], s: OperatorSettings, v: UrlVerifier | None
) -> dict[str, Any]:
    return await reconcile.reconcile_layer(kube, body, verifier=v)


async def _alias(
    kube: Kube, body: Mapping[str, Any], s: OperatorSettings, v: UrlVerifier | None
) -> dict[str, Any]:
    return await reconcile.reconcile_alias(kube, body)


async def _esm(
    kube: Kube, body: Mapping[str, Any], s: OperatorSettings, v: UrlVerifier | None
) -> dict[str, Any]:
    return await reconcile.reconcile_event_source_mapping(kube, body)


# Timers are registered at import, so their interval is read from the environment here.
_RESYNC = OperatorSettings.from_env().resync_seconds

_KINDS: dict[str, tuple[str, Reconciler]] = {
    "functions": ("Function", _function),
    "layers": ("Layer", _layer),
    "aliases": ("Alias", _alias),
    "eventsourcemappings": ("EventSourceMapping", _esm),
}


def _register(plural: str) -> None:
    kind, reconciler = _KINDS[plural]

    async def handler(body: kopf.Body, memo: kopf.Memo, patch: kopf.Patch, **_: Any) -> None:
        await _run(kind, reconciler, body=body, memo=memo, patch=patch)

    handler.__name__ = f"reconcile_{plural}"
    kopf.on.resume(GROUP, VERSION, plural, id="reconcile")(handler)
    kopf.on.create(GROUP, VERSION, plural, id="reconcile")(handler)
    kopf.on.update(GROUP, VERSION, plural, id="reconcile", field="spec")(handler)

    async def resync(body: kopf.Body, memo: kopf.Memo, patch: kopf.Patch, **_: Any) -> None:
        if body.metadata.get("deletionTimestamp"):
            return
        await _run(kind, reconciler, body=body, memo=memo, patch=patch)

    resync.__name__ = f"resync_{plural}"
    kopf.timer(GROUP, VERSION, plural, id="resync", interval=_RESYNC, idle=10.0)(resync)


for _plural in _KINDS:
    _register(_plural)


@kopf.on.event(
    "apps", "v1", "deployments", labels={LABEL_MANAGED_BY: MANAGER, LABEL_FUNCTION: kopf.PRESENT}
)
async def count_ready(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Function status.readyEnvironments = ready pods over all its version Deployments."""
    kube: Kube | None = memo.get("kube")
    if kube is None:
        return
    namespace = body.metadata.namespace or ""
    function = body.metadata.labels[LABEL_FUNCTION]
    deployments = await kube.list("apps/v1", "Deployment", namespace, {LABEL_FUNCTION: function})
    ready = sum(int((d.get("status") or {}).get("readyReplicas") or 0) for d in deployments)
    try:
        await kube.patch_status(
            f"{GROUP}/{VERSION}", "Function", namespace, function, {"readyEnvironments": ready}
        )
    except KubeError as exc:
        if exc.status != 404:
            raise


@kopf.on.event("", "v1", "pods", labels={LABEL_MANAGED_BY: MANAGER, LABEL_FUNCTION: kopf.PRESENT})
async def pod_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A function pod that cannot run marks its Function not Ready at once (the periodic
    reconcile clears it when the pods are healthy again)."""
    kube: Kube | None = memo.get("kube")
    problem = pod_problem(body)
    if kube is None or problem is None or body.metadata.get("deletionTimestamp"):
        return
    namespace = body.metadata.namespace or ""
    function = body.metadata.labels[LABEL_FUNCTION]
    fn = await kube.get(f"{GROUP}/{VERSION}", "Function", namespace, function)
    if fn is None:
        return
    status = fn.get("status") or {}
    conditions = ready_condition(
        status.get("conditions"),
        ready=False,
        reason=problem[0],
        message=problem[1],
        generation=int(fn["metadata"].get("generation") or 0),
        now=_now(),
    )
    await kube.patch_status(
        f"{GROUP}/{VERSION}", "Function", namespace, function, {"conditions": conditions}
    )
