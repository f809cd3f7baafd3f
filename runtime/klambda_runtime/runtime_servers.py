"""The zygote's router: runtimes of another Python version fork from a runtime server.

The zygote runs on the platform's interpreter (e.g. 3.11); a ``python3.12`` function's
runtime must run on 3.12 (see :mod:`klambda_runtime.interpreters`). For such a runtime
the zygote forwards the agent's fork request to a **runtime server** on that interpreter
(:mod:`klambda_runtime.runtime_server`, started here once per interpreter, lazily, with
fork+exec), so a restart after a crash, timeout or OOM is again a fork of a warm 3.12
template. The request is the one the agent sent (Lambda's environment for X.Y, the log
pipe, ``owner_pgid``): the runtime joins the agent's process group, its exit status is
relayed to the agent with the agent's own ids (:class:`klambda_runtime.forkserver.Upstream`).

Fallback, with the same pipes, group and exit reporting: if the server cannot start (it
dies before answering its first request) the zygote forks a child that *execs*
``pythonX.Y -c …`` (kind ``runtime-exec``, what the agent would have exec'd itself). A
server that answered and died later is restarted on the next request.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any

from klambda_runtime import forkserver, interpreters, templates
from klambda_runtime.runtime_env import RUNTIME_PACKAGE_PARENT, builtin_exec_argv
from klambda_runtime.runtime_server import argv as server_argv

EXEC_KIND = "runtime-exec"
_EXECUTION_ENV_PREFIX = "AWS_Lambda_"


def runtime_of(message: dict[str, Any]) -> str:
    """The ``pythonX.Y`` a fork request is for (from Lambda's ``AWS_EXECUTION_ENV``)."""
    execution_env = str(message.get("env", {}).get("AWS_EXECUTION_ENV", ""))
    return execution_env.removeprefix(_EXECUTION_ENV_PREFIX)


def server_env(environ: dict[str, str]) -> dict[str, str]:
    """The runtime server's own environment: the zygote's, minus what would change what
    that interpreter imports (its runtimes get Lambda's environment anyway)."""
    return {k: v for k, v in environ.items() if not k.startswith("PYTHON")}


def exec_child_main(
    message: dict[str, Any], fds: list[int], channel: socket.socket | None = None
) -> int:
    """In a fork of the zygote: become the exec'd runtime (fallback; joins the agent's
    group and keeps the log pipe, so the agent sees it exactly like a forked one)."""
    owner = message.get("owner_pgid")
    gate_index = message.get("gate")
    gate = fds.pop(int(gate_index)) if gate_index is not None else -1
    if owner and not templates.join_group(int(owner)):
        return templates.EXIT_OWNER_GONE  # its agent died before this runtime started
    if gate >= 0:
        templates.wait_gate(gate)
    log_fd = fds[0]
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    for extra in fds[1:]:
        os.close(extra)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.chdir(message["cwd"])
    python = str(message["python"])
    imports = {"front": message.get("sys_path", []), "provided": message.get("provided", [])}
    os.execve(python, builtin_exec_argv(python, imports), message["env"])
    return 127  # not reached: execve raises on failure


def spawn_server(python: str) -> forkserver.Upstream:
    """fork+exec ``python`` as a runtime server (from the zygote: single-threaded)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    args = server_argv(python, package_parent=RUNTIME_PACKAGE_PARENT, fd=3)
    env = server_env(dict(os.environ))
    pid = os.fork()
    if pid == 0:
        try:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            os.dup2(theirs.fileno(), 3)  # every other descriptor goes
            os.set_inheritable(3, True)  # (dup2 onto itself would keep FD_CLOEXEC)
            os.closerange(4, 1 << 16)
            os.execve(python, args, env)
        finally:
            os._exit(127)
    theirs.close()
    return forkserver.Upstream(ours, pid, name=python)


class RuntimeServers:
    """:class:`klambda_runtime.forkserver.Router` of the zygote: which runtime requests
    go to a runtime server, starting it when needed, and the fallback when it cannot."""

    def __init__(self, *, platform_python: str = sys.executable) -> None:
        self.platform_python = platform_python
        self.servers: dict[str, forkserver.Upstream] = {}
        self.broken: set[str] = set()

    def interpreter_for(self, message: dict[str, Any]) -> interpreters.Interpreter | None:
        """The non-platform interpreter a runtime request needs (None: fork it here)."""
        runtime = runtime_of(message)
        if not runtime:
            return None
        try:
            chosen = interpreters.for_runtime(runtime, platform_python=self.platform_python)
        except ValueError:
            return None  # the agent fell back to the platform's interpreter too
        return None if chosen.platform else chosen

    def route(self, kind: str, message: dict[str, Any]) -> str | forkserver.Upstream:
        if kind != "runtime":
            return kind
        chosen = self.interpreter_for(message)
        if chosen is None:
            return kind
        if chosen.path in self.broken:
            message["python"] = chosen.path
            return EXEC_KIND
        server = self.servers.get(chosen.path)
        if server is None or server.closed:
            try:
                server = self.servers[chosen.path] = spawn_server(chosen.path)
            except OSError as exc:
                sys.stderr.write(
                    f"klambda-zygote: cannot start a runtime server on {chosen.path}: {exc}; "
                    "its runtimes are exec'd\n"
                )
                self.broken.add(chosen.path)
                message["python"] = chosen.path
                return EXEC_KIND
        return server

    def prestart(self, runtimes: list[str]) -> None:
        """Start the servers of these runtimes now (``python3.12``; the platform's own
        version and interpreters not found are skipped) instead of on first use."""
        for runtime in runtimes:
            self.route("runtime", {"env": {"AWS_EXECUTION_ENV": _EXECUTION_ENV_PREFIX + runtime}})

    def lost(self, upstream: forkserver.Upstream) -> None:
        if self.servers.get(upstream.name) is upstream:
            del self.servers[upstream.name]
        if not upstream.answered:
            # It never served: a broken interpreter (or klambda_runtime unreadable from it).
            sys.stderr.write(
                f"klambda-zygote: the runtime server on {upstream.name} exited before serving; "
                "its runtimes are exec'd\n"
            )
            self.broken.add(upstream.name)

    def fds(self) -> list[int]:
        return [up.sock.fileno() for up in self.servers.values() if not up.closed]

    def server_pids(self) -> dict[str, int]:
        """Running runtime servers (interpreter path -> pid), for tests and diagnostics."""
        return {path: up.pid for path, up in self.servers.items() if not up.closed}
