"""The zygote: a template process that forks new environments (agents) on request.

It also forks the *runtime processes* of the built-in Python runtime for those agents,
on request over a private channel each agent inherits: a runtime is therefore always a
fork of this clean process, never of an agent (which has gRPC threads), and a restart
after a crash or timeout costs one fork.

Started once per launcher as ``python -m klambda_runtime.zygote <fd>`` where ``<fd>`` is
its end of a ``SOCK_SEQPACKET`` socket (see :mod:`klambda_runtime.forkserver`). It imports
everything an environment needs — asyncio, grpc, the generated proto, the agent, the
Runtime API server, the built-in Python runtime — and then *does nothing else*: no event
loop, no thread, no gRPC channel, no socket other than its control socket. That is what
makes forking it safe. Each child becomes an agent in its own session (process group),
creates its event loop and gRPC channel after the fork, and forks its own runtime
template before doing so.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
from typing import Any


def preload() -> None:
    """Import (never start) everything an environment uses."""
    import asyncio
    import asyncio.base_events
    import asyncio.selector_events
    import asyncio.unix_events  # noqa: F401
    import datetime  # noqa: F401
    import decimal  # noqa: F401
    import hashlib  # noqa: F401
    import importlib.util  # noqa: F401
    import json  # noqa: F401
    import logging  # noqa: F401
    import subprocess  # noqa: F401
    import traceback  # noqa: F401
    import urllib.parse  # noqa: F401

    from klambda_runtime import grpc_env

    # The cheaper gRPC core settings for every agent forked from here, whoever started
    # this zygote (grpc reads them once, at import).
    grpc_env.tune()
    import grpc
    import grpc.aio  # noqa: F401
    import psutil  # noqa: F401
    from klambda_proto import environment_pb2, environment_pb2_grpc, lane  # noqa: F401

    from klambda_runtime import agent, streams, supervisor, templates  # noqa: F401
    from klambda_runtime.pyruntime import bootstrap, client, context, faults, logs  # noqa: F401


def agent_child_main(message: dict[str, Any], fds: list[int], channel: socket.socket | None) -> int:
    """In a fresh fork of the zygote: become the agent of one environment."""
    from klambda_runtime import forkserver
    from klambda_runtime.agent import run_agent
    from klambda_runtime.settings import AgentSettings
    from klambda_runtime.spec import EnvironmentSpec

    forkserver.set_process_name("klambda-agent")
    # Its own process group (same session as the zygote, so that the runtimes the zygote
    # forks for this agent can join the group): the launcher signals the whole group.
    os.setpgid(0, 0)
    env: dict[str, str] = message["env"]
    spec = EnvironmentSpec.from_env(env)
    if spec.log_path:
        os.makedirs(os.path.dirname(os.path.abspath(spec.log_path)), exist_ok=True)
        log_fd = os.open(spec.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.environ.update(env)
    gc.enable()
    zygote = (channel, os.getppid()) if channel is not None else None
    return run_agent(spec, AgentSettings.from_env(os.environ), zygote=zygote)


def main() -> int:
    sock = socket.socket(fileno=int(sys.argv[1]))
    cwd = os.getcwd()
    preload()
    # The Lambda-provided libraries (boto3...) once, here: every fork inherits the answer.
    from klambda_runtime import lambda_libs

    lambda_libs.ensure(lambda_libs.default_cache_dir(os.environ))
    # Nothing of the launcher's working directory on the path of user code.
    sys.path[:] = [p for p in sys.path if p not in ("", cwd)]
    # Keep the template's objects out of the collector's reach so children do not
    # touch (and copy) every page of them on their first collection.
    gc.collect()
    gc.freeze()
    from klambda_runtime import forkserver

    # Runtime processes orphaned by a killed environment are reaped here, not left to
    # whatever PID 1 is.
    forkserver.become_subreaper()
    forkserver.set_process_name("klambda-zygote")
    from klambda_runtime import interpreters, runtime_servers
    from klambda_runtime.pyruntime import isolation
    from klambda_runtime.templates import runtime_child_main

    # Runtimes of other Python versions (python3.12 on a 3.11 platform) fork from a warm
    # runtime server on their interpreter, started on first use; KLAMBDA_ZYGOTE_RUNTIME_
    # SERVERS=0 execs them instead, =python3.12,python3.13 starts those servers now.
    router = None
    servers = os.environ.get("KLAMBDA_ZYGOTE_RUNTIME_SERVERS", "1")
    if servers != "0":
        router = runtime_servers.RuntimeServers(platform_python=sys.executable)
        interpreters.enable_runtime_servers()
        router.prestart([r for r in servers.split(",") if r.startswith("python")])

    # What a runtime process must forget of this template, classified once, last (after
    # every import the zygote itself makes).
    isolation.snapshot()

    forkserver.serve(
        sock,
        {
            "agent": agent_child_main,
            "runtime": runtime_child_main,
            runtime_servers.EXEC_KIND: runtime_servers.exec_child_main,
        },
        default_kind="agent",
        kill_children_on_eof=False,
        channel_kinds=frozenset({"agent"}),
        channel_default_kind="runtime",
        router=router,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
