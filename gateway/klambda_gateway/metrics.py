"""Prometheus metrics of the data path (one CollectorRegistry per gateway instance).

Labels follow CloudWatch's Lambda dimensions: ``namespace``, ``function``,
``resource`` (name or name:qualifier as invoked) and ``executed_version``.
Environment gauges (concurrency, provisioned utilisation) are computed at scrape time
from the Dispatcher.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

from klambda_gateway.autoscaler import EnvState
from klambda_gateway.dispatch import ColdStart, Dispatcher
from klambda_gateway.registry import FunctionVersion

disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series only add noise to every scrape

_INV = ("namespace", "function", "resource", "executed_version")
_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                     10, 30, 60, 300, 900)


class _EnvironmentCollector:
    def __init__(self, dispatcher: Dispatcher, provisioned: Any) -> None:
        self._dispatcher = dispatcher
        self._provisioned = provisioned

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        envs = GaugeMetricFamily("klambda_environments", "Execution environments by state",
                                 labels=["namespace", "function", "version", "state"])
        conc = GaugeMetricFamily("klambda_concurrent_executions",
                                 "Environments running an invocation",
                                 labels=["namespace", "function", "version"])
        queued = GaugeMetricFamily("klambda_queued_invocations",
                                   "Invocations waiting for an environment",
                                   labels=["namespace", "function", "version"])
        util = GaugeMetricFamily("klambda_provisioned_concurrency_utilization",
                                 "Busy provisioned environments / provisioned concurrency",
                                 labels=["namespace", "function", "version"])
        streams = GaugeMetricFamily("klambda_environment_streams",
                                    "Connected environments by stream transport (lane, grpc, embedded)",
                                    labels=["transport"])
        by_transport = {"lane": 0, "grpc": 0, "embedded": 0}
        targets = self._provisioned() if self._provisioned else {}
        for key, pool in list(self._dispatcher.pools.items()):
            ns, fn, version, _ = key
            counts = {s: 0 for s in EnvState}
            busy_prov = 0
            for env in pool.environments.values():
                counts[env.state] += 1
                kind = getattr(env.transport, "kind", None)
                if kind in by_transport:
                    by_transport[kind] += 1
                if env.provisioned and env.state is EnvState.BUSY:
                    busy_prov += 1
            for state, n in counts.items():
                envs.add_metric([ns, fn, version, state.value], n)
            conc.add_metric([ns, fn, version], counts[EnvState.BUSY])
            queued.add_metric([ns, fn, version], pool.queued)
            target = targets.get(key, 0)
            if target:
                util.add_metric([ns, fn, version], busy_prov / target)
        for kind, n in by_transport.items():
            streams.add_metric([kind], n)
        yield from (envs, conc, queued, util, streams)


class GatewayMetrics:
    def __init__(self) -> None:
        self._children: dict[tuple[str, ...], tuple[Any, Any, Any]] = {}
        self.registry = CollectorRegistry()
        r = self.registry
        self.invocations = Counter("klambda_invocations", "Invocations run", _INV, registry=r)
        self.errors = Counter("klambda_errors", "Invocations that ended in a function error",
                              _INV, registry=r)
        self.throttles = Counter("klambda_throttles", "Invocations refused with 429",
                                 ("namespace", "function", "resource", "reason"), registry=r)
        self.duration = Histogram("klambda_duration_seconds", "Function duration (agent)",
                                  _INV, buckets=_DURATION_BUCKETS, registry=r)
        self.cold_starts = Counter("klambda_cold_starts", "Invocations served by a cold start",
                                   ("namespace", "function", "executed_version"), registry=r)
        self.cold_phase = Histogram("klambda_cold_start_phase_seconds",
                                    "Cold-start phases: queue wait, environment start, init",
                                    ("namespace", "function", "phase"),
                                    buckets=_DURATION_BUCKETS, registry=r)
        self.env_starts = Counter("klambda_environment_starts", "Environments started",
                                  ("namespace", "function", "version", "initialization_type"),
                                  registry=r)
        self.async_accepted = Counter("klambda_async_events_accepted",
                                      "Event invocations persisted (202)",
                                      ("namespace", "function"), registry=r)
        self.async_age = Histogram("klambda_async_event_age_seconds",
                                   "Age of an async event when it is run",
                                   ("namespace", "function"),
                                   buckets=(0.01, 0.1, 1, 10, 60, 300, 3600, 21600), registry=r)
        self.async_retries = Counter("klambda_async_retries", "Async attempts that will be retried",
                                     ("namespace", "function"), registry=r)
        self.async_dropped = Counter("klambda_async_events_dropped",
                                     "Async events that failed for good (retries exhausted, "
                                     "too old, function gone)",
                                     ("namespace", "function", "reason"), registry=r)
        self.async_dead_lettered = Counter("klambda_async_events_dead_lettered",
                                           "Failed async events recorded in the dead-letter table",
                                           ("namespace", "function", "reason"), registry=r)
        self.destinations = Counter("klambda_async_destination_deliveries",
                                    "Destination records enqueued",
                                    ("namespace", "function", "condition"), registry=r)

    def attach(self, dispatcher: Dispatcher, provisioned: Any = None) -> None:
        self.registry.register(_EnvironmentCollector(dispatcher, provisioned))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def environments_started(self, version: FunctionVersion, count: int, *,
                             provisioned: bool) -> None:
        kind = "provisioned-concurrency" if provisioned else "on-demand"
        self.env_starts.labels(version.namespace, version.function_name, version.version,
                               kind).inc(count)

    def invoked(self, *, namespace: str, function: str, resource: str, version: str,
                duration_ms: float, error: bool, cold: ColdStart | None) -> None:
        labels = (namespace, function, resource, version)
        children = self._children.get(labels)
        if children is None:  # labels() costs a lock and a dict build per call: cache
            children = self._children[labels] = (
                self.invocations.labels(*labels), self.errors.labels(*labels),
                self.duration.labels(*labels))
        children[0].inc()
        if error:
            children[1].inc()
        children[2].observe(duration_ms / 1000.0)
        if cold is not None:
            self.cold_starts.labels(namespace, function, version).inc()
            for phase, ms in (("queue", cold.queue_ms), ("start", cold.start_ms),
                              ("init", cold.init_ms)):
                self.cold_phase.labels(namespace, function, phase).observe(ms / 1000.0)

    def throttled(self, *, namespace: str, function: str, resource: str, reason: str) -> None:
        self.throttles.labels(namespace, function, resource, reason).inc()
