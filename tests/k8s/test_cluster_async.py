"""Async (Event) invocations in cluster mode survive a gateway restart.

Covers: Event -> 202 while the function is at 0 replicas, kill -9 of the gateway before the
events ran, restart on the same state directory (the PersistentVolume in the chart): every
event runs (at least once) on a pod.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cluster.harness import TestCluster

from .conftest import Proc, wait_listening
from .test_cluster_gateway import arn, lam, wait_visible  # noqa: F401  (fixture)
from .test_cluster_operator import apply, function, wait_ready

pytestmark = pytest.mark.cluster

RECORDER = """import os

def handler(event, context):
    with open(os.environ["OUT"], "a") as f:
        f.write(event["id"] + "\\n")
    return "ok"
"""


def test_events_survive_gateway_kill_9(
    klambda_system: TestCluster,
    operator_process: Proc,
    gateway_process: Proc,
    gateway_ports: dict[str, int],
    fn_namespace: str,
    lam: Any,  # noqa: F811
) -> None:
    cluster = klambda_system
    # Outside /tmp: a function pod's /tmp is its own emptyDir (Lambda's writable /tmp).
    Path("/var/tmp").mkdir(exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix="klambda-async-", dir="/var/tmp")) / "events.txt"
    os.chmod(out.parent, 0o777)
    apply(
        cluster,
        function(
            "recorder",
            fn_namespace,
            code={"inline": {"app.py": RECORDER}},
            environment={"variables": {"OUT": str(out)}},
        ),
    )
    wait_ready(cluster, "function", "recorder", fn_namespace)
    wait_visible(lam, fn_namespace, "recorder")
    ids = [uuid.uuid4().hex for _ in range(3)]
    for event_id in ids:
        resp = lam.invoke(
            FunctionName=arn(fn_namespace, "recorder"),
            InvocationType="Event",
            Payload=json.dumps({"id": event_id}).encode(),
        )
        assert resp["StatusCode"] == 202
    gateway_process.kill9()  # before a pod could even start: nothing ran yet
    gateway_process.start()
    wait_listening(gateway_process, gateway_ports["http"])

    def ran() -> set[str]:
        try:
            return set(out.read_text().split())
        except OSError:
            return set()

    deadline = time.monotonic() + 90
    try:
        while not set(ids) <= ran():
            assert time.monotonic() < deadline, (ran(), gateway_process.log())
            time.sleep(0.2)
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
