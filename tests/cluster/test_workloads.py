"""Workloads on the test control plane: a Deployment's pod runs as a local process and becomes
Ready (httpGet readiness probe), scaling to 0 stops the process, a crashing container is
restarted with its restart count and last exit code in the pod status, a failing liveness
probe restarts a container, init containers run first, a tcpSocket readiness probe gates
Readiness, and deleting a pod also stops descendants that left its process group."""

from __future__ import annotations

from typing import Any

import pytest

from .harness import TestCluster
from .procs import free_port
from .util import container_pid, deployment, is_ready, pid_alive, pod_of

pytestmark = pytest.mark.cluster


def test_deployment_pod_runs_as_process_and_becomes_ready(
    k8s_cluster: TestCluster, namespace: str
) -> None:
    port = free_port()
    dep = deployment(
        "web",
        command=["python", "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        extra={
            "ports": [{"name": "http", "containerPort": port}],
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        },
    )
    k8s_cluster.api.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", dep)

    k8s_cluster.wait_for(
        lambda: (
            k8s_cluster.api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/web")
            .get("status", {})
            .get("readyReplicas")
            == 1
        ),
        timeout=60,
        what="deployment web to have 1 ready replica",
    )
    (pod,) = pod_of(k8s_cluster, namespace, "app=web")
    assert is_ready(pod)
    assert pod["spec"]["nodeName"] == "node-1"
    assert pod["status"]["podIP"].startswith("10.244.")
    pid = container_pid(pod, "main")
    assert pid is not None and pid_alive(pid)
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert b"http.server" in f.read()

    k8s_cluster.kubectl("-n", namespace, "scale", "deployment/web", "--replicas=0")
    k8s_cluster.wait_for(
        lambda: not pod_of(k8s_cluster, namespace, "app=web"),
        timeout=60,
        what="the web pod to be deleted after scaling to 0",
    )
    assert not pid_alive(pid)


def test_crashing_container_is_restarted_and_counted(
    k8s_cluster: TestCluster, namespace: str
) -> None:
    dep = deployment("crasher", command=["python", "-c", "import sys; print('boom'); sys.exit(3)"])
    k8s_cluster.api.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", dep)

    def restarted_twice() -> dict[str, Any] | None:
        pods = pod_of(k8s_cluster, namespace, "app=crasher")
        for p in pods:
            for st in p.get("status", {}).get("containerStatuses", []):
                if st["restartCount"] >= 2:
                    return dict(st)
        return None

    st = k8s_cluster.wait_for(restarted_twice, timeout=60, what="crasher restartCount >= 2")
    assert st["lastState"]["terminated"]["exitCode"] == 3
    assert st["lastState"]["terminated"]["reason"] == "Error"

    def kubectl_shows_backoff() -> bool:  # STATUS and RESTARTS columns as users see them
        out = k8s_cluster.kubectl(
            "-n", namespace, "get", "pods", "-l", "app=crasher", "--no-headers"
        ).stdout.split()
        return "CrashLoopBackOff" in out and int(out[3]) >= 2

    k8s_cluster.wait_for(kubectl_shows_backoff, timeout=30, what="kubectl to show the back-off")
    (pod,) = pod_of(k8s_cluster, namespace, "app=crasher")
    assert k8s_cluster.pod_log(namespace, pod["metadata"]["name"], "main").count("boom") >= 2


def test_liveness_failure_restarts_and_init_containers_run_first(
    k8s_cluster: TestCluster, namespace: str
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probed"},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "volumes": [{"name": "scratch", "emptyDir": {}}],
            "initContainers": [
                {
                    "name": "init",
                    "image": "busybox",
                    "command": ["python", "-c", "open('/scratch/init-done','w').write('yes')"],
                    "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                }
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["python", "-c", "import time; time.sleep(3600)"],
                    "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                    # Healthy only while the init container's file exists; the test removes it.
                    "livenessProbe": {
                        "exec": {"command": ["test", "-f", "/scratch/init-done"]},
                        "periodSeconds": 1,
                        "failureThreshold": 2,
                    },
                    "readinessProbe": {
                        "exec": {"command": ["test", "-f", "/scratch/init-done"]},
                        "periodSeconds": 1,
                    },
                }
            ],
        },
    }
    path = f"/api/v1/namespaces/{namespace}/pods"
    k8s_cluster.api.create(path, pod)
    k8s_cluster.wait_for(
        lambda: is_ready(k8s_cluster.api.get(f"{path}/probed")),
        timeout=60,
        what="pod probed Ready (init container ran first)",
    )
    p = k8s_cluster.api.get(f"{path}/probed")
    init = p["status"]["initContainerStatuses"][0]
    assert init["state"]["terminated"]["exitCode"] == 0
    pid = container_pid(p, "main")
    assert pid is not None
    # Remove the file through the container's own mount namespace: the liveness probe fails.
    k8s_cluster.wait_for(
        lambda: _rm_in_container(pid, "/scratch/init-done"),
        timeout=10,
        what="removing the probe file",
    )

    def restarted() -> bool:
        st = k8s_cluster.api.get(f"{path}/probed")["status"]["containerStatuses"][0]
        return bool(st["restartCount"] >= 1)

    k8s_cluster.wait_for(restarted, timeout=60, what="liveness restart of probed/main")
    assert not pid_alive(pid)


def _rm_in_container(pid: int, path: str) -> bool:
    import subprocess

    res = subprocess.run(
        ["nsenter", "-t", str(pid), "--mount", "--root", "rm", "-f", path],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return res.returncode == 0


def test_pod_deletion_stops_descendants_that_left_the_process_group(
    k8s_cluster: TestCluster, namespace: str
) -> None:
    script = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen(['sleep', '3600'], start_new_session=True)\n"
        "print('CHILD', p.pid, flush=True)\n"
        "time.sleep(3600)\n"
    )
    path = f"/api/v1/namespaces/{namespace}/pods"
    k8s_cluster.api.create(
        path,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "parent"},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": "x", "command": ["python", "-c", script]}],
            },
        },
    )

    def child_pid() -> int | None:
        for line in k8s_cluster.pod_log(namespace, "parent", "main").splitlines():
            if line.startswith("CHILD "):
                return int(line.split()[1])
        return None

    pid = k8s_cluster.wait_for(child_pid, timeout=30, what="the container's child pid")
    assert pid_alive(pid)
    k8s_cluster.api.delete(f"{path}/parent")
    k8s_cluster.wait_for(
        lambda: k8s_cluster.api.get_or_none(f"{path}/parent") is None,
        timeout=30,
        what="pod parent deleted",
    )
    k8s_cluster.wait_for(lambda: not pid_alive(pid), timeout=5, what="the setsid child to die")


def test_tcp_readiness_probe_gates_ready(k8s_cluster: TestCluster, namespace: str) -> None:
    port = free_port()
    script = (
        "import socket, time\n"
        "time.sleep(4)\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('127.0.0.1', {port})); s.listen()\n"
        "time.sleep(3600)\n"
    )
    path = f"/api/v1/namespaces/{namespace}/pods"
    k8s_cluster.api.create(
        path,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "tcp"},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "main",
                        "image": "x",
                        "command": ["python", "-c", script],
                        "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1},
                    }
                ],
            },
        },
    )
    k8s_cluster.wait_for(
        lambda: k8s_cluster.api.get(f"{path}/tcp")["status"].get("phase") == "Running",
        timeout=30,
        what="pod tcp running",
    )
    assert not is_ready(k8s_cluster.api.get(f"{path}/tcp"))  # nothing listens for 4 s
    k8s_cluster.wait_for(
        lambda: is_ready(k8s_cluster.api.get(f"{path}/tcp")),
        timeout=30,
        what="pod tcp Ready once the port listens",
    )
