"""Fixtures for klambda-on-Kubernetes tests.

Pure tests need nothing. Cluster tests (``@pytest.mark.cluster``) use the shared control
plane of tests/cluster (``k8s_cluster``) and, through ``klambda_system``, the CRDs plus the
chart's ServiceAccounts and RBAC; ``operator_process`` / ``gateway_process`` run the real
operator and gateway as local processes authenticated as those chart ServiceAccounts. The
gateway serves the lane on TCP (``gateway_ports["lane"]``) and the operator points function
pods at it (``KLAMBDA_GATEWAY_LANE_ADDRESS``), with gRPC as their fallback, as the chart does.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster.harness import TestCluster
from cluster.plugin import k8s_cluster  # noqa: F401  (shared session fixture)

ROOT = Path(__file__).resolve().parents[2]

CHART = ROOT / "charts" / "klambda"
CRDS = CHART / "crds" / "klambda.io.yaml"
SYSTEM_NS = "klambda-system"
RELEASE = "klambda"
_counter = itertools.count(1)


def helm_binary() -> str | None:
    try:
        from cluster.harness import find_bin_dir

        path = os.path.join(find_bin_dir(), "helm")
    except Exception:  # noqa: BLE001  (no bin dir: no helm)
        path = ""
    return path if path and os.access(path, os.X_OK) else shutil.which("helm")


def helm_template(*args: str) -> list[dict[str, Any]]:
    helm = helm_binary()
    if helm is None:
        pytest.skip("helm binary missing: run tools/build-k8s.sh")
    out = subprocess.run(
        [helm, "template", RELEASE, str(CHART), "--namespace", SYSTEM_NS, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def crds_installed(k8s_cluster: TestCluster) -> TestCluster:  # noqa: F811
    k8s_cluster.kubectl("apply", "--server-side", "--field-manager=klambda-test", "-f", str(CRDS))
    k8s_cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        *[f"crd/{d['metadata']['name']}" for d in yaml.safe_load_all(CRDS.read_text()) if d],
    )
    return k8s_cluster


@pytest.fixture(scope="session")
def klambda_system(crds_installed: TestCluster) -> TestCluster:
    """The chart rendered by helm and applied server-side (workloads at 0 replicas: the
    operator and gateway run as local processes below, with the chart's identities)."""
    cluster = crds_installed
    if cluster.api.get_or_none(f"/api/v1/namespaces/{SYSTEM_NS}") is None:
        cluster.create_namespace(SYSTEM_NS)
    docs = helm_template(
        "--set",
        "operator.replicas=0",
        "--set",
        "gateway.replicas=0",
        "--set",
        "gateway.persistence.enabled=false",
        "--set",
        "networkPolicy.enabled=true",  # validated by the API server (not enforced here)
    )
    manifest = yaml.safe_dump_all(docs)
    cluster.kubectl("apply", "--server-side", "--field-manager=helm", "-f", "-", input=manifest)
    return cluster


@pytest.fixture
def fn_namespace(crds_installed: TestCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    slug = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower().replace("_", "-"))
    name = f"k{next(_counter)}-{slug}"[:40].strip("-")
    crds_installed.create_namespace(name)
    yield name
    crds_installed.api.delete(f"/api/v1/namespaces/{name}")


class Proc:
    """A component process with its log; stopped (SIGTERM, then SIGKILL) by the fixture."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: str) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        log = open(self.log_path, "ab")  # noqa: SIM115  (owned by the child)
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(ROOT),
        )
        log.close()
        return self

    def kill9(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")[-6000:]
        except OSError:
            return ""


def component_env(kubeconfig: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLAMBDA_")}
    env.update({"KUBECONFIG": kubeconfig, "PYTHONUNBUFFERED": "1", **extra})
    return env


@pytest.fixture(scope="session")
def component_logs() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="klambda-k8s-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


OPERATOR_HEALTH_PORT = free_port()
# One lane port per session: a restarted operator (start_operator without lane_port) must
# build the same pod template, or its Deployments would roll.
GATEWAY_LANE_PORT = free_port()


@pytest.fixture(scope="session")
def gateway_ports() -> dict[str, int]:
    return {"http": free_port(), "grpc": free_port(), "lane": GATEWAY_LANE_PORT}


def start_operator(
    cluster: TestCluster, logs: str, grpc_port: int, *, lane_port: int = GATEWAY_LANE_PORT
) -> Proc:
    kubeconfig = cluster.kubeconfig_for_service_account(
        SYSTEM_NS, f"{RELEASE}-operator", create=False
    )
    env = component_env(
        kubeconfig,
        KLAMBDA_GATEWAY_GRPC_ADDRESS=f"127.0.0.1:{grpc_port}",
        KLAMBDA_GATEWAY_LANE_ADDRESS=f"127.0.0.1:{lane_port}" if lane_port else "",
        KLAMBDA_OPERATOR_RETRY_SECONDS="2",
        KLAMBDA_OPERATOR_VERIFY_URLS="1",
        KLAMBDA_OPERATOR_LIVENESS=f"http://127.0.0.1:{OPERATOR_HEALTH_PORT}/healthz",
    )
    return Proc("operator", [sys.executable, "-m", "klambda_operator"], env, logs).start()


@pytest.fixture(scope="session")
def operator_process(
    klambda_system: TestCluster, component_logs: str, gateway_ports: dict[str, int]
) -> Iterator[Proc]:
    proc = start_operator(
        klambda_system, component_logs, gateway_ports["grpc"], lane_port=gateway_ports["lane"]
    )
    yield proc
    proc.stop()
    if os.environ.get("KLAMBDA_SHOW_COMPONENT_LOGS"):
        print(proc.log(), file=sys.stderr)


@pytest.fixture(scope="session")
def gateway_process(
    klambda_system: TestCluster, component_logs: str, gateway_ports: dict[str, int]
) -> Iterator[Proc]:
    kubeconfig = klambda_system.kubeconfig_for_service_account(
        SYSTEM_NS, f"{RELEASE}-gateway", create=False
    )
    state = tempfile.mkdtemp(prefix="klambda-gw-state-")
    env = component_env(
        kubeconfig,
        KLAMBDA_HOST="127.0.0.1",
        KLAMBDA_PORT=str(gateway_ports["http"]),
        KLAMBDA_GRPC_HOST="127.0.0.1",
        KLAMBDA_GRPC_PORT=str(gateway_ports["grpc"]),
        KLAMBDA_LANE_ENABLED="1",
        KLAMBDA_LANE_HOST="127.0.0.1",
        KLAMBDA_LANE_PORT=str(gateway_ports["lane"]),
        KLAMBDA_STATE_DIR=state,
        KLAMBDA_KEEP_WARM_SECONDS="4",
        KLAMBDA_QUEUE_TIMEOUT_SECONDS="40",
        KLAMBDA_ASYNC_LEASE_SECONDS="10",  # > the test functions' timeouts
        KLAMBDA_ASYNC_RETRY_BASE_SECONDS="1",
        KLAMBDA_LOG_LEVEL="INFO",
    )
    proc = Proc(
        "gateway", [sys.executable, "-m", "klambda_gateway.k8s_scaler"], env, component_logs
    ).start()
    wait_listening(proc, gateway_ports["http"])  # the gateway binds gRPC and the lane first
    yield proc
    proc.stop()
    shutil.rmtree(state, ignore_errors=True)
    if os.environ.get("KLAMBDA_SHOW_COMPONENT_LOGS"):
        print(proc.log(), file=sys.stderr)


def wait_listening(proc: Proc, port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc.popen is not None and proc.popen.poll() is not None:
                pytest.fail(f"{proc.name} exited: {proc.log()}")
            time.sleep(0.2)
    pytest.fail(f"{proc.name} did not listen within 30 s: {proc.log()}")
