"""The agent: the process that owns one execution environment.

``python -m klambda_runtime.agent`` reads the environment from ``KLAMBDA_ENV_*``
(:class:`EnvironmentSpec`), forks the per-environment runtime template while it is
still single-threaded, then runs one event loop with

* the :class:`~klambda_runtime.supervisor.Supervisor` (runtime process + Runtime API), and
* one gRPC bidirectional stream to the gateway (``EnvironmentGateway.Connect``): Register,
  Ready once init finished, then Invocation -> Result, one at a time. The stream is
  re-established with backoff when it breaks; the runtime stays warm meanwhile.

SIGTERM (or a Shutdown message) drains: Draining is sent, the in-flight invocation is
finished (its timeout bounds it), then the agent hangs up and exits 0.

Exit statuses: 0 drained, 2 the gateway stayed unreachable for ``reconnect_give_up_s``,
3 the gateway refused the environment, 1 anything else.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from klambda_runtime import grpc_env
from klambda_runtime.errors import SettingsError
from klambda_runtime.forkclient import ForkClient
from klambda_runtime.logsink import LogSink
from klambda_runtime.outcomes import Invocation, InvocationResult
from klambda_runtime.settings import AgentSettings
from klambda_runtime.spec import EnvironmentSpec
from klambda_runtime.supervisor import Supervisor

log = logging.getLogger("klambda.agent")

# Pods and SubprocessLauncher agents import grpc lazily, after this (zygote-forked agents
# inherit the variable from the gateway's environment instead).
grpc_env.tune()

EXIT_OK, EXIT_FAILED, EXIT_GATEWAY_GONE, EXIT_REFUSED = 0, 1, 2, 3


def validate(spec: EnvironmentSpec) -> None:
    missing = [
        name
        for name, value in (
            ("KLAMBDA_ENV_ID", spec.environment_id),
            ("KLAMBDA_ENV_GATEWAY", spec.gateway),
            ("KLAMBDA_ENV_FUNCTION", spec.function_name),
            ("KLAMBDA_ENV_CODE_DIR", spec.code_dir),
        )
        if not value
    ]
    if missing:
        raise SettingsError(
            f"the environment description lacks {', '.join(missing)}; the launcher (or the pod "
            "spec) must set every KLAMBDA_ENV_* variable of EnvironmentSpec.to_env()"
        )
    if not os.path.isdir(spec.code_dir):
        raise SettingsError(
            f"code directory {spec.code_dir!r} does not exist; materialise the function's code "
            "there before starting the environment"
        )
    if spec.memory_size <= 0 or spec.timeout <= 0:
        raise SettingsError(
            f"memory size {spec.memory_size} MB and timeout {spec.timeout} s must be positive"
        )


class Agent:
    def __init__(
        self,
        spec: EnvironmentSpec,
        settings: AgentSettings,
        supervisor: Supervisor,
        *,
        stream_factory: Callable[[EnvironmentSpec], Awaitable[Any]] | None = None,
        signals: bool = True,
    ) -> None:
        """``stream_factory`` opens the stream to the gateway (default: the lane or gRPC,
        ``streams.open_stream``); ``signals``: SIGTERM/SIGINT drain (an agent process)."""
        self.spec = spec
        self.settings = settings
        self.supervisor = supervisor
        self._stream_factory = stream_factory
        self._signals = signals
        self._loop = asyncio.get_running_loop()
        self._inbox: asyncio.Queue[Invocation] = asyncio.Queue()
        self._busy = False  # the worker task runs an invocation
        self._fast_busy = False  # an invocation runs on the warm path (invoke_now)
        self._fast_idle = asyncio.Event()
        self._fast_idle.set()
        self._fast_writes = False
        self._draining = False
        self._call: Any = None  # the current stream (klambda_runtime.streams)
        self._session = 0
        self._write_lock = asyncio.Lock()
        self._ready_sent_once = False
        self._finished = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._exit_code = EXIT_OK

    # ------------------------------------------------------------------ public
    async def run(self) -> int:
        if self._signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self.drain)
        log.debug("t=%.6f cpu=%.6f loop running", time.monotonic(), time.process_time())
        # Dial the gateway while the runtime initialises: the two overlap.
        connection = self._loop.create_task(self._connect_loop())
        worker = self._loop.create_task(self._worker())
        try:
            await self.supervisor.start()
            await self._finished.wait()
            # Hang up politely, give the gateway a moment to close the stream, then go.
            await self._hang_up()
            try:
                await asyncio.wait_for(asyncio.shield(connection), self.settings.drain_close_s)
            except (TimeoutError, Exception) as exc:  # noqa: BLE001
                log.debug("the gateway did not close the stream in time: %r", exc)
        finally:  # also when cancelled (an embedded environment killed)
            for task in (worker, connection):
                task.cancel()
            await asyncio.gather(worker, connection, return_exceptions=True)
            await self.supervisor.close()
        return self._exit_code

    def drain(self) -> None:
        """SIGTERM / Shutdown: accept nothing new, finish what is in flight, exit."""
        if self._draining:
            return
        self._draining = True
        log.info("draining environment %s", self.spec.environment_id)
        if self._call is not None:
            self._send_draining(self._call)
        self._maybe_finish()

    # ------------------------------------------------------------------ internals
    def _maybe_finish(self) -> None:
        if self._draining and not self._busy and not self._fast_busy and self._inbox.empty():
            self._finished.set()

    def _stop(self, code: int) -> None:
        self._exit_code = code
        self._draining = True
        self._finished.set()

    async def _hang_up(self) -> None:
        call = self._call
        if call is not None:
            try:
                async with self._write_lock:
                    await call.done_writing()
            except Exception as exc:  # noqa: BLE001 - the stream may already be gone
                log.debug("hang-up failed: %s", exc)

    async def _send(self, call: Any, message: Any) -> bool:
        """Write one AgentMessage; writes never interleave. False if the stream is gone."""
        try:
            async with self._write_lock:
                await call.write(message)
            return True
        except Exception as exc:  # noqa: BLE001 - a broken stream is handled by the reader
            log.debug("write failed: %s", exc)
            return False

    def _send_draining(self, call: Any) -> asyncio.Task[bool]:
        from klambda_proto import environment_pb2 as pb

        return self._loop.create_task(self._send(call, pb.AgentMessage(draining=pb.Draining())))

    async def _connect_loop(self) -> None:
        import grpc

        backoff = self.settings.reconnect_initial_s
        last_connected = self._loop.time()
        while not self._finished.is_set():
            connected = False
            try:
                connected = await self._run_session()
            except ConnectionError as exc:  # the lane broke
                log.info("gateway stream broke: %s", exc)
            except grpc.aio.AioRpcError as exc:
                if exc.code() in (
                    grpc.StatusCode.PERMISSION_DENIED,
                    grpc.StatusCode.NOT_FOUND,
                    grpc.StatusCode.FAILED_PRECONDITION,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.UNIMPLEMENTED,
                ):
                    log.error("the gateway refused this environment: %s", exc.details())
                    self._stop(EXIT_REFUSED)
                    return
                log.info("gateway stream broke: %s", exc.code().name)
            if connected:
                last_connected = self._loop.time()
                backoff = self.settings.reconnect_initial_s
            if self._draining:
                # The gateway hung up (or broke) while we drain: nothing left to say.
                self._idle_then_finish()
                return
            if self._loop.time() - last_connected > self.settings.reconnect_give_up_s:
                log.error(
                    "gateway %s unreachable for %.0f s; giving up",
                    self.spec.gateway,
                    self.settings.reconnect_give_up_s,
                )
                self._stop(EXIT_GATEWAY_GONE)
                return
            delay = backoff * (0.5 + random.random() / 2)
            backoff = min(backoff * 2, self.settings.reconnect_max_s)
            try:
                await asyncio.wait_for(self._finished.wait(), delay)
            except TimeoutError:
                pass

    def _idle_then_finish(self) -> None:
        if not self._busy and not self._fast_busy and self._inbox.empty():
            self._finished.set()

    async def _run_session(self) -> bool:
        """One stream to the gateway; returns whether it got as far as Registered."""
        from klambda_proto import environment_pb2 as pb

        from klambda_runtime.streams import open_stream

        spec = self.spec
        log.debug("t=%.6f cpu=%.6f dialing", time.monotonic(), time.process_time())
        stream = await (self._stream_factory or open_stream)(spec)
        ready_task: asyncio.Task[None] | None = None
        registered = False
        try:
            register = pb.Register(
                namespace=spec.namespace,
                function_name=spec.function_name,
                version=spec.version,
                environment_id=spec.environment_id,
                memory_size_mb=spec.memory_size,
                runtime=spec.runtime,
                initialization_type=spec.initialization_type,
                revision=spec.revision,
            )
            await stream.write(pb.AgentMessage(register=register))
            try:
                first = await asyncio.wait_for(stream.read(), self.settings.register_timeout_s)
            except TimeoutError:
                log.warning("the gateway did not answer Register in time; reconnecting")
                return False
            log.debug("t=%.6f cpu=%.6f registered (%s)", time.monotonic(), time.process_time(), stream.kind)
            if first is None or first.WhichOneof("kind") != "registered":
                return False
            registered = True
            self._session += 1
            self._call = stream
            if self._draining:
                await self._send_draining(stream)
                self._maybe_finish()
            ready_task = self._loop.create_task(self._send_ready(stream))
            # lane writes never wait: warm invocations then run without a task hop
            self._fast_writes = stream.kind == "lane"
            await stream.listen(self._handle_message)
            return True
        finally:
            if ready_task is not None:
                ready_task.cancel()
            if self._call is not None and registered:
                self._call = None
            await stream.close()

    def _handle_message(self, message: Any) -> None:
        kind = message.WhichOneof("kind")
        if kind == "invocation":
            m = message.invocation
            self._on_invocation(
                Invocation(
                    request_id=m.request_id,
                    payload=m.payload,
                    invoked_function_arn=m.invoked_function_arn,
                    client_context=m.client_context,
                    cognito_identity=m.cognito_identity,
                    trace_id=m.trace_id,
                )
            )
        elif kind == "shutdown":
            log.info("gateway asked to shut down: %s", message.shutdown.reason)
            self.drain()

    def _on_invocation(self, inv: Invocation) -> None:
        if self._busy or self._fast_busy or not self._inbox.empty():
            log.warning(
                "gateway sent invocation %s while another is in flight; queued", inv.request_id
            )
        elif self._fast_writes and self.supervisor.invoke_now(
            inv, functools.partial(self._fast_done, inv, self._session)
        ):
            self._fast_busy = True
            self._fast_idle.clear()
            self._idle.clear()
            return
        self._idle.clear()
        self._inbox.put_nowait(inv)

    def _fast_done(
        self, inv: Invocation, session: int, outcome: InvocationResult | BaseException
    ) -> None:
        from klambda_proto import environment_pb2 as pb

        try:
            if isinstance(outcome, BaseException):
                log.error("invocation %s failed inside the agent", inv.request_id,
                          exc_info=outcome)
                outcome = agent_failure_result(inv.request_id, outcome)
            stream = self._call
            if stream is not None and session == self._session:
                try:
                    stream.write_nowait(_result_message(pb, outcome))
                except ConnectionError as exc:
                    log.debug("write failed: %s", exc)
            else:
                log.warning("result of %s dropped: the gateway stream it came on is gone",
                            inv.request_id)
            self.supervisor.flush_log_soon()  # END + REPORT reach the log after the Result
        finally:  # whatever happened, the environment is free again
            self._fast_busy = False
            self._fast_idle.set()
            if not self._busy and self._inbox.empty():
                self._idle.set()
            self._maybe_finish()

    async def _send_ready(self, call: Any) -> None:
        from klambda_proto import environment_pb2 as pb

        if not self._ready_sent_once:
            await self.supervisor.wait_ready()
        await self._idle.wait()
        await self.supervisor.wait_ready()
        if self._draining:
            return
        ready = pb.Ready()
        first = self.supervisor.first_init
        if not self._ready_sent_once and first.done():
            outcome = first.result()
            if outcome.error_type:
                ready.init_error_type = outcome.error_type
            else:
                ready.init_duration_ms = outcome.duration_ms
        self._ready_sent_once = True
        await self._send(call, pb.AgentMessage(ready=ready))
        log.debug("t=%.6f cpu=%.6f ready sent", time.monotonic(), time.process_time())

    async def _worker(self) -> None:
        from klambda_proto import environment_pb2 as pb

        while True:
            inv = await self._inbox.get()
            self._busy = True
            await self._fast_idle.wait()  # never two invocations at once
            session = self._session
            try:
                result = await self.supervisor.invoke(inv)
            except Exception as exc:
                log.exception("invocation %s failed inside the agent", inv.request_id)
                result = agent_failure_result(inv.request_id, exc)
            call = self._call
            if call is not None and session == self._session:
                await self._send(call, _result_message(pb, result))
            else:
                log.warning(
                    "result of %s dropped: the gateway stream it came on is gone", inv.request_id
                )
            self.supervisor.flush_log_soon()
            self._busy = False
            if self._inbox.empty() and not self._fast_busy:
                self._idle.set()
            self._maybe_finish()


def agent_failure_result(request_id: str, exc: BaseException) -> InvocationResult:
    """A Lambda-shaped error for a failure of the agent itself (a bug): the caller gets an
    answer instead of waiting for its timeout."""
    import json

    payload = json.dumps(
        {
            "errorType": "Runtime.Unknown",
            "errorMessage": f"RequestId: {request_id} Error: the environment's agent failed: "
            f"{type(exc).__name__}: {exc}",
        }
    ).encode()
    return InvocationResult(
        request_id=request_id,
        payload=payload,
        function_error="Unhandled",
        error_type="Runtime.Unknown",
        duration_ms=0.0,
        billed_duration_ms=0,
        max_memory_used_mb=0,
        init_duration_ms=0.0,
        log_tail=b"",
        environment_reset=False,
    )


def _result_message(pb: Any, r: InvocationResult) -> Any:
    """The AgentMessage carrying ``r`` (fields set in place: half the cost of building a
    Result and copying it into the envelope)."""
    message = pb.AgentMessage()
    m = message.result
    m.request_id = r.request_id
    m.payload = r.payload
    if r.function_error:
        m.function_error = r.function_error
    if r.error_type:
        m.error_type = r.error_type
    m.duration_ms = r.duration_ms
    m.billed_duration_ms = r.billed_duration_ms
    m.max_memory_used_mb = r.max_memory_used_mb
    if r.init_duration_ms:
        m.init_duration_ms = r.init_duration_ms
    if r.log_tail:
        m.log_tail = r.log_tail
    if r.environment_reset:
        m.environment_reset = True
    return message


async def _serve(spec: EnvironmentSpec, settings: AgentSettings, template: Any) -> int:
    client = None
    if template is not None:
        sock, pid = template
        client = ForkClient(sock, server_pid=pid)
    supervisor = Supervisor(spec, settings, sink=LogSink(1), template=client)
    try:
        return await Agent(spec, settings, supervisor).run()
    finally:
        if client is not None:
            client.close()


def run_agent(
    spec: EnvironmentSpec,
    settings: AgentSettings,
    *,
    zygote: tuple[socket.socket, int] | None = None,
) -> int:
    """Run one environment to completion; the process's exit status.

    ``zygote`` is this agent's channel to the zygote that forked it (and its pid): the
    zygote then forks the runtime processes. Without it, the agent forks its own runtime
    template first, so it must be called while the process has no threads.
    """
    # The agent's own diagnostics: a private logger, never the root one (the runtime
    # template is forked from this process and must start with pristine logging).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("klambda-agent %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(os.environ.get("KLAMBDA_AGENT_LOG_LEVEL", "WARNING").upper())
    try:
        validate(spec)
    except SettingsError as exc:
        sys.stderr.write(f"klambda-agent: {exc}\n")
        return EXIT_FAILED
    os.set_blocking(1, True)
    from klambda_runtime.interpreters import choose_interpreter
    from klambda_runtime.runtime_env import is_builtin_python

    template, own_template = zygote, False
    if (
        template is None
        and is_builtin_python(spec.runtime)
        and settings.fork_runtime
        and choose_interpreter(spec.runtime, settings)[0].platform
    ):
        from klambda_runtime.templates import start_runtime_template

        template, own_template = start_runtime_template(), True
    try:
        return asyncio.run(_serve(spec, settings, template))
    finally:
        if template is not None:
            template[0].close()
            if own_template:
                try:
                    os.waitpid(template[1], 0)
                except ChildProcessError:
                    pass


def main() -> int:
    try:
        spec = EnvironmentSpec.from_env(os.environ)
        settings = AgentSettings.from_env(os.environ)
    except (SettingsError, ValueError) as exc:
        sys.stderr.write(f"klambda-agent: invalid environment description: {exc}\n")
        return EXIT_FAILED
    return run_agent(spec, settings)


if __name__ == "__main__":
    sys.exit(main())
