"""Namespace deletion on the test control plane: the namespace controller deletes the
Deployment, ReplicaSet and Pod, the node agent stops the pod's process, and the namespace goes
away (no Terminating leftovers)."""

from __future__ import annotations

import pytest

from .harness import TestCluster
from .util import container_pid, deployment, is_ready, pid_alive, pod_of

pytestmark = pytest.mark.cluster


def test_deleting_namespace_cleans_up(k8s_cluster: TestCluster) -> None:
    ns = "doomed"
    k8s_cluster.create_namespace(ns)
    k8s_cluster.wait_for(
        lambda: k8s_cluster.api.get_or_none(f"/api/v1/namespaces/{ns}/serviceaccounts/default"),
        timeout=30,
        what="default ServiceAccount",
    )
    dep = deployment("sleeper", command=["python", "-c", "import time; time.sleep(3600)"])
    k8s_cluster.api.create(f"/apis/apps/v1/namespaces/{ns}/deployments", dep)
    pod = k8s_cluster.wait_for(
        lambda: next((p for p in pod_of(k8s_cluster, ns, "app=sleeper") if is_ready(p)), None),
        timeout=60,
        what="sleeper pod Ready",
    )
    pid = container_pid(pod, "main")
    assert pid is not None and pid_alive(pid)

    k8s_cluster.api.delete(f"/api/v1/namespaces/{ns}")
    k8s_cluster.wait_for(
        lambda: k8s_cluster.api.get_or_none(f"/api/v1/namespaces/{ns}") is None,
        timeout=90,
        what=f"namespace {ns} to be gone",
    )
    assert not pid_alive(pid)
