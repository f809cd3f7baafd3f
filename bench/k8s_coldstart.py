"""Kubernetes-mode cold start: a function at 0 replicas -> first response, against the
baseline of a bare Deployment going 0 -> 1 Ready, in the same test control plane.

    .venv/bin/python bench/k8s_coldstart.py [--rounds 5]

Starts the tests' control plane (tests/cluster; needs tools/build-k8s.sh binaries), installs
the CRDs and the chart's RBAC, runs the operator and the gateway as processes with their
chart ServiceAccounts, then per round:
  * baseline: PATCH /scale 0 -> 1 of a plain Deployment (same node agent, a `python` that
    sleeps) and wait until readyReplicas == 1;
  * klambda: boto3 invoke of a Ready Function whose Deployment is at 0 replicas, until the
    response arrives (gateway scales through /scale, the pod's agent dials back, runs it).
Prints medians and the difference (goal: klambda <= baseline + 300 ms). Pods are processes
here (no image pull, no container runtime), on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
tempfile.tempdir = "/var/tmp"  # see tests/k8s/conftest.py: keep the node's volumes off /tmp

import boto3
import yaml
from botocore.config import Config
from cluster.harness import TestCluster, find_bin_dir

NS = "bench"
SYSTEM = "klambda-system"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(check: Any, *, timeout: float, what: str, interval: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(what)


def install(cluster: TestCluster, bin_dir: str) -> None:
    crds = ROOT / "charts/klambda/crds/klambda.io.yaml"
    cluster.kubectl("apply", "--server-side", "-f", str(crds))
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(crds.read_text()) if d]
    cluster.kubectl("wait", "--for=condition=Established", *[f"crd/{n}" for n in names])
    cluster.create_namespace(SYSTEM)
    cluster.create_namespace(NS)
    rendered = subprocess.run(
        [
            os.path.join(bin_dir, "helm"),
            "template",
            "klambda",
            str(ROOT / "charts/klambda"),
            "-n",
            SYSTEM,
            "--set",
            "operator.replicas=0",
            "--set",
            "gateway.replicas=0",
            "--set",
            "gateway.persistence.enabled=false",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cluster.kubectl("apply", "--server-side", "-f", "-", input=rendered)


def start(name: str, argv: list[str], env: dict[str, str], logs: str) -> subprocess.Popen[bytes]:
    with open(os.path.join(logs, f"{name}.log"), "ab") as log:
        return subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(ROOT),
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def baseline_round(cluster: TestCluster, i: int) -> float:
    name = f"bare-{i}"
    cluster.apply(
        yaml.safe_dump(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": NS},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "c",
                                    "image": "python:3.12-slim",
                                    "command": ["python", "-c", "import time; time.sleep(600)"],
                                }
                            ]
                        },
                    },
                },
            }
        )
    )
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/{name}"
    wait(
        lambda: cluster.api.get(path).get("status", {}).get("observedGeneration"),
        timeout=30,
        what="deployment observed",
    )
    started = time.monotonic()
    cluster.api.merge_patch(f"{path}/scale", {"spec": {"replicas": 1}})
    wait(
        lambda: (cluster.api.get(path).get("status") or {}).get("readyReplicas") == 1,
        timeout=60,
        what="bare deployment ready",
    )
    elapsed = time.monotonic() - started
    cluster.api.merge_patch(f"{path}/scale", {"spec": {"replicas": 0}})
    return elapsed


def klambda_round(cluster: TestCluster, lam: Any, i: int) -> tuple[float, str]:
    name = f"cold-{i}"
    cluster.apply(
        yaml.safe_dump(
            {
                "apiVersion": "klambda.io/v1alpha1",
                "kind": "Function",
                "metadata": {"name": name, "namespace": NS},
                "spec": {
                    "runtime": "python3.12",
                    "handler": "app.handler",
                    "code": {"inline": {"app.py": "def handler(e, c):\n    return 'ok'\n"}},
                },
            }
        )
    )
    cluster.kubectl("wait", "--for=condition=Ready", "--timeout=60s", "-n", NS, f"function/{name}")
    arn = f"arn:aws:lambda:us-east-1:{NS}:function:{name}"

    def visible() -> bool:
        try:
            lam.invoke(FunctionName=arn, InvocationType="DryRun")
            return True
        except lam.exceptions.ResourceNotFoundException:
            return False

    wait(visible, timeout=30, what="function visible to the gateway", interval=0.05)
    started = time.monotonic()
    resp = lam.invoke(FunctionName=arn, Payload=b"{}")
    elapsed = time.monotonic() - started
    body = json.loads(resp["Payload"].read())
    if body != "ok":
        raise RuntimeError(f"unexpected response {body!r}")
    phases = resp["ResponseMetadata"]["HTTPHeaders"].get("x-klambda-cold-start", "")
    return elapsed, phases


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    bin_dir = find_bin_dir()
    logs = tempfile.mkdtemp(prefix="klambda-bench-")
    cluster = TestCluster(bin_dir=bin_dir).start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        install(cluster, bin_dir)
        http, grpc, lane = free_port(), free_port(), free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("KLAMBDA_")}
        op_cfg = cluster.kubeconfig_for_service_account(SYSTEM, "klambda-operator", create=False)
        gw_cfg = cluster.kubeconfig_for_service_account(SYSTEM, "klambda-gateway", create=False)
        procs.append(
            start(
                "operator",
                [sys.executable, "-m", "klambda_operator"],
                {
                    **base,
                    "KUBECONFIG": op_cfg,
                    "KLAMBDA_GATEWAY_GRPC_ADDRESS": f"127.0.0.1:{grpc}",
                    "KLAMBDA_GATEWAY_LANE_ADDRESS": f"127.0.0.1:{lane}",
                },
                logs,
            )
        )
        state = tempfile.mkdtemp(prefix="klambda-bench-state-")
        procs.append(
            start(
                "gateway",
                [sys.executable, "-m", "klambda_gateway.k8s_scaler"],
                {
                    **base,
                    "KUBECONFIG": gw_cfg,
                    "KLAMBDA_HOST": "127.0.0.1",
                    "KLAMBDA_PORT": str(http),
                    "KLAMBDA_GRPC_HOST": "127.0.0.1",
                    "KLAMBDA_GRPC_PORT": str(grpc),
                    "KLAMBDA_LANE_HOST": "127.0.0.1",
                    "KLAMBDA_LANE_PORT": str(lane),
                    "KLAMBDA_STATE_DIR": state,
                    "KLAMBDA_QUEUE_TIMEOUT_SECONDS": "60",
                },
                logs,
            )
        )
        wait(
            lambda: socket.socket().connect_ex(("127.0.0.1", http)) == 0,
            timeout=30,
            what="gateway listening",
            interval=0.1,
        )
        lam = boto3.client(
            "lambda",
            endpoint_url=f"http://127.0.0.1:{http}",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"max_attempts": 0}, read_timeout=90),
        )
        baseline, klambda = [], []
        for i in range(args.rounds):
            baseline.append(baseline_round(cluster, i))
            elapsed, phases = klambda_round(cluster, lam, i)
            klambda.append(elapsed)
            print(
                f"round {i}: bare deployment 0->1 Ready {baseline[-1] * 1000:7.0f} ms | "
                f"klambda 0 replicas -> response {elapsed * 1000:7.0f} ms ({phases})",
                flush=True,
            )
        b, k = statistics.median(baseline), statistics.median(klambda)
        print(
            f"median: baseline {b * 1000:.0f} ms, klambda {k * 1000:.0f} ms, "
            f"difference {(k - b) * 1000:+.0f} ms (goal <= +300 ms), ratio {k / b:.2f}x"
        )
    finally:
        for proc in procs:
            stop(proc)
        cluster.stop()
        shutil.rmtree(cluster.state_dir, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
