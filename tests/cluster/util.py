"""Small helpers for the cluster tests (manifests and waits)."""

from __future__ import annotations

import os
from typing import Any

from .harness import TestCluster

JSON = dict[str, Any]


def pod_of(cluster: TestCluster, namespace: str, selector: str) -> list[JSON]:
    res = cluster.api.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector=selector)
    return list(res["items"])


def container_pid(pod: JSON, container: str) -> int | None:
    """The local pid of a running container (the node agent reports process://<uid>-<pid>)."""
    for st in pod.get("status", {}).get("containerStatuses", []):
        if st["name"] == container and "running" in st.get("state", {}) and st.get("containerID"):
            return int(st["containerID"].rsplit("-", 1)[1])
    return None


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def is_ready(pod: JSON) -> bool:
    conds = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
    return conds.get("Ready") == "True"


def deployment(
    name: str,
    *,
    command: list[str],
    replicas: int = 1,
    extra: JSON | None = None,
) -> JSON:
    container: JSON = {"name": "main", "image": "python:3.11-slim", "command": command}
    container.update(extra or {})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 5, "containers": [container]},
            },
        },
    }


def env_python() -> str:
    return os.environ.get("PYTHON", "python")
