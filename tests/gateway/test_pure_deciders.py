"""Pure deciders: alias weighted split, admission (reserved / namespace with unreserved
floor), burst token bucket, autoscaler decide(), async retry schedule and next step,
destination record shape."""

from __future__ import annotations

import json
import random

import pytest
from klambda_gateway.admission import (
    AdmissionInput,
    Bucket,
    ConcurrencyLimits,
    admit,
    seconds_until_token,
    take_tokens,
    unreserved_pool,
)
from klambda_gateway.async_worker import destination_record, next_step, retry_delay
from klambda_gateway.autoscaler import Decision, EnvStat, EnvState, PoolStats, ScaleSpec, decide
from klambda_gateway.registry import EventInvokeConfig
from klambda_gateway.routing import pick_version

# ------------------------------------------------------------------ alias split


@pytest.mark.parametrize(("weights", "r", "expected"), [
    ({}, 0.0, "1"), ({}, 0.999, "1"),
    ({"2": 0.1}, 0.05, "2"), ({"2": 0.1}, 0.1, "1"), ({"2": 0.1}, 0.5, "1"),
    ({"2": 0.2, "3": 0.3}, 0.1, "2"), ({"2": 0.2, "3": 0.3}, 0.25, "3"),
    ({"2": 0.2, "3": 0.3}, 0.5, "1"), ({"10": 0.5, "9": 0.5}, 0.2, "9"),
    ({"2": 0.0}, 0.0, "1"), ({"2": 1.0}, 0.999, "2"), ({"1": 0.5}, 0.1, "1"),
], ids=lambda v: str(v))
def test_pick_version(weights: dict[str, float], r: float, expected: str) -> None:
    assert pick_version("1", weights, r) == expected


def test_pick_version_distribution() -> None:
    rng = random.Random(7)
    weights = {"2": 0.2, "3": 0.1}
    counts = {"1": 0, "2": 0, "3": 0}
    for _ in range(20000):
        counts[pick_version("1", weights, rng.random())] += 1
    assert abs(counts["2"] / 20000 - 0.2) < 0.015
    assert abs(counts["3"] / 20000 - 0.1) < 0.015

# -------------------------------------------------------------------- admission


LIM = ConcurrencyLimits(account_limit=1000, unreserved_floor=100)


@pytest.mark.parametrize(("state", "allowed", "reason"), [
    (AdmissionInput(None, 0, 0, 0), True, ""),
    (AdmissionInput(None, 5, 999, 0), True, ""),
    (AdmissionInput(None, 5, 1000, 0), False, "ConcurrentInvocationLimitExceeded"),
    (AdmissionInput(None, 0, 499, 500), True, ""),
    (AdmissionInput(None, 0, 500, 500), False, "ConcurrentInvocationLimitExceeded"),
    (AdmissionInput(None, 0, 99, 5000), True, ""),  # floor: reservations cannot eat the 100
    (AdmissionInput(None, 0, 100, 5000), False, "ConcurrentInvocationLimitExceeded"),
    (AdmissionInput(0, 0, 0, 0), False, "ReservedFunctionConcurrentInvocationLimitExceeded"),
    (AdmissionInput(2, 1, 1000, 2), True, ""),  # reserved ignores the shared pool
    (AdmissionInput(2, 2, 0, 2), False, "ReservedFunctionConcurrentInvocationLimitExceeded"),
    # sync priority inside a reservation: async events hold 2 of 2 slots
    (AdmissionInput(2, 2, 0, 2, sync=True, function_async_in_flight=2), True, ""),
    (AdmissionInput(2, 2, 0, 2, sync=True, function_async_in_flight=1), True, ""),
    (AdmissionInput(2, 3, 0, 2, sync=True, function_async_in_flight=1), False,
     "ReservedFunctionConcurrentInvocationLimitExceeded"),  # 2 sync already: full
    (AdmissionInput(2, 2, 0, 2, sync=False, function_async_in_flight=1), False,
     "ReservedFunctionConcurrentInvocationLimitExceeded"),  # async never displaces
    (AdmissionInput(0, 0, 0, 0, sync=True), False,
     "ReservedFunctionConcurrentInvocationLimitExceeded"),
], ids=["idle", "busy-ok", "account-full", "shrunk-ok", "shrunk-full", "floor-ok",
        "floor-full", "reserved-zero", "reserved-own-pool", "reserved-full",
        "sync-over-async", "sync-over-some-async", "sync-full", "async-full", "zero-sync"])
def test_admit(state: AdmissionInput, allowed: bool, reason: str) -> None:
    decision = admit(state, LIM)
    assert (decision.allowed, decision.reason) == (allowed, reason)


@pytest.mark.parametrize(("reserved", "pool"), [(0, 1000), (300, 700), (900, 100), (950, 100)])
def test_unreserved_pool(reserved: int, pool: int) -> None:
    assert unreserved_pool(LIM, reserved) == pool


@pytest.mark.parametrize(("bucket", "wanted", "now", "granted", "left"), [
    (Bucket(10, 0), 5, 0, 5, 5), (Bucket(10, 0), 50, 0, 10, 0),
    (Bucket(0, 0), 5, 0.02, 2, 0), (Bucket(0, 0), 5, 100, 5, 5),  # capped at capacity 10
    (Bucket(0.5, 0), 1, 0, 0, 0.5),
], ids=["some", "more-than-have", "refill", "cap", "fraction"])
def test_take_tokens(bucket: Bucket, wanted: int, now: float, granted: int,
                     left: float) -> None:
    got, after = take_tokens(bucket, wanted, now=now, capacity=10, rate=100)
    assert got == granted
    assert after.tokens == pytest.approx(left)
    assert after.at == now


def test_seconds_until_token() -> None:
    assert seconds_until_token(Bucket(0, 0), now=0, capacity=10, rate=100) == pytest.approx(0.01)
    assert seconds_until_token(Bucket(3, 0), now=0, capacity=10, rate=100) == 0

# ------------------------------------------------------------------- autoscaler


def env(i: int, state: EnvState, *, prov: bool = False, idle: float | None = None) -> EnvStat:
    return EnvStat(f"e{i}", state, prov, idle)


I, B, S, D = EnvState.IDLE, EnvState.BUSY, EnvState.STARTING, EnvState.DRAINING
SPEC = ScaleSpec(keep_warm_seconds=60)


@pytest.mark.parametrize(("envs", "queued", "spec", "now", "expected"), [
    ((), 0, SPEC, 0, Decision()),
    ((), 1, SPEC, 0, Decision(start_on_demand=1)),  # scale from zero
    ((), 5, SPEC, 0, Decision(start_on_demand=5)),
    ((env(1, S),), 1, SPEC, 0, Decision()),  # already starting one
    ((env(1, B), env(2, S)), 3, SPEC, 0, Decision(start_on_demand=2)),
    ((env(1, B),), 0, SPEC, 1000, Decision()),  # never stop a busy one
    ((env(1, I, idle=0),), 0, SPEC, 59, Decision()),  # keep warm
    ((env(1, I, idle=0),), 0, SPEC, 60, Decision(stop=("e1",))),  # to zero
    ((env(1, I, idle=0), env(2, I, idle=30), env(3, B)), 0, SPEC, 80,
     Decision(stop=("e1",))),
    ((env(1, I, idle=0), env(2, I, idle=0)), 1, SPEC, 100, Decision(stop=("e1",))),
    ((), 0, ScaleSpec(provisioned=2), 0, Decision(start_provisioned=2)),
    ((env(1, I, prov=True, idle=0),), 3, ScaleSpec(provisioned=2), 0,
     Decision(start_on_demand=1, start_provisioned=1)),
    ((env(1, I, prov=True, idle=0), env(2, I, prov=True, idle=0)), 0,
     ScaleSpec(provisioned=2), 1e6, Decision()),  # provisioned floor is kept
    ((env(1, I, prov=True, idle=0), env(2, I, idle=5)), 0, ScaleSpec(provisioned=1), 1e6,
     Decision(stop=("e2",))),  # on-demand goes before provisioned
    ((env(1, I, prov=True, idle=0), env(2, I, prov=True, idle=5)), 0,
     ScaleSpec(provisioned=1), 1e6, Decision(stop=("e1",))),  # lowered provisioned
    ((env(1, I, idle=99),), 0, ScaleSpec(retired=True), 100, Decision(stop=("e1",))),
    ((env(1, I, prov=True, idle=99),), 0, ScaleSpec(provisioned=1, retired=True), 100,
     Decision(stop=("e1",))),
    ((env(1, D), env(2, D)), 1, SPEC, 0, Decision(start_on_demand=1)),  # draining != capacity
    ((env(1, B),), 5, ScaleSpec(max_environments=3), 0, Decision(start_on_demand=2)),
    ((), 5, ScaleSpec(max_environments=0), 0, Decision()),
], ids=["empty", "from-zero", "from-zero-5", "starting", "grow", "busy-kept", "keep-warm",
        "to-zero", "oldest-idle", "excess-over-demand", "provisioned-start",
        "provisioned-plus-demand", "provisioned-floor", "on-demand-first", "lowered-prov",
        "retired", "retired-prov", "draining", "cap", "cap-zero"])
def test_decide(envs: tuple[EnvStat, ...], queued: int, spec: ScaleSpec, now: float,
                expected: Decision) -> None:
    assert decide(PoolStats(envs, queued), spec, now) == expected

# --------------------------------------------------------------- async schedule


@pytest.mark.parametrize(("attempt", "delay"), [(1, 60), (2, 120), (3, 240)])
def test_retry_delay(attempt: int, delay: float) -> None:
    assert retry_delay(attempt, base=60) == delay


CFG = EventInvokeConfig(maximum_retry_attempts=2, maximum_event_age_seconds=600)


@pytest.mark.parametrize(("failed", "attempts", "created", "now", "action", "condition"), [
    (False, 1, 0, 10, "done", "Success"),
    (True, 1, 0, 10, "retry", ""),
    (True, 2, 0, 10, "retry", ""),
    (True, 3, 0, 10, "fail", "RetriesExhausted"),
    (True, 1, 0, 590, "fail", "EventAgeExceeded"),
], ids=["ok", "retry-1", "retry-2", "exhausted", "too-old"])
def test_next_step(failed: bool, attempts: int, created: float, now: float, action: str,
                   condition: str) -> None:
    step = next_step(failed=failed, attempts=attempts, created_at=created, now=now,
                     config=CFG, retry_base=60)
    assert (step.action, step.condition) == (action, condition)
    if action == "retry":
        assert step.next_attempt_at == now + 60 * 2 ** (attempts - 1)


def test_next_step_no_retries() -> None:
    step = next_step(failed=True, attempts=1, created_at=0, now=0,
                     config=EventInvokeConfig(maximum_retry_attempts=0), retry_base=1)
    assert step.condition == "RetriesExhausted"


def test_destination_record_failure() -> None:
    raw = destination_record(
        request_id="r1", function_arn="arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST",
        condition="RetriesExhausted", attempts=3, payload=b'{"a": 1}', status_code=200,
        executed_version="$LATEST", function_error="Unhandled",
        response=b'{"errorMessage": "boom"}', now=0)
    record = json.loads(raw)
    assert record == {
        "version": "1.0", "timestamp": "1970-01-01T00:00:00.000Z",
        "requestContext": {"requestId": "r1",
                           "functionArn": "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST",
                           "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": {"a": 1},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                            "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "boom"},
    }


def test_destination_record_success_and_age() -> None:
    ok = json.loads(destination_record(
        request_id="r", function_arn="a", condition="Success", attempts=1, payload=b"{}",
        status_code=200, executed_version="1", function_error="", response=b'"x"', now=1))
    assert "functionError" not in ok["responseContext"] and ok["responsePayload"] == "x"
    aged = json.loads(destination_record(
        request_id="r", function_arn="a", condition="EventAgeExceeded", attempts=0,
        payload=b"{}", status_code=None, executed_version="", function_error="",
        response=None, now=1))
    assert "responseContext" not in aged and aged["requestContext"]["approximateInvokeCount"] == 0
