"""Aliases: weighted routing within statistical tolerance with the executed version
reported, an atomic alias switch (in-flight work finishes on its version), and
provisioned concurrency (environments up before traffic, used first, no Init Duration)."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .harness import Harness
from .test_invoke_api import wait_for

V = """
import time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"version": context.function_version, "code": CODE}
CODE = %r
"""


def two_versions(h: Harness) -> None:
    def setup() -> None:
        h.registry.add_function("split", V % "one")
        h.registry.publish("split")
        h.registry.add_function("split", V % "two")
        h.registry.publish("split")
    h.call(setup)


def test_weighted_split(platform: Harness) -> None:
    two_versions(platform)
    platform.call(lambda: platform.registry.set_alias("split", "live", "1",
                                                      weights={"2": 0.3}))
    c = platform.client()

    def once(_: int) -> str:
        r = c.invoke(FunctionName="split:live", Payload=b"{}")
        body = json.loads(r["Payload"].read())
        assert body["version"] == r["ExecutedVersion"]
        assert body["code"] == {"1": "one", "2": "two"}[r["ExecutedVersion"]]
        return str(r["ExecutedVersion"])

    n = 400
    with ThreadPoolExecutor(8) as pool:
        counts = Counter(pool.map(once, range(n)))
    # binomial(400, 0.3): sd ~ 9.2; 4 sd tolerance
    assert abs(counts["2"] - 0.3 * n) < 37, counts
    assert counts["1"] + counts["2"] == n


def test_alias_switch_is_atomic(platform: Harness) -> None:
    two_versions(platform)
    platform.call(lambda: platform.registry.set_alias("split", "live", "1"))
    c = platform.client()
    assert c.invoke(FunctionName="split", Qualifier="live",
                    Payload=b"{}")["ExecutedVersion"] == "1"
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(lambda: c.invoke(FunctionName="split:live",
                                            Payload=b'{"sleep": 1.0}'))
        time.sleep(0.3)
        platform.call(lambda: platform.registry.set_alias("split", "live", "2"))
        r = c.invoke(FunctionName="split:live", Payload=b"{}")
        assert r["ExecutedVersion"] == "2"
        done = slow.result(timeout=10)
        assert done["ExecutedVersion"] == "1"
        assert json.loads(done["Payload"].read())["code"] == "one"


def test_provisioned_concurrency_is_warm(platform: Harness) -> None:
    two_versions(platform)
    platform.call(lambda: platform.registry.set_alias("split", "warm", "1", provisioned=2))
    p = platform.platform
    assert p is not None

    def idle_provisioned() -> int:
        return sum(1 for pool in p.dispatcher.pools.values()
                   for e in pool.environments.values()
                   if e.provisioned and e.state.value == "idle")

    wait_for(lambda: idle_provisioned() == 2)
    c = platform.client()
    r = c.invoke(FunctionName="split:warm", Payload=b"{}", LogType="Tail")
    log = base64.b64decode(r["LogResult"]).decode()
    assert "REPORT RequestId" in log and "Init Duration" not in log
    assert "x-klambda-cold-start" not in r["ResponseMetadata"]["HTTPHeaders"]
    # used first: both provisioned environments serve two concurrent calls, no new ones
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: c.invoke(FunctionName="split:warm",
                                         Payload=b'{"sleep": 0.3}'), range(2)))
    assert p.metrics.env_starts.labels("default", "split", "1", "on-demand")._value.get() == 0
    text = p.metrics.render().decode()
    assert 'klambda_provisioned_concurrency_utilization{function="split",namespace="default",' \
           'version="1"}' in text


def provisioned_ids(p: Any) -> set[str]:
    return {e.environment_id for pool in p.dispatcher.pools.values()
            for e in pool.environments.values() if e.provisioned}
