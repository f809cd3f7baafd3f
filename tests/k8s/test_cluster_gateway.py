"""The gateway in cluster mode on the real control plane: boto3 -> gateway -> Deployment
scaled through /scale -> a pod (run as a process by the test node agent) dials back and
answers. Operator and gateway run as processes with their chart ServiceAccounts.

Covers: scale from zero (0 -> 1 replicas) and the pod's answer; executed version; alias
weighted split; reserved concurrency 0 -> 429; provisioned concurrency -> N Ready pods before
traffic; idle -> 0 replicas; a pod that cannot start fails the invocation quickly with its
cause.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from cluster.harness import TestCluster

from .conftest import Proc
from .test_cluster_operator import apply, function, wait_ready

pytestmark = pytest.mark.cluster


@pytest.fixture
def lam(gateway_process: Proc, gateway_ports: dict[str, int]) -> Iterator[Any]:
    client = boto3.client(
        "lambda",
        endpoint_url=f"http://127.0.0.1:{gateway_ports['http']}",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 0}, read_timeout=90, connect_timeout=5),
    )
    yield client
    client.close()


def arn(namespace: str, name: str) -> str:
    return f"arn:aws:lambda:us-east-1:{namespace}:function:{name}"


def replicas(cluster: TestCluster, namespace: str, deployment: str) -> int:
    dep = cluster.api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}")
    return int(dep["spec"].get("replicas") or 0)


def ready_pods(cluster: TestCluster, namespace: str, version: str = "latest") -> int:
    pods = cluster.api.get(
        f"/api/v1/namespaces/{namespace}/pods?labelSelector=klambda.io/version={version}"
    ).get("items", [])
    return sum(
        1
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
    )


def wait_visible(lam: Any, namespace: str, name: str, qualifier: str = "") -> None:
    """The gateway's watch has seen the function (invocations before that are 404s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            kwargs = {"Qualifier": qualifier} if qualifier else {}
            lam.invoke(FunctionName=arn(namespace, name), InvocationType="DryRun", **kwargs)
            return
        except lam.exceptions.ResourceNotFoundException:
            time.sleep(0.2)
    raise AssertionError(f"{name} never became visible to the gateway")


def test_scale_from_zero_and_back(
    klambda_system: TestCluster,
    operator_process: Proc,
    gateway_process: Proc,
    fn_namespace: str,
    lam: Any,
) -> None:
    cluster = klambda_system
    apply(cluster, function("hello", fn_namespace))
    wait_ready(cluster, "function", "hello", fn_namespace)
    assert replicas(cluster, fn_namespace, "hello-latest") == 0
    wait_visible(lam, fn_namespace, "hello")
    started = time.monotonic()
    resp = lam.invoke(FunctionName=arn(fn_namespace, "hello"), Payload=b'{"name": "k8s"}')
    cold = time.monotonic() - started
    body = json.loads(resp["Payload"].read())
    assert resp["StatusCode"] == 200, (body, gateway_process.log())
    assert body == {"hello": "k8s"}
    assert resp["ExecutedVersion"] == "$LATEST"
    assert replicas(cluster, fn_namespace, "hello-latest") == 1
    warm = lam.invoke(FunctionName=arn(fn_namespace, "hello"), Payload=b"{}")
    assert json.loads(warm["Payload"].read()) == {"hello": "world"}
    print(f"cold start through the cluster: {cold * 1000:.0f} ms")
    # keep-warm is 4 s in the fixture: idle -> 0 replicas, the pod goes away.
    cluster.wait_for(
        lambda: replicas(cluster, fn_namespace, "hello-latest") == 0,
        timeout=40,
        what="scale to zero",
    )
    cluster.wait_for(
        lambda: ready_pods(cluster, fn_namespace) == 0, timeout=40, what="the pod removed"
    )


def _code(tag: str) -> dict[str, Any]:
    return {"inline": {"app.py": f"def handler(event, context):\n    return '{tag}'\n"}}


def test_alias_weighted_split_over_published_versions(
    klambda_system: TestCluster,
    operator_process: Proc,
    gateway_process: Proc,
    fn_namespace: str,
    lam: Any,
) -> None:
    cluster = klambda_system
    apply(cluster, function("split", fn_namespace, publish=True, code=_code("one")))
    cluster.wait_for(
        lambda: cluster.api.get_or_none(
            f"/apis/klambda.io/v1alpha1/namespaces/{fn_namespace}/functionversions/split-v1"
        ),
        timeout=30,
        what="version 1",
    )
    apply(cluster, function("split", fn_namespace, publish=True, code=_code("two")))
    cluster.wait_for(
        lambda: cluster.api.get_or_none(
            f"/apis/klambda.io/v1alpha1/namespaces/{fn_namespace}/functionversions/split-v2"
        ),
        timeout=30,
        what="version 2",
    )
    alias = {
        "apiVersion": "klambda.io/v1alpha1",
        "kind": "Alias",
        "metadata": {"name": "split-live", "namespace": fn_namespace},
        "spec": {
            "functionName": "split",
            "name": "live",
            "functionVersion": "1",
            "routingConfig": {"additionalVersionWeights": {"2": 0.5}},
        },
    }
    apply(cluster, alias)
    wait_ready(cluster, "alias", "split-live", fn_namespace)
    wait_visible(lam, fn_namespace, "split", qualifier="live")
    seen: dict[str, int] = {}
    for _ in range(24):
        resp = lam.invoke(FunctionName=arn(fn_namespace, "split"), Qualifier="live")
        body = json.loads(resp["Payload"].read())
        assert {"1": "one", "2": "two"}[resp["ExecutedVersion"]] == body
        seen[resp["ExecutedVersion"]] = seen.get(resp["ExecutedVersion"], 0) + 1
    assert set(seen) == {"1", "2"}, seen  # P(all on one side) = 2 * 0.5**24


def test_reserved_concurrency_zero_throttles(
    klambda_system: TestCluster,
    operator_process: Proc,
    gateway_process: Proc,
    fn_namespace: str,
    lam: Any,
) -> None:
    cluster = klambda_system
    apply(cluster, function("capped", fn_namespace, reservedConcurrency=0))
    wait_ready(cluster, "function", "capped", fn_namespace)
    deadline = time.monotonic() + 30
    while True:
        try:
            lam.invoke(FunctionName=arn(fn_namespace, "capped"))
        except lam.exceptions.TooManyRequestsException as exc:
            assert exc.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
            break
        except lam.exceptions.ResourceNotFoundException:
            assert time.monotonic() < deadline, "never visible to the gateway"
            time.sleep(0.2)
    assert replicas(cluster, fn_namespace, "capped-latest") == 0


def test_provisioned_concurrency_gives_ready_pods_before_traffic(
    klambda_system: TestCluster,
    operator_process: Proc,
    gateway_process: Proc,
    fn_namespace: str,
    lam: Any,
) -> None:
    cluster = klambda_system
    alias = {
        "apiVersion": "klambda.io/v1alpha1",
        "kind": "Alias",
        "metadata": {"name": "warm-prod", "namespace": fn_namespace},
        "spec": {
            "functionName": "warm",
            "name": "prod",
            "functionVersion": "1",
            "provisionedConcurrency": 2,
        },
    }
    apply(cluster, function("warm", fn_namespace, publish=True), alias)
    wait_ready(cluster, "alias", "warm-prod", fn_namespace)
    cluster.wait_for(
        lambda: ready_pods(cluster, fn_namespace, "1") == 2,
        timeout=60,
        what="2 provisioned pods Ready",
    )
    assert replicas(cluster, fn_namespace, "warm-v1") == 2
    fn_path = f"/apis/klambda.io/v1alpha1/namespaces/{fn_namespace}/functions/warm"
    cluster.wait_for(
        lambda: cluster.api.get(fn_path).get("status", {}).get("readyEnvironments") == 2,
        timeout=30,
        what="status.readyEnvironments == 2",
    )
    resp = lam.invoke(FunctionName=arn(fn_namespace, "warm"), Qualifier="prod")
    assert resp["ExecutedVersion"] == "1"
    time.sleep(6)  # longer than keep-warm: provisioned environments stay
    assert replicas(cluster, fn_namespace, "warm-v1") == 2


@pytest.fixture
def restricted_namespace(klambda_system: TestCluster, fn_namespace: str) -> str:
    klambda_system.api.merge_patch(
        f"/api/v1/namespaces/{fn_namespace}",
        {
            "metadata": {
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                }
            }
        },
    )
    return fn_namespace


def test_function_pods_admitted_under_restricted_pod_security(
    klambda_system: TestCluster,
    operator_process: Proc,
    gateway_process: Proc,
    restricted_namespace: str,
    lam: Any,
) -> None:
    cluster = klambda_system
    ns = restricted_namespace
    apply(cluster, function("strict", ns, layers=[]))
    wait_ready(cluster, "function", "strict", ns)
    dep = cluster.api.get(f"/apis/apps/v1/namespaces/{ns}/deployments/strict-latest")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": ns},
        "spec": dep["spec"]["template"]["spec"],
    }
    res = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod))
    assert "created (server dry run)" in res.stdout and "violate" not in res.stderr
    wait_visible(lam, ns, "strict")
    resp = lam.invoke(FunctionName=arn(ns, "strict"), Payload=b'{"name": "strict"}')
    assert json.loads(resp["Payload"].read()) == {"hello": "strict"}


def test_pod_that_cannot_start_fails_the_invocation_with_its_cause(
    klambda_system: TestCluster,
    operator_process: Proc,
    gateway_process: Proc,
    fn_namespace: str,
    lam: Any,
) -> None:
    """URL code is fetched and checked by the pod's init step and served. Then the archive
    behind the URL changes: the next pod's init step refuses it (checksum), and the waiting
    invocation fails at once naming that cause instead of waiting for the queue timeout."""
    import hashlib
    import http.server
    import io
    import threading
    import zipfile

    def archive(text: str) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("app.py", f"def handler(e, c):\n    return '{text}'\n")
        return buf.getvalue()

    served = {"data": archive("good")}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = served["data"]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cluster = klambda_system
        url = f"http://127.0.0.1:{server.server_address[1]}/code.zip"
        sha = hashlib.sha256(served["data"]).hexdigest()
        apply(
            cluster,
            function("tampered", fn_namespace, code={"url": {"location": url, "sha256": sha}}),
        )
        wait_ready(cluster, "function", "tampered", fn_namespace)
        wait_visible(lam, fn_namespace, "tampered")
        # The init step fetches and checks the archive; the pod answers with that code.
        good = lam.invoke(FunctionName=arn(fn_namespace, "tampered"))
        assert json.loads(good["Payload"].read()) == "good"
        cluster.wait_for(
            lambda: replicas(cluster, fn_namespace, "tampered-latest") == 0,
            timeout=40,
            what="scale to zero",
        )
        cluster.wait_for(
            lambda: ready_pods(cluster, fn_namespace) == 0, timeout=40, what="the pod removed"
        )
        served["data"] = archive("evil")
        resp = lam.invoke(FunctionName=arn(fn_namespace, "tampered"))
        body = json.loads(resp["Payload"].read())
        assert resp.get("FunctionError") == "Unhandled", body
        assert "checksum mismatch" in body["errorMessage"], body
        assert "fetch-code" in body["errorMessage"], body
        # The operator reports it on the Function too (its pod watch).
        path = f"/apis/klambda.io/v1alpha1/namespaces/{fn_namespace}/functions/tampered"

        def reason() -> str:
            conds = (cluster.api.get(path).get("status") or {}).get("conditions") or []
            return next((c["reason"] for c in conds if c["type"] == "Ready"), "")

        cluster.wait_for(
            lambda: reason() == "CodeChecksumMismatch",
            timeout=30,
            what="Ready=False CodeChecksumMismatch on the Function",
        )
    finally:
        server.shutdown()
        server.server_close()


def test_latest_code_update_is_served(
    klambda_system: TestCluster,
    operator_process: Proc,
    gateway_process: Proc,
    fn_namespace: str,
    lam: Any,
) -> None:
    """Changing $LATEST's code rolls its Deployment; the next invocations run the new code
    (never the old revision's warm pod)."""
    cluster = klambda_system
    apply(cluster, function("evolving", fn_namespace, code=_code("one")))
    wait_ready(cluster, "function", "evolving", fn_namespace)
    wait_visible(lam, fn_namespace, "evolving")
    first = lam.invoke(FunctionName=arn(fn_namespace, "evolving"))
    assert json.loads(first["Payload"].read()) == "one"
    path = f"/apis/klambda.io/v1alpha1/namespaces/{fn_namespace}/functions/evolving"
    old_revision = cluster.api.get(path)["status"]["latestRevision"]
    apply(cluster, function("evolving", fn_namespace, code=_code("two")))
    cluster.wait_for(
        lambda: cluster.api.get(path)["status"].get("latestRevision") not in (None, old_revision),
        timeout=30,
        what="new $LATEST revision",
    )
    deadline = time.monotonic() + 30
    while True:  # the gateway's watch picks the new revision up within moments
        body = json.loads(lam.invoke(FunctionName=arn(fn_namespace, "evolving"))["Payload"].read())
        if body == "two":
            break
        assert body == "one" and time.monotonic() < deadline
        time.sleep(0.2)
    for _ in range(3):  # and stays there
        body = json.loads(lam.invoke(FunctionName=arn(fn_namespace, "evolving"))["Payload"].read())
        assert body == "two"
