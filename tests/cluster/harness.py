"""The test control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
the Python node agent, as local processes on 127.0.0.1 with free ports.

Test infrastructure, not product code. Binaries come from tools/build-k8s.sh (or
KUBEBUILDER_ASSETS); nothing is built here. See tests/README.md.
"""

from __future__ import annotations

import atexit
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

from .kubeapi import ApiError, KubeClient, kubeconfig_yaml
from .pki import TestPKI
from .procs import (
    ProcRecord,
    free_port,
    load_records,
    save_records,
    spawn,
    stop_group,
    wait_until,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTS_DIR = os.path.join(REPO_ROOT, "tests")
CLUSTER_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
)
# Non-loopback address the apiserver advertises; nothing listens there (see the reference:
# loopback is invalid for the kubernetes Endpoints, so the endpoint reconciler is off).
ADVERTISE_ADDRESS = "10.240.0.1"
SERVICE_CIDR = "10.0.0.0/24"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "job-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "pod-garbage-collector-controller",
    "resourcequota-controller",
    "disruption-controller",
    "clusterrole-aggregation-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
)


class ClusterError(Exception):
    """The test control plane could not be found, started or used."""


def find_bin_dir() -> str:
    """The directory holding the control-plane binaries; builds nothing.

    Order: KUBEBUILDER_ASSETS (if complete), then `tools/build-k8s.sh --print-bin-dir`.
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and all(os.access(os.path.join(assets, b), os.X_OK) for b in CLUSTER_BINARIES):
        return assets
    script = os.path.join(REPO_ROOT, "tools", "build-k8s.sh")
    res = subprocess.run(
        [script, "--print-bin-dir"], capture_output=True, text=True, timeout=30, check=False
    )
    lines = res.stdout.strip().splitlines()
    if res.returncode != 0 or not lines:
        raise ClusterError(
            f"Kubernetes control-plane binaries are missing ({res.stderr.strip()}). "
            "Build them once with `tools/build-k8s.sh` (about 10 min cold on 2 cores, cached) "
            "or point KUBEBUILDER_ASSETS at a directory with " + ", ".join(CLUSTER_BINARIES) + "."
        )
    return lines[-1]


class TestCluster:
    """A running control plane. `start()` brings it up; `stop()` leaves no process behind."""

    __test__ = False

    def __init__(
        self, *, bin_dir: str, state_dir: str | None = None, tie_to_parent: bool = True
    ) -> None:
        self.bin_dir = bin_dir
        self.state_dir = state_dir or tempfile.mkdtemp(prefix="klambda-cluster-")
        os.makedirs(os.path.join(self.state_dir, "logs"), exist_ok=True)
        self.tie_to_parent = tie_to_parent
        self.records: list[ProcRecord] = []
        self._popens: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.pki: TestPKI | None = None
        self.admin_kubeconfig = os.path.join(self.state_dir, "admin.kubeconfig")
        self.server = ""
        self.nodes: list[str] = []
        self.start_seconds = 0.0
        self._api: KubeClient | None = None
        self._stopped = False

    # ---- lifecycle -------------------------------------------------------------------------
    def _bin(self, name: str) -> str:
        return os.path.join(self.bin_dir, name)

    def _log(self, name: str) -> str:
        return os.path.join(self.state_dir, "logs", f"{name}.log")

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        popen, rec = spawn(
            name, args, log=self._log(name), env=env, tie_to_parent=self.tie_to_parent
        )
        self._popens[name] = popen
        self.records.append(rec)
        self._save()

    def _save(self) -> None:
        save_records(
            os.path.join(self.state_dir, "state.json"),
            self.records,
            {
                "kubeconfig": self.admin_kubeconfig,
                "server": self.server,
                "ports": self.ports,
                "bin_dir": self.bin_dir,
                "nodes": self.nodes,
            },
        )

    def _check_alive(self, name: str) -> None:
        p = self._popens.get(name)
        if p is not None and p.poll() is not None:
            with open(self._log(name), errors="replace") as f:
                tail = f.read()[-3000:]
            raise ClusterError(f"{name} exited with {p.returncode}; log tail:\n{tail}")

    def start(self, *, nodes: tuple[str, ...] = ("node-1",), timeout: float = 90.0) -> TestCluster:
        t0 = time.monotonic()
        if self.tie_to_parent:  # `testcluster.py up` leaves the cluster running on exit
            atexit.register(self.stop)
        for b in CLUSTER_BINARIES:
            if not os.access(self._bin(b), os.X_OK):
                raise ClusterError(f"{self._bin(b)} missing: run tools/build-k8s.sh")
        try:
            self._start_etcd(timeout)
            self._start_apiserver(timeout)
            self._start_controllers(timeout)
            for n in nodes:
                self.start_node_agent(n, timeout=timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def _start_etcd(self, timeout: float) -> None:
        client, peer = free_port(), free_port()
        self.ports.update(etcd=client, etcd_peer=peer)
        data = os.path.join(self.state_dir, "etcd")
        self._spawn(
            "etcd",
            [
                self._bin("etcd"),
                "--name=etcd0",
                f"--data-dir={data}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=etcd0=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            self._check_alive("etcd")
            with urllib.request.urlopen(f"http://127.0.0.1:{client}/health", timeout=2) as r:
                return b'"true"' in r.read()

        wait_until(healthy, timeout=timeout, what="etcd /health")

    def _start_apiserver(self, timeout: float) -> None:
        port = free_port()
        self.ports["apiserver"] = port
        self.server = f"https://127.0.0.1:{port}"
        pki = self.pki = TestPKI(os.path.join(self.state_dir, "pki"))
        serving = pki.serving_cert(
            stem="apiserver",
            dns=[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            ips=["127.0.0.1", ADVERTISE_ADDRESS, "10.0.0.1"],
        )
        admin = pki.client_cert(stem="admin", user="admin", groups=("system:masters",))
        with open(self.admin_kubeconfig, "w") as f:
            f.write(
                kubeconfig_yaml(
                    server=self.server,
                    ca_pem=pki.ca_pem,
                    user="admin",
                    cert_file=admin.cert,
                    key_file=admin.key,
                )
            )
        self._spawn(
            "kube-apiserver",
            [
                self._bin("kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                f"--secure-port={port}",
                "--bind-address=127.0.0.1",
                f"--advertise-address={ADVERTISE_ADDRESS}",
                "--endpoint-reconciler-type=none",
                f"--cert-dir={os.path.join(self.state_dir, 'apiserver-certs')}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={pki.ca_file}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={pki.sa_public}",
                f"--service-account-signing-key-file={pki.sa_private}",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._api = KubeClient.from_kubeconfig(self.admin_kubeconfig)

        def ready() -> bool:
            self._check_alive("kube-apiserver")
            with self.api._open("GET", "/readyz", timeout=3) as r:
                return bool(r.status == 200)

        wait_until(ready, timeout=timeout, what="kube-apiserver /readyz")

    def _component_kubeconfig(self, name: str, user: str, groups: tuple[str, ...]) -> str:
        assert self.pki is not None
        cert = self.pki.client_cert(stem=name, user=user, groups=groups)
        path = os.path.join(self.state_dir, f"{name}.kubeconfig")
        with open(path, "w") as f:
            f.write(
                kubeconfig_yaml(
                    server=self.server,
                    ca_pem=self.pki.ca_pem,
                    user=user,
                    cert_file=cert.cert,
                    key_file=cert.key,
                )
            )
        return path

    def _start_controllers(self, timeout: float) -> None:
        assert self.pki is not None
        kcm_kc = self._component_kubeconfig(
            "kube-controller-manager", "system:kube-controller-manager", ("system:masters",)
        )
        sched_kc = self._component_kubeconfig("kube-scheduler", "system:kube-scheduler", ())
        kcm_port, sched_port = free_port(), free_port()
        self.ports.update(controller_manager=kcm_port, scheduler=sched_port)
        self._spawn(
            "kube-controller-manager",
            [
                self._bin("kube-controller-manager"),
                f"--kubeconfig={kcm_kc}",
                f"--authentication-kubeconfig={kcm_kc}",
                f"--authorization-kubeconfig={kcm_kc}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                f"--cert-dir={os.path.join(self.state_dir, 'kcm-certs')}",
                "--controllers=" + ",".join(CONTROLLERS),
                f"--root-ca-file={self.pki.ca_file}",
                f"--service-account-private-key-file={self.pki.sa_private}",
                "--use-service-account-credentials=false",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                self._bin("kube-scheduler"),
                f"--kubeconfig={sched_kc}",
                f"--authentication-kubeconfig={sched_kc}",
                f"--authorization-kubeconfig={sched_kc}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={sched_port}",
                f"--cert-dir={os.path.join(self.state_dir, 'scheduler-certs')}",
                "--v=1",
            ],
        )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE

        def healthz(name: str, port: int) -> bool:
            self._check_alive(name)
            url = f"https://127.0.0.1:{port}/healthz"
            with urllib.request.urlopen(url, context=insecure, timeout=2) as r:
                return bool(r.status == 200)

        wait_until(
            lambda: healthz("kube-scheduler", sched_port),
            timeout=timeout,
            what="kube-scheduler /healthz",
        )
        wait_until(
            lambda: healthz("kube-controller-manager", kcm_port),
            timeout=timeout,
            what="kube-controller-manager /healthz",
        )
        # The serviceaccount and root-ca publisher controllers are what pods need first.
        wait_until(
            lambda: (
                self.api.get_or_none("/api/v1/namespaces/default/serviceaccounts/default")
                and self.api.get_or_none("/api/v1/namespaces/default/configmaps/kube-root-ca.crt")
            ),
            timeout=timeout,
            what="default ServiceAccount and kube-root-ca.crt ConfigMap",
        )

    def start_node_agent(self, name: str, *, timeout: float = 60.0) -> None:
        """Start a node agent process for Node `name` and wait until it is schedulable."""
        env = dict(os.environ)
        env["PYTHONPATH"] = TESTS_DIR + os.pathsep + env.get("PYTHONPATH", "")
        agent_dir = os.path.join(self.state_dir, "nodes", name)
        os.makedirs(agent_dir, exist_ok=True)
        self._spawn(
            f"node-agent-{name}",
            [
                sys.executable,
                "-m",
                "cluster.node_agent",
                f"--kubeconfig={self.admin_kubeconfig}",
                f"--node-name={name}",
                f"--state-dir={agent_dir}",
                f"--api-port={self.ports['apiserver']}",
                f"--host-ip=10.240.1.{len(self.nodes) + 1}",  # unique per node of this cluster
                f"--pod-cidr=10.244.{len(self.nodes) + 1}.0/24",
            ],
            env=env,
        )
        self.nodes.append(name)
        self._save()

        def schedulable() -> bool:
            self._check_alive(f"node-agent-{name}")
            node = self.api.get(f"/api/v1/nodes/{name}")
            conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
            return conds.get("Ready") == "True" and not node["spec"].get("taints")

        wait_until(schedulable, timeout=timeout, what=f"node {name} Ready without taints")

    def stop(self) -> None:
        """Stop everything in reverse start order; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for rec in reversed(self.records):
            stop_group(rec, grace=10.0, popen=self._popens.get(rec.name))
        kill_leftover_pods(self.state_dir)

    # ---- helpers for tests -----------------------------------------------------------------
    @property
    def api(self) -> KubeClient:
        if self._api is None:
            raise ClusterError("the cluster is not started")
        return self._api

    def kubectl(
        self,
        *args: str,
        kubeconfig: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self._bin("kubectl"), f"--kubeconfig={kubeconfig or self.admin_kubeconfig}", *args]
        res = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and res.returncode != 0:
            raise ClusterError(
                f"kubectl {' '.join(args)} failed ({res.returncode}): {res.stderr.strip()}"
            )
        return res

    def apply(self, manifest: str, *, kubeconfig: str | None = None) -> str:
        return self.kubectl("apply", "-f", "-", input=manifest, kubeconfig=kubeconfig).stdout

    def create_namespace(self, name: str, *, labels: dict[str, str] | None = None) -> None:
        self.api.create(
            "/api/v1/namespaces",
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": labels or {}},
            },
        )

    def ensure_service_account(self, namespace: str, name: str) -> dict[str, Any]:
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts"
        try:
            return self.api.create(
                path, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
            )
        except ApiError as e:
            if e.status != 409:
                raise
            return self.api.get(f"{path}/{name}")

    def mint_token(
        self,
        namespace: str,
        name: str,
        *,
        audiences: list[str] | None = None,
        expiration_seconds: int = 3600,
    ) -> str:
        """A ServiceAccount token from the TokenRequest API."""
        spec: dict[str, Any] = {"expirationSeconds": expiration_seconds}
        if audiences:
            spec["audiences"] = audiences
        res = self.api.create(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        return str(res["status"]["token"])

    def kubeconfig_for_service_account(
        self, namespace: str, name: str, *, create: bool = True, expiration_seconds: int = 7200
    ) -> str:
        """Write a kubeconfig that authenticates as system:serviceaccount:<namespace>:<name>
        (a TokenRequest token, default lifetime 2 h; `create` makes the ServiceAccount)."""
        assert self.pki is not None
        if create:
            self.ensure_service_account(namespace, name)
        token = self.mint_token(namespace, name, expiration_seconds=expiration_seconds)
        path = os.path.join(self.state_dir, "sa-kubeconfigs", f"{namespace}.{name}.kubeconfig")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        user = f"system:serviceaccount:{namespace}:{name}"
        with open(path, "w") as f:
            f.write(
                kubeconfig_yaml(server=self.server, ca_pem=self.pki.ca_pem, user=user, token=token)
            )
        os.chmod(path, 0o600)
        return path

    def pod_log(self, namespace: str, pod: str, container: str) -> str:
        """Output of a container run by a node agent (kubectl logs needs a kubelet)."""
        for node in self.nodes:
            path = os.path.join(
                self.state_dir, "nodes", node, "logs", f"{namespace}_{pod}_{container}.log"
            )
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    return f.read()
        return ""

    def wait_for(self, check: Any, *, timeout: float = 60.0, what: str) -> Any:
        return wait_until(check, timeout=timeout, what=what)


def kill_leftover_pods(state_dir: str) -> None:
    """Kill container process groups a node agent recorded but did not stop (agent crash)."""
    nodes = os.path.join(state_dir, "nodes")
    if not os.path.isdir(nodes):
        return
    for node in os.listdir(nodes):
        path = os.path.join(nodes, node, "containers.json")
        if os.path.exists(path):
            recs, _ = load_records(path)
            for rec in recs:
                stop_group(rec, grace=0.0)


def stop_from_state(state_dir: str) -> int:
    """Stop a cluster started by another process (tools/testcluster.py down)."""
    path = os.path.join(state_dir, "state.json")
    if not os.path.exists(path):
        return 0
    recs, _ = load_records(path)
    alive = [r for r in recs if r.alive()]
    for rec in reversed(recs):
        stop_group(rec, grace=10.0)
    kill_leftover_pods(state_dir)
    return len(alive)


def remove_state(state_dir: str) -> None:
    shutil.rmtree(state_dir, ignore_errors=True)
