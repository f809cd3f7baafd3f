"""Bursts of environment starts: the order of a runtime's fork reply and its first request.

Covers: an environment killed right after start() returned dies (its group exists
already); a child a fork server forks for a channel's owner gets a gate and passes it only
once the reply carrying its pid has been sent to the owner (real fork server process);
a runtime whose agent's process group is gone exits quietly with ``EXIT_OWNER_GONE``
(no traceback); a burst of concurrent environments through a real zygote — platform
runtime forked by the zygote, ``python3.12`` forked by the runtime server (skipped
without a separate 3.12), and runtimes forked by each agent's own template
(SubprocessLauncher) — all report their runtime's init in Ready (an Init Duration, no
init error): before the gate, a warm runtime could reach its agent's Runtime API before
the pid did, and the agent then sent Ready only at the 10 s init limit, without one.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from klambda_runtime import templates
from klambda_runtime.launcher import SubprocessLauncher
from klambda_runtime.testing import TestGateway

from .conftest import PLATFORM_RUNTIME, Environments, write_function
from .test_runtime_servers import needs_312

module_loop = pytest.mark.asyncio(loop_scope="module")

SERVER = textwrap.dedent(
    """
    import json, os, socket, sys
    from klambda_runtime import forkserver, templates

    def owner(message, fds, channel):
        r, w = os.pipe()
        socket.send_fds(channel, [json.dumps({"id": 7}).encode()], [w])
        os.close(w)
        passed = os.read(r, 64)  # the probe passed its gate
        try:
            reply = json.loads(channel.recv(65536, socket.MSG_DONTWAIT))
        except BlockingIOError:
            reply = None  # the reply was not there yet: the gate opened too early
        os.write(fds[0], json.dumps({"passed": passed.decode(), "reply": reply}).encode())
        return 0

    def probe(message, fds, channel):
        gate = fds.pop(message["gate"])
        templates.wait_gate(gate)
        os.write(fds[0], b"passed")
        return 0

    forkserver.serve(
        socket.socket(fileno=int(sys.argv[1])),
        {"owner": owner, "probe": probe},
        default_kind="owner",
        kill_children_on_eof=True,
        channel_kinds=frozenset({"owner"}),
        channel_default_kind="probe",
    )
    """
)


def test_child_of_a_channel_passes_its_gate_after_the_reply() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(theirs.fileno())], pass_fds=[theirs.fileno()]
    )
    theirs.close()
    try:
        for _ in range(3):
            r, w = os.pipe()
            socket.send_fds(ours, [json.dumps({"id": 1}).encode()], [w])
            os.close(w)
            ours.settimeout(10)
            reply = json.loads(ours.recv(65536))
            while "exit" in reply:  # the previous owner's exit
                reply = json.loads(ours.recv(65536))
            assert "pid" in reply, reply
            with os.fdopen(r, "rb") as out:
                body = json.loads(out.read())
            assert body["passed"] == "passed"
            assert body["reply"] is not None and body["reply"]["id"] == 7, body
            assert isinstance(body["reply"]["pid"], int)
    finally:
        ours.close()
        proc.wait(10)


def test_runtime_of_a_gone_agent_exits_quietly() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    script = (
        "import os, sys\n"
        "from klambda_runtime import templates\n"
        "r, w = os.pipe()\n"
        f"sys.exit(templates.runtime_child_main({{'owner_pgid': {gone.pid}, 'env': {{}}, "
        "'cwd': '/'}, [w]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=30, check=False
    )
    assert done.returncode == templates.EXIT_OWNER_GONE, done
    assert done.stderr == b"", done.stderr


async def burst(envs: Environments, runtime: str, n: int) -> None:
    code = write_function(envs.tmp_path / runtime, {"app.py": "def handler(e, c):\n    return 1\n"})
    specs = [envs.spec(code, runtime=runtime) for _ in range(n)]
    await asyncio.gather(*(envs.start(s, ready=False) for s in specs))
    readies = await asyncio.gather(
        *(envs.gateway.wait_ready(s.environment_id, timeout=30) for s in specs)
    )
    for spec, ready in zip(specs, readies, strict=True):
        # Ready carries the init of the runtime it started (not the 10 s limit's 0).
        assert ready.init_error_type == "", (spec.environment_id, ready)
        assert ready.init_duration_ms > 0, (spec.environment_id, ready)


@module_loop
async def test_burst_on_the_platform_runtime_reports_every_init(envs: Environments) -> None:
    await burst(envs, PLATFORM_RUNTIME, 16)


@needs_312
@module_loop
async def test_burst_through_the_runtime_server_reports_every_init(envs: Environments) -> None:
    await burst(envs, "python3.12", 16)


@module_loop
async def test_kill_right_after_start_takes_the_environment(envs: Environments) -> None:
    code = write_function(envs.tmp_path / "k", {"app.py": "def handler(e, c):\n    return 1\n"})
    specs = [envs.spec(code, runtime=PLATFORM_RUNTIME) for _ in range(12)]
    started = await asyncio.gather(*(envs.start(s, ready=False) for s in specs))
    for env in started:  # at once: some agents have not run a line yet
        env.kill()
    codes = await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), 20)
    assert codes == [-9] * len(started)


@module_loop
async def test_burst_from_per_environment_templates_reports_every_init(
    gateway: TestGateway, tmp_path: Path
) -> None:
    # No zygote (pods, SubprocessLauncher): each agent's own runtime template forks it.
    holder = Environments(gateway, SubprocessLauncher(), tmp_path)
    try:
        await burst(holder, PLATFORM_RUNTIME, 4)
    finally:
        await holder.close()
