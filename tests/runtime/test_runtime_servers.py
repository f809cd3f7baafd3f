"""Runtimes of another Python version fork from a warm runtime server on that interpreter.

Covers, through real zygote-forked agents and a real separate Python 3.12 (skipped when
this machine has none): a ``python3.12`` function's runtime is a fork of the zygote's
3.12 runtime server (its parent), sees ``sys.version_info`` 3.12 and its own interpreter's
``sys.executable``, imports boto3 but not the platform's packages nor klambda_runtime; it
joins the agent's process group (``kill()`` is one killpg) and dies with its agent; every
environment shares the one server, which holds one thread and no epoll instance; a crash (exit status), a timeout and an OOM reset
restart from the same 3.12 template with Lambda's error types and Max Memory Used. The
fallbacks: ``<code>/lib`` execs the runtime from the agent; a server that cannot start
(an interpreter wrapper that refuses to run it) makes the zygote exec the runtime itself,
still on 3.12, still in the agent's group; ``KLAMBDA_ZYGOTE_RUNTIME_SERVERS=0`` execs too;
``=python3.12`` starts the server with the zygote (no environment holds its socket: it
exits with the zygote while the environments keep running).
Pure: the router's request-to-runtime mapping and the server's environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from klambda_runtime import interpreters, runtime_servers
from klambda_runtime.launcher import ZygoteLauncher
from klambda_runtime.testing import TestGateway

from .conftest import Environments, error_of

module_loop = pytest.mark.asyncio(loop_scope="module")

PLATFORM = (sys.version_info[0], sys.version_info[1])
FOUND_312 = interpreters.choose(
    "python3.12", env=os.environ, platform_python=sys.executable, platform_version=(0, 0)
)
needs_312 = pytest.mark.skipif(
    not FOUND_312.found or PLATFORM == (3, 12), reason="no separate Python 3.12 interpreter"
)

PROBE = """
import importlib, os, sys, time

STATE = {"calls": 0}

def importable(name):
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False

def comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()

def handler(event, context):
    STATE["calls"] += 1
    if event.get("exit"):
        sys.exit(event["exit"])
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("hog"):
        blocks = [bytearray(8 * 1024 * 1024) for _ in range(event["hog"] // 8)]
        time.sleep(1)
        return len(blocks)
    return {
        "calls": STATE["calls"],
        "version": list(sys.version_info[:2]),
        "executable": sys.executable,
        "boto3": importable("boto3"),
        "grpc": importable("grpc"),
        "klambda_runtime": importable("klambda_runtime"),
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "ppid": os.getppid(),
        "parent": comm(os.getppid()),
    }
"""


async def probe(envs: Environments, env_id: str) -> dict[str, Any]:
    result = await envs.gateway.invoke(env_id, b"{}")
    assert result.function_error == "", result.payload
    body: dict[str, Any] = json.loads(result.payload)
    return body


def assert_isolated_312(body: dict[str, Any]) -> None:
    assert body["version"] == [3, 12], body
    assert body["boto3"] and not body["grpc"] and not body["klambda_runtime"], body


def dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def gone(pid: int) -> bool:
    for _ in range(100):  # 2 s at most
        if dead(pid):
            return True
        await asyncio.sleep(0.02)
    return False


def test_router_maps_requests_to_runtimes() -> None:
    message = {"env": {"AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"}}
    assert runtime_servers.runtime_of(message) == "python3.12"
    assert runtime_servers.runtime_of({"env": {}}) == ""
    servers = runtime_servers.RuntimeServers(platform_python=sys.executable)
    platform_runtime = f"python{PLATFORM[0]}.{PLATFORM[1]}"
    ours = {"env": {"AWS_EXECUTION_ENV": f"AWS_Lambda_{platform_runtime}"}}
    assert servers.interpreter_for(ours) is None
    assert servers.route("agent", ours) == "agent"
    assert servers.route("runtime", ours) == "runtime"
    env = runtime_servers.server_env({"PATH": "/bin", "PYTHONPATH": "/x", "PYTHONHOME": "/y"})
    assert env == {"PATH": "/bin"}


@needs_312
@module_loop
async def test_python312_runtime_forks_from_the_312_server(envs: Environments) -> None:
    spec, env = await envs.function({"app.py": PROBE}, runtime="python3.12")
    body = await probe(envs, spec.environment_id)
    assert_isolated_312(body)
    assert body["executable"] == FOUND_312.path
    assert body["parent"] == "klambda-rt3.12", body
    assert body["pgid"] == env.pid  # in the agent's process group
    # The server is a clean template: one thread, no epoll instance (like the zygote).
    assert len(os.listdir(f"/proc/{body['ppid']}/task")) == 1
    fds = [
        os.readlink(f"/proc/{body['ppid']}/fd/{fd}")
        for fd in os.listdir(f"/proc/{body['ppid']}/fd")
    ]
    assert not [fd for fd in fds if "eventpoll" in fd], fds
    other, _ = await envs.function({"app.py": PROBE}, name="other", runtime="python3.12")
    assert (await probe(envs, other.environment_id))["ppid"] == body["ppid"]  # one server
    env.kill()  # one killpg takes the runtime too
    assert await gone(body["pid"])


@needs_312
@module_loop
async def test_runtime_dies_with_its_agent(envs: Environments) -> None:
    spec, env = await envs.function({"app.py": PROBE}, runtime="python3.12")
    body = await probe(envs, spec.environment_id)
    os.kill(env.pid, signal.SIGKILL)  # the agent alone: the zygote tells the server
    assert await gone(body["pid"])


@needs_312
@module_loop
async def test_resets_restart_from_the_312_server(envs: Environments) -> None:
    spec, _ = await envs.function(
        # timeout 3 s: the probes must not time out on a loaded CI machine
        {"app.py": PROBE}, runtime="python3.12", timeout=3, memory_size=128
    )
    first = await probe(envs, spec.environment_id)
    crashed = await envs.gateway.invoke(spec.environment_id, b'{"exit": 3}', request_id="rq-c")
    assert error_of(crashed) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": "RequestId: rq-c Error: Runtime exited with error: exit status 3",
    }
    second = await probe(envs, spec.environment_id)
    assert second["calls"] == 1 and second["pid"] != first["pid"]
    timed_out = await envs.gateway.invoke(spec.environment_id, b'{"sleep": 10}')
    assert timed_out.error_type == "Sandbox.Timedout" and timed_out.environment_reset
    third = await probe(envs, spec.environment_id)
    oom = await envs.gateway.invoke(spec.environment_id, b'{"hog": 400}')
    assert oom.error_type == "Runtime.OutOfMemory", oom.payload
    assert oom.max_memory_used_mb >= 128
    fourth = await probe(envs, spec.environment_id)
    for body in (second, third, fourth):
        assert_isolated_312(body)
        assert body["calls"] == 1 and body["parent"] == "klambda-rt3.12"
        assert body["ppid"] == first["ppid"] and body["pgid"] == first["pgid"]
    assert Path(spec.log_path).read_text().count("INIT_START") == 4


@needs_312
@module_loop
async def test_native_libs_exec_from_the_agent(envs: Environments) -> None:
    spec, env = await envs.function({"app.py": PROBE, "lib/.keep": ""}, runtime="python3.12")
    body = await probe(envs, spec.environment_id)
    assert_isolated_312(body)
    assert body["ppid"] == env.pid and body["pgid"] == env.pid


async def _with_launcher(
    gateway: TestGateway, tmp_path: Path, extra_env: dict[str, str]
) -> tuple[Environments, ZygoteLauncher]:
    launcher = ZygoteLauncher(env={**os.environ, **extra_env})
    return Environments(gateway, launcher, tmp_path), launcher


@needs_312
@module_loop
async def test_server_that_cannot_start_falls_back_to_exec(
    gateway: TestGateway, tmp_path: Path
) -> None:
    wrapper = tmp_path / "py" / "python3.12"
    wrapper.parent.mkdir()
    wrapper.write_text(
        f'#!/bin/sh\ncase "$*" in *runtime_server*) exit 1;; esac\nexec {FOUND_312.path} "$@"\n'
    )
    wrapper.chmod(0o755)
    holder, launcher = await _with_launcher(gateway, tmp_path, {"KLAMBDA_PYTHON3_12": str(wrapper)})
    try:
        spec, env = await holder.function({"app.py": PROBE}, runtime="python3.12")
        body = await probe(holder, spec.environment_id)
        assert_isolated_312(body)
        assert body["parent"] == "klambda-zygote" and body["pgid"] == env.pid, body
        crashed = await holder.gateway.invoke(spec.environment_id, b'{"exit": 2}')
        assert crashed.error_type == "Runtime.ExitError"
        again = await probe(holder, spec.environment_id)
        assert again["calls"] == 1 and again["parent"] == "klambda-zygote"
    finally:
        await holder.close()
        await launcher.close()


@needs_312
@module_loop
async def test_runtime_servers_can_be_turned_off(gateway: TestGateway, tmp_path: Path) -> None:
    holder, launcher = await _with_launcher(
        gateway, tmp_path, {"KLAMBDA_ZYGOTE_RUNTIME_SERVERS": "0"}
    )
    try:
        spec, env = await holder.function({"app.py": PROBE}, runtime="python3.12")
        body = await probe(holder, spec.environment_id)
        assert_isolated_312(body)
        assert body["ppid"] == env.pid  # exec'd by the agent, as before runtime servers
    finally:
        await holder.close()
        await launcher.close()


def children_named(parent: int, name: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            if comm == name and int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry))
    return found


@needs_312
@module_loop
async def test_servers_started_with_the_zygote(gateway: TestGateway, tmp_path: Path) -> None:
    holder, launcher = await _with_launcher(
        gateway, tmp_path, {"KLAMBDA_ZYGOTE_RUNTIME_SERVERS": "python3.12"}
    )
    try:
        await launcher.warm()
        zygote = launcher.zygote_pid()
        assert zygote is not None
        servers: list[int] = []
        for _ in range(100):  # 2 s at most
            servers = children_named(zygote, "klambda-rt3.12")
            if servers:
                break
            await asyncio.sleep(0.02)
        assert len(servers) == 1
        # An environment forked before the first python3.12 request, and a 3.12 one.
        await holder.function({"app.py": PROBE}, name="plain")
        spec, env = await holder.function({"app.py": PROBE}, runtime="python3.12")
        body = await probe(holder, spec.environment_id)
        assert_isolated_312(body)
        assert body["ppid"] == servers[0]
        # No environment holds the zygote's end of the server's socket: when the zygote
        # goes, the server sees EOF and exits; the environments keep running.
        await launcher.close()
        assert await gone(servers[0])
        assert not dead(env.pid) and not dead(body["pid"])
    finally:
        await holder.close()
        await launcher.close()
