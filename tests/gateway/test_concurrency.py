"""Admission through boto3: reserved concurrency (cap, 0 throttles all), the namespace
limit, throttling under concurrent load (only 200s and 429s, nothing hangs), and the
bounded queue wait ending in 429 + Retry-After."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .harness import Harness

SLOW = """
import time
def handler(event, context):
    time.sleep(event.get("sleep", 0.5))
    return "done"
"""


def outcome(client: Any, name: str, payload: dict[str, Any]) -> tuple[int, str]:
    try:
        r = client.invoke(FunctionName=name, Payload=json.dumps(payload))
        return r["StatusCode"], r["Payload"].read().decode()
    except ClientError as exc:
        resp = exc.response
        return resp["ResponseMetadata"]["HTTPStatusCode"], resp.get("Reason", "")


def test_reserved_zero_throttles_everything(platform: Harness) -> None:
    platform.call(lambda: platform.registry.add_function("off", SLOW, reserved=0))
    c = platform.client()
    with pytest.raises(c.exceptions.TooManyRequestsException) as info:
        c.invoke(FunctionName="off", Payload=b"{}")
    resp = info.value.response
    assert resp["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert resp["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "1"
    assert "reserved concurrency 0" in resp["message"]


def test_reserved_cap_under_load(platform: Harness) -> None:
    platform.call(lambda: platform.registry.add_function("capped", SLOW, reserved=2))
    c = platform.client()
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda _: outcome(c, "capped", {"sleep": 1.0}), range(12)))
    counts = Counter(status for status, _ in results)
    assert set(counts) <= {200, 429}, results
    assert counts[200] >= 2 and counts[429] >= 1, results
    assert all(reason == "ReservedFunctionConcurrentInvocationLimitExceeded"
               for status, reason in results if status == 429)
    # the cap held: never more than 2 environments for the function
    assert platform.platform is not None
    assert platform.platform.metrics.env_starts.labels(
        "default", "capped", "$LATEST", "on-demand")._value.get() <= 2


def test_namespace_limit(make_platform: Any) -> None:
    h = make_platform(account_concurrency=3, unreserved_floor=1)
    h.call(lambda: h.registry.add_function("a", SLOW))
    h.call(lambda: h.registry.add_function("b", SLOW, reserved=2))  # leaves 1 unreserved
    c = h.client()
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: outcome(c, "a", {"sleep": 1.0}), range(6)))
    counts = Counter(status for status, _ in results)
    assert set(counts) <= {200, 429} and counts[200] >= 1 and counts[429] >= 1, results
    assert {r for s, r in results if s == 429} == {"ConcurrentInvocationLimitExceeded"}
    # the reserved function still has its own 2
    with ThreadPoolExecutor(2) as pool:
        assert [s for s, _ in pool.map(lambda _: outcome(c, "b", {"sleep": 0.2}), range(2))] \
            == [200, 200]


def test_queue_wait_is_bounded(make_platform: Any) -> None:
    # one environment at most (burst bucket of 1, no refill): the second caller waits for
    # it, and gives up after the queue timeout with 429 + Retry-After instead of hanging
    h = make_platform(burst_capacity=1, burst_rate_per_second=0.0001, queue_timeout_seconds=1.0)
    h.call(lambda: h.registry.add_function("one", SLOW))
    c = h.client()

    def second_call() -> Any:
        time.sleep(0.5)
        with pytest.raises(c.exceptions.TooManyRequestsException) as info:
            c.invoke(FunctionName="one", Payload=b'{"sleep": 0}')
        return info.value.response

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(outcome, c, "one", {"sleep": 3.0})
        t0 = time.monotonic()
        resp = pool.submit(second_call).result(timeout=20)
        assert time.monotonic() - t0 < 3.0
        assert first.result(timeout=20)[0] == 200
    assert resp["Reason"] == "FunctionInvocationRateLimitExceeded"
    assert resp["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "1"
    assert "queue wait limit" in resp["message"]
