"""How the supervisor starts one runtime process (a mixin of :class:`Supervisor`).

Built-in Python runtimes are forked from the per-environment template (the zygote's, or
the 3.12 runtime server's) when possible, everything else is exec'd; a runtime that
cannot be started at all becomes an init error (``Runtime.InvalidEntrypoint``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import subprocess
import time
from datetime import datetime
from typing import Any

from klambda_runtime import errors, reports
from klambda_runtime.forkclient import ForkClient, watch_child
from klambda_runtime.generation import RuntimeProcess
from klambda_runtime.interpreters import Interpreter
from klambda_runtime.logsink import LogSink
from klambda_runtime.outcomes import InitOutcome, invalid_entrypoint_payload
from klambda_runtime.runtime_api import RuntimeApi
from klambda_runtime.runtime_env import (
    build_runtime_env,
    builtin_exec_argv,
    is_builtin_python,
    runtime_imports,
)
from klambda_runtime.settings import AgentSettings
from klambda_runtime.spec import EnvironmentSpec

_log = logging.getLogger("klambda.agent")


class RuntimeStart:
    """The launch half of the Supervisor (state and callbacks live in the Supervisor)."""

    spec: EnvironmentSpec
    settings: AgentSettings
    sink: LogSink
    template: ForkClient | None
    api: RuntimeApi
    gen: RuntimeProcess | None
    interpreter: Interpreter
    _interpreter_note: str
    _loop: asyncio.AbstractEventLoop
    _log_stream_time: datetime
    _native_libs: bool

    def _on_exit(self, gen: RuntimeProcess, fut: asyncio.Future[int]) -> None:
        raise NotImplementedError

    def _sample(self, gen: RuntimeProcess) -> None:
        raise NotImplementedError

    def _init_done(self, gen: RuntimeProcess, outcome: InitOutcome) -> None:
        raise NotImplementedError

    def _runtime_env(self) -> dict[str, str]:
        return build_runtime_env(
            self.spec,
            api_address=self.api.address,
            host_env=os.environ,
            python_version=self.interpreter.version,
            now=self._log_stream_time,
            initialization_type=None,
            lang_bin=os.path.dirname(self.interpreter.path),
        )

    async def _launch(self) -> None:
        await self._launch_end(self._launch_begin())

    def _launch_begin(self) -> tuple[Any, ...]:
        """Ask for the runtime process now (no await): fork request or exec."""

        env = self._runtime_env()
        if self._interpreter_note:  # once per environment
            self.sink.line(self._interpreter_note)
            self._interpreter_note = ""
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        started = self._loop.time()
        _log.debug("t=%.6f cpu=%.6f launching runtime", time.monotonic(), time.process_time())
        try:
            if (
                is_builtin_python(self.spec.runtime)
                and self.template is not None
                and self.template.alive
                and not self._native_libs
                and self.interpreter.platform
            ):
                imports = self._imports()
                reply = self.template.spawn_nowait(
                    {
                        "kind": "runtime",  # the default on an agent's channel, not elsewhere
                        "env": env,
                        "cwd": self.spec.code_dir,
                        "sys_path": imports["front"],
                        "provided": imports["provided"],
                        "api_unix": self.api.unix_address,
                    },
                    [write_fd],
                )
                return (read_fd, write_fd, started, reply, None)
            popen = subprocess.Popen(
                self._argv(),
                env=env,
                cwd=self.spec.code_dir,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                close_fds=True,
            )
            return (read_fd, write_fd, started, None, popen)
        except (OSError, errors.RuntimeComponentError) as exc:
            return (read_fd, write_fd, started, None, exc)

    async def _launch_end(self, pending: tuple[Any, ...]) -> None:
        read_fd, write_fd, started, reply, popen = pending
        try:
            if isinstance(popen, Exception):
                raise popen
            if reply is not None:
                assert self.template is not None
                pid = await self.template.pid_of(reply)
                exited = self.template.exited(pid)
            else:
                pid = popen.pid
                exited = watch_child(pid)
        except (OSError, errors.RuntimeComponentError) as exc:
            os.close(write_fd)
            os.close(read_fd)
            self._launch_failed(started, exc)
            return
        os.close(write_fd)
        gen = RuntimeProcess(pid, exited, read_fd, started, sink=self.sink)
        gen.popen = popen
        self.gen = gen
        init_start = reports.init_start_line(self.spec.runtime)
        self.sink.line(init_start)
        gen.init_log += init_start.encode()
        gen.attach_log()
        exited.add_done_callback(functools.partial(self._on_exit, gen))
        self._sample(gen)

    def _imports(self) -> dict[str, list[str]]:
        from klambda_runtime import lambda_libs

        provided = lambda_libs.ensure(self.settings.cache_dir) if self.settings.cache_dir else None
        return runtime_imports(
            self.spec, python_version=self.interpreter.version, provided=provided
        )

    def _argv(self) -> list[str]:
        if is_builtin_python(self.spec.runtime):
            return builtin_exec_argv(self.interpreter.path, self._imports())
        for base in (self.spec.code_dir, self.spec.opt_dir):
            if base and os.path.exists(os.path.join(base, "bootstrap")):
                return [os.path.join(base, "bootstrap")]
        return [os.path.join(self.spec.code_dir, "bootstrap")]

    def _launch_failed(self, started: float, exc: Exception) -> None:
        """No runtime process at all (e.g. no executable bootstrap): an init error."""
        loop = self._loop
        fut: asyncio.Future[int] = loop.create_future()
        fut.set_result(127)
        gen = RuntimeProcess(-1, fut, -1, started, sink=self.sink)
        self.gen = gen
        self.sink.line(f"klambda-agent: cannot start the runtime: {exc}\n")
        self._init_done(
            gen, InitOutcome(0.0, errors.INVALID_ENTRYPOINT_TYPE, invalid_entrypoint_payload(exc))
        )
