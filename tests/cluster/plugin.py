"""pytest fixture for the test control plane: `k8s_cluster` (session scope).

Import it into any conftest (`from cluster.plugin import k8s_cluster  # noqa: F401`) to use the
cluster from other test directories; one cluster is shared per pytest process.
Missing binaries: the tests are skipped with a message, or fail when KLAMBDA_REQUIRE_CLUSTER=1
(CI). Nothing is built here: run tools/build-k8s.sh.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Iterator

import pytest

from .harness import ClusterError, TestCluster, find_bin_dir

_lock = threading.Lock()
_shared: dict[str, object] = {"cluster": None, "users": 0}


def _acquire() -> TestCluster:
    with _lock:
        cluster = _shared["cluster"]
        if cluster is None:
            bin_dir = find_bin_dir()
            keep = os.environ.get("KLAMBDA_KEEP_CLUSTER_STATE") == "1"
            cluster = TestCluster(bin_dir=bin_dir).start()
            cluster.keep_state = keep  # type: ignore[attr-defined]
            print(
                f"\n[k8s_cluster] control plane up in {cluster.start_seconds:.1f}s; "
                f"kubeconfig {cluster.admin_kubeconfig}",
                file=sys.stderr,
            )
            _shared["cluster"] = cluster
        _shared["users"] = int(_shared["users"]) + 1  # type: ignore[call-overload]
        return cluster  # type: ignore[return-value]


def _release(failed: bool) -> None:
    with _lock:
        _shared["users"] = int(_shared["users"]) - 1  # type: ignore[call-overload]
        cluster = _shared["cluster"]
        if _shared["users"] == 0 and isinstance(cluster, TestCluster):
            cluster.stop()
            if getattr(cluster, "keep_state", False):
                print(f"\n[k8s_cluster] state kept in {cluster.state_dir}", file=sys.stderr)
            elif failed:  # keep the logs for debugging, drop the bulk (etcd data, volumes)
                shutil.rmtree(os.path.join(cluster.state_dir, "etcd"), ignore_errors=True)
                for node in cluster.nodes:
                    pods = os.path.join(cluster.state_dir, "nodes", node, "pods")
                    shutil.rmtree(pods, ignore_errors=True)
                print(f"\n[k8s_cluster] logs kept in {cluster.state_dir}", file=sys.stderr)
            else:
                shutil.rmtree(cluster.state_dir, ignore_errors=True)
            _shared["cluster"] = None


@pytest.fixture(scope="session")
def k8s_cluster(request: pytest.FixtureRequest) -> Iterator[TestCluster]:
    """A running control plane with one node agent (node-1); see tests/README.md."""
    try:
        cluster = _acquire()
    except ClusterError as e:
        if os.environ.get("KLAMBDA_REQUIRE_CLUSTER") == "1":
            pytest.fail(
                f"KLAMBDA_REQUIRE_CLUSTER=1 but the test cluster is unavailable: {e}", pytrace=False
            )
        pytest.skip(f"test cluster unavailable: {e}")
    failed_before = request.session.testsfailed
    try:
        yield cluster
    finally:
        _release(request.session.testsfailed > failed_before)
