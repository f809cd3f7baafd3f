"""The runtime side of an environment: one runtime process at a time, one invocation at a time.

The supervisor starts the runtime (forked from the per-environment template for the
built-in Python runtime, exec'd for ``provided``), learns from the Runtime API when its
init is done, hands it invocations, and turns every way an invocation can end into a
Lambda-shaped result: response, function error, oversized response, timeout, crash or
memory over the limit. After a timeout, crash or OOM it throws the runtime away and
starts a new one at once, so the next invocation is a cold start that reports its Init
Duration (as Lambda does after a sandbox reset).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from klambda_runtime import errors, reports
from klambda_runtime.forkclient import ForkClient
from klambda_runtime.generation import RuntimeProcess
from klambda_runtime.interpreters import choose_interpreter
from klambda_runtime.logsink import LogSink
from klambda_runtime.outcomes import (
    InitOutcome,
    Invocation,
    InvocationResult,
    Outcome,
    decide,
    error_line,
    init_error_payload,
    trace_id,
)
from klambda_runtime.runtime_api import RuntimeApi, event_head
from klambda_runtime.runtime_env import (
    function_arn,
    native_lib_dirs,
)
from klambda_runtime.runtime_start import RuntimeStart
from klambda_runtime.settings import AgentSettings
from klambda_runtime.spec import EnvironmentSpec

_log = logging.getLogger("klambda.agent")


class _Immediate:
    """A future-like settled by ``_settle`` whose callback runs at once (no loop hop)."""

    __slots__ = ("_callback", "_done")

    def __init__(self, callback: Callable[[Outcome], None]) -> None:
        self._callback = callback
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, outcome: Outcome) -> None:
        self._done = True
        self._callback(outcome)


class Supervisor(RuntimeStart):
    def __init__(
        self,
        spec: EnvironmentSpec,
        settings: AgentSettings,
        *,
        sink: LogSink,
        template: ForkClient | None,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.sink = sink
        self.template = template
        self.api = RuntimeApi(self)
        self.gen: RuntimeProcess | None = None
        self._loop = asyncio.get_running_loop()
        self._current: tuple[str, Any] | None = None  # (request id, future or _Immediate)
        # Provisioned environments do not report the init of their first runtime.
        self._report_init = spec.initialization_type != "provisioned-concurrency"
        self._restarting: asyncio.Task[None] | None = None
        self._closed = False
        self._first_ready: asyncio.Future[InitOutcome] = self._loop.create_future()
        self._log_stream_time = datetime.now(UTC)
        self._started = asyncio.Event()
        # The dynamic loader reads LD_LIBRARY_PATH only when a program starts, so a forked
        # runtime cannot see <code>/lib or <opt>/lib: with such directories, exec instead.
        self._native_libs = native_lib_dirs(spec) != []
        # Which Python runs a built-in runtime (python3.12 on a 3.12 interpreter when
        # there is one); a zygote-forked agent gets it forked from the zygote's runtime
        # server on that interpreter, otherwise it is exec'd (docs/runtime.md).
        self.interpreter, self._interpreter_note = choose_interpreter(spec.runtime, settings)
        self._delivered_at = 0.0
        self._log_flush: asyncio.TimerHandle | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._deadline = 0.0  # loop time at which the current invocation times out
        self._deadline_for = ""  # ... and its request id

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Bind the Runtime API, start the runtime, then serve: the runtime's fork and the
        agent's own start-up (event loop, gRPC) overlap."""
        try:
            self.api.bind()
            pending = self._launch_begin()
            await self.api.start()
            await self._launch_end(pending)
        finally:
            self._started.set()

    @property
    def first_init(self) -> asyncio.Future[InitOutcome]:
        return self._first_ready

    async def wait_ready(self) -> None:
        """Until the current runtime finished init (or failed), or Lambda's init limit passed."""
        await self._started.wait()
        while self._restarting is not None:
            await self._restarting
        gen = self.gen
        if gen is None or gen.init.done():
            return
        remaining = gen.started + self.settings.init_ready_limit_s - self._loop.time()
        if remaining > 0:
            await asyncio.wait([gen.init], timeout=remaining)

    # ----------------------------------------------------------------- memory
    def _sample(self, gen: RuntimeProcess) -> None:
        gen.sampler = None
        self.sink.flush()  # a held START reaches the log within one sampling interval
        if gen is not self.gen or gen.exited.done():
            return
        now = self._loop.time()
        if now - gen.tree_scanned >= self.settings.tree_scan_s:
            gen.rescan_tree(now)
        rss = gen.sample_rss()
        if rss > self.spec.memory_size * 1024 * 1024:
            self.sink.line(
                f"klambda-agent: runtime used {reports.memory_mb(rss)} MB, over the function's "
                f"memory size of {self.spec.memory_size} MB; killing it\n"
            )
            gen.kill_tree(signal.SIGKILL)
            self._settle(Outcome("oom"))
            if not gen.init.done():
                self._init_done(
                    gen, InitOutcome(self._ms_since(gen.started), errors.OOM_ERROR_TYPE)
                )
            return
        if not gen.init.done() or self._current is not None:
            gen.sampler = self._loop.call_later(self.settings.memory_sample_s, self._sample, gen)

    def _ms_since(self, t: float) -> float:
        return (self._loop.time() - t) * 1000.0

    # ----------------------------------------------------------------- Runtime API events
    def _init_done(self, gen: RuntimeProcess, outcome: InitOutcome) -> None:
        """Init finished (or failed): record it; a failure gets Lambda's INIT_REPORT line."""
        if gen.init.done():
            return
        gen.init.set_result(outcome)
        if outcome.error_type:
            line = reports.init_report_line(
                duration_ms=outcome.duration_ms, status="error", error_type=outcome.error_type
            )
            self.sink.line(line)
            gen.init_log += line.encode()
        if not self._first_ready.done():
            self._first_ready.set_result(outcome)

    def runtime_ready(self) -> None:
        _log.debug("t=%.6f cpu=%.6f runtime ready", time.monotonic(), time.process_time())
        gen = self.gen
        if gen is not None:
            self._init_done(gen, InitOutcome(self._ms_since(gen.started)))

    def init_error(self, error_type: str, body: bytes) -> None:
        gen = self.gen
        if gen is not None:
            duration = self._ms_since(gen.started)
            self._init_done(
                gen, InitOutcome(duration, errors.error_type_of(body, error_type), body)
            )

    def invocation_response(self, request_id: str, body: bytes) -> None:
        self._settle(Outcome("response", body), request_id)

    def invocation_error(self, request_id: str, error_type: str, body: bytes) -> None:
        self._settle(Outcome("error", body, errors.error_type_of(body, error_type)), request_id)

    def response_too_large(self, request_id: str) -> None:
        self._settle(Outcome("too_large"), request_id)

    def _settle(self, outcome: Outcome, request_id: str | None = None) -> None:
        current = self._current
        if current is None or (request_id is not None and current[0] != request_id):
            return
        if not current[1].done():
            current[1].set_result(outcome)

    def _on_exit(self, gen: RuntimeProcess, fut: asyncio.Future[int]) -> None:
        returncode = fut.result()
        if gen.popen is not None:
            gen.popen.returncode = returncode
        if gen is not self.gen:
            return
        if not gen.init.done():
            duration = self._ms_since(gen.started)
            self._init_done(
                gen, InitOutcome(duration, errors.EXIT_ERROR_TYPE, returncode=returncode)
            )
        if self._current is not None:
            self._settle(Outcome("exit", returncode=returncode))
        elif gen.init.result().error_type == "" and not self._closed and self._restarting is None:
            # Died while idle: replace it now; the next invocation reports the new init.
            self._restarting = self._loop.create_task(self._restart())

    # ----------------------------------------------------------------- restart / kill
    async def _stop(self, gen: RuntimeProcess, *, grace: float = 0.0) -> None:
        if grace > 0 and not gen.exited.done():
            gen.kill_tree(signal.SIGTERM)
            await asyncio.wait([gen.exited], timeout=grace)
        gen.kill_tree(signal.SIGKILL)
        if not gen.exited.done():
            await asyncio.wait([gen.exited], timeout=2.0)
        if gen.sampler is not None:
            gen.sampler.cancel()
        gen.drain_log()
        gen.close_log()
        gen.close_memory()
        if self.template is not None and gen.pid > 0:
            self.template.forget(gen.pid)

    async def _restart(self) -> None:
        try:
            if self.gen is not None:
                await self._stop(self.gen)
            self.api.reset()
            self._report_init = True
            if not self._closed:
                await self._launch()
        finally:
            self._restarting = None

    def flush_log_soon(self) -> None:
        """Write held log lines within one sampling interval: at high rates one log write
        carries several invocations' END and REPORT lines."""
        if self._log_flush is None:
            self._log_flush = self._loop.call_later(
                self.settings.memory_sample_s, self._flush_log
            )

    def _flush_log(self) -> None:
        self._log_flush = None
        self.sink.flush()

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._log_flush is not None:
            self._log_flush.cancel()
            self._flush_log()
        self._closed = True
        if self._restarting is not None:
            await asyncio.wait([self._restarting], timeout=3.0)
        if self.gen is not None:
            await self._stop(self.gen, grace=self.settings.kill_grace_s)
        await self.api.close()

    # ----------------------------------------------------------------- invoke
    def event_delivered(self, request_id: str) -> None:
        current = self._current
        if current is not None and current[0] == request_id and not self.sink.active:
            self._delivered_at = self._loop.time()
            self.sink.begin()
            # written out with the function's first output, or with END + REPORT
            self.sink.hold(reports.start_line(request_id, version=self.spec.version))

    async def invoke(self, inv: Invocation, *, redelivery: bool = False) -> InvocationResult:
        await self._started.wait()
        while self._restarting is not None:
            await self._restarting
        gen = self.gen
        assert gen is not None, "start() first"
        timeout = float(self.spec.timeout)
        if not gen.init.done():
            # Init still running (a restart, or a slow first init): wait for it, bounded
            # by Lambda's init limit plus the function timeout.
            limit = gen.started + self.settings.init_ready_limit_s + timeout - self._loop.time()
            self._current = (inv.request_id, self._loop.create_future())
            await asyncio.wait([gen.init], timeout=max(0.0, limit))
            self._current = None
            if not gen.init.done():
                return self._finish(
                    inv, gen, Outcome("timeout"), duration_ms=timeout * 1000, init_ms=0.0
                )
        init = gen.init.result()
        init_ms = init.duration_ms if self._report_init else 0.0
        self._report_init = False
        if init.error_type:
            return await self._init_failed(inv, gen, init)
        fut: asyncio.Future[Outcome] = self._loop.create_future()
        self._begin(inv, gen, fut)
        try:
            outcome = await fut
        finally:
            self._current = None
        if not redelivery and self._must_redeliver(inv, outcome):
            return await self.invoke(inv, redelivery=True)
        return self._complete(inv, gen, outcome, init_ms)

    def invoke_now(
        self, inv: Invocation, done: Callable[[InvocationResult | BaseException], None]
    ) -> bool:
        """The warm path without a task: if the runtime is initialised and nothing is
        restarting, hand it ``inv`` now and call ``done`` (on the loop, once) with the
        result; False (nothing done) means: use :meth:`invoke`. Same outcomes as invoke."""
        gen = self.gen
        if (
            gen is None
            or self._restarting is not None
            or self._current is not None
            or not self._started.is_set()
            or not gen.init.done()
            or gen.init.result().error_type
        ):
            return False
        init_ms = gen.init.result().duration_ms if self._report_init else 0.0
        self._report_init = False

        def finished(outcome: Outcome) -> None:
            # runs synchronously inside _settle: the Result leaves before the Runtime API
            # even answers the runtime's post
            self._current = None
            try:
                if self._must_redeliver(inv, outcome):
                    task = self._loop.create_task(self.invoke(inv, redelivery=True))
                    task.add_done_callback(
                        lambda t: done(t.exception() or t.result())
                    )
                    return
                result: InvocationResult | BaseException = self._complete(
                    inv, gen, outcome, init_ms
                )
            except Exception as exc:  # noqa: BLE001 - reported as the invocation's error
                result = exc
            try:
                done(result)
            except Exception:  # noqa: BLE001 - never into the Runtime API's protocol (it would hang up)
                _log.exception("delivering the result of %s failed", inv.request_id)

        self._begin(inv, gen, _Immediate(finished))
        return True

    def _begin(self, inv: Invocation, gen: RuntimeProcess, fut: Any) -> None:
        """Hand the event to the runtime; ``fut`` (a future or an :class:`_Immediate`)
        settles with the outcome (the runtime's answer, its exit, memory, or the
        deadline: see :meth:`_watch`)."""
        timeout = float(self.spec.timeout)
        self._current = (inv.request_id, fut)
        # Like the Lambda service, an invocation without a payload passes "{}".
        payload = inv.payload or b"{}"
        deadline_ms = int(time.time() * 1000 + timeout * 1000)
        head = event_head(
            request_id=inv.request_id,
            deadline_ms=deadline_ms,
            invoked_function_arn=inv.invoked_function_arn or function_arn(self.spec),
            trace_id=inv.trace_id or trace_id(),
            client_context=inv.client_context,
            cognito_identity=inv.cognito_identity,
            body_length=len(payload),
        )
        self._delivered_at = self._loop.time()
        self.api.dispatch(inv.request_id, head + payload)  # START when the runtime takes it
        self._deadline = self._loop.time() + timeout
        self._deadline_for = inv.request_id
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(self._deadline, self._watch)
        if gen.sampler is None:
            gen.sampler = self._loop.call_later(self.settings.memory_sample_s, self._sample, gen)

    def _watch(self) -> None:
        """The function timeout. One timer, re-armed lazily: while invocations follow each
        other, a pending one (set for an earlier, shorter deadline) moves on to the
        current deadline when it fires, instead of a timer made and cancelled per
        invocation."""
        self._watchdog = None
        current = self._current
        if current is None or current[0] != self._deadline_for:
            return  # idle (or waiting for an init, bounded elsewhere): the next one re-arms
        if self._deadline > self._loop.time():
            self._watchdog = self._loop.call_at(self._deadline, self._watch)
            return
        self._settle(Outcome("timeout"))

    def _must_redeliver(self, inv: Invocation, outcome: Outcome) -> bool:
        """The runtime died before it took the event (e.g. awslambdaric exiting after a
        413 on the previous response): nothing ran, so it runs again on a fresh runtime."""
        if outcome.kind == "exit" and self.api.delivered != inv.request_id:
            self.api.abandon(inv.request_id)
            self._restarting = self._loop.create_task(self._restart())
            return True
        return False

    def _complete(
        self, inv: Invocation, gen: RuntimeProcess, outcome: Outcome, init_ms: float
    ) -> InvocationResult:
        duration_ms = (self._loop.time() - self._delivered_at) * 1000.0
        return self._finish(inv, gen, outcome, duration_ms=duration_ms, init_ms=init_ms)

    def _finish(
        self,
        inv: Invocation,
        gen: RuntimeProcess,
        outcome: Outcome,
        *,
        duration_ms: float,
        init_ms: float,
    ) -> InvocationResult:
        rid = inv.request_id
        reset = outcome.resets
        if not self.sink.active:  # timed out before START (init never finished)
            self.sink.begin()
            self.sink.line(reports.start_line(rid, version=self.spec.version))
        function_error, error_type, payload = decide(
            outcome, rid, timeout_s=float(self.spec.timeout)
        )
        max_mb = gen.max_memory_mb()
        if reset:
            self.api.abandon(rid)
            if outcome.kind == "timeout":
                gen.kill_tree(signal.SIGKILL)
        gen.drain_log()
        if reset:
            self.sink.line(error_line(payload, now=datetime.now(UTC)))
        # END and REPORT in one write, after the result is on its way (the agent calls
        # sink.flush once it sent the Result): the log file write is off the latency path
        self.sink.hold(
            reports.end_line(rid)
            + reports.report_line(
                rid,
                duration_ms=duration_ms,
                memory_size_mb=self.spec.memory_size,
                max_memory_used_mb=max_mb,
                init_duration_ms=init_ms,
            )
        )
        log_tail = self.sink.end()
        if reset and not self._closed:
            self._restarting = self._loop.create_task(self._restart())
        return InvocationResult(
            request_id=rid,
            payload=payload,
            function_error=function_error,
            error_type=error_type,
            duration_ms=duration_ms,
            billed_duration_ms=reports.billed_duration_ms(duration_ms),
            max_memory_used_mb=max_mb,
            init_duration_ms=init_ms,
            log_tail=log_tail,
            environment_reset=reset,
        )

    async def _init_failed(
        self, inv: Invocation, gen: RuntimeProcess, init: InitOutcome
    ) -> InvocationResult:
        """The init error becomes this invocation's result; init is retried for the next."""
        rid = inv.request_id
        payload = init_error_payload(init, rid)
        gen.drain_log()
        self.sink.begin()
        # The init phase's output explains the failure: it leads this invocation's tail.
        self.sink.remember(bytes(gen.init_log))
        self.sink.line(reports.start_line(rid, version=self.spec.version))
        self.sink.line(reports.end_line(rid))
        max_mb = gen.max_memory_mb() if gen.pid > 0 else 1
        self.sink.line(
            reports.report_line(
                rid,
                duration_ms=0.0,
                memory_size_mb=self.spec.memory_size,
                max_memory_used_mb=max_mb,
                init_duration_ms=max(init.duration_ms, 0.01),
            )
        )
        log_tail = self.sink.end()
        if not self._closed:
            self._restarting = self._loop.create_task(self._restart())
        return InvocationResult(
            request_id=rid,
            payload=payload,
            function_error="Unhandled",
            error_type=init.error_type,
            duration_ms=0.0,
            billed_duration_ms=0,
            max_memory_used_mb=max_mb,
            init_duration_ms=max(init.duration_ms, 0.01),
            log_tail=log_tail,
            environment_reset=True,
        )
