"""The Helm chart: lint, render, and consistency with the code and the images.

Covers: the chart's CRD file is exactly what the CRD builder generates (no drift); helm lint;
helm template renders the documented components with explicit commands, one gateway
replica, non-root read-only containers, probes, a PVC for the async store, PDBs, the optional
ServiceMonitor, the Grafana dashboard as valid JSON; every Dockerfile's entrypoint matches a
chart command; the lane (gateway env, container and Service port, the operator's lane address
pointing at that Service port, the NetworkPolicy; all gone with gateway.lane.enabled=false);
RBAC (verified on the API server in test_cluster_rbac.py).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any, NamedTuple

import pytest
from klambda_operator.gen_crds import render
from klambda_operator.settings import DEFAULT_GATEWAY_GRPC, DEFAULT_GATEWAY_LANE

from .conftest import CHART, CRDS, ROOT, helm_binary, helm_template


def test_chart_crds_are_generated_from_the_builder() -> None:
    assert CRDS.read_text() == render(), (
        "charts/klambda/crds/klambda.io.yaml is stale: run "
        "`python -m klambda_operator.gen_crds charts/klambda/crds/klambda.io.yaml`"
    )


def test_helm_lint() -> None:
    helm = helm_binary()
    if helm is None:
        pytest.skip("helm binary missing: run tools/build-k8s.sh")
    res = subprocess.run(
        [helm, "lint", "--strict", str(CHART)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def _by_kind_name(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_template_defaults() -> None:
    docs = _by_kind_name(helm_template())
    op = docs[("Deployment", "klambda-operator")]
    gw = docs[("Deployment", "klambda-gateway")]
    assert gw["spec"]["replicas"] == 1 and gw["spec"]["strategy"]["type"] == "Recreate"
    op_c = op["spec"]["template"]["spec"]["containers"][0]
    gw_c = gw["spec"]["template"]["spec"]["containers"][0]
    assert op_c["command"] == ["python", "-m", "klambda_operator"]
    assert gw_c["command"] == ["python", "-m", "klambda_gateway.k8s_scaler"]
    for dep in (op, gw):
        pod = dep["spec"]["template"]["spec"]
        c = pod["containers"][0]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert c["livenessProbe"]
        assert pod["serviceAccountName"] == dep["metadata"]["name"]
    env = {e["name"]: e["value"] for e in op_c["env"]}
    assert env["KLAMBDA_GATEWAY_GRPC_ADDRESS"] == "klambda-gateway.klambda-system.svc:50051"
    assert env["KLAMBDA_RUNTIME_IMAGE"] == "ghcr.io/klambda/runtime-python:0.1.0"
    gw_env = {e["name"]: e["value"] for e in gw_c["env"]}
    assert gw_env["KLAMBDA_STATE_DIR"] == "/var/lib/klambda"
    assert gw_env["KLAMBDA_KEEP_WARM_SECONDS"] == "60"
    assert ("PersistentVolumeClaim", "klambda-gateway-state") in docs
    assert ("PodDisruptionBudget", "klambda-gateway") in docs
    assert ("PodDisruptionBudget", "klambda-operator") in docs
    svc = docs[("Service", "klambda-gateway")]
    assert {p["name"] for p in svc["spec"]["ports"]} == {"http", "grpc", "lane"}
    dashboard = docs[("ConfigMap", "klambda-dashboard")]
    assert json.loads(dashboard["data"]["klambda.json"])["panels"]
    assert not any(kind == "ServiceMonitor" for kind, _ in docs)


class LaneView(NamedTuple):
    """What the lane looks like in a rendering."""

    gw_env: dict[str, str]  # the gateway container's env
    container_ports: dict[str, int]  # the gateway container's ports by name
    svc_ports: dict[str, dict[str, Any]]  # the gateway Service's ports by name
    op_env: dict[str, str]  # the operator container's env


def _lane_view(docs: dict[tuple[str, str], dict]) -> LaneView:
    gw_c = docs[("Deployment", "klambda-gateway")]["spec"]["template"]["spec"]["containers"][0]
    op_c = docs[("Deployment", "klambda-operator")]["spec"]["template"]["spec"]["containers"][0]
    return LaneView(
        gw_env={e["name"]: e["value"] for e in gw_c["env"]},
        container_ports={p["name"]: p["containerPort"] for p in gw_c["ports"]},
        svc_ports={p["name"]: p for p in docs[("Service", "klambda-gateway")]["spec"]["ports"]},
        op_env={e["name"]: e["value"] for e in op_c["env"]},
    )


def test_lane_defaults_are_consistent() -> None:
    gw_env, ports, svc, op_env = _lane_view(_by_kind_name(helm_template()))
    assert gw_env["KLAMBDA_LANE_ENABLED"] == "1"
    assert gw_env["KLAMBDA_LANE_HOST"] == "0.0.0.0"  # TCP, not the local-only abstract socket
    assert ports["lane"] == int(gw_env["KLAMBDA_LANE_PORT"]) == 50052
    assert ports["grpc"] == int(gw_env["KLAMBDA_GRPC_PORT"]) == 50051
    assert svc["lane"] == {"name": "lane", "port": 50052, "targetPort": "lane", "appProtocol": "tcp"}
    # the operator hands pods the Service's lane port (and gRPC as the fallback) ...
    assert op_env["KLAMBDA_GATEWAY_LANE_ADDRESS"] == "klambda-gateway.klambda-system.svc:50052"
    assert op_env["KLAMBDA_GATEWAY_GRPC_ADDRESS"].endswith(f":{svc['grpc']['port']}")
    # ... and those are also the operator's own defaults without the chart
    assert op_env["KLAMBDA_GATEWAY_LANE_ADDRESS"] == DEFAULT_GATEWAY_LANE
    assert op_env["KLAMBDA_GATEWAY_GRPC_ADDRESS"] == DEFAULT_GATEWAY_GRPC


def test_lane_service_port_value() -> None:
    view = _lane_view(_by_kind_name(helm_template("--set", "gateway.service.lanePort=6000")))
    assert view.svc_ports["lane"]["port"] == 6000
    assert view.svc_ports["lane"]["targetPort"] == "lane"
    assert view.op_env["KLAMBDA_GATEWAY_LANE_ADDRESS"] == "klambda-gateway.klambda-system.svc:6000"
    assert view.gw_env["KLAMBDA_LANE_PORT"] == "50052"  # the container port stays


def test_lane_disabled() -> None:
    docs = _by_kind_name(
        helm_template("--set", "gateway.lane.enabled=false", "--set", "networkPolicy.enabled=true")
    )
    gw_env, ports, svc, op_env = _lane_view(docs)
    assert gw_env["KLAMBDA_LANE_ENABLED"] == "0"
    assert "KLAMBDA_LANE_HOST" not in gw_env and "KLAMBDA_LANE_PORT" not in gw_env
    assert "lane" not in ports and set(svc) == {"http", "grpc"}
    assert op_env["KLAMBDA_GATEWAY_LANE_ADDRESS"] == ""  # pods: gRPC only
    policy = docs[("NetworkPolicy", "klambda-gateway")]
    assert policy["spec"]["ingress"][1]["ports"] == [{"port": "grpc", "protocol": "TCP"}]


def test_template_options() -> None:
    docs = _by_kind_name(
        helm_template(
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "gateway.persistence.enabled=false",
            "--set",
            "gateway.service.type=NodePort",
            "--set",
            "gateway.service.nodePort=30080",
            "--set",
            "image.tag=dev",
        )
    )
    assert ("ServiceMonitor", "klambda-gateway") in docs
    assert ("PersistentVolumeClaim", "klambda-gateway-state") not in docs
    svc = docs[("Service", "klambda-gateway")]
    assert svc["spec"]["ports"][0]["nodePort"] == 30080
    gw = docs[("Deployment", "klambda-gateway")]
    assert gw["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/klambda/gateway:dev"


@pytest.mark.parametrize(
    ("dockerfile", "module"),
    [
        ("operator.Dockerfile", "klambda_operator"),
        ("gateway.Dockerfile", "klambda_gateway.k8s_scaler"),
        ("runtime-python.Dockerfile", "klambda_runtime.agent"),
    ],
)
def test_dockerfiles_match_the_chart_commands(dockerfile: str, module: str) -> None:
    text = (ROOT / "images" / dockerfile).read_text()
    assert f'"-m", "{module}"' in text
    assert "USER 10001" in text or "USER 1000" in text


@pytest.mark.parametrize("dockerfile", ["operator", "gateway", "runtime-python"])
def test_dockerfile_copy_sources_exist(dockerfile: str) -> None:
    """Every path a Dockerfile COPYs from the build context exists (there is no Docker engine
    here to build the images; this catches renamed or missing paths)."""
    text = (ROOT / "images" / f"{dockerfile}.Dockerfile").read_text()
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] != "COPY" or any(p.startswith("--from") for p in parts):
            continue
        for source in parts[1:-1]:
            assert (ROOT / source).exists(), f"{dockerfile}.Dockerfile copies missing {source}"


@pytest.mark.parametrize(
    ("flag", "needle"),
    [
        ("gateway.replicas=2", "gateway.replicas"),
        ("runtime.runAsUser=0", "runtime.runAsUser"),
        ("gateway.service.type=Ingress", "gateway.service.type"),
        ("gateway.service.lanePort=0", "gateway.service.lanePort"),
        ("gateway.lane.enabled=maybe", "gateway.lane.enabled"),
    ],
)
def test_values_schema_rejects_unsupported_values(flag: str, needle: str) -> None:
    helm = helm_binary()
    if helm is None:
        pytest.skip("helm binary missing: run tools/build-k8s.sh")
    res = subprocess.run(
        [helm, "template", "klambda", str(CHART), "--set", flag],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode != 0 and needle.split(".")[-1] in res.stderr, res.stderr


def test_network_policy_option() -> None:
    docs = _by_kind_name(helm_template("--set", "networkPolicy.enabled=true"))
    policy = docs[("NetworkPolicy", "klambda-gateway")]
    grpc_rule = policy["spec"]["ingress"][1]
    assert grpc_rule["ports"] == [
        {"port": "grpc", "protocol": "TCP"},
        {"port": "lane", "protocol": "TCP"},
    ]
    assert grpc_rule["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/managed-by": "klambda-operator"
    }
    assert ("NetworkPolicy", "klambda-gateway") not in _by_kind_name(helm_template())
