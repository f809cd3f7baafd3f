"""Dispatch: per dispatch key a FIFO queue (sync before async) and its environments.

The gRPC server reports what environments say (register / ready / result / draining /
disconnect); ``invoke`` hands one invocation to an idle environment or queues it. An
invocation stays bound to the environment (and so the version revision) it was sent
to until its Result arrives. All methods run on the event loop and never await between
reading and changing state, so every step is atomic.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from klambda_proto import environment_pb2 as pb

from klambda_gateway.autoscaler import EnvStat, EnvState, PoolStats
from klambda_gateway.errors import RATE_LIMIT, TooManyRequests, function_error_payload
from klambda_gateway.registry import FunctionVersion

log = logging.getLogger(__name__)

Key = tuple[str, str, str, str]
SYNC = "sync"
ASYNC = "async"
# an environment that has not answered this long after the function timeout is stopped
OVERDUE_GRACE_SECONDS = 15.0


class Transport(Protocol):
    """One environment's stream (the gRPC server and the lane server implement it)."""

    kind: str  # "grpc" | "lane" (metrics)
    writes_wait: bool  # False: write_nowait works (the Dispatcher writes without a task)

    async def write(self, message: pb.GatewayMessage) -> None:
        """Write one message (serialised with other writers of the same stream)."""

    def write_nowait(self, message: pb.GatewayMessage) -> None:
        """Write one message at once (only transports whose writes never wait: the lane)."""

    def close(self) -> None:
        """End the stream (the agent exits once it has nothing in flight)."""


@dataclass(frozen=True)
class ColdStart:
    """Phases of a cold start, in milliseconds (also the X-Klambda-Cold-Start header)."""

    queue_ms: float
    start_ms: float
    init_ms: float

    def header(self) -> str:
        return f"queue={self.queue_ms:.1f};start={self.start_ms:.1f};init={self.init_ms:.1f}"


def cold_start_phases(*, enqueued: float, dispatched: float, launched: float,
                      registered: float | None, ready: float | None, first: bool,
                      invoke_init_ms: float) -> ColdStart:
    """Pure: split one invocation's wait into disjoint phases (they add up to the wait).

    ``start`` is the part of the wait during which its environment was starting (launch
    -> Register), ``init`` the part during its init (Register -> Ready) plus any init the
    agent ran inside the invocation (after a reset), ``queue`` the rest (trigger,
    dispatch, waiting for a busy environment).
    """

    def overlap(a: float, b: float | None) -> float:
        if b is None or not first:
            return 0.0
        return max(0.0, min(b, dispatched) - max(a, enqueued)) * 1000.0

    wait = max(0.0, dispatched - enqueued) * 1000.0
    start = overlap(launched, registered)
    init = overlap(registered, ready) if registered is not None else 0.0
    return ColdStart(queue_ms=max(0.0, wait - start - init), start_ms=start,
                     init_ms=init + invoke_init_ms)


@dataclass(slots=True, unsafe_hash=True)  # hot path: frozen's setattr per field costs 2.5x
class Outcome:
    result: pb.Result
    environment_id: str
    queued_ms: float
    cold: ColdStart | None


@dataclass(eq=False)
class Pending:
    invocation: pb.Invocation
    kind: str
    enqueued_at: float
    future: asyncio.Future[Outcome]
    timer: asyncio.TimerHandle | None = None
    # called synchronously once the future is settled (before its done callbacks run)
    listener: Callable[[asyncio.Future[Outcome]], None] | None = None
    envelope: pb.GatewayMessage | None = None  # holds ``invocation`` (no copy when sent)

    def settle(self, outcome: Outcome | None = None, *,
               error: BaseException | None = None) -> None:
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(outcome)  # type: ignore[arg-type]
        if self.listener is not None:
            try:
                self.listener(self.future)
            except Exception:  # the caller's bug must not break the environment's stream
                log.exception("answering invocation %s failed", self.invocation.request_id)


@dataclass(eq=False)
class Environment:
    environment_id: str
    key: Key
    provisioned: bool
    launched_at: float
    state: EnvState = EnvState.STARTING
    registered_at: float | None = None
    ready_at: float | None = None
    idle_since: float | None = None
    invocations: int = 0
    ready_init_ms: float = 0.0
    transport: Transport | None = None
    # messages decided synchronously, written by whoever awaits ``Dispatcher.flush``
    outbox: collections.deque[pb.GatewayMessage] = field(default_factory=collections.deque)
    current: Pending | None = None
    current_started: float = 0.0


@dataclass(eq=False)
class Pool:
    version: FunctionVersion
    environments: dict[str, Environment] = field(default_factory=dict)
    idle: list[Environment] = field(default_factory=list)  # stack: most recent last
    sync_queue: collections.deque[Pending] = field(default_factory=collections.deque)
    async_queue: collections.deque[Pending] = field(default_factory=collections.deque)
    retired: bool = False

    @property
    def key(self) -> Key:
        return self.version.key

    @property
    def queued(self) -> int:
        return len(self.sync_queue) + len(self.async_queue)


class Dispatcher:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.pools: dict[Key, Pool] = {}
        self._by_id: dict[str, Environment] = {}
        # called with the key when an invocation is queued with no idle environment
        self.on_demand: Callable[[Key], None] = lambda key: None
        # called with an environment id that must be stopped (it stopped answering)
        self.on_stuck: Callable[[str], None] = lambda environment_id: None
        # called after an environment registered (e.g. the Kubernetes scaler matches pods)
        self.on_connected: Callable[[Environment], None] = lambda env: None
        self._background: set[asyncio.Task[None]] = set()

    # ---------------------------------------------------------------- pools
    def pool_for(self, version: FunctionVersion) -> Pool:
        pool = self.pools.get(version.key)
        if pool is None:
            pool = self.pools[version.key] = Pool(version)
        return pool

    def environment(self, environment_id: str) -> Environment | None:
        return self._by_id.get(environment_id)

    def stats(self, key: Key) -> PoolStats:
        pool = self.pools[key]
        envs = tuple(
            EnvStat(e.environment_id, e.state, e.provisioned, e.idle_since)
            for e in pool.environments.values()
        )
        return PoolStats(environments=envs, queued=pool.queued)

    def drop_empty_pools(self) -> None:
        for key in [k for k, p in self.pools.items() if p.retired and not p.environments
                    and not p.queued]:
            del self.pools[key]

    # ---------------------------------------------------------- invocations
    async def invoke(
        self, version: FunctionVersion, invocation: pb.Invocation, *, kind: str,
        queue_timeout: float,
    ) -> Outcome:
        """Run one invocation on an environment of ``version``; queue while none is idle."""
        return await self.begin(version, invocation, kind=kind, queue_timeout=queue_timeout)

    def begin(
        self, version: FunctionVersion, invocation: pb.Invocation, *, kind: str,
        queue_timeout: float,
        listener: Callable[[asyncio.Future[Outcome]], None] | None = None,
        envelope: pb.GatewayMessage | None = None,
    ) -> asyncio.Future[Outcome]:
        """``invoke`` without a coroutine: the future settles with the outcome (or
        TooManyRequests); cancelling it withdraws a queued invocation. ``listener`` is
        called synchronously when it settles (no loop iteration in between)."""
        pool = self.pool_for(version)
        loop = asyncio.get_running_loop()
        pending = Pending(invocation, kind, self._clock(), loop.create_future(),
                          listener=listener, envelope=envelope)
        env = self._take_idle(pool)
        if env is None:
            (pool.sync_queue if kind == SYNC else pool.async_queue).append(pending)
            pending.timer = loop.call_later(queue_timeout, self._expire, pool, pending,
                                            queue_timeout)
            self.on_demand(pool.key)
        else:
            self._send(env, pending)
            self._write(env)
        pending.future.add_done_callback(functools.partial(self._settled, pool, pending))
        return pending.future

    def _settled(self, pool: Pool, pending: Pending, future: asyncio.Future[Outcome]) -> None:
        if future.cancelled():
            self._forget(pool, pending)

    def _write(self, env: Environment) -> None:
        """Write ``env``'s outbox now if its transport's writes never wait, else in a task."""
        if env.transport is not None and not env.transport.writes_wait:
            self.flush_now(env)
        else:
            self._flush_soon(env)

    def _forget(self, pool: Pool, pending: Pending) -> None:
        if pending.timer is not None:
            pending.timer.cancel()
        for queue in (pool.sync_queue, pool.async_queue):
            try:
                queue.remove(pending)
            except ValueError:
                pass

    def _expire(self, pool: Pool, pending: Pending, waited: float) -> None:
        if pending.future.done():
            return
        self._forget(pool, pending)
        name = f"{pool.version.function_name}:{pool.version.version}"
        pending.settle(error=TooManyRequests(
            f"No execution environment of {name} became available within {waited:g} s "
            "(the gateway's queue wait limit): retry later, or raise "
            "KLAMBDA_QUEUE_TIMEOUT_SECONDS / the burst limit",
            reason=RATE_LIMIT, retry_after=1.0))

    def _take_idle(self, pool: Pool) -> Environment | None:
        idle = pool.idle
        if not idle:
            return None
        # provisioned environments are used first, then the most recently idle one
        for i in range(len(idle) - 1, -1, -1):
            if idle[i].provisioned:
                return idle.pop(i)
        return idle.pop()

    def _next_pending(self, pool: Pool) -> Pending | None:
        for queue in (pool.sync_queue, pool.async_queue):
            while queue:
                pending = queue.popleft()
                if not pending.future.done():
                    if pending.timer is not None:
                        pending.timer.cancel()
                    return pending
        return None

    def _send(self, env: Environment, pending: Pending) -> None:
        now = self._clock()
        env.state = EnvState.BUSY
        env.idle_since = None
        env.current = pending
        env.current_started = now
        pending.invocation.queued_ms = (now - pending.enqueued_at) * 1000.0
        pending.timer = None  # the overdue check is sweep_overdue's (no timer per invocation)
        env.outbox.append(pending.envelope or pb.GatewayMessage(invocation=pending.invocation))

    async def flush(self, env: Environment) -> None:
        """Write what was decided for ``env`` (in order); called by the awaiting side."""
        transport = env.transport
        while env.outbox and transport is not None:
            message = env.outbox.popleft()
            try:
                await transport.write(message)
            except Exception as exc:  # noqa: BLE001 - the stream broke; its reader cleans up
                log.debug("writing to environment %s failed: %s", env.environment_id, exc)
                return

    def flush_now(self, env: Environment) -> None:
        """``flush`` for transports whose writes never wait (no task, no suspension)."""
        transport = env.transport
        while env.outbox and transport is not None:
            transport.write_nowait(env.outbox.popleft())

    def _flush_soon(self, env: Environment, *, close: bool = False) -> None:
        """From synchronous code: write pending messages (and close) in a task."""
        async def run() -> None:
            await self.flush(env)
            if close and env.transport is not None:
                env.transport.close()

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def sweep_overdue(self) -> None:
        """Stop environments whose invocation outlived its timeout by the grace period
        (the agent enforces the timeout; this is the safety net when no Result came).
        Called on the autoscaler's tick: one pass instead of a timer per invocation."""
        now = self._clock()
        for env in list(self._by_id.values()):
            pending = env.current
            if pending is None:
                continue
            pool = self.pools.get(env.key)
            timeout = pool.version.timeout if pool is not None else 900
            if now - env.current_started > timeout + OVERDUE_GRACE_SECONDS:
                self._overdue(env, pending)

    def _overdue(self, env: Environment, pending: Pending) -> None:
        """The agent enforces the timeout; if even so no Result came, give up on it."""
        if env.current is not pending:
            return
        env.current = None
        self._fail(pending, env, "Runtime.Unknown",
                   "Error: the execution environment did not answer within the function "
                   f"timeout + {OVERDUE_GRACE_SECONDS:g} s and was stopped")
        self._unidle(env)
        env.state = EnvState.DRAINING
        if env.transport is not None:
            env.transport.close()
        self.on_stuck(env.environment_id)

    def _make_idle(self, env: Environment) -> None:
        pool = self.pools.get(env.key)
        if pool is None:
            return
        pending = self._next_pending(pool)
        if pending is not None:
            self._send(env, pending)
            return
        env.state = EnvState.IDLE
        env.idle_since = self._clock()
        pool.idle.append(env)

    # ------------------------------------------------------ environment side
    def add_starting(self, version: FunctionVersion, environment_id: str, *,
                     provisioned: bool) -> Environment:
        pool = self.pool_for(version)
        env = Environment(environment_id, pool.key, provisioned, self._clock())
        pool.environments[environment_id] = env
        self._by_id[environment_id] = env
        return env

    def connected(self, register: pb.Register, transport: Transport) -> Environment | None:
        """An agent registered. Unknown environments join the newest matching pool."""
        env = self._by_id.get(register.environment_id)
        if env is None:
            pool = self._find_pool(register)
            if pool is None:
                return None
            env = self.add_starting(
                pool.version, register.environment_id,
                provisioned=register.initialization_type == "provisioned-concurrency")
        env.transport = transport
        env.registered_at = self._clock()
        if env.state is EnvState.STARTING:
            env.state = EnvState.INITIALIZING
        self.on_connected(env)
        return env

    def _find_pool(self, register: pb.Register) -> Pool | None:
        for pool in reversed(list(self.pools.values())):
            v = pool.version
            if (v.namespace, v.function_name, v.version) == (
                    register.namespace, register.function_name, register.version
            ) and not pool.retired and register.revision in ("", v.revision):
                return pool
        return None

    def ready(self, env: Environment, ready: pb.Ready) -> None:
        if env.state is not EnvState.INITIALIZING:
            return
        env.ready_at = self._clock()
        env.ready_init_ms = ready.init_duration_ms
        self._make_idle(env)

    def result(self, env: Environment, result: pb.Result) -> None:
        pending = env.current
        if pending is None or pending.invocation.request_id != result.request_id:
            log.warning("environment %s sent a result for %s it was not running",
                        env.environment_id, result.request_id)
            return
        env.current = None
        if pending.timer is not None:
            pending.timer.cancel()
        cold = None
        if result.init_duration_ms > 0 or (env.invocations == 0 and not env.provisioned):
            cold = cold_start_phases(
                enqueued=pending.enqueued_at, dispatched=env.current_started,
                launched=env.launched_at, registered=env.registered_at, ready=env.ready_at,
                first=env.invocations == 0,
                # a first invocation's Init Duration is the init before Ready, already
                # the init phase; later ones (after a reset) ran their init inside
                invoke_init_ms=result.init_duration_ms if env.invocations else 0.0)
        env.invocations += 1
        # the environment's state first: a listener may start the next invocation at once
        if env.state is EnvState.BUSY:
            self._make_idle(env)
        elif env.state is EnvState.DRAINING and env.transport is not None:
            env.transport.close()  # nothing more for it: close the stream
        if not pending.future.done():
            pending.settle(Outcome(result, env.environment_id, pending.invocation.queued_ms,
                                   cold))

    def draining(self, env: Environment) -> None:
        """The environment stops taking work (agent SIGTERM or our Shutdown)."""
        self._unidle(env)
        env.state = EnvState.DRAINING
        if env.current is None and env.transport is not None:
            env.transport.close()

    def _unidle(self, env: Environment) -> None:
        pool = self.pools.get(env.key)
        if pool is not None and env in pool.idle:
            pool.idle.remove(env)

    def stop(self, environment_ids: list[str]) -> list[str]:
        """Mark idle (or not yet ready) environments draining; returns those marked."""
        stopped: list[str] = []
        for env_id in environment_ids:
            env = self._by_id.get(env_id)
            if env is None or env.state in (EnvState.BUSY, EnvState.DRAINING):
                continue
            self._unidle(env)
            env.state = EnvState.DRAINING
            if env.transport is not None:
                env.outbox.append(pb.GatewayMessage(shutdown=pb.Shutdown(reason="scale-down")))
                self._flush_soon(env, close=True)
            stopped.append(env_id)
        return stopped

    def disconnected(self, env: Environment) -> None:
        env.transport = None
        self.gone(env.environment_id, reason="the environment closed its connection")

    def gone(self, environment_id: str, *, reason: str) -> None:
        """The environment's stream ended or its process exited: forget it.

        Its in-flight invocation fails with Runtime.ExitError; if it never became ready
        while invocations were waiting for it, the oldest waiting one fails too (so a
        crash on start is reported at once, not as a queue timeout); when the pool has
        no other environment left, every waiting invocation fails.
        """
        env = self._by_id.pop(environment_id, None)
        if env is None:
            return
        pool = self.pools.get(env.key)
        never_ready = env.ready_at is None and env.state is not EnvState.DRAINING
        if pool is not None:
            pool.environments.pop(environment_id, None)
            self._unidle(env)
        if env.transport is not None:
            env.transport.close()
        if env.current is not None:
            pending, env.current = env.current, None
            if pending.timer is not None:
                pending.timer.cancel()
            self._fail(pending, env, "Runtime.ExitError",
                       f"Error: Runtime exited with error: {reason}")
        if pool is None or not never_ready:
            return
        victims: list[Pending] = []
        if not pool.environments:
            while (p := self._next_pending(pool)) is not None:
                victims.append(p)
        elif (p := self._next_pending(pool)) is not None:
            victims.append(p)
        for p in victims:
            self._fail(p, env, "Runtime.ExitError",
                       f"Error: the execution environment exited during start ({reason}); "
                       "see the function's log")

    def _fail(self, pending: Pending, env: Environment, error_type: str, message: str) -> None:
        if pending.future.done():
            return
        rid = pending.invocation.request_id
        result = pb.Result(
            request_id=rid, function_error="Unhandled", error_type=error_type,
            payload=function_error_payload(error_type=error_type,
                                           message=f"RequestId: {rid} {message}"),
            environment_reset=True,
        )
        pending.settle(Outcome(result, env.environment_id, pending.invocation.queued_ms,
                               None))
