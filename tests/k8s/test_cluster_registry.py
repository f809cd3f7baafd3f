"""K8sRegistry against the real API server (in-process, admin credentials).

Covers: initial list then watch per namespace when namespaces are configured (functions in
watched namespaces appear once reconciled, changes and deletions arrive through the watch,
other namespaces are ignored); generation bumps and wait_changed.
"""

from __future__ import annotations

import asyncio

import pytest
from cluster.harness import TestCluster
from klambda_gateway.k8s_registry import K8sRegistry
from kubernetes_asyncio import client, config

from .conftest import Proc
from .test_cluster_operator import apply, function, wait_ready

pytestmark = pytest.mark.cluster


async def _eventually(check: object, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


async def test_watches_only_the_configured_namespaces(
    klambda_system: TestCluster, operator_process: Proc
) -> None:
    cluster = klambda_system
    namespaces = ["reg-a", "reg-b", "reg-c"]
    for ns in namespaces:
        if cluster.api.get_or_none(f"/api/v1/namespaces/{ns}") is None:
            cluster.create_namespace(ns)
    apply(cluster, function("one", "reg-a"), function("two", "reg-c"))
    wait_ready(cluster, "function", "one", "reg-a")
    wait_ready(cluster, "function", "two", "reg-c")
    cfg = client.Configuration()
    await config.load_kube_config(config_file=cluster.admin_kubeconfig, client_configuration=cfg)
    api = client.ApiClient(configuration=cfg)
    registry = K8sRegistry(api, namespaces=("reg-a", "reg-b"))
    try:
        await registry.start()
        assert registry.function("reg-a", "one") is not None
        assert registry.function("reg-c", "two") is None
        gen = registry.generation
        apply(cluster, function("three", "reg-b", memorySize=256))
        await asyncio.wait_for(registry.wait_changed(gen), timeout=20)
        await _eventually(lambda: registry.function("reg-b", "three") is not None)
        assert registry.version("reg-b", "three", "$LATEST").memory_size == 256
        cluster.kubectl("delete", "function", "one", "-n", "reg-a")
        await _eventually(lambda: registry.function("reg-a", "one") is None)
    finally:
        await registry.close()
        await api.close()
        for ns in namespaces:
            cluster.api.delete(f"/api/v1/namespaces/{ns}")
