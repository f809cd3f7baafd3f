"""tools/testcluster.py as a user runs it: `up` prints a working admin kubeconfig and leaves
the control plane running after it exits, `status` reports it, `down` stops every process
(including a pod's container) and removes the state."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .harness import REPO_ROOT, ClusterError, find_bin_dir
from .procs import load_records, wait_until
from .util import container_pid, pid_alive

pytestmark = pytest.mark.cluster
CLI = os.path.join(REPO_ROOT, "tools", "testcluster.py")


def _cli(*args: str, state: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, CLI, *args, f"--state-dir={state}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_up_status_down(tmp_path: os.PathLike[str]) -> None:
    try:
        bin_dir = find_bin_dir()
    except ClusterError as e:
        if os.environ.get("KLAMBDA_REQUIRE_CLUSTER") == "1":
            pytest.fail(str(e))
        pytest.skip(str(e))
    state = os.path.join(str(tmp_path), "tc")
    up = _cli("up", state=state)
    assert up.returncode == 0, up.stderr
    kubeconfig = up.stdout.strip().splitlines()[-1]
    try:
        assert os.path.exists(kubeconfig)
        recs, _ = load_records(os.path.join(state, "state.json"))
        assert len(recs) == 5 and all(r.alive() for r in recs)  # outlived `up`
        status = _cli("status", state=state)
        assert status.returncode == 0 and "readyz 200" in status.stdout
        kubectl = [os.path.join(bin_dir, "kubectl"), f"--kubeconfig={kubeconfig}"]
        subprocess.run(
            [
                *kubectl,
                "run",
                "idle",
                "--image=x",
                "--command",
                "--",
                "python",
                "-c",
                "import time; time.sleep(600)",
            ],
            check=True,
            timeout=60,
            capture_output=True,
        )

        def idle_pid() -> int | None:
            out = subprocess.run(
                [*kubectl, "get", "pod", "idle", "-o", "json"],
                check=True,
                timeout=30,
                capture_output=True,
                text=True,
            ).stdout
            return container_pid(json.loads(out), "idle")

        pid = wait_until(idle_pid, timeout=60, what="pod idle running")
        assert isinstance(pid, int) and pid_alive(pid)
    finally:
        down = _cli("down", state=state)
    assert down.returncode == 0, down.stderr
    assert not any(r.alive() for r in recs)
    assert not pid_alive(pid)
    assert not os.path.exists(state)
    assert _cli("status", state=state).returncode == 1
