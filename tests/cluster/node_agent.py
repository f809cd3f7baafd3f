"""A test-only node agent: registers a Node, renews its Lease, and runs the pods bound to it
as local process groups (see podrunner.py). Run as `python -m cluster.node_agent` with
`tests/` on PYTHONPATH; the harness does that. Test infrastructure, not product code.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import logging
import os
import platform
import shutil
import signal
import sys
import threading
import time
from typing import Any

from .kubeapi import ApiError, KubeClient
from .podrunner import AgentContext, PodWorker
from .podspec import HostEnv
from .procs import ProcRecord, save_records, stop_group
from .rootfs import image_dirs

JSON = dict[str, Any]
log = logging.getLogger("node-agent")
LEASE_SECONDS = 40
RENEW_EVERY = 10.0


def micro_time(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeAgent:
    def __init__(
        self,
        *,
        api: KubeClient,
        node: str,
        state_dir: str,
        host: HostEnv,
        host_ip: str,
        pod_cidr: str,
        backoff_base: float,
        backoff_max: float,
    ) -> None:
        self.api = api
        self.node = node
        self.state_dir = state_dir
        self.host_ip = host_ip
        self.pod_cidr = pod_cidr
        self.stop = threading.Event()
        self.workers: dict[str, PodWorker] = {}
        self._lock = threading.Lock()
        self._containers: dict[int, ProcRecord] = {}
        self._ips = ipaddress.ip_network(pod_cidr).hosts()
        self.ctx = AgentContext(
            api=api,
            node=node,
            host_ip=host_ip,
            host=host,
            state_dir=state_dir,
            allocate_ip=self._allocate_ip,
            register=self._register,
            unregister=self._unregister,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
        )

    # ---- bookkeeping -----------------------------------------------------------------------
    def _allocate_ip(self) -> str:
        with self._lock:
            try:
                return str(next(self._ips))
            except StopIteration:  # wrap around; tests never have 250 live pods per node
                self._ips = ipaddress.ip_network(self.pod_cidr).hosts()
                return str(next(self._ips))

    def _save_containers(self) -> None:
        save_records(
            os.path.join(self.state_dir, "containers.json"),
            list(self._containers.values()),
            {"node": self.node},
        )

    def _register(self, rec: ProcRecord) -> None:
        with self._lock:
            self._containers[rec.pid] = rec
            self._save_containers()

    def _unregister(self, rec: ProcRecord) -> None:
        with self._lock:
            self._containers.pop(rec.pid, None)
            self._save_containers()

    # ---- node and lease --------------------------------------------------------------------
    def _node_status(self) -> JSON:
        now = micro_time(time.time())[:19] + "Z"
        res = {"cpu": "64", "memory": "256Gi", "pods": "250", "ephemeral-storage": "100Gi"}

        def cond(kind: str, status: str, reason: str) -> JSON:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": reason,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }

        return {
            "capacity": res,
            "allocatable": res,
            "conditions": [
                cond("Ready", "True", "KubeletReady"),
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": self.host_ip},
                {"type": "Hostname", "address": self.node},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": self.node,
                "systemUUID": self.node,
                "bootID": str(os.getpid()),
                "kernelVersion": platform.release(),
                "osImage": "klambda test node agent",
                "containerRuntimeVersion": "process://0.1",
                "kubeletVersion": "v0.0.0-test",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(
                    platform.machine(), platform.machine()
                ),
            },
        }

    def register_node(self) -> JSON:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node,
                "labels": {
                    "kubernetes.io/hostname": self.node,
                    "kubernetes.io/os": "linux",
                    "klambda.dev/test-node": "true",
                },
            },
            "spec": {"podCIDR": self.pod_cidr, "podCIDRs": [self.pod_cidr]},
        }
        try:
            self.api.create("/api/v1/nodes", body)
        except ApiError as e:
            if e.status != 409:
                raise
        self.refresh_node()
        return self.api.get(f"/api/v1/nodes/{self.node}")

    def refresh_node(self) -> None:
        path = f"/api/v1/nodes/{self.node}"
        self.api.merge_patch(path + "/status", {"status": self._node_status()})
        node = self.api.get(path)
        if node["spec"].get("taints"):  # TaintNodesByCondition adds not-ready at creation
            self.api.merge_patch(path, {"spec": {"taints": None}})

    def renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node}"
        now = micro_time(time.time())
        try:
            self.api.merge_patch(path, {"spec": {"renewTime": now, "holderIdentity": self.node}})
            return
        except ApiError as e:
            if e.status != 404:
                raise
        node = self.api.get(f"/api/v1/nodes/{self.node}")
        self.api.create(
            path.rsplit("/", 1)[0],
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.node,
                    "ownerReferences": [
                        {
                            "apiVersion": "v1",
                            "kind": "Node",
                            "name": self.node,
                            "uid": node["metadata"]["uid"],
                        }
                    ],
                },
                "spec": {
                    "holderIdentity": self.node,
                    "leaseDurationSeconds": LEASE_SECONDS,
                    "renewTime": now,
                },
            },
        )

    def heartbeat_loop(self) -> None:
        next_status = time.monotonic() + 60
        while not self.stop.is_set():
            try:
                self.renew_lease()
                if time.monotonic() >= next_status:
                    next_status = time.monotonic() + 60
                    self.refresh_node()
            except Exception as e:  # noqa: BLE001 - keep heartbeating; the API may blip
                log.warning("heartbeat failed: %s", e)
            self.stop.wait(RENEW_EVERY)

    # ---- pods ------------------------------------------------------------------------------
    def _dispatch(self, pod: JSON) -> None:
        uid = pod["metadata"]["uid"]
        w = self.workers.get(uid)
        if w is not None:
            w.update(pod)
            return
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            if pod["metadata"].get("deletionTimestamp"):  # nothing runs: just finish deletion
                self.api.delete(
                    f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/"
                    f"{pod['metadata']['name']}",
                    {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
                )
            return
        w = PodWorker(self.ctx, pod)
        self.workers[uid] = w
        w.start()

    def _reap(self, live_uids: set[str] | None) -> None:
        for uid, w in list(self.workers.items()):
            if live_uids is not None and uid not in live_uids:
                w.gone.set()
            if w.finished.is_set():
                del self.workers[uid]

    def watch_loop(self) -> None:
        selector = f"spec.nodeName={self.node}"
        while not self.stop.is_set():
            try:
                lst = self.api.get("/api/v1/pods", fieldSelector=selector)
                for pod in lst["items"]:
                    self._dispatch(pod)
                self._reap({p["metadata"]["uid"] for p in lst["items"]})
                rv = lst["metadata"]["resourceVersion"]
                for ev in self.api.watch(
                    "/api/v1/pods", resource_version=rv, timeout_seconds=20, fieldSelector=selector
                ):
                    if self.stop.is_set():
                        return
                    kind, obj = ev["type"], ev["object"]
                    if kind == "ERROR":
                        break
                    if kind in ("ADDED", "MODIFIED"):
                        self._dispatch(obj)
                    elif kind == "DELETED":
                        w = self.workers.get(obj["metadata"]["uid"])
                        if w is not None:
                            w.gone.set()
                    self._reap(None)
            except Exception as e:  # noqa: BLE001 - relist after any watch problem
                if not self.stop.is_set():
                    log.warning("pod watch failed, relisting: %s", e)
                    self.stop.wait(1.0)

    def run(self) -> None:
        self.register_node()
        self.renew_lease()
        threading.Thread(target=self.heartbeat_loop, name="heartbeat", daemon=True).start()
        threading.Thread(target=self.watch_loop, name="pod-watch", daemon=True).start()
        log.info("node %s registered; running pods", self.node)
        self.stop.wait()
        self.shutdown()

    def shutdown(self) -> None:
        """Stop every container (short grace), then anything left in the registry."""
        workers = list(self.workers.values())
        for w in workers:
            w.shutdown.set()
        deadline = time.monotonic() + 15
        for w in workers:
            w.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:
            leftovers = list(self._containers.values())
        for rec in leftovers:
            stop_group(rec, grace=0.0)
        log.info("node agent stopped")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--node-name", default="node-1")
    p.add_argument("--state-dir", required=True)
    p.add_argument(
        "--api-port",
        type=int,
        required=True,
        help="apiserver port on 127.0.0.1 (KUBERNETES_SERVICE_PORT in containers)",
    )
    p.add_argument("--host-ip", default=None, help="Node InternalIP (synthetic)")
    p.add_argument("--pod-cidr", default=None, help="synthetic pod IPs come from here")
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter that container commands `python`/`python3` run as",
    )
    p.add_argument("--backoff-base", type=float, default=1.0)
    p.add_argument("--backoff-max", type=float, default=10.0)
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(threadName)s %(message)s",
    )
    index = sum(args.node_name.encode()) % 200 + 1
    os.makedirs(args.state_dir, exist_ok=True)
    host = HostEnv(
        python=args.python,
        venv_bin=os.path.dirname(args.python),
        api_port=args.api_port,
        can_mount=os.geteuid() == 0 and shutil.which("unshare") is not None,
        image_dirs=image_dirs(python=args.python, state_dir=args.state_dir),
    )
    log.info("image dirs (kept visible under volumes): %s", " ".join(host.image_dirs))
    agent = NodeAgent(
        api=KubeClient.from_kubeconfig(args.kubeconfig),
        node=args.node_name,
        state_dir=args.state_dir,
        host=host,
        host_ip=args.host_ip or f"10.240.1.{index}",
        pod_cidr=args.pod_cidr or f"10.244.{index}.0/24",
        backoff_base=args.backoff_base,
        backoff_max=args.backoff_max,
    )
    signal.signal(signal.SIGTERM, lambda *_: agent.stop.set())
    signal.signal(signal.SIGINT, lambda *_: agent.stop.set())
    agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
