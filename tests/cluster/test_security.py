"""Real admission and authorization: PodSecurity `restricted` rejects a privileged pod; a
ServiceAccount without a Role is denied by RBAC and allowed once a Role is bound (kubectl with
a kubeconfig minted for the ServiceAccount via TokenRequest)."""

from __future__ import annotations

import pytest

from .harness import TestCluster

pytestmark = pytest.mark.cluster


def test_privileged_pod_rejected_in_restricted_namespace(k8s_cluster: TestCluster) -> None:
    ns = "psa-restricted"
    k8s_cluster.create_namespace(ns, labels={"pod-security.kubernetes.io/enforce": "restricted"})
    try:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "priv"},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "command": ["python", "-c", "pass"],
                        "securityContext": {"privileged": True},
                    }
                ]
            },
        }
        import json

        res = k8s_cluster.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(pod), check=False)
        assert res.returncode != 0
        assert "violates PodSecurity" in res.stderr
        assert "restricted" in res.stderr and "privileged" in res.stderr
        assert k8s_cluster.api.get_or_none(f"/api/v1/namespaces/{ns}/pods/priv") is None
    finally:
        k8s_cluster.api.delete(f"/api/v1/namespaces/{ns}")


def test_service_account_denied_until_role_bound(k8s_cluster: TestCluster, namespace: str) -> None:
    kubeconfig = k8s_cluster.kubeconfig_for_service_account(namespace, "reader")

    who = k8s_cluster.kubectl(
        "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", kubeconfig=kubeconfig
    )
    assert who.stdout == f"system:serviceaccount:{namespace}:reader"

    denied = k8s_cluster.kubectl(
        "-n", namespace, "get", "configmaps", kubeconfig=kubeconfig, check=False
    )
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    assert f"system:serviceaccount:{namespace}:reader" in denied.stderr

    k8s_cluster.kubectl(
        "-n", namespace, "create", "role", "cm-reader", "--verb=get,list", "--resource=configmaps"
    )
    k8s_cluster.kubectl(
        "-n",
        namespace,
        "create",
        "rolebinding",
        "cm-reader",
        "--role=cm-reader",
        f"--serviceaccount={namespace}:reader",
    )

    def allowed() -> bool:
        res = k8s_cluster.kubectl(
            "-n", namespace, "get", "configmaps", kubeconfig=kubeconfig, check=False
        )
        return res.returncode == 0 and "kube-root-ca.crt" in res.stdout

    k8s_cluster.wait_for(allowed, timeout=20, what="RBAC to allow the bound ServiceAccount")
    # The Role grants reads only.
    write = k8s_cluster.kubectl(
        "-n", namespace, "create", "configmap", "x", kubeconfig=kubeconfig, check=False
    )
    assert write.returncode != 0 and "forbidden" in write.stderr.lower()
