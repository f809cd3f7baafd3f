"""`kubectl apply -f examples/` on the real control plane: every example becomes Ready and
answers through the gateway, then `kubectl delete -f examples/` removes everything.

Covers: the README's examples as a kubectl-only user sees them (inline code, zipFile, a layer
under /opt, a provided runtime with awslambdaric, versions + alias with provisioned
concurrency, async destinations), Function/Layer/Alias Ready conditions, boto3 invocations
answered by pods, deletion garbage-collecting every child.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cluster.harness import TestCluster

from .conftest import ROOT, Proc
from .test_cluster_gateway import arn, lam, wait_visible  # noqa: F401  (fixture)
from .test_cluster_operator import wait_ready

pytestmark = pytest.mark.cluster
NS = "default"


def test_kubectl_apply_examples(
    klambda_system: TestCluster,
    operator_process: Proc,
    gateway_process: Proc,
    lam: Any,  # noqa: F811
) -> None:
    cluster = klambda_system
    examples = str(ROOT / "examples")
    cluster.kubectl("apply", "-f", examples)
    try:
        functions = cluster.api.get(f"/apis/klambda.io/v1alpha1/namespaces/{NS}/functions")
        names = sorted(f["metadata"]["name"] for f in functions["items"])
        assert {"hello", "greeter-with-layer", "canary", "ric", "zipped"} <= set(names)
        for name in names:
            wait_ready(cluster, "function", name, NS, timeout=90)
        wait_ready(cluster, "layer", "shared-deps", NS)
        wait_ready(cluster, "alias", "canary-live", NS)

        def call(name: str, payload: dict[str, Any], qualifier: str = "") -> Any:
            wait_visible(lam, NS, name, qualifier)
            kwargs = {"Qualifier": qualifier} if qualifier else {}
            resp = lam.invoke(FunctionName=name, Payload=json.dumps(payload).encode(), **kwargs)
            body = json.loads(resp["Payload"].read())
            assert "FunctionError" not in resp, body
            return body

        assert call("hello", {"name": "k8s"}) == {"hello": "k8s", "greeting": "hi"}
        assert call("greeter-with-layer", {"name": "k8s"}) == {
            "message": "hello, k8s (from the shared-deps layer)"
        }
        assert call("ric", {"x": 1}) == {"runtime": "awslambdaric", "echo": {"x": 1}}
        assert call("canary", {}, qualifier="live")["version"] == "1"
        assert call("zipped", {}) is not None
    finally:
        cluster.kubectl("delete", "-f", examples, "--wait=true", "--timeout=60s", check=False)

    def leftovers() -> list[str]:
        deps = cluster.api.get(
            f"/apis/apps/v1/namespaces/{NS}/deployments?labelSelector="
            "app.kubernetes.io/managed-by=klambda-operator"
        )
        cms = cluster.api.get(
            f"/api/v1/namespaces/{NS}/configmaps?labelSelector="
            "app.kubernetes.io/managed-by=klambda-operator"
        )
        return [o["metadata"]["name"] for o in deps["items"] + cms["items"]]

    cluster.wait_for(lambda: leftovers() == [], timeout=60, what="examples' children removed")
