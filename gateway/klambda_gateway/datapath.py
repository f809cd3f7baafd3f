"""The invocation core shared by the Invoke API and the async worker:
admission -> dispatch -> metrics, for one resolved target."""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Callable
from typing import Any

from klambda_proto import environment_pb2 as pb

from klambda_gateway.arn import FunctionRef
from klambda_gateway.concurrency import ConcurrencyTracker
from klambda_gateway.dispatch import SYNC, Dispatcher, Outcome
from klambda_gateway.errors import TooManyRequests
from klambda_gateway.metrics import GatewayMetrics
from klambda_gateway.registry import Registry
from klambda_gateway.routing import Resolution, resolve
from klambda_gateway.settings import GatewaySettings

_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def request_id() -> str:
    """A random (version 4) UUID as text, like Lambda's request ids; not a secret, so the
    fast PRNG (0.7 µs instead of uuid4's 2.5 µs and a getrandom call per request)."""
    h = f"{random.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def trace_id(now: float) -> str:
    """An X-Ray style trace header value for one invocation (not a secret: fast PRNG)."""
    bits = random.getrandbits(160)
    return f"Root=1-{int(now):08x}-{bits >> 64:024x};Parent={bits & (2**64 - 1):016x};Sampled=0"


class DataPath:
    def __init__(
        self,
        *,
        registry: Registry,
        dispatcher: Dispatcher,
        tracker: ConcurrencyTracker,
        metrics: GatewayMetrics,
        settings: GatewaySettings,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.registry = registry
        self.dispatcher = dispatcher
        self.tracker = tracker
        self.metrics = metrics
        self.settings = settings
        self._rand = rand

    def resolve(self, ref: FunctionRef) -> Resolution:
        return resolve(self.registry, ref, region=self.settings.region,
                       account_id=self.settings.account_id, rand=self._rand)

    async def invoke(
        self,
        target: Resolution,
        payload: bytes,
        *,
        request_id: str,
        kind: str,
        client_context: str = "",
        queue_timeout: float | None = None,
    ) -> Outcome:
        """Admit and run one invocation; raises TooManyRequests when throttled."""
        return await self.begin(target, payload, request_id=request_id, kind=kind,
                                client_context=client_context, queue_timeout=queue_timeout)

    def begin(
        self,
        target: Resolution,
        payload: bytes,
        *,
        request_id: str,
        kind: str,
        client_context: str = "",
        queue_timeout: float | None = None,
        then: Callable[[asyncio.Future[Outcome]], None] | None = None,
    ) -> asyncio.Future[Outcome]:
        """``invoke`` without a coroutine (raises TooManyRequests at once when admission
        refuses; a queue timeout fails the future with it). ``then`` runs first when the
        future settles, synchronously — before the bookkeeping, so the caller's answer goes out
        first."""
        fn = target.function
        try:
            lease = self.tracker.acquire(fn, sync=kind == SYNC)
        except TooManyRequests as exc:
            self.metrics.throttled(namespace=fn.namespace, function=fn.name,
                                   resource=target.resource, reason=exc.reason)
            raise
        try:
            envelope = pb.GatewayMessage()
            invocation = envelope.invocation  # filled in place: sent without a copy
            invocation.request_id = request_id
            invocation.payload = payload
            invocation.invoked_function_arn = target.invoked_arn
            if client_context:
                invocation.client_context = client_context
            invocation.trace_id = trace_id(time.time())
            future = self.dispatcher.begin(
                target.version, invocation, kind=kind,
                queue_timeout=(self.settings.queue_timeout_seconds
                               if queue_timeout is None else queue_timeout),
                listener=then, envelope=envelope)
        except BaseException:
            self.tracker.release(lease)
            raise
        future.add_done_callback(functools.partial(self._settled, target, lease))
        return future

    def _settled(self, target: Resolution, lease: Any, future: asyncio.Future[Outcome]) -> None:
        self.tracker.release(lease)
        if future.cancelled():
            return
        fn = target.function
        exc = future.exception()
        if exc is not None:
            if isinstance(exc, TooManyRequests):
                self.metrics.throttled(namespace=fn.namespace, function=fn.name,
                                       resource=target.resource, reason=exc.reason)
            return
        outcome = future.result()
        result = outcome.result
        self.metrics.invoked(namespace=fn.namespace, function=fn.name,
                             resource=target.resource, version=target.version.version,
                             duration_ms=result.duration_ms, error=bool(result.function_error),
                             cold=outcome.cold)
