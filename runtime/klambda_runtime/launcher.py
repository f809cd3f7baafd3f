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


class ZygoteLauncher:
    """Forks environments from one warm template process (started on first use)."""

    def __init__(
        self, *, python: str = sys.executable, env: Mapping[str, str] | None = None
    ) -> None:
        self.python = python
        self.env = dict(os.environ if env is None else env)
        self._client: ForkClient | None = None
        self._zygote_exit: asyncio.Future[int] | None = None
        self._lock: asyncio.Lock | None = None

    async def warm(self) -> None:
        """Start the zygote now rather than on the first :meth:`start`."""
        await self._ensure()

    async def _ensure(self) -> ForkClient:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._client is not None and self._client.alive:
                return self._client
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once, see above
                    [self.python, "-m", "klambda_runtime.zygote", str(theirs.fileno())],
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    pass_fds=[theirs.fileno()],
                    close_fds=True,
                )
            except OSError as exc:
                ours.close()
                raise LaunchError(
                    f"cannot start the zygote with {self.python}: {exc}; check the interpreter "
                    "path, or use SubprocessLauncher"
                ) from exc
            finally:
                theirs.close()
            self._zygote_exit = watch_child(proc.pid)
            self._client = ForkClient(ours, server_pid=proc.pid)
            return self._client

    async def start(self, spec: EnvironmentSpec) -> ProcessEnvironment:
        for attempt in (1, 2):
            client = await self._ensure()
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
        """Stop the zygote. Environments it started keep running."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._zygote_exit is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._zygote_exit), 5.0)
            except TimeoutError:
                pass
            self._zygote_exit = None
