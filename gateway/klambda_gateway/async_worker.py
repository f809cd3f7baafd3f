"""The async worker: runs stored Event invocations with retries, age limit, destinations.

Pure pieces: ``retry_delay`` (Lambda's schedule: 1 min, then 2 min, scaled by
``async_retry_base_seconds``), ``next_step`` (what to do after an attempt) and
``destination_record`` (reference §4). Throttled attempts are re-queued after
``async_throttle_delay_seconds`` without using a retry (as Lambda does, up to the
maximum event age).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from klambda_gateway.arn import FunctionRef, function_arn
from klambda_gateway.async_store import AsyncEvent, AsyncEventStore
from klambda_gateway.datapath import DataPath
from klambda_gateway.dispatch import ASYNC
from klambda_gateway.errors import InvokeError, ResourceNotFound, TooManyRequests
from klambda_gateway.registry import Destination, EventInvokeConfig
from klambda_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

SUCCESS = "Success"
RETRIES_EXHAUSTED = "RetriesExhausted"
EVENT_AGE_EXCEEDED = "EventAgeExceeded"


def retry_delay(attempt: int, *, base: float) -> float:
    """Pure: delay before retry number ``attempt`` (1-based): base, 2*base, 4*base..."""
    return float(base * (2 ** max(0, attempt - 1)))


@dataclass(frozen=True)
class Step:
    action: str  # "done" | "retry" | "fail"
    condition: str = ""  # destination condition for done / fail
    next_attempt_at: float = 0.0


def next_step(*, failed: bool, attempts: int, created_at: float, now: float,
              config: EventInvokeConfig, retry_base: float) -> Step:
    """Pure: after attempt number ``attempts`` (1-based) ended, succeed, retry or fail."""
    if not failed:
        return Step("done", SUCCESS)
    if attempts > config.maximum_retry_attempts:
        return Step("fail", RETRIES_EXHAUSTED)
    at = now + retry_delay(attempts, base=retry_base)
    if at - created_at > config.maximum_event_age_seconds:
        return Step("fail", EVENT_AGE_EXCEEDED)
    return Step("retry", next_attempt_at=at)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def destination_record(*, request_id: str, function_arn: str, condition: str,
                       attempts: int, payload: bytes, status_code: int | None,
                       executed_version: str, function_error: str,
                       response: bytes | None, now: float) -> bytes:
    """Pure: Lambda's async destination record (reference §4)."""

    def decode(raw: bytes) -> Any:
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode("utf-8", "replace")

    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": iso(now),
        "requestContext": {"requestId": request_id, "functionArn": function_arn,
                           "condition": condition, "approximateInvokeCount": attempts},
        "requestPayload": decode(payload),
    }
    if status_code is not None:
        ctx: dict[str, Any] = {"statusCode": status_code, "executedVersion": executed_version}
        if function_error:
            ctx["functionError"] = function_error
        record["responseContext"] = ctx
        record["responsePayload"] = decode(response or b"")
    return json.dumps(record).encode()


class AsyncWorker:
    def __init__(self, *, store: AsyncEventStore, datapath: DataPath,
                 settings: GatewaySettings, owner: str = "local") -> None:
        self._store = store
        self._dp = datapath
        self._settings = settings
        self._owner = owner
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()

    def notify(self) -> None:
        """A new event was stored: look at once."""
        self._wake.set()

    async def enqueue(self, event: AsyncEvent) -> None:
        await self._store.put(event)
        self._dp.metrics.async_accepted.labels(event.namespace, event.function).inc()
        self.notify()

    async def run(self) -> None:
        await self._store.release_owner(self._owner)
        s = self._settings
        while True:
            self._wake.clear()
            free = s.async_max_in_flight - len(self._running)
            timeout = s.async_poll_seconds
            if free > 0:
                events = await self._store.lease(now=time.time(), limit=free,
                                                 lease_seconds=s.async_lease_seconds,
                                                 owner=self._owner)
                for event in events:
                    task = asyncio.create_task(self._process(event))
                    self._running.add(task)
                    task.add_done_callback(self._done)
                if len(events) == free:
                    continue  # there may be more due right now
                due = await self._store.next_due()
                if due is not None:
                    timeout = min(timeout, due - time.time())
            # at capacity: a finishing event sets _wake; never spin
            try:
                await asyncio.wait_for(self._wake.wait(), max(timeout, 0.01))
            except TimeoutError:
                pass

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("async event processing failed", exc_info=task.exception())

    async def close(self) -> None:
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.wait(list(self._running), timeout=2.0)

    async def _process(self, event: AsyncEvent) -> None:
        dp, s = self._dp, self._settings
        ref = FunctionRef(event.namespace, event.function, event.qualifier or None)
        try:
            target = dp.resolve(ref)
        except ResourceNotFound as exc:
            await self._drop(event, reason="FunctionNotFound", detail=exc.message,
                             attempts=event.attempts)
            return
        config = target.function.event_invoke_config
        now = time.time()
        if now - event.created_at > config.maximum_event_age_seconds:
            await self._finish(event, target_arn=target.invoked_arn, config=config,
                               condition=EVENT_AGE_EXCEEDED, attempts=event.attempts,
                               response=None)
            return
        dp.metrics.async_age.labels(event.namespace, event.function).observe(
            now - event.created_at)
        try:
            outcome = await dp.invoke(target, event.payload, request_id=event.event_id,
                                      kind=ASYNC, queue_timeout=max(
                                          s.queue_timeout_seconds, 30.0))
        except TooManyRequests as exc:
            await self._store.reschedule(
                event.event_id, attempts=event.attempts,
                next_attempt_at=time.time() + s.async_throttle_delay_seconds, error=exc.message)
            return
        except InvokeError as exc:
            await self._drop(event, reason=exc.code, detail=exc.message,
                             attempts=event.attempts)
            return
        result = outcome.result
        attempts = event.attempts + 1
        now = time.time()
        step = next_step(failed=bool(result.function_error), attempts=attempts,
                         created_at=event.created_at, now=now, config=config,
                         retry_base=s.async_retry_base_seconds)
        if step.action == "retry":
            dp.metrics.async_retries.labels(event.namespace, event.function).inc()
            await self._store.reschedule(event.event_id, attempts=attempts,
                                         next_attempt_at=step.next_attempt_at,
                                         error=result.payload.decode("utf-8", "replace"))
            return
        response = (200, target.version.version, result.function_error, result.payload)
        await self._finish(event, target_arn=function_arn(
            event.namespace, event.function, target.version.version,
            region=s.region, account_id=s.account_id),
            config=config, condition=step.condition, attempts=attempts, response=response)

    async def _finish(self, event: AsyncEvent, *, target_arn: str, config: EventInvokeConfig,
                      condition: str, attempts: int,
                      response: tuple[int, str, str, bytes] | None) -> None:
        dest = config.on_success if condition == SUCCESS else config.on_failure
        delivered = ""
        if dest is not None:
            record = destination_record(
                request_id=event.event_id, function_arn=target_arn, condition=condition,
                attempts=attempts, payload=event.payload,
                status_code=response[0] if response else None,
                executed_version=response[1] if response else "",
                function_error=response[2] if response else "",
                response=response[3] if response else None, now=time.time())
            delivered = await self._deliver(event, dest, record, condition)
        if condition == SUCCESS:
            await self._store.complete(event.event_id)
            return
        detail = delivered or "no on-failure destination"
        if response is not None:
            detail += "; last response: " + response[3].decode("utf-8", "replace")[:4000]
        await self._drop(event, reason=condition, detail=detail, attempts=attempts,
                         count_dropped=not delivered)

    async def _deliver(self, event: AsyncEvent, dest: Destination, record: bytes,
                       condition: str) -> str:
        if not dest.function:
            log.warning("destination %s of %s is not a function; only function destinations "
                        "are supported locally", dest.arn, event.function)
            return ""
        name, _, qualifier = dest.function.partition(":")
        await self._store.put(AsyncEvent(
            event_id=str(uuid.uuid4()), namespace=event.namespace, function=name,
            qualifier=qualifier, payload=record, created_at=time.time()))
        self._dp.metrics.destinations.labels(event.namespace, event.function, condition).inc()
        self.notify()
        return f"delivered to destination function {dest.function}"

    async def _drop(self, event: AsyncEvent, *, reason: str, detail: str, attempts: int,
                    count_dropped: bool = True) -> None:
        m = self._dp.metrics
        await self._store.dead_letter(event, reason=reason, detail=detail, attempts=attempts,
                                      now=time.time())
        m.async_dead_lettered.labels(event.namespace, event.function, reason).inc()
        if count_dropped:
            m.async_dropped.labels(event.namespace, event.function, reason).inc()
        log.warning("async event %s of %s failed for good (%s): %s", event.event_id,
                    event.function, reason, detail[:200])
