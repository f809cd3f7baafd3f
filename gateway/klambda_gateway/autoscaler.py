"""The pure autoscaler decider: ``decide(stats, spec, now) -> Decision`` per pool.

A pool is the set of environments of one dispatch key (one function version revision).
Desired environments = in-flight + queued (one invocation per environment), at least
the provisioned floor. Environments idle longer than ``keep_warm_seconds`` beyond that
are stopped (on-demand before provisioned, longest idle first); busy or starting
environments are never stopped. A retired pool (an old $LATEST revision, a deleted
function) keeps serving what was queued on it and stops idle environments at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class EnvState(str, Enum):
    STARTING = "starting"  # launched, not yet connected
    INITIALIZING = "initializing"  # connected (Registered), init not finished
    IDLE = "idle"
    BUSY = "busy"
    DRAINING = "draining"


@dataclass(frozen=True)
class EnvStat:
    environment_id: str
    state: EnvState
    provisioned: bool = False
    idle_since: float | None = None


@dataclass(frozen=True)
class PoolStats:
    environments: tuple[EnvStat, ...]
    queued: int  # sync + async invocations waiting for an environment


@dataclass(frozen=True)
class ScaleSpec:
    provisioned: int = 0  # provisioned-concurrency floor for this pool
    keep_warm_seconds: float = 60.0
    retired: bool = False
    max_environments: int | None = None  # e.g. reserved concurrency


@dataclass(frozen=True)
class Decision:
    start_on_demand: int = 0
    start_provisioned: int = 0
    stop: tuple[str, ...] = ()

    @property
    def noop(self) -> bool:
        return not (self.start_on_demand or self.start_provisioned or self.stop)


def decide(stats: PoolStats, spec: ScaleSpec, now: float) -> Decision:
    """Pure: how many environments to start and which idle ones to stop."""
    live = [e for e in stats.environments if e.state is not EnvState.DRAINING]
    busy = sum(1 for e in live if e.state is EnvState.BUSY)
    floor = 0 if spec.retired else spec.provisioned
    live_provisioned = sum(1 for e in live if e.provisioned)
    start_provisioned = max(0, floor - live_provisioned)
    demand = busy + stats.queued
    after_start = len(live) + start_provisioned
    start_on_demand = max(0, demand - after_start)
    if spec.max_environments is not None:
        room = max(0, spec.max_environments - after_start)
        start_on_demand = min(start_on_demand, room)
    if start_on_demand or start_provisioned:
        return Decision(start_on_demand, start_provisioned, ())

    excess = len(live) - max(demand, floor)
    if excess <= 0:
        return Decision()
    extra_provisioned = max(0, live_provisioned - floor)
    candidates: list[tuple[int, float, str]] = []
    for e in live:
        if e.state is not EnvState.IDLE:
            continue
        idle_since = e.idle_since if e.idle_since is not None else now
        if not spec.retired and now - idle_since < spec.keep_warm_seconds:
            continue
        candidates.append((1 if e.provisioned else 0, idle_since, e.environment_id))
    candidates.sort()
    stop: list[str] = []
    for is_provisioned, _, env_id in candidates:
        if len(stop) >= excess:
            break
        if is_provisioned:
            if extra_provisioned <= 0:
                continue
            extra_provisioned -= 1
        stop.append(env_id)
    return Decision(stop=tuple(stop))
