"""Concurrency accounting around the pure ``admit`` decider.

``acquire`` is synchronous (no await between the check and the increment), so
admission is atomic on the event loop; every lease is released exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

from klambda_gateway.admission import AdmissionInput, ConcurrencyLimits, admit
from klambda_gateway.errors import RESERVED_LIMIT, TooManyRequests
from klambda_gateway.registry import FunctionConfig, Registry


@dataclass(eq=False)
class Lease:
    namespace: str
    function: str
    unreserved: bool
    sync: bool = True
    released: bool = False


class ConcurrencyTracker:
    def __init__(self, registry: Registry, limits: ConcurrencyLimits) -> None:
        self._registry = registry
        self.limits = limits
        self.in_flight: dict[tuple[str, str], int] = {}
        self.unreserved_in_flight: dict[str, int] = {}
        self.async_in_flight: dict[tuple[str, str], int] = {}
        self._reserved_gen = -1
        self._reserved_total: dict[str, int] = {}

    def reserved_total(self, namespace: str) -> int:
        gen = self._registry.generation
        if gen != self._reserved_gen:
            totals: dict[str, int] = {}
            for fn in self._registry.functions():
                if fn.reserved_concurrency is not None:
                    totals[fn.namespace] = totals.get(fn.namespace, 0) + fn.reserved_concurrency
            self._reserved_total, self._reserved_gen = totals, gen
        return self._reserved_total.get(namespace, 0)

    def acquire(self, fn: FunctionConfig, *, sync: bool = True) -> Lease:
        """Admit one invocation of ``fn`` or raise TooManyRequests (429)."""
        key = (fn.namespace, fn.name)
        decision = admit(AdmissionInput(
            reserved=fn.reserved_concurrency,
            function_in_flight=self.in_flight.get(key, 0),
            unreserved_in_flight=self.unreserved_in_flight.get(fn.namespace, 0),
            reserved_total=self.reserved_total(fn.namespace),
            sync=sync,
            function_async_in_flight=self.async_in_flight.get(key, 0),
        ), self.limits)
        if not decision.allowed:
            if decision.reason == RESERVED_LIMIT:
                what = (f"function {fn.name} has reserved concurrency {decision.limit}"
                        if decision.limit else
                        f"function {fn.name} has reserved concurrency 0 (invocations disabled)")
            else:
                what = (f"namespace {fn.namespace} reached its unreserved concurrency limit "
                        f"of {decision.limit}")
            raise TooManyRequests(f"Rate Exceeded: {what}; retry later or raise the limit",
                                  reason=decision.reason, retry_after=1.0)
        unreserved = fn.reserved_concurrency is None
        self.in_flight[key] = self.in_flight.get(key, 0) + 1
        if unreserved:
            self.unreserved_in_flight[fn.namespace] = (
                self.unreserved_in_flight.get(fn.namespace, 0) + 1)
        if not sync:
            self.async_in_flight[key] = self.async_in_flight.get(key, 0) + 1
        return Lease(fn.namespace, fn.name, unreserved, sync)

    def release(self, lease: Lease) -> None:
        if lease.released:
            return
        lease.released = True
        key = (lease.namespace, lease.function)
        self.in_flight[key] = self.in_flight.get(key, 1) - 1
        if lease.unreserved:
            self.unreserved_in_flight[lease.namespace] = (
                self.unreserved_in_flight.get(lease.namespace, 1) - 1)
        if not lease.sync:
            self.async_in_flight[key] = self.async_in_flight.get(key, 1) - 1

    def function_in_flight(self, namespace: str, name: str) -> int:
        return self.in_flight.get((namespace, name), 0)
