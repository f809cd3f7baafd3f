"""Function pods hold their stream on the gateway's lane (TCP), with gRPC as the fallback.

Covers: on the real control plane, the operator's Deployment gives the pod the lane address
(``KLAMBDA_ENV_LANE``) and, after an invoke, the gateway's /metrics counts that pod under
``klambda_environment_streams{transport="lane"}`` and none under ``grpc``. Without a cluster:
the agent's transport choice for the env a Deployment gives a pod (``open_stream`` on the
``EnvironmentSpec`` read back from that env): a lane address that answers -> the lane (the
preface arrives on a real socket); an operator without a lane address (empty
``KLAMBDA_ENV_LANE``) or a lane that refuses -> gRPC.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import pytest
from cluster.harness import TestCluster
from klambda_operator.resources.deployment import DeploymentSettings, build_deployment
from klambda_operator.resources.version import LATEST, Artifact, CodeFile, ResolvedVersion
from klambda_proto.lane import PREFACE
from klambda_runtime.spec import EnvironmentSpec
from klambda_runtime.streams import open_stream
from prometheus_client.parser import text_string_to_metric_families

from .conftest import Proc, free_port
from .test_cluster_gateway import arn, lam, wait_visible  # noqa: F401  (fixture)
from .test_cluster_operator import apply, function, wait_ready

OWNER = {
    "apiVersion": "klambda.io/v1alpha1",
    "kind": "Function",
    "metadata": {"name": "hello", "namespace": "default", "uid": "u-1"},
}


def _streams(http_port: int) -> dict[str, float]:
    """``klambda_environment_streams`` by transport, from the gateway's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "klambda_environment_streams":
            for sample in family.samples:
                out[sample.labels["transport"]] = sample.value
    assert set(out) == {"lane", "grpc", "embedded"}, text
    return out


@pytest.mark.cluster
def test_pods_stream_on_the_lane(
    klambda_system: TestCluster,
    operator_process: Proc,
    gateway_process: Proc,
    gateway_ports: dict[str, int],
    fn_namespace: str,
    lam: Any,  # noqa: F811
) -> None:
    cluster = klambda_system
    apply(cluster, function("laned", fn_namespace))
    wait_ready(cluster, "function", "laned", fn_namespace)
    wait_visible(lam, fn_namespace, "laned")
    # Pods of earlier tests (keep-warm 4 s, deleted namespaces) go first, so that what the
    # gauge shows after the invoke is this function's pod.
    cluster.wait_for(
        lambda: sum(_streams(gateway_ports["http"]).values()) == 0,
        timeout=60,
        what="no environment connected to the gateway",
    )
    resp = lam.invoke(FunctionName=arn(fn_namespace, "laned"), Payload=b'{"name": "lane"}')
    body = json.loads(resp["Payload"].read())
    assert resp["StatusCode"] == 200 and body == {"hello": "lane"}, (body, gateway_process.log())
    streams = _streams(gateway_ports["http"])  # the pod stays connected for keep-warm (4 s)
    assert streams["lane"] >= 1 and streams["grpc"] == streams["embedded"] == 0, (
        streams, gateway_process.log())

    pods = cluster.api.get(
        f"/api/v1/namespaces/{fn_namespace}/pods?labelSelector=klambda.io/function=laned"
    )["items"]
    assert pods
    for pod in pods:
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["KLAMBDA_ENV_LANE"] == f"127.0.0.1:{gateway_ports['lane']}"
        assert env["KLAMBDA_ENV_GATEWAY"] == f"127.0.0.1:{gateway_ports['grpc']}"


# ------------------------------------------------------------- the pod env -> transport


def _pod_spec(settings: DeploymentSettings) -> EnvironmentSpec:
    """The EnvironmentSpec the agent reads from the env of a pod the operator built."""
    version = ResolvedVersion(
        namespace="default",
        function_name="hello",
        version=LATEST,
        runtime="python3.12",
        handler="app.handler",
        memory_size=128,
        timeout=3,
        code=Artifact(config_map="hello-code-abc", files=(CodeFile("f0000.app.py", "app.py"),)),
    )
    dep = build_deployment(version, settings, owner=OWNER)
    env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    plain = {e["name"]: e["value"] for e in env if "value" in e}
    return EnvironmentSpec.from_env({**plain, "KLAMBDA_ENV_ID": "pod-1"})


async def test_a_reachable_lane_is_used() -> None:
    received = bytearray()
    got_preface = asyncio.Event()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.extend(await reader.readexactly(len(PREFACE)))
        got_preface.set()
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        spec = _pod_spec(
            DeploymentSettings(gateway_address="127.0.0.1:1", lane_address=f"127.0.0.1:{port}")
        )
        stream = await open_stream(spec)
        try:
            assert stream.kind == "lane"
            await asyncio.wait_for(got_preface.wait(), timeout=10)
            assert bytes(received) == PREFACE
        finally:
            await stream.close()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("lane", ["", "closed"])
async def test_no_lane_or_a_refused_lane_means_grpc(lane: str) -> None:
    address = f"127.0.0.1:{free_port()}" if lane == "closed" else ""  # nothing listens there
    spec = _pod_spec(DeploymentSettings(gateway_address="127.0.0.1:50051", lane_address=address))
    assert spec.lane == address
    stream = await open_stream(spec)
    try:
        assert stream.kind == "grpc"
    finally:
        await stream.close()
