"""Embedded environments: the agent's code running inside the process that hosts the
gateway, so that only the runtime is a process of its own.

A warm invocation through an agent *process* crosses three processes (gateway, agent,
runtime) and wakes two of them per hop; embedded, the gateway's event loop supervises the
runtime directly (the same :class:`~klambda_runtime.agent.Agent` and
:class:`~klambda_runtime.supervisor.Supervisor`, the Runtime API served from the
gateway's loop), one process and two wake-ups fewer. The local substrate uses it; pods
always run an agent process (the contract: one agent per environment, dialling in).

The runtime is still forked from the zygote (a ``kind: runtime`` request on the
launcher's own socket) and supervised exactly as in an agent process: timeout, crash,
memory limit, logs, Init Duration. What an agent process gives and this does not:
a separate process group per environment (the runtime is killed with its descendants,
found through ``/proc``), and isolation of the agent's own failures from the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from klambda_runtime import interpreters
from klambda_runtime.agent import Agent, validate
from klambda_runtime.errors import LaunchError, SettingsError
from klambda_runtime.launcher import ZygoteLauncher
from klambda_runtime.logsink import LogSink
from klambda_runtime.settings import AgentSettings
from klambda_runtime.spec import EnvironmentSpec
from klambda_runtime.supervisor import Supervisor

Connect = Callable[[EnvironmentSpec], Awaitable[Any]]  # opens the agent's stream


FD_LIMIT_WANTED = 65536


def raise_fd_limit(wanted: int = FD_LIMIT_WANTED) -> int:
    """Raise this process's soft limit on open files towards ``wanted`` (never above the
    hard limit); returns the soft limit. Every embedded environment holds ~8 descriptors
    in this process (its log, the Runtime API's two listeners and the runtime's
    connection, the runtime's log pipe, /proc files) that an agent process would hold in
    its own table, so the usual soft limit of 1,024 would cap a platform near 120
    environments. Processes started earlier (the zygote, hence runtimes) keep theirs."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


class EmbeddedEnvironment:
    """The launcher's handle: ``terminate`` drains, ``kill`` stops at once, ``wait``."""

    pid = 0  # no process of its own (never signal this)

    def __init__(self, environment_id: str, agent: Agent, supervisor: Supervisor,
                 log_fd: int) -> None:
        self.environment_id = environment_id
        self._agent = agent
        self._supervisor = supervisor
        self._log_fd = log_fd
        self._task = asyncio.get_running_loop().create_task(self._life())

    async def _life(self) -> int:
        try:
            return await self._agent.run()
        except asyncio.CancelledError:
            return -9  # killed, like a SIGKILLed agent process
        finally:
            gen = self._supervisor.gen
            if gen is not None:
                gen.kill_tree(signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.close(self._log_fd)

    @property
    def returncode(self) -> int | None:
        return self._task.result() if self._task.done() else None

    def terminate(self) -> None:
        """Drain: finish the in-flight invocation, then end (an agent's SIGTERM)."""
        if not self._task.done():
            self._agent.drain()

    def kill(self) -> None:
        """Stop now: the runtime and its descendants are killed (an agent's SIGKILL)."""
        if not self._task.done():
            gen = self._supervisor.gen
            if gen is not None:
                gen.kill_tree(signal.SIGKILL)
            self._task.cancel()

    async def wait(self) -> int:
        return await asyncio.shield(self._task)

    def __repr__(self) -> str:
        return f"<embedded environment {self.environment_id} rc={self.returncode}>"


class EmbeddedLauncher:
    """A launcher (``start`` / ``close``) whose environments are embedded; runtimes are
    forked by ``zygotes``. ``connect`` opens an environment's stream to the gateway."""

    def __init__(self, zygotes: ZygoteLauncher, *, connect: Connect,
                 settings: AgentSettings | None = None) -> None:
        self.zygotes = zygotes
        self._connect = connect
        self._settings = settings or AgentSettings.from_env(os.environ)  # once, not per start
        # What a zygote-forked agent inherits from its zygote: whether runtimes of other
        # Python versions are forked by runtime servers (else they are exec'd).
        interpreters.enable_runtime_servers(
            zygotes.env.get("KLAMBDA_ZYGOTE_RUNTIME_SERVERS", "1") != "0")
        raise_fd_limit()
        # The agent's diagnostics at the level an agent process uses (they share this
        # process's logging now): WARNING unless KLAMBDA_AGENT_LOG_LEVEL says otherwise.
        logging.getLogger("klambda.agent").setLevel(
            os.environ.get("KLAMBDA_AGENT_LOG_LEVEL", "WARNING").upper())

    async def start(self, spec: EnvironmentSpec) -> EmbeddedEnvironment:
        try:
            validate(spec)
        except SettingsError as exc:
            raise LaunchError(str(exc)) from exc
        settings = self._settings
        client = await self.zygotes.fork_client(spec.runtime)
        if not spec.log_path:
            raise LaunchError("an embedded environment needs a log path (EnvironmentSpec.log_path)")
        os.makedirs(os.path.dirname(os.path.abspath(spec.log_path)), exist_ok=True)
        log_fd = os.open(spec.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            supervisor = Supervisor(spec, settings, sink=LogSink(log_fd), template=client)
            agent = Agent(spec, settings, supervisor, stream_factory=self._connect,
                          signals=False)
        except BaseException:
            os.close(log_fd)
            raise
        return EmbeddedEnvironment(spec.environment_id, agent, supervisor, log_fd)

    async def warm(self, runtime: str = "") -> None:
        await self.zygotes.warm(runtime)

    async def close(self) -> None:
        await self.zygotes.close()
