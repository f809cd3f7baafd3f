"""The gateway's Kubernetes seams without an API server (pure parts and slot matching).

Covers: registry snapshot from Function / FunctionVersion / Alias objects (functions hidden
until the operator reconciled them, published versions from snapshots, aliases of unknown
functions dropped); pod failure causes in words (unschedulable, image pull, crash loop,
checksum mismatch of the init step); slot matching of registered pods (launch time and
provisioned flag carried over, no invocation failed); a failing pod fails the waiting
invocation with its cause instead of a timeout.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import pytest
from klambda_gateway.dispatch import SYNC, Dispatcher
from klambda_gateway.k8s_registry import build_snapshot
from klambda_gateway.k8s_scaler import K8sScaler, _Slot, pod_failure, pod_version
from klambda_gateway.registry import LATEST, FunctionVersion
from klambda_proto import environment_pb2 as pb
from kubernetes_asyncio import client

FN = {
    "metadata": {"namespace": "ns", "name": "hello"},
    "spec": {
        "runtime": "python3.12",
        "handler": "app.handler",
        "memorySize": 256,
        "timeout": 5,
        "code": {"inline": {"app.py": "x"}},
        "reservedConcurrency": 2,
        "environment": {"variables": {"A": "1"}},
    },
    "status": {"latestRevision": "rev-latest"},
}
FV = {
    "metadata": {"namespace": "ns", "name": "hello-v1"},
    "spec": {
        "functionName": "hello",
        "version": "1",
        "revision": "rev-1",
        "snapshot": {
            "runtime": "python3.11",
            "handler": "app.h",
            "memorySize": 128,
            "timeout": 3,
            "environment": {},
            "code": {"configMap": "c"},
            "layers": [{"name": "l"}],
        },
    },
}
ALIAS = {
    "metadata": {"namespace": "ns", "name": "hello-live"},
    "spec": {
        "functionName": "hello",
        "name": "live",
        "functionVersion": "1",
        "routingConfig": {"additionalVersionWeights": {"$LATEST": 0.2}},
        "provisionedConcurrency": 2,
    },
}


def _objects(**extra: Any) -> dict[str, dict[tuple[str, str], Any]]:
    objs = {
        "functions": {("ns", "hello"): FN},
        "functionversions": {("ns", "hello-v1"): FV},
        "aliases": {("ns", "hello-live"): ALIAS},
    }
    objs.update(extra)
    return objs


def test_snapshot_from_objects() -> None:
    snap = build_snapshot(_objects())
    fn = snap.functions[("ns", "hello")]
    assert fn.reserved_concurrency == 2 and fn.published_versions == ("1",)
    assert fn.latest.revision == "rev-latest" and fn.latest.memory_size == 256
    assert fn.latest.environment == {"A": "1"} and fn.latest.opt_dir == ""
    v1 = snap.versions[("ns", "hello", "1")]
    assert (v1.revision, v1.runtime, v1.opt_dir) == ("rev-1", "python3.11", "/opt")
    alias = snap.aliases[("ns", "hello", "live")]
    assert alias.additional_version_weights == {"$LATEST": 0.2}
    assert alias.provisioned_concurrency == 2


def test_versions_of_a_deleted_function_of_the_same_name_are_ignored() -> None:
    fn = {**FN, "metadata": {**FN["metadata"], "uid": "new"}}
    fv = {
        **FV,
        "metadata": {**FV["metadata"], "ownerReferences": [{"kind": "Function", "uid": "old"}]},
    }
    snap = build_snapshot(
        _objects(functions={("ns", "hello"): fn}, functionversions={("ns", "hello-v1"): fv})
    )
    assert snap.functions[("ns", "hello")].published_versions == ()
    assert ("ns", "hello", "1") not in snap.versions
    fv_ok = {
        **FV,
        "metadata": {**FV["metadata"], "ownerReferences": [{"kind": "Function", "uid": "new"}]},
    }
    snap = build_snapshot(
        _objects(functions={("ns", "hello"): fn}, functionversions={("ns", "hello-v1"): fv_ok})
    )
    assert snap.functions[("ns", "hello")].published_versions == ("1",)


def test_unreconciled_function_is_invisible_with_its_versions_and_aliases() -> None:
    pending = {**FN, "status": {}}
    snap = build_snapshot(_objects(functions={("ns", "hello"): pending}))
    assert snap.functions == {} and snap.versions == {} and snap.aliases == {}


def _pod(status: dict[str, Any], name: str = "hello-latest-abc") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "labels": {"klambda.io/function": "hello", "klambda.io/version": "latest"},
        },
        "status": status,
    }


@pytest.mark.parametrize(
    ("status", "needle"),
    [
        pytest.param({"phase": "Running"}, None, id="healthy"),
        pytest.param(
            {
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes: Insufficient memory",
                    }
                ]
            },
            "cannot be scheduled: 0/1 nodes: Insufficient memory",
            id="unschedulable",
        ),
        pytest.param(
            {
                "containerStatuses": [
                    {
                        "name": "function",
                        "state": {
                            "waiting": {
                                "reason": "ImagePullBackOff",
                                "message": "Back-off pulling image x",
                            }
                        },
                    }
                ]
            },
            "the image cannot be pulled (ImagePullBackOff: Back-off pulling image x)",
            id="image-pull",
        ),
        pytest.param(
            {
                "containerStatuses": [
                    {"name": "function", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
                ]
            },
            "keeps crashing",
            id="crash-loop",
        ),
        pytest.param(
            {
                "initContainerStatuses": [
                    {
                        "name": "fetch-code",
                        "state": {
                            "terminated": {
                                "exitCode": 3,
                                "message": "checksum mismatch for http://x",
                            }
                        },
                    }
                ]
            },
            "init step fetch-code checksum mismatch of the code archive (exit 3)",
            id="checksum",
        ),
    ],
)
def test_pod_failure(status: dict[str, Any], needle: str | None) -> None:
    cause = pod_failure(_pod(status))
    if needle is None:
        assert cause is None
    else:
        assert cause is not None and needle in cause and "hello-latest-abc" in cause


def test_pod_version_maps_latest_label() -> None:
    assert pod_version(_pod({})) == ("ns", "hello", LATEST)


VERSION = FunctionVersion(
    namespace="ns",
    function_name="hello",
    version=LATEST,
    revision="r",
    runtime="python3.12",
    handler="app.handler",
    memory_size=128,
    timeout=3,
)


def _register(env_id: str) -> pb.Register:
    return pb.Register(
        namespace="ns",
        function_name="hello",
        version=LATEST,
        environment_id=env_id,
        initialization_type="on-demand",
    )


async def test_registered_pod_takes_the_open_slot_without_failing_invocations() -> None:
    dispatcher = Dispatcher()
    api = client.ApiClient()
    scaler = K8sScaler(api, dispatcher, watch_pods=False)
    try:
        placeholder = dispatcher.add_starting(VERSION, "slot-1", provisioned=True)
        scaler._slots[("ns", "hello", LATEST)] = collections.deque([_Slot("slot-1", True)])
        waiting = asyncio.create_task(
            dispatcher.invoke(
                VERSION, pb.Invocation(request_id="r1", payload=b"{}"), kind=SYNC, queue_timeout=5.0
            )
        )
        await asyncio.sleep(0)
        env = dispatcher.connected(_register("hello-latest-pod1"), asyncio.Queue())
        assert env is not None
        scaler.match()
        assert dispatcher.environment("slot-1") is None
        assert env.provisioned is True and env.launched_at == placeholder.launched_at
        assert not waiting.done()  # still queued for the pod, not failed
        waiting.cancel()
    finally:
        await scaler.close()
        await api.close()


async def test_failing_pod_fails_the_waiting_invocation_with_its_cause() -> None:
    dispatcher = Dispatcher()
    api = client.ApiClient()
    scaler = K8sScaler(api, dispatcher, watch_pods=False)
    try:
        dispatcher.add_starting(VERSION, "slot-1", provisioned=False)
        scaler._slots[("ns", "hello", LATEST)] = collections.deque([_Slot("slot-1", False)])
        waiting = asyncio.create_task(
            dispatcher.invoke(
                VERSION,
                pb.Invocation(request_id="r1", payload=b"{}"),
                kind=SYNC,
                queue_timeout=30.0,
            )
        )
        await asyncio.sleep(0)
        scaler.pod_event(
            _pod(
                {
                    "containerStatuses": [
                        {
                            "name": "function",
                            "state": {
                                "waiting": {"reason": "ErrImagePull", "message": "not found"}
                            },
                        }
                    ]
                }
            )
        )
        outcome_or_error = await asyncio.wait_for(asyncio.shield(waiting), timeout=2.0)
        text = str(outcome_or_error)
        assert "image cannot be pulled" in text or "ErrImagePull" in text
    finally:
        await scaler.close()
        await api.close()


class FakeApps:
    """What K8sScaler calls on AppsV1Api: PATCH deployments/{name}/scale."""

    def __init__(self) -> None:
        self.scale: dict[tuple[str, str], int] = {}

    async def patch_namespaced_deployment_scale(
        self, name: str, namespace: str, body: dict[str, Any]
    ) -> None:
        self.scale[(namespace, name)] = body["spec"]["replicas"]


class FakeCore:
    """What K8sScaler calls on CoreV1Api: PATCH pods/{name} (deletion cost)."""

    def __init__(self) -> None:
        self.annotations: dict[str, dict[str, str]] = {}

    async def patch_namespaced_pod(self, name: str, namespace: str, body: dict[str, Any]) -> None:
        self.annotations.setdefault(name, {}).update(body["metadata"]["annotations"])


async def test_scale_up_match_and_targeted_scale_down() -> None:
    dispatcher = Dispatcher()
    apps, core = FakeApps(), FakeCore()
    api = client.ApiClient()
    scaler = K8sScaler(api, dispatcher, watch_pods=False, apps=apps, core=core)
    try:
        for env_id in ("slot-a", "slot-b"):
            dispatcher.add_starting(VERSION, env_id, provisioned=False)
        await scaler.start(VERSION, ["slot-a", "slot-b"], provisioned=False)
        assert apps.scale == {("ns", "hello-latest"): 2}
        pods = ["hello-latest-x1", "hello-latest-x2"]
        for pod in pods:  # registering pods take the slots at once (wrapped `connected`)
            assert dispatcher.connected(_register(pod), asyncio.Queue()) is not None
        assert dispatcher.environment("slot-a") is None
        assert dispatcher.environment("slot-b") is None
        stopped = dispatcher.stop([pods[0]])
        await scaler.stop(stopped)
        assert core.annotations == {
            pods[0]: {"controller.kubernetes.io/pod-deletion-cost": "-1000"}
        }
        assert apps.scale == {("ns", "hello-latest"): 1}
        # A slot nobody took yet is closed without touching any pod.
        dispatcher.add_starting(VERSION, "slot-c", provisioned=False)
        await scaler.start(VERSION, ["slot-c"], provisioned=False)
        assert apps.scale[("ns", "hello-latest")] == 2
        await scaler.stop(["slot-c"])
        assert apps.scale[("ns", "hello-latest")] == 1
        assert list(core.annotations) == [pods[0]]
    finally:
        await scaler.close()
        await api.close()


async def test_pods_being_scaled_down_or_deleted_are_not_failures() -> None:
    dispatcher = Dispatcher()
    api = client.ApiClient()
    scaler = K8sScaler(api, dispatcher, watch_pods=False, apps=FakeApps(), core=FakeCore())
    try:
        dispatcher.add_starting(VERSION, "slot-1", provisioned=False)
        scaler._slots[("ns", "hello", LATEST)] = collections.deque([_Slot("slot-1", False)])
        crash = {
            "containerStatuses": [
                {"name": "function", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]
        }
        deleting = _pod(crash, name="old-1")
        deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        marked = _pod(crash, name="old-2")
        marked["metadata"]["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": "-1000"}
        for pod in (deleting, marked):
            scaler.pod_event(pod)
        assert dispatcher.environment("slot-1") is not None  # still waiting for its pod
        scaler.pod_event(_pod(crash, name="new-1"))
        assert dispatcher.environment("slot-1") is None
    finally:
        await scaler.close()
        await api.close()
