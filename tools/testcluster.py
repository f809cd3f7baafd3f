#!/usr/bin/env python3
"""Manual entry point for the test control plane (tests/cluster/harness.py).

  tools/testcluster.py up [--state-dir DIR] [--nodes node-1,node-2]
      start etcd, kube-apiserver, kube-controller-manager, kube-scheduler and node agents in
      the background; prints the admin kubeconfig path on its last line
  tools/testcluster.py status [--state-dir DIR]
  tools/testcluster.py down [--state-dir DIR] [--keep]

Default state dir: ${KLAMBDA_CACHE_DIR:-~/.cache/klambda}/testcluster. Binaries come from
tools/build-k8s.sh (run it first) or KUBEBUILDER_ASSETS. Use the project's venv python.
"""

from __future__ import annotations

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from cluster.harness import (
    ClusterError,
    TestCluster,
    find_bin_dir,
    remove_state,
    stop_from_state,
)
from cluster.kubeapi import KubeClient
from cluster.procs import load_records


def default_state_dir() -> str:
    cache = os.environ.get("KLAMBDA_CACHE_DIR", os.path.expanduser("~/.cache/klambda"))
    return os.path.join(cache, "testcluster")


def cmd_up(args: argparse.Namespace) -> int:
    state = os.path.join(args.state_dir, "state.json")
    if os.path.exists(state) and any(r.alive() for r in load_records(state)[0]):
        print(
            f"a test cluster is already running in {args.state_dir}; "
            "run `tools/testcluster.py down` first",
            file=sys.stderr,
        )
        return 1
    remove_state(args.state_dir)
    try:
        cluster = TestCluster(bin_dir=find_bin_dir(), state_dir=args.state_dir, tie_to_parent=False)
        cluster.start(nodes=tuple(n for n in args.nodes.split(",") if n))
    except (ClusterError, TimeoutError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"control plane up in {cluster.start_seconds:.1f}s; logs in {args.state_dir}/logs",
        file=sys.stderr,
    )
    print(
        f"kubectl: {cluster.bin_dir}/kubectl --kubeconfig {cluster.admin_kubeconfig}",
        file=sys.stderr,
    )
    print(cluster.admin_kubeconfig)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = os.path.join(args.state_dir, "state.json")
    if not os.path.exists(state):
        print(f"no test cluster state in {args.state_dir}")
        return 1
    recs, extra = load_records(state)
    for r in recs:
        print(f"{r.name:32} pid {r.pid:<8} {'running' if r.alive() else 'stopped'}")
    print(f"kubeconfig: {extra['kubeconfig']}")
    try:
        api = KubeClient.from_kubeconfig(str(extra["kubeconfig"]), timeout=3)
        with api._open("GET", "/readyz", timeout=3) as resp:
            print(f"apiserver {extra['server']}: readyz {resp.status}")
    except Exception as e:  # noqa: BLE001 - status reports, never raises
        print(f"apiserver {extra.get('server')}: unreachable ({e})")
        return 1
    return 0 if all(r.alive() for r in recs) else 1


def cmd_down(args: argparse.Namespace) -> int:
    n = stop_from_state(args.state_dir)
    if not args.keep:
        remove_state(args.state_dir)
    print(f"stopped {n} running process group(s)")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("command", choices=["up", "down", "status"])
    p.add_argument("--state-dir", default=default_state_dir())
    p.add_argument("--nodes", default="node-1", help="comma-separated node names (up)")
    p.add_argument("--keep", action="store_true", help="keep the state dir and logs (down)")
    args = p.parse_args()
    return {"up": cmd_up, "down": cmd_down, "status": cmd_status}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
