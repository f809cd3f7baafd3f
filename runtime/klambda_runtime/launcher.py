"""Starting environments as local processes: the gateway's local substrate uses these.

* :class:`ZygoteLauncher` (default) forks each environment from a template process that
  has already imported the agent and the built-in runtime (see :mod:`.zygote`).
* :class:`SubprocessLauncher` (fallback) starts ``python -m klambda_runtime.agent`` with
  ``spec.to_env()``, exactly what a Kubernetes pod runs.

Either way the environment is its own process group (agent, runtime template, runtime
and anything the function starts), so :meth:`LaunchedEnvironment.kill` takes down all
of it, and :meth:`LaunchedEnvironment.wait` returns the agent's exit status.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from typing import Protocol

from klambda_runtime.errors import ForkServerError, LaunchError
from klambda_runtime.forkclient import ForkClient, watch_child
from klambda_runtime.spec import EnvironmentSpec


class LaunchedEnvironment(Protocol):
    pid: int
    environment_id: str

    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    async def wait(self) -> int: ...


class Launcher(Protocol):
    async def start(self, spec: EnvironmentSpec) -> LaunchedEnvironment: ...
    async def close(self) -> None: ...


class ProcessEnvironment:
    """A started environment: its agent's pid (= process group id) and exit status."""

    def __init__(self, pid: int, environment_id: str, exited: asyncio.Future[int]) -> None:
        self.pid = pid
        self.environment_id = environment_id
        self._exited = exited

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    def terminate(self) -> None:
        """SIGTERM to the agent: it drains (finishes in-flight work) and exits."""
        if not self._exited.done():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL to the whole environment (its process group)."""
        if not self._exited.done():
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                # No such group (yet): the agent alone, which is then all there is.
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def __repr__(self) -> str:
        return f"<environment {self.environment_id} pid={self.pid} rc={self.returncode}>"


def _open_log(path: str) -> int | None:
    if not path:
        return None
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


class SubprocessLauncher:
    """Fresh interpreter per environment: slower, but nothing shared with anything."""

    def __init__(
        self, *, python: str = sys.executable, env: Mapping[str, str] | None = None
    ) -> None:
        self.python = python
        self.env = dict(os.environ if env is None else env)

    async def start(self, spec: EnvironmentSpec) -> ProcessEnvironment:
        log_fd = _open_log(spec.log_path)
        try:
            # Popen returns at once (fork+exec); asyncio's subprocess API would add a
            # watcher thread per child. The exit is watched through a pidfd instead.
            proc = subprocess.Popen(  # noqa: ASYNC220
                [self.python, "-m", "klambda_runtime.agent"],
                env={**self.env, **spec.to_env()},
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise LaunchError(
                f"cannot start {self.python} -m klambda_runtime.agent: {exc}; check the "
                "interpreter path given to SubprocessLauncher"
            ) from exc
        finally:
            if log_fd is not None:
                os.close(log_fd)
        exited = watch_child(proc.pid)

        def reaped(fut: asyncio.Future[int]) -> None:
            proc.returncode = fut.result()

        exited.add_done_callback(reaped)
        return ProcessEnvironment(proc.pid, spec.environment_id, exited)

    async def close(self) -> None:
        return None


class _Zygote:
    """One zygote process (per interpreter) and the client talking to it."""

    def __init__(self, client: ForkClient, exited: asyncio.Future[int]) -> None:
        self.client = client
        self.exited = exited


class ZygoteLauncher:
    """Forks environments from warm template processes (one per interpreter, started on
    first use). ``interpreters`` maps a runtime name (``python3.11``) to the interpreter
    whose zygote serves it; every other runtime (and ``provided``, whose agent is Python
    too) uses ``python``."""

    def __init__(
        self,
        *,
        python: str = sys.executable,
        interpreters: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.python = python
        self.interpreters = dict(interpreters or {})
        self.env = dict(os.environ if env is None else env)
        self._zygotes: dict[str, _Zygote] = {}
        self._lock: asyncio.Lock | None = None

    def interpreter_for(self, runtime: str) -> str:
        return self.interpreters.get(runtime, self.python)

    def zygote_pid(self, runtime: str = "") -> int | None:
        """The pid of the zygote serving ``runtime`` (None if not started)."""
        zygote = self._zygotes.get(self.interpreter_for(runtime))
        return zygote.client.server_pid if zygote is not None and zygote.client.alive else None

    async def fork_client(self, runtime: str = "") -> ForkClient:
        """The zygote serving ``runtime`` (started if need be), to fork runtimes directly
        (``kind: runtime`` requests) — what an embedded environment's supervisor uses."""
        return await self._ensure(self.interpreter_for(runtime))

    async def warm(self, runtime: str = "") -> None:
        """Start the zygote for ``runtime`` now rather than on the first :meth:`start`."""
        await self._ensure(self.interpreter_for(runtime))

    async def _ensure(self, python: str) -> ForkClient:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            zygote = self._zygotes.get(python)
            if zygote is not None and zygote.client.alive:
                return zygote.client
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once, see above
                    [python, "-m", "klambda_runtime.zygote", str(theirs.fileno())],
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    pass_fds=[theirs.fileno()],
                    close_fds=True,
                )
            except OSError as exc:
                ours.close()
                raise LaunchError(
                    f"cannot start the zygote with {python}: {exc}; check the interpreter "
                    "path, or use SubprocessLauncher"
                ) from exc
            finally:
                theirs.close()
            client = ForkClient(ours, server_pid=proc.pid)
            self._zygotes[python] = _Zygote(client, watch_child(proc.pid))
            return client

    async def start(self, spec: EnvironmentSpec) -> ProcessEnvironment:
        python = self.interpreter_for(spec.runtime)
        for attempt in (1, 2):
            client = await self._ensure(python)
            try:
                pid = await client.spawn({"env": spec.to_env()})
            except ForkServerError as exc:
                client.close()
                if attempt == 2:
                    raise LaunchError(f"the zygote cannot start environments: {exc}") from exc
                continue
            return ProcessEnvironment(pid, spec.environment_id, client.exited(pid))
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Stop the zygotes. Environments they started keep running."""
        zygotes, self._zygotes = list(self._zygotes.values()), {}
        for zygote in zygotes:
            zygote.client.close()
        for zygote in zygotes:
            try:
                await asyncio.wait_for(asyncio.shield(zygote.exited), 5.0)
            except TimeoutError:
                pass
