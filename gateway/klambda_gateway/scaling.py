"""The autoscaler loop: collector (Dispatcher stats) -> ``decide`` -> Scaler.

Scale-from-zero is event-driven: the Dispatcher calls ``kick(key)`` when it queues an
invocation that found no idle environment, and the pool is reconciled at once. Every
``scale_tick_seconds`` all pools are reconciled (steady state, keep-warm expiry,
provisioned floors, retirement of old revisions). New environments draw tokens from a
per-function burst bucket.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from klambda_gateway.admission import Bucket, seconds_until_token, take_tokens
from klambda_gateway.autoscaler import Decision, ScaleSpec, decide
from klambda_gateway.dispatch import Dispatcher, Key
from klambda_gateway.registry import FunctionVersion, Registry
from klambda_gateway.scaler import Scaler
from klambda_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


def environment_id(version: FunctionVersion) -> str:
    tag = "latest" if version.version == "$LATEST" else f"v{version.version}"
    return f"{version.function_name}-{tag}-{uuid.uuid4().hex[:10]}"


class Autoscaler:
    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        scaler: Scaler,
        registry: Registry,
        settings: GatewaySettings,
        metrics: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dispatcher = dispatcher
        self._scaler = scaler
        self._registry = registry
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._retry_handles: dict[Key, asyncio.TimerHandle] = {}
        self._provisioned_gen = -1
        self._provisioned: dict[Key, int] = {}
        dispatcher.on_demand = self.kick
        dispatcher.on_stuck = lambda env_id: self._spawn(self._scaler.stop([env_id]))

    # ---------------------------------------------------------------- inputs
    def provisioned_targets(self) -> dict[Key, int]:
        gen = self._registry.generation
        if gen != self._provisioned_gen:
            targets: dict[Key, int] = {}
            for alias in self._registry.aliases():
                if alias.provisioned_concurrency <= 0:
                    continue
                fv = self._registry.version(alias.namespace, alias.function_name,
                                            alias.function_version)
                if fv is None:
                    continue
                self._dispatcher.pool_for(fv)
                targets[fv.key] = targets.get(fv.key, 0) + alias.provisioned_concurrency
            self._provisioned, self._provisioned_gen = targets, gen
        return self._provisioned

    def spec_for(self, key: Key) -> ScaleSpec:
        namespace, name, version, revision = key
        current = self._registry.version(namespace, name, version)
        retired = current is None or current.revision != revision
        fn = self._registry.function(namespace, name)
        reserved = fn.reserved_concurrency if fn is not None else None
        return ScaleSpec(
            provisioned=self.provisioned_targets().get(key, 0),
            keep_warm_seconds=self._settings.keep_warm_seconds,
            retired=retired,
            max_environments=reserved,
        )

    # -------------------------------------------------------------- actions
    def kick(self, key: Key) -> None:
        """Reconcile one pool now (an invocation is waiting)."""
        self.reconcile(key, self._clock())

    def reconcile(self, key: Key, now: float) -> Decision:
        pool = self._dispatcher.pools.get(key)
        if pool is None:
            return Decision()
        spec = self.spec_for(key)
        pool.retired = spec.retired
        decision = decide(self._dispatcher.stats(key), spec, now)
        if decision.noop:
            return decision
        if decision.stop:
            stopped = self._dispatcher.stop(list(decision.stop))
            if stopped:
                self._spawn(self._scaler.stop(stopped))
        wanted = decision.start_provisioned + decision.start_on_demand
        if wanted:
            granted = self._take(key, wanted, now)
            provisioned = min(granted, decision.start_provisioned)
            on_demand = granted - provisioned
            if provisioned:
                self._start(pool.version, provisioned, provisioned=True, now=now)
            if on_demand:
                self._start(pool.version, on_demand, provisioned=False, now=now)
            if granted < wanted:
                self._retry_later(key, now)
        return decision

    def _take(self, key: Key, wanted: int, now: float) -> int:
        fkey = (key[0], key[1])
        s = self._settings
        bucket = self._buckets.get(fkey, Bucket(float(s.burst_capacity), now))
        granted, self._buckets[fkey] = take_tokens(
            bucket, wanted, now=now, capacity=s.burst_capacity, rate=s.burst_rate_per_second)
        return granted

    def _retry_later(self, key: Key, now: float) -> None:
        if key in self._retry_handles:
            return
        s = self._settings
        bucket = self._buckets[(key[0], key[1])]
        delay = seconds_until_token(bucket, now=now, capacity=s.burst_capacity,
                                    rate=s.burst_rate_per_second)
        delay = min(max(delay, 0.005), s.scale_tick_seconds)

        def fire() -> None:
            self._retry_handles.pop(key, None)
            self.kick(key)

        self._retry_handles[key] = asyncio.get_running_loop().call_later(delay, fire)

    def _start(self, version: FunctionVersion, count: int, *, provisioned: bool,
               now: float) -> None:
        ids = [environment_id(version) for _ in range(count)]
        for env_id in ids:
            self._dispatcher.add_starting(version, env_id, provisioned=provisioned)
        if self._metrics is not None:
            self._metrics.environments_started(version, count, provisioned=provisioned)
        self._spawn(self._scaler.start(version, ids, provisioned=provisioned))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----------------------------------------------------------------- loop
    async def run(self) -> None:
        """Reconcile every pool each tick until cancelled."""
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("autoscaler tick failed")
            await asyncio.sleep(self._settings.scale_tick_seconds)

    def tick(self) -> None:
        now = self._clock()
        self._dispatcher.sweep_overdue()
        self.provisioned_targets()
        for key in list(self._dispatcher.pools):
            self.reconcile(key, now)
        self._dispatcher.drop_empty_pools()

    async def close(self) -> None:
        for handle in self._retry_handles.values():
            handle.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)
