"""Autoscaling with real environment processes: scale from zero on the first invocation
(event-driven, no tick needed), the burst limit on new environments,
scale to zero after the keep-warm period and back (cold again), burst of concurrent
invocations served by as many environments, $LATEST updates retiring old environments
after their in-flight work, and an environment that dies during start failing the
waiting invocation quickly with a Lambda-shaped error."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .harness import Harness
from .test_invoke_api import wait_for

CODE = """
import time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"code": %r}
"""


def live_environments(p: Any, name: str) -> int:
    return sum(len(pool.environments) for key, pool in p.dispatcher.pools.items()
               if key[1] == name)


def test_scale_to_zero_and_back(make_platform: Any) -> None:
    h = make_platform(keep_warm_seconds=0.5)
    h.call(lambda: h.registry.add_function("nap", CODE % "a"))
    c = h.client()
    p = h.platform
    first = c.invoke(FunctionName="nap", Payload=b"{}")
    assert "x-klambda-cold-start" in first["ResponseMetadata"]["HTTPHeaders"]
    assert live_environments(p, "nap") == 1
    wait_for(lambda: live_environments(p, "nap") == 0, timeout=10)
    again = c.invoke(FunctionName="nap", Payload=b"{}")
    assert again["StatusCode"] == 200
    assert "x-klambda-cold-start" in again["ResponseMetadata"]["HTTPHeaders"]


def test_burst_scales_out(platform: Harness) -> None:
    platform.call(lambda: platform.registry.add_function("wide", CODE % "w"))
    c = platform.client()
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: c.invoke(FunctionName="wide",
                                                   Payload=b'{"sleep": 1.0}'), range(6)))
    assert all(r["StatusCode"] == 200 for r in results)
    assert platform.platform is not None
    started = platform.platform.metrics.env_starts.labels(
        "default", "wide", "$LATEST", "on-demand")._value.get()
    # one environment per concurrent invocation (a slow CI may let a late caller reuse one)
    assert 4 <= started <= 6, started


def test_latest_update_retires_old_environments(platform: Harness) -> None:
    platform.call(lambda: platform.registry.add_function("upd", CODE % "old"))
    c = platform.client()
    p = platform.platform
    assert json.loads(c.invoke(FunctionName="upd", Payload=b"{}")["Payload"].read()) == {
        "code": "old"}
    with ThreadPoolExecutor(1) as pool:
        inflight = pool.submit(lambda: c.invoke(FunctionName="upd", Payload=b'{"sleep": 1.0}'))
        time.sleep(0.3)
        platform.call(lambda: platform.registry.add_function("upd", CODE % "new"))
        new = json.loads(c.invoke(FunctionName="upd", Payload=b"{}")["Payload"].read())
        assert new == {"code": "new"}
        assert json.loads(inflight.result(timeout=10)["Payload"].read()) == {"code": "old"}
    # the old revision's environment goes away once idle; the new one stays warm
    wait_for(lambda: live_environments(p, "upd") == 1, timeout=10)


def test_crash_on_start_fails_fast(platform: Harness) -> None:
    platform.call(lambda: platform.registry.add_function(
        "crash", "import os\nos._exit(3)\n"))
    c = platform.client()
    t0 = time.monotonic()
    r = c.invoke(FunctionName="crash", Payload=b"{}")
    elapsed = time.monotonic() - t0
    assert r["FunctionError"] == "Unhandled"
    err = json.loads(r["Payload"].read())
    assert err["errorType"].startswith("Runtime."), err
    assert elapsed < platform.settings.queue_timeout_seconds


def test_scale_from_zero_is_event_driven(make_platform: Any) -> None:
    # with a tick of a minute, only the event-driven kick can start the environment
    h = make_platform(scale_tick_seconds=60.0)
    h.call(lambda: h.registry.add_function("kick", CODE % "k"))
    t0 = time.monotonic()
    r = h.client().invoke(FunctionName="kick", Payload=b"{}")
    assert r["StatusCode"] == 200 and "FunctionError" not in r
    assert time.monotonic() - t0 < 10


def test_burst_limit_caps_new_environments(make_platform: Any) -> None:
    # a bucket of 2 tokens that does not refill: 4 concurrent callers share 2 environments
    h = make_platform(burst_capacity=2, burst_rate_per_second=0.0001, queue_timeout_seconds=20)
    h.call(lambda: h.registry.add_function("capb", CODE % "c"))
    c = h.client()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: c.invoke(FunctionName="capb",
                                                   Payload=b'{"sleep": 0.5}'), range(4)))
    assert [r["StatusCode"] for r in results] == [200] * 4
    assert h.platform is not None
    assert h.platform.metrics.env_starts.labels(
        "default", "capb", "$LATEST", "on-demand")._value.get() == 2
