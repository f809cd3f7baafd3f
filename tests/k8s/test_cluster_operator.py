"""The operator on the real control plane, running as a process with the chart's
ServiceAccount (so the chart's RBAC is what is exercised).

Covers: kubectl apply of a Function -> `kubectl wait --for=condition=Ready` -> code ConfigMap
and $LATEST Deployment (0 replicas, restricted-compatible pod); layers and spec.publish ->
FunctionVersion + version Deployment; Alias -> resolved versions in status; user errors as
Ready=False conditions with actionable messages (unknown layer, URL checksum mismatch);
delete -> every child garbage-collected; kill -9 of the operator mid-reconcile converges
without duplicates or orphans.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from cluster.harness import TestCluster

from .conftest import Proc, start_operator

pytestmark = pytest.mark.cluster

API = "/apis/klambda.io/v1alpha1/namespaces"
HANDLER = "def handler(event, context):\n    return {'hello': event.get('name', 'world')}\n"


def function(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "runtime": "python3.12",
        "handler": "app.handler",
        "code": {"inline": {"app.py": HANDLER}},
    }
    body.update(spec)
    return {
        "apiVersion": "klambda.io/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def apply(cluster: TestCluster, *docs: dict[str, Any]) -> None:
    cluster.apply(yaml.safe_dump_all(list(docs)))


def wait_ready(
    cluster: TestCluster, kind: str, name: str, namespace: str, timeout: int = 60
) -> None:
    cluster.kubectl(
        "wait",
        "--for=condition=Ready",
        f"--timeout={timeout}s",
        "-n",
        namespace,
        f"{kind}/{name}",
        timeout=timeout + 10,
    )


def ready_condition(cluster: TestCluster, path: str) -> dict[str, Any] | None:
    obj = cluster.api.get_or_none(path) or {}
    conds = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == "Ready"), None)


def names(cluster: TestCluster, path: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in cluster.api.get(path).get("items", []))


def test_function_ready_creates_code_and_latest_deployment(
    klambda_system: TestCluster, operator_process: Proc, fn_namespace: str
) -> None:
    cluster = klambda_system
    apply(cluster, function("hello", fn_namespace, memorySize=256))
    wait_ready(cluster, "function", "hello", fn_namespace)
    dep = cluster.api.get(f"/apis/apps/v1/namespaces/{fn_namespace}/deployments/hello-latest")
    assert dep["spec"]["replicas"] == 0
    pod = dep["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["memory"] == "256Mi"
    owner = dep["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("Function", "hello")
    fn = cluster.api.get(f"{API}/{fn_namespace}/functions/hello")
    assert fn["status"]["state"] == "Active"
    assert fn["status"]["latestRevision"] == dep["metadata"]["annotations"]["klambda.io/revision"]
    cms = names(
        cluster,
        f"/api/v1/namespaces/{fn_namespace}/configmaps?labelSelector=klambda.io/function=hello",
    )
    assert len(cms) == 1 and cms[0].startswith("hello-code-")
    table = cluster.kubectl("get", "functions", "-n", fn_namespace).stdout
    assert "Active" in table


def test_layers_publish_and_alias(
    klambda_system: TestCluster, operator_process: Proc, fn_namespace: str
) -> None:
    cluster = klambda_system
    layer = {
        "apiVersion": "klambda.io/v1alpha1",
        "kind": "Layer",
        "metadata": {"name": "shared", "namespace": fn_namespace},
        "spec": {"content": {"inline": {"python/shared.py": "X = 1\n"}}},
    }
    alias = {
        "apiVersion": "klambda.io/v1alpha1",
        "kind": "Alias",
        "metadata": {"name": "hello-live", "namespace": fn_namespace},
        "spec": {
            "functionName": "hello",
            "name": "live",
            "functionVersion": "1",
        },
    }
    apply(cluster, layer, function("hello", fn_namespace, layers=["shared"], publish=True), alias)
    wait_ready(cluster, "layer", "shared", fn_namespace)
    wait_ready(cluster, "function", "hello", fn_namespace)
    wait_ready(cluster, "alias", "hello-live", fn_namespace)
    assert names(cluster, f"{API}/{fn_namespace}/functionversions") == ["hello-v1"]
    deps = names(cluster, f"/apis/apps/v1/namespaces/{fn_namespace}/deployments")
    assert deps == ["hello-latest", "hello-v1"]
    fn = cluster.api.get(f"{API}/{fn_namespace}/functions/hello")
    assert fn["status"]["latestVersion"] == "1" and fn["status"]["layers"] == ["shared:1"]
    got = cluster.api.get(f"{API}/{fn_namespace}/aliases/hello-live")
    assert got["status"]["resolvedVersions"] == {"1": 1.0}
    # A change publishes version 2 (spec.publish), leaving version 1 untouched.
    apply(cluster, function("hello", fn_namespace, layers=["shared"], publish=True, memorySize=512))
    cluster.wait_for(
        lambda: (
            names(cluster, f"{API}/{fn_namespace}/functionversions") == ["hello-v1", "hello-v2"]
        ),
        timeout=30,
        what="version 2 published",
    )
    v1 = cluster.api.get(f"{API}/{fn_namespace}/functionversions/hello-v1")
    assert v1["spec"]["snapshot"]["memorySize"] == 128


def test_unknown_layer_is_reported_on_the_function(
    klambda_system: TestCluster, operator_process: Proc, fn_namespace: str
) -> None:
    cluster = klambda_system
    apply(cluster, function("needs", fn_namespace, layers=["missing"]))
    path = f"{API}/{fn_namespace}/functions/needs"
    cond = cluster.wait_for(
        lambda: ready_condition(cluster, path), timeout=30, what="a Ready condition"
    )
    assert cond["status"] == "False" and cond["reason"] == "UnknownLayer"
    assert "layer 'missing' does not exist" in cond["message"]
    assert "apply the Layer first" in cond["message"]
    out = cluster.kubectl("get", "function", "needs", "-n", fn_namespace).stdout
    assert "Failed" in out


@pytest.fixture
def zip_server() -> Iterator[tuple[str, bytes]]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", HANDLER)
    data = buf.getvalue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/code.zip", data
    server.shutdown()
    server.server_close()


def test_url_code_checksum_mismatch_and_match(
    klambda_system: TestCluster,
    operator_process: Proc,
    fn_namespace: str,
    zip_server: tuple[str, bytes],
) -> None:
    cluster = klambda_system
    url, data = zip_server
    wrong = "0" * 64
    apply(
        cluster, function("fromurl", fn_namespace, code={"url": {"location": url, "sha256": wrong}})
    )
    path = f"{API}/{fn_namespace}/functions/fromurl"
    cond = cluster.wait_for(
        lambda: ready_condition(cluster, path), timeout=30, what="a Ready condition"
    )
    assert cond["reason"] == "CodeChecksumMismatch"
    assert (
        "update sha256" in cond["message"] and hashlib.sha256(data).hexdigest() in cond["message"]
    )
    apply(
        cluster,
        function(
            "fromurl",
            fn_namespace,
            code={"url": {"location": url, "sha256": hashlib.sha256(data).hexdigest()}},
        ),
    )
    wait_ready(cluster, "function", "fromurl", fn_namespace)
    dep = cluster.api.get(f"/apis/apps/v1/namespaces/{fn_namespace}/deployments/fromurl-latest")
    (init,) = dep["spec"]["template"]["spec"]["initContainers"]
    assert init["name"] == "fetch-code"


def test_delete_removes_every_child(
    klambda_system: TestCluster, operator_process: Proc, fn_namespace: str
) -> None:
    cluster = klambda_system
    apply(cluster, function("gone", fn_namespace, publish=True))
    wait_ready(cluster, "function", "gone", fn_namespace)
    cluster.kubectl(
        "delete", "function", "gone", "-n", fn_namespace, "--wait=true", "--timeout=30s"
    )

    def children() -> list[str]:
        sel = "?labelSelector=klambda.io/function=gone"
        return (
            names(cluster, f"/apis/apps/v1/namespaces/{fn_namespace}/deployments{sel}")
            + names(cluster, f"/api/v1/namespaces/{fn_namespace}/configmaps{sel}")
            + names(cluster, f"{API}/{fn_namespace}/functionversions{sel}")
        )

    cluster.wait_for(lambda: children() == [], timeout=60, what="children garbage-collected")


def test_kill_9_mid_reconcile_converges(
    klambda_system: TestCluster,
    operator_process: Proc,
    fn_namespace: str,
    component_logs: str,
    gateway_ports: dict[str, int],
) -> None:
    cluster = klambda_system
    count = 6
    apply(cluster, *[function(f"f{i}", fn_namespace, publish=True) for i in range(count)])
    time.sleep(0.5)  # the operator is now part-way through them
    operator_process.kill9()
    try:
        restarted = start_operator(cluster, component_logs, gateway_ports["grpc"])
        for i in range(count):
            wait_ready(cluster, "function", f"f{i}", fn_namespace, timeout=90)
        fvs = names(cluster, f"{API}/{fn_namespace}/functionversions")
        assert fvs == sorted(f"f{i}-v1" for i in range(count))
        deps = names(cluster, f"/apis/apps/v1/namespaces/{fn_namespace}/deployments")
        assert deps == sorted(
            [f"f{i}-latest" for i in range(count)] + [f"f{i}-v1" for i in range(count)]
        )
        cms = names(
            cluster,
            f"/api/v1/namespaces/{fn_namespace}/configmaps?labelSelector=klambda.io/artifact=code",
        )
        assert len(cms) == count  # one code ConfigMap per function, no orphans
    finally:
        operator_process.popen = restarted.popen if "restarted" in locals() else None


def test_event_source_mapping_says_pollers_are_not_available(
    klambda_system: TestCluster, operator_process: Proc, fn_namespace: str
) -> None:
    cluster = klambda_system
    esm = {
        "apiVersion": "klambda.io/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": "orders-queue", "namespace": fn_namespace},
        "spec": {
            "functionName": "hello",
            "eventSourceArn": "arn:aws:sqs:us-east-1:000000000000:orders",
        },
    }
    apply(cluster, esm)
    path = f"{API}/{fn_namespace}/eventsourcemappings/orders-queue"
    cond = cluster.wait_for(
        lambda: ready_condition(cluster, path), timeout=30, what="a Ready condition"
    )
    assert cond["status"] == "False" and cond["reason"] == "PollerNotAvailable"


def test_role_is_a_service_account(
    klambda_system: TestCluster, operator_process: Proc, fn_namespace: str
) -> None:
    cluster = klambda_system
    apply(cluster, function("withrole", fn_namespace, role="reader"))
    path = f"{API}/{fn_namespace}/functions/withrole"
    cond = cluster.wait_for(
        lambda: ready_condition(cluster, path), timeout=30, what="a Ready condition"
    )
    assert cond["reason"] == "ServiceAccountNotFound" and "create it" in cond["message"]
    cluster.ensure_service_account(fn_namespace, "reader")
    wait_ready(cluster, "function", "withrole", fn_namespace, timeout=60)
    dep = cluster.api.get(f"/apis/apps/v1/namespaces/{fn_namespace}/deployments/withrole-latest")
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "reader" and pod["automountServiceAccountToken"] is True


def test_liveness_endpoint_of_the_chart_probe(
    klambda_system: TestCluster, operator_process: Proc
) -> None:
    """The chart probes the operator at /healthz (Kopf's liveness endpoint)."""
    import urllib.request

    from .conftest import OPERATOR_HEALTH_PORT

    url = f"http://127.0.0.1:{OPERATOR_HEALTH_PORT}/healthz"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    klambda_system.wait_for(healthy, timeout=30, what="operator /healthz")


def test_functions_follow_a_new_layer_version_at_once(
    klambda_system: TestCluster, operator_process: Proc, fn_namespace: str
) -> None:
    """A Layer change publishes layer version 2 and re-reconciles the functions that use the
    layer without pinning it (well before the 30 s resync)."""
    cluster = klambda_system

    def layer(text: str) -> dict[str, Any]:
        return {
            "apiVersion": "klambda.io/v1alpha1",
            "kind": "Layer",
            "metadata": {"name": "deps", "namespace": fn_namespace},
            "spec": {"content": {"inline": {"python/deps.py": text}}},
        }

    apply(
        cluster,
        layer("V = 1\n"),
        function("user", fn_namespace, layers=["deps"]),
        function("pinned", fn_namespace, layers=["deps:1"]),
    )
    wait_ready(cluster, "function", "user", fn_namespace)
    wait_ready(cluster, "function", "pinned", fn_namespace)
    apply(cluster, layer("V = 2\n"))

    def layers_of(name: str) -> list[str]:
        fn = cluster.api.get(f"{API}/{fn_namespace}/functions/{name}")
        return list((fn.get("status") or {}).get("layers") or [])

    cluster.wait_for(
        lambda: layers_of("user") == ["deps:2"], timeout=15, what="the unpinned function on deps:2"
    )
    assert layers_of("pinned") == ["deps:1"]


def test_reapplying_never_resets_replicas_owned_through_scale(
    klambda_system: TestCluster, operator_process: Proc, fn_namespace: str
) -> None:
    """Server-side apply by the operator leaves spec.replicas to whoever scaled through
    /scale (the gateway), across spec changes and pod template rollouts."""
    cluster = klambda_system
    apply(cluster, function("owned", fn_namespace))
    wait_ready(cluster, "function", "owned", fn_namespace)
    dep = f"/apis/apps/v1/namespaces/{fn_namespace}/deployments/owned-latest"
    cluster.api.merge_patch(f"{dep}/scale", {"spec": {"replicas": 2}})
    apply(cluster, function("owned", fn_namespace, memorySize=256, description="changed"))
    cluster.wait_for(
        lambda: (
            cluster.api.get(dep)["spec"]["template"]["spec"]["containers"][0]["resources"][
                "limits"
            ]["memory"]
            == "256Mi"
        ),
        timeout=30,
        what="the operator applied the new template",
    )
    assert cluster.api.get(dep)["spec"]["replicas"] == 2
    ops = {
        (m["manager"], m["operation"]) for m in cluster.api.get(dep)["metadata"]["managedFields"]
    }
    assert ("klambda-operator", "Apply") in ops  # server-side apply, field manager named
