"""The Kubernetes Scaler: environments are pods of the operator's Deployments.

One of the two gateway modules that talk to the Kubernetes API (with
:mod:`klambda_gateway.k8s_registry`). The autoscaler asks for environments by id; a pod
cannot be given an id in advance, so each requested id is a *slot*: the Deployment's
``/scale`` is set to the number of live environments of that version, and when a pod's agent
registers (its id is the pod name) it takes over the oldest open slot (its launch time and
provisioned flag). Scaling down marks the chosen pods with a low
``controller.kubernetes.io/pod-deletion-cost`` first, so the ReplicaSet removes exactly the
environments the autoscaler picked. A pod watch turns pods that cannot start (unschedulable,
image pull failure, crash loop, failed init step such as a checksum mismatch) into a quick
failure of the waiting invocations, naming the cause.

``python -m klambda_gateway.k8s_scaler`` runs the gateway in a cluster (composition below).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from klambda_gateway.autoscaler import EnvState
from klambda_gateway.dispatch import Dispatcher
from klambda_gateway.registry import LATEST, FunctionVersion

log = logging.getLogger(__name__)

LABEL_FUNCTION = "klambda.io/function"
LABEL_VERSION = "klambda.io/version"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
FATAL_WAITING = {
    "ErrImagePull": "the image cannot be pulled",
    "ImagePullBackOff": "the image cannot be pulled",
    "InvalidImageName": "the image name is invalid",
    "CrashLoopBackOff": "the environment keeps crashing",
    "CreateContainerConfigError": "the container configuration is invalid",
    "CreateContainerError": "the container cannot be created",
}

VersionRef = tuple[str, str, str]  # namespace, function, version


def deployment_name(function_name: str, version: str) -> str:
    return f"{function_name}-{'latest' if version == LATEST else 'v' + version}"


def pod_version(pod: Mapping[str, Any]) -> VersionRef | None:
    labels = pod.get("metadata", {}).get("labels") or {}
    fn, ver = labels.get(LABEL_FUNCTION), labels.get(LABEL_VERSION)
    if not fn or not ver:
        return None
    return (str(pod["metadata"]["namespace"]), str(fn), LATEST if ver == "latest" else str(ver))


def pod_failure(pod: Mapping[str, Any]) -> str | None:
    """Why this pod cannot become an environment, in words a user can act on (pure)."""
    name = pod.get("metadata", {}).get("name", "?")
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return f"pod {name} cannot be scheduled: {cond.get('message', '')}".rstrip(": ")
    for init in status.get("initContainerStatuses") or []:
        term = (init.get("state") or {}).get("terminated") or (init.get("lastState") or {}).get(
            "terminated"
        )
        if term and int(term.get("exitCode", 0)) != 0:
            detail = term.get("message") or term.get("reason") or ""
            code = term.get("exitCode")
            what = "checksum mismatch of the code archive" if code == 3 else "failed"
            return f"pod {name}: init step {init.get('name')} {what} (exit {code}) {detail}".strip()
    for cs in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        if reason in FATAL_WAITING:
            message = waiting.get("message", "")
            return f"pod {name}: {FATAL_WAITING[reason]} ({reason}: {message})".replace(": )", ")")
    return None


@dataclass
class _Slot:
    environment_id: str
    provisioned: bool


class K8sScaler:
    """``Scaler`` over Deployments' ``/scale`` (see the module docstring)."""

    def __init__(
        self,
        api: client.ApiClient,
        dispatcher: Dispatcher,
        *,
        namespaces: tuple[str, ...] = (),
        match_interval: float = 0.05,
        watch_pods: bool = True,
        apps: Any = None,  # AppsV1Api / CoreV1Api; tests pass in-memory stand-ins
        core: Any = None,
    ) -> None:
        self._apps = apps or client.AppsV1Api(api)
        self._core = core or client.CoreV1Api(api)
        self._dispatcher = dispatcher
        self._namespaces = namespaces
        self._interval = match_interval
        self._slots: dict[VersionRef, collections.deque[_Slot]] = {}
        self._adopted: set[str] = set()
        self._written: dict[VersionRef, int] = {}
        self._dirty: set[VersionRef] = set()
        self._locks: dict[VersionRef, asyncio.Lock] = {}
        self._failed_seen: set[tuple[str, str]] = set()
        self._stopping: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._wake = asyncio.Event()
        # Hand a slot to a pod the moment its agent registers (before it can become idle),
        # so launch time, provisioned flag and replica counts are right from the start.
        # (The Dispatcher has no registration hook yet; this wraps its method.)
        original = dispatcher.connected

        def connected(register: Any, outbox: Any) -> Any:
            env = original(register, outbox)
            if env is not None:
                self.match()
            return env

        dispatcher.connected = connected  # type: ignore[method-assign,assignment]
        self._tasks = [asyncio.create_task(self._loop())]
        if watch_pods:
            self._tasks += [asyncio.create_task(self._watch_pods(ns)) for ns in namespaces or ("",)]

    # ----------------------------------------------------------- Scaler API
    async def start(
        self, version: FunctionVersion, environment_ids: Sequence[str], *, provisioned: bool
    ) -> None:
        ref = (version.namespace, version.function_name, version.version)
        slots = self._slots.setdefault(ref, collections.deque())
        slots.extend(_Slot(env_id, provisioned) for env_id in environment_ids)
        await self._sync(ref)
        self._wake.set()

    async def stop(self, environment_ids: Sequence[str]) -> None:
        refs: set[VersionRef] = set()
        for env_id in environment_ids:
            ref = self._slot_ref(env_id)
            if ref is not None:  # a slot no pod has taken yet: just close it
                self._close_slot(ref, env_id, reason="scaled down before it started")
                refs.add(ref)
                continue
            env = self._dispatcher.environment(env_id)
            if env is None:
                continue
            refs.add((env.key[0], env.key[1], env.key[2]))
            self._stopping[env_id] = None  # its agent exits on Shutdown: not a failure
            while len(self._stopping) > 10_000:
                self._stopping.popitem(last=False)
            await self._mark_for_deletion(env.key[0], env_id)
        for ref in refs:
            await self._sync(ref)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -------------------------------------------------------------- slots
    def _slot_ref(self, env_id: str) -> VersionRef | None:
        for ref, slots in self._slots.items():
            if any(s.environment_id == env_id for s in slots):
                return ref
        return None

    def _close_slot(self, ref: VersionRef, env_id: str, *, reason: str) -> None:
        slots = self._slots.get(ref)
        if slots is not None:
            for slot in list(slots):
                if slot.environment_id == env_id:
                    slots.remove(slot)
        # Draining first: then `gone` forgets it without failing anyone.
        self._dispatcher.stop([env_id])
        self._dispatcher.gone(env_id, reason=reason)

    def _live(self, ref: VersionRef) -> int:
        count = 0
        for pool in self._dispatcher.pools.values():
            v = pool.version
            if (v.namespace, v.function_name, v.version) != ref:
                continue
            count += sum(1 for e in pool.environments.values() if e.state is not EnvState.DRAINING)
        return count

    def match(self) -> None:
        """Pods that registered take over open slots (oldest first); others are adopted."""
        slot_ids = {s.environment_id for slots in self._slots.values() for s in slots}
        for pool in list(self._dispatcher.pools.values()):
            v = pool.version
            ref = (v.namespace, v.function_name, v.version)
            for env in list(pool.environments.values()):
                env_id = env.environment_id
                if env_id in slot_ids or env_id in self._adopted:
                    continue
                self._adopted.add(env_id)
                slots = self._slots.get(ref)
                if not slots:
                    continue
                slot = slots.popleft()
                placeholder = self._dispatcher.environment(slot.environment_id)
                if placeholder is not None:
                    env.launched_at = placeholder.launched_at
                env.provisioned = slot.provisioned
                self._dispatcher.stop([slot.environment_id])
                self._dispatcher.gone(slot.environment_id, reason=f"taken by pod {env_id}")
        live_ids = {e for p in self._dispatcher.pools.values() for e in p.environments}
        self._adopted &= live_ids

    async def _sync(self, ref: VersionRef) -> None:
        """Sets the Deployment's replicas to the live environments of the version."""
        lock = self._locks.setdefault(ref, asyncio.Lock())
        async with lock:
            self.match()
            target = self._live(ref)
            if self._written.get(ref) == target and ref not in self._dirty:
                return
            namespace, function, version = ref
            name = deployment_name(function, version)
            try:
                await self._apps.patch_namespaced_deployment_scale(
                    name, namespace, {"spec": {"replicas": target}}
                )
            except ApiException as exc:
                self._dirty.add(ref)
                log.warning(
                    "scaling deployment %s/%s to %d failed: %s %s",
                    namespace,
                    name,
                    target,
                    exc.status,
                    exc.reason,
                )
                return
            self._dirty.discard(ref)
            self._written[ref] = target
            log.info("deployment %s/%s scaled to %d", namespace, name, target)

    async def _mark_for_deletion(self, namespace: str, pod: str) -> None:
        body = {"metadata": {"annotations": {DELETION_COST: "-1000"}}}
        try:
            await self._core.patch_namespaced_pod(pod, namespace, body)
        except ApiException as exc:
            if exc.status != 404:
                log.warning(
                    "marking pod %s/%s for scale-down failed: %s", namespace, pod, exc.reason
                )

    async def _loop(self) -> None:
        """Matches pods to slots promptly and retries failed scale requests."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            self._wake.clear()
            try:
                self.match()
                for ref in list(self._dirty):
                    await self._sync(ref)
                if any(self._slots.values()):
                    self._wake.set()
                    await asyncio.sleep(self._interval)
            except asyncio.CancelledError:
                raise
            except Exception:  # pragma: no cover - keep scaling alive
                log.exception("k8s scaler loop")
                await asyncio.sleep(1.0)

    # ---------------------------------------------------------- pod watch
    def pod_event(self, pod: Mapping[str, Any]) -> None:
        """A pod changed: if it cannot start, fail one open slot of its version with why."""
        ref = pod_version(pod)
        if ref is None:
            return
        meta = pod.get("metadata") or {}
        if (
            meta.get("deletionTimestamp")
            or meta.get("name") in self._stopping
            or (meta.get("annotations") or {}).get(DELETION_COST) == "-1000"
        ):
            return  # being scaled down or rolled: its exit is expected
        cause = pod_failure(pod)
        if cause is None:
            return
        key = (str(pod["metadata"]["name"]), cause)
        if key in self._failed_seen:
            return
        self._failed_seen.add(key)
        slots = self._slots.get(ref)
        if not slots:
            return
        slot = slots.popleft()
        log.warning("environment start failed: %s", cause)
        self._dispatcher.gone(slot.environment_id, reason=cause)

    async def _watch_pods(self, namespace: str) -> None:
        """Pods of function Deployments in ``namespace`` ("" = all namespaces)."""
        selector = f"{LABEL_FUNCTION},{LABEL_VERSION}"
        while True:
            w = watch.Watch()
            try:
                if namespace:
                    func: Any = self._core.list_namespaced_pod
                    args: tuple[str, ...] = (namespace,)
                else:
                    func, args = self._core.list_pod_for_all_namespaces, ()
                async with w.stream(
                    func, *args, label_selector=selector, timeout_seconds=240
                ) as stream:
                    async for event in stream:
                        if event["type"] in ("ADDED", "MODIFIED"):
                            self.pod_event(event["raw_object"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (any watch failure: retry)
                log.warning("pod watch failed: %s; retrying", exc)
                await asyncio.sleep(1.0)
            finally:
                await w.close()


# ------------------------------------------------------------------ composition


async def load_kube_config() -> None:
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        await config.load_kube_config()


async def run_cluster(stop: asyncio.Event | None = None) -> None:
    """Runs the gateway against the Kubernetes API until ``stop`` is set (or SIGTERM)."""
    from klambda_gateway.k8s_registry import K8sRegistry
    from klambda_gateway.platform import Platform
    from klambda_gateway.settings import GatewaySettings

    settings = GatewaySettings.from_env()
    namespaces = tuple(
        n.strip() for n in os.environ.get("KLAMBDA_WATCH_NAMESPACES", "").split(",") if n.strip()
    )
    await load_kube_config()
    api = client.ApiClient()
    registry = K8sRegistry(api, namespaces=namespaces)
    await registry.start()
    platform = Platform(
        settings,
        registry=registry,
        scaler_factory=lambda _address, dispatcher: K8sScaler(
            api, dispatcher, namespaces=namespaces
        ),
    )
    await platform.start()
    print(
        f"klambda gateway (cluster mode): HTTP {platform.endpoint}, gRPC port {platform.grpc_port}",
        flush=True,
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await platform.stop()
        await registry.close()
        await api.close()


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("KLAMBDA_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(run_cluster())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
