"""Pure admission deciders: reserved / namespace concurrency and the burst token bucket.

Concurrency = invocations admitted and not yet finished (queued for an environment or
running). A function with reserved concurrency R may have at most R; it does not draw
from the namespace pool. Unreserved functions share ``account_limit - sum(reserved)``,
which never drops below ``unreserved_floor`` (reservations cannot eat the last 100).
"""

from __future__ import annotations

from dataclasses import dataclass

from klambda_gateway.errors import ACCOUNT_LIMIT, RESERVED_LIMIT


@dataclass(frozen=True)
class ConcurrencyLimits:
    account_limit: int = 1000
    unreserved_floor: int = 100


@dataclass(slots=True, unsafe_hash=True)  # hot path: frozen's setattr per field costs 2.5x
class AdmissionInput:
    reserved: int | None  # the function's reserved concurrency, None = unreserved
    function_in_flight: int  # this function's admitted invocations
    unreserved_in_flight: int  # namespace-wide, over unreserved functions
    reserved_total: int  # sum of reservations in the namespace
    sync: bool = True  # a synchronous invocation (RequestResponse) or an async event
    function_async_in_flight: int = 0  # of function_in_flight, async events


@dataclass(frozen=True)
class Admission:
    allowed: bool
    reason: str = ""  # TooManyRequestsException Reason when not allowed
    limit: int = 0  # the limit that applied (for the message)


def unreserved_pool(limits: ConcurrencyLimits, reserved_total: int) -> int:
    """Pure: concurrency left for unreserved functions."""
    return max(limits.unreserved_floor, limits.account_limit - reserved_total)


def admit(state: AdmissionInput, limits: ConcurrencyLimits) -> Admission:
    """Pure: may one more invocation start?

    Synchronous traffic has priority within a reservation: when async events hold part of
    a function's reserved concurrency, a synchronous invocation is still admitted (up to
    the reservation counting sync invocations only); it waits in the version's queue, where
    sync goes first, for the next environment an async event frees — the environments stay
    capped at the reservation, and further async events are throttled meanwhile.
    """
    if state.reserved is not None:
        if state.function_in_flight < state.reserved:
            return Admission(True)
        sync_only = state.function_in_flight - state.function_async_in_flight
        if state.sync and sync_only < state.reserved:
            return Admission(True)
        return Admission(False, RESERVED_LIMIT, state.reserved)
    pool = unreserved_pool(limits, state.reserved_total)
    if state.unreserved_in_flight >= pool:
        return Admission(False, ACCOUNT_LIMIT, pool)
    return Admission(True)


@dataclass(frozen=True)
class Bucket:
    """A token bucket's state: ``tokens`` at time ``at``."""

    tokens: float
    at: float


def take_tokens(
    bucket: Bucket, wanted: int, *, now: float, capacity: int, rate: float
) -> tuple[int, Bucket]:
    """Pure: refill to ``now`` and grant up to ``wanted`` whole tokens."""
    tokens = min(float(capacity), bucket.tokens + max(0.0, now - bucket.at) * rate)
    granted = max(0, min(wanted, int(tokens)))
    return granted, Bucket(tokens - granted, now)


def seconds_until_token(bucket: Bucket, *, now: float, capacity: int, rate: float) -> float:
    """Pure: how long until one whole token is available (0 when one is)."""
    tokens = min(float(capacity), bucket.tokens + max(0.0, now - bucket.at) * rate)
    if tokens >= 1 or rate <= 0:
        return 0.0 if tokens >= 1 else float("inf")
    return (1 - tokens) / rate
