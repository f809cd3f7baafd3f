"""Runtime templates: where the built-in Python runtime's processes are forked from.

With the zygote (local substrate) the zygote itself forks runtime processes for its
agents (each agent has a private channel to it). Without one (a pod started by
Kubernetes, or SubprocessLauncher), the agent calls :func:`start_runtime_template` first thing, while it is still a plain
single-threaded process (no event loop, no gRPC channel, no threads). The template is a
copy of that clean state with the built-in runtime already imported; every runtime
process of the environment (the first one and every restart after a timeout, crash or
OOM) is forked from it, so a restart costs a fork instead of an interpreter start and
never forks the agent's threaded process.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any

from klambda_runtime import forkserver

# Exit status of a runtime whose agent's process group no longer exists when it starts.
EXIT_OWNER_GONE = 125


def join_group(pgid: int) -> bool:
    """Join the agent's process group (so that signalling the environment's group reaches
    the runtime too); False when that group is gone (its agent died: EPERM, or ESRCH)."""
    try:
        os.setpgid(0, pgid)
        return True
    except (PermissionError, ProcessLookupError):
        return False


def wait_gate(fd: int) -> None:
    """Block until the gate's write end is closed (see forkserver's ``forward``): the
    agent then knows this process's pid. Bounded: a lost gate must not hang a runtime."""
    import select

    deadline = time.monotonic() + 10.0
    try:
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([fd], [], [], left)
            if ready and not os.read(fd, 64):
                return
    finally:
        os.close(fd)


def runtime_child_main(
    message: dict[str, Any], fds: list[int], channel: socket.socket | None = None
) -> int:
    """In a fresh fork of a template: become the function's runtime process."""
    forkserver.set_process_name("klambda-runtime")
    gate_index = message.get("gate")
    gate = fds.pop(int(gate_index)) if gate_index is not None else -1
    owner = message.get("owner_pgid")
    if owner and not join_group(int(owner)):
        # Its agent (the group's leader) is gone already, e.g. killed while the fork
        # request was in flight: nobody will ever talk to this runtime.
        return EXIT_OWNER_GONE
    log_fd = fds[0]
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    for extra in fds[1:]:
        os.close(extra)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    env: dict[str, str] = message["env"]
    os.chdir(message["cwd"])
    os.environ.clear()
    os.environ.update(env)
    time.tzset()
    sys.argv = [message.get("argv0", "bootstrap")]
    import logging

    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    from klambda_runtime.pyruntime import bootstrap, isolation

    # What a Lambda function can import: task root, layers, the Lambda-provided libraries
    # (boto3...) and the standard library; nothing of the platform this process was
    # forked from (its site-packages, import hooks and preloaded modules are dropped).
    isolation.isolate(front=message.get("sys_path", []), provided=message.get("provided", []))
    if gate >= 0:
        wait_gate(gate)
    return bootstrap.run(
        env["AWS_LAMBDA_RUNTIME_API"], env.get("_HANDLER", ""), unix=message.get("api_unix", "")
    )


def start_runtime_template() -> tuple[socket.socket, int]:
    """Fork the template now (call before any thread or event loop exists).

    Returns the agent's end of the control socket and the template's pid.
    """
    import threading

    if threading.active_count() != 1:
        raise RuntimeError("the runtime template must be forked before any thread starts")
    # The runtime's code is imported once here, not in every runtime process.
    from klambda_runtime.pyruntime import bootstrap, isolation  # noqa: F401

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            ours.close()
            forkserver.set_process_name("klambda-template")
            isolation.snapshot()
            forkserver.serve(
                theirs,
                {"runtime": runtime_child_main},
                default_kind="runtime",
                kill_children_on_eof=True,
            )
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    theirs.close()
    return ours, pid
