"""Async (Event) invocations on a running platform: retries with backoff then the
on-failure destination with Lambda's record, on-success destination, dead-letter table +
metrics when nothing is configured, maximum event age, throttled events retried without
using an attempt, synchronous priority over async events inside a reservation, and durability: kill -9 of the platform with events queued, restart,
every event runs at least once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import psutil
from klambda_gateway.async_store import AsyncEvent
from klambda_gateway.registry import Destination, EventInvokeConfig

from .harness import Harness
from .test_invoke_api import wait_for

MARK = """
import json, os, pathlib, uuid
def handler(event, context):
    d = pathlib.Path(os.environ["MARKS"])
    name = f"{context.aws_request_id}.{uuid.uuid4().hex}"
    (d / ("." + name)).write_text(json.dumps(event))
    os.replace(d / ("." + name), d / name)  # appears complete
    if event.get("fail"):
        raise RuntimeError("failing on purpose")
    return {"ok": event.get("n")}
"""


def marks(directory: Path) -> list[dict[str, Any]]:
    """What the functions wrote (each file is renamed into place once complete)."""
    return [json.loads(p.read_text()) for p in sorted(directory.iterdir())
            if not p.name.startswith(".")]


def setup(h: Harness, tmp_path: Path, *, config: EventInvokeConfig | None = None,
          reserved: int | None = None) -> tuple[Path, Path]:
    work, audit = tmp_path / "work", tmp_path / "audit"
    work.mkdir(exist_ok=True)
    audit.mkdir(exist_ok=True)

    def apply() -> None:
        h.registry.add_function("audit", MARK, environment={"MARKS": str(audit)})
        h.registry.add_function("work", MARK, environment={"MARKS": str(work)},
                                event_invoke_config=config, reserved=reserved)
    h.call(apply)
    return work, audit


def event(h: Harness, payload: dict[str, Any], name: str = "work") -> str:
    r = h.client().invoke(FunctionName=name, InvocationType="Event",
                          Payload=json.dumps(payload))
    assert r["StatusCode"] == 202
    return str(r["ResponseMetadata"]["RequestId"])


def test_retries_then_on_failure_destination(platform: Harness, tmp_path: Path) -> None:
    cfg = EventInvokeConfig(maximum_retry_attempts=2,
                            on_failure=Destination(function="audit"))
    work, audit = setup(platform, tmp_path, config=cfg)
    rid = event(platform, {"fail": True, "n": 1})
    records = wait_for(lambda: marks(audit), timeout=20)
    assert len(marks(work)) == 3  # first attempt + 2 retries
    record = records[0]
    assert record["requestContext"] == {
        "requestId": rid, "condition": "RetriesExhausted", "approximateInvokeCount": 3,
        "functionArn": "arn:aws:lambda:us-east-1:000000000000:function:work:$LATEST"}
    assert record["requestPayload"] == {"fail": True, "n": 1}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST",
                                         "functionError": "Unhandled"}
    assert record["responsePayload"]["errorMessage"] == "failing on purpose"
    assert record["version"] == "1.0" and record["timestamp"].endswith("Z")


def test_on_success_destination(platform: Harness, tmp_path: Path) -> None:
    _work, audit = setup(platform, tmp_path, config=EventInvokeConfig(
        on_success=Destination(function="audit")))
    event(platform, {"n": 5})
    record = wait_for(lambda: marks(audit), timeout=20)[0]
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["responsePayload"] == {"ok": 5}
    assert "functionError" not in record["responseContext"]


def test_dead_letter_without_destination(platform: Harness, tmp_path: Path) -> None:
    work, _ = setup(platform, tmp_path, config=EventInvokeConfig(maximum_retry_attempts=0))
    rid = event(platform, {"fail": True})
    p = platform.platform
    assert p is not None
    dead = wait_for(lambda: platform.run(p.store.dead_letters()), timeout=20)
    assert [(d.event_id, d.reason, d.attempts) for d in dead] == [(rid, "RetriesExhausted", 1)]
    assert json.loads(dead[0].payload) == {"fail": True}
    assert len(marks(work)) == 1
    with urllib.request.urlopen(platform.endpoint + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert 'klambda_async_events_dropped_total{function="work",namespace="default",' \
           'reason="RetriesExhausted"} 1.0' in text
    assert platform.run(p.store.pending()) == 0


def test_event_age_exceeded(platform: Harness, tmp_path: Path) -> None:
    work, audit = setup(platform, tmp_path, config=EventInvokeConfig(
        maximum_event_age_seconds=60, on_failure=Destination(function="audit")))
    p = platform.platform
    assert p is not None
    old = AsyncEvent(event_id="old-1", namespace="default", function="work", qualifier="",
                     payload=b'{"n": 9}', created_at=time.time() - 120)
    platform.run(p.worker.enqueue(old))
    record = wait_for(lambda: marks(audit), timeout=20)[0]
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert record["requestPayload"] == {"n": 9} and "responseContext" not in record
    assert marks(work) == []


def test_throttled_events_wait_for_capacity(platform: Harness, tmp_path: Path) -> None:
    work, _ = setup(platform, tmp_path, reserved=0,
                    config=EventInvokeConfig(maximum_retry_attempts=0))
    event(platform, {"n": 1})
    time.sleep(1.0)
    assert marks(work) == []  # throttled, not run, not dropped
    p = platform.platform
    assert p is not None
    assert platform.run(p.store.pending()) == 1
    platform.call(lambda: platform.registry.set_reserved("work", None))
    assert wait_for(lambda: marks(work), timeout=20) == [{"n": 1}]


# ------------------------------------------------------------------ durability


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


MANIFEST = """
apiVersion: klambda.io/v1alpha1
kind: Function
metadata: {name: slow, namespace: default}
spec:
  runtime: python3.12
  handler: app.handler
  reservedConcurrency: 1
  environment: {variables: {MARKS: "%s"}}
  code:
    inline:
      app.py: |
        import json, os, pathlib, time, uuid
        def handler(event, context):
            time.sleep(0.3)
            d = pathlib.Path(os.environ["MARKS"])
            (d / f"{event['n']}.{uuid.uuid4().hex}").write_text(json.dumps(event))
"""


class LocalProcess:
    def __init__(self, state: Path, manifest: Path, port: int) -> None:
        env = {**os.environ, "KLAMBDA_ASYNC_POLL_SECONDS": "0.2",
               "KLAMBDA_ASYNC_THROTTLE_DELAY_SECONDS": "0.1",
               "KLAMBDA_AGENT_RECONNECT_GIVE_UP": "2"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "klambda_gateway.local", "--port", str(port),
             "--state-dir", str(state), "-f", str(manifest)],
            env=env, stdout=subprocess.DEVNULL, stderr=open(state.parent / "gw.log", "ab"),  # noqa: SIM115
            start_new_session=True)
        self.endpoint = f"http://127.0.0.1:{port}"
        wait_for(self.healthy, timeout=30, interval=0.1)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint + "/healthz", timeout=1):
                return True
        except OSError:
            assert self.proc.poll() is None, "the platform exited during start"
            return False

    def kill9(self) -> None:
        """kill -9 the platform and everything it started (a machine crash)."""
        tree = [psutil.Process(self.proc.pid)]
        tree += tree[0].children(recursive=True)
        for p in tree:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill9()


def test_kill_9_with_events_queued(tmp_path: Path) -> None:
    marks_dir, state = tmp_path / "marks", tmp_path / "state"
    marks_dir.mkdir()
    state.mkdir()
    manifest = tmp_path / "slow.yaml"
    manifest.write_text(MANIFEST % marks_dir)
    first = LocalProcess(state, manifest, free_port())
    try:
        client = boto3.client("lambda", endpoint_url=first.endpoint, region_name="us-east-1",
                              aws_access_key_id="x", aws_secret_access_key="x")
        n = 12
        for i in range(n):
            r = client.invoke(FunctionName="slow", InvocationType="Event",
                              Payload=json.dumps({"n": i}))
            assert r["StatusCode"] == 202
        time.sleep(0.8)  # some ran, most are still queued (reserved concurrency 1)
        first.kill9()
    finally:
        first.stop()
    ran_before = {p.name.split(".")[0] for p in marks_dir.iterdir()}
    assert len(ran_before) < n, "all events ran before the kill: the test proves nothing"
    second = LocalProcess(state, manifest, free_port())
    try:
        wait_for(lambda: {p.name.split(".")[0] for p in marks_dir.iterdir()}
                 == {str(i) for i in range(n)}, timeout=60, interval=0.2)
    finally:
        second.stop()


STAMP = """
import json, os, pathlib, time, uuid
def handler(event, context):
    d = pathlib.Path(os.environ["MARKS"])
    name = uuid.uuid4().hex
    (d / ("." + name)).write_text(json.dumps({"n": event["n"], "t": time.time()}))
    os.replace(d / ("." + name), d / name)  # appears complete
    time.sleep(0.6)
    return event["n"]
"""


def test_sync_has_priority_over_async(platform: Harness, tmp_path: Path) -> None:
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    platform.call(lambda: platform.registry.add_function(
        "prio", STAMP, reserved=1, environment={"MARKS": str(stamps)}))
    c = platform.client()
    for i in range(3):
        c.invoke(FunctionName="prio", InvocationType="Event", Payload=json.dumps({"n": i}))
    wait_for(lambda: marks(stamps), timeout=20)  # one async event is running
    r = c.invoke(FunctionName="prio", Payload=b'{"n": "sync"}')
    assert r["StatusCode"] == 200 and json.loads(r["Payload"].read()) == "sync"
    wait_for(lambda: len(marks(stamps)) == 4, timeout=20)
    order = [m["n"] for m in sorted(marks(stamps), key=lambda m: m["t"])]
    assert order[1] == "sync", order  # right after the async event that held the slot
