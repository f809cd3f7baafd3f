"""The environment's life: draining on SIGTERM (the in-flight invocation is still answered),
the gateway's Shutdown message, reconnecting after the gateway restarts (the runtime stays
warm), SIGKILL of the whole process group, the exit status the launcher reports, and the
SubprocessLauncher fallback (a fresh interpreter per environment), re-dialling when the
gateway never answers Register, one zygote per interpreter, and that the live zygote
holds nothing fork-unsafe.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import psutil
import pytest
from klambda_runtime.launcher import SubprocessLauncher
from klambda_runtime.testing import TestGateway

from .conftest import Environments, write_function

pytestmark = pytest.mark.asyncio(loop_scope="module")

APP = """
import time
STATE = {"calls": 0}

def handler(event, context):
    STATE["calls"] += 1
    time.sleep(event.get("sleep", 0))
    return {"calls": STATE["calls"]}
"""


def _group(pgid: int) -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except (ProcessLookupError, psutil.Error):
            pass
    return out


async def test_sigterm_during_invocation_still_answers(envs: Environments) -> None:
    spec, env = await envs.function({"app.py": APP}, timeout=5)
    gw = envs.gateway
    pending = asyncio.ensure_future(gw.invoke(spec.environment_id, b'{"sleep": 0.5}'))
    await asyncio.sleep(0.15)
    env.terminate()
    result = await pending
    assert result.function_error == ""
    assert json.loads(result.payload) == {"calls": 1}
    assert gw.connections[spec.environment_id].draining
    assert await asyncio.wait_for(env.wait(), 10) == 0
    assert _group(env.pid) == []  # runtime and template are gone too


async def test_sigterm_when_idle_exits_promptly(envs: Environments) -> None:
    _spec, env = await envs.function({"app.py": APP})
    env.terminate()
    assert await asyncio.wait_for(env.wait(), 5) == 0


async def test_gateway_shutdown_message(envs: Environments) -> None:
    spec, env = await envs.function({"app.py": APP})
    await envs.gateway.shutdown(spec.environment_id, "scale down")
    assert await asyncio.wait_for(env.wait(), 5) == 0


async def test_kill_takes_down_the_whole_environment(envs: Environments) -> None:
    spec, env = await envs.function({"app.py": APP})
    await envs.gateway.invoke(spec.environment_id, b"{}")
    members = _group(env.pid)
    assert len(members) >= 2  # agent and runtime (forked by the zygote into the group)
    assert {p.name() for p in members} >= {"klambda-agent", "klambda-runtime"}
    env.kill()
    assert await asyncio.wait_for(env.wait(), 5) == -9
    await asyncio.sleep(0.2)
    assert _group(env.pid) == []


@pytest.mark.parametrize("lane", [False, True], ids=["grpc", "lane"])
async def test_reconnect_after_gateway_restart(tmp_path, lane: bool) -> None:
    code = write_function(tmp_path / "code", {"app.py": APP})
    gw = TestGateway(lane=lane)
    address = await gw.start()
    port = int(address.rsplit(":", 1)[1])
    from klambda_runtime.launcher import ZygoteLauncher

    launcher = ZygoteLauncher(env={**os.environ, "KLAMBDA_AGENT_RECONNECT_MAX": "0.2"})
    holder = Environments(gw, launcher, tmp_path)
    try:
        spec = holder.spec(code)
        env = await holder.start(spec)
        first = await gw.invoke(spec.environment_id, b"{}")
        assert json.loads(first.payload) == {"calls": 1}
        await gw.stop(None)
        await asyncio.sleep(0.3)
        gw2 = TestGateway(port, lane=lane, lane_port=gw.lane_port)
        await gw2.start()
        holder.gateway = gw2
        ready = await gw2.wait_ready(spec.environment_id, timeout=10)
        assert ready.init_error_type == ""
        assert gw2.connections[spec.environment_id].via == ("lane" if lane else "grpc")
        second = await gw2.invoke(spec.environment_id, b"{}")
        # Same runtime process: state survived the reconnect, no new init.
        assert json.loads(second.payload) == {"calls": 2}
        assert second.init_duration_ms == 0
        env.terminate()
        assert await asyncio.wait_for(env.wait(), 10) == 0
        await gw2.stop(None)
    finally:
        await holder.close()
        await launcher.close()


async def test_subprocess_launcher(gateway: TestGateway, tmp_path) -> None:
    code = write_function(tmp_path / "code", {"app.py": APP})
    holder = Environments(gateway, SubprocessLauncher(), tmp_path)
    try:
        spec = holder.spec(code)
        env = await holder.start(spec)
        result = await gateway.invoke(spec.environment_id, b"{}")
        assert json.loads(result.payload) == {"calls": 1} and result.init_duration_ms > 0
        env.terminate()
        assert await asyncio.wait_for(env.wait(), 10) == 0
    finally:
        await holder.close()


async def test_bad_description_exits_with_a_message(envs: Environments, tmp_path) -> None:
    spec = envs.spec(tmp_path / "does-not-exist")
    env = await envs.start(spec, ready=False)
    assert await asyncio.wait_for(env.wait(), 5) == 1
    log = Path(spec.log_path).read_text()
    assert "does not exist" in log and "materialise the function's code" in log


class _SilentGateway(TestGateway):
    """Accepts streams but never answers Register (a wedged gateway)."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def Connect(self, request_iterator, context) -> None:
        self.attempts += 1
        self._notify()
        await asyncio.sleep(30)


async def test_unanswered_register_is_retried(tmp_path) -> None:
    from klambda_runtime.launcher import ZygoteLauncher

    code = write_function(tmp_path / "code", {"app.py": APP})
    gw = _SilentGateway()
    await gw.start()
    launcher = ZygoteLauncher(env={**os.environ, "KLAMBDA_AGENT_REGISTER_TIMEOUT": "0.2"})
    holder = Environments(gw, launcher, tmp_path)
    try:
        await holder.start(holder.spec(code), ready=False)
        await gw.wait_for(lambda: gw.attempts >= 2, timeout=10)
    finally:
        await holder.close()
        await launcher.close()
        await gw.stop(None)


def _tcp_inodes(pid: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            next(f)
            inodes.update(line.split()[9] for line in f)
    return inodes


async def test_zygote_holds_nothing_fork_unsafe(envs: Environments) -> None:
    """The safety argument, checked on the live zygote after it forked environments and
    runtimes: one thread, no TCP socket, only its control/channel sockets and pipes."""
    spec, _ = await envs.function({"app.py": APP})
    await envs.gateway.invoke(spec.environment_id, b"{}")
    zygote = envs.launcher.zygote_pid()
    assert zygote is not None
    assert os.listdir(f"/proc/{zygote}/task") == [str(zygote)]  # single-threaded
    tcp = _tcp_inodes(zygote)
    kinds = set()
    for fd in os.listdir(f"/proc/{zygote}/fd"):
        try:
            target = os.readlink(f"/proc/{zygote}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            assert target[8:-1] not in tcp, "the zygote must not hold a TCP socket"
            kinds.add("socket")
        elif target.startswith("pipe:["):
            kinds.add("pipe")
        elif target.startswith("anon_inode:"):
            kinds.add(target)
        else:
            kinds.add("file")
    assert "anon_inode:[eventpoll]" not in kinds  # no event loop was ever created
    assert "socket" in kinds


async def test_one_zygote_per_interpreter(gateway: TestGateway, tmp_path) -> None:
    import sys

    from klambda_runtime.launcher import ZygoteLauncher

    names = [
        os.path.join(os.path.dirname(sys.executable), name)
        for name in ("python", "python3", f"python3.{sys.version_info[1]}")
    ]
    others = [n for n in names if os.path.exists(n) and n != sys.executable]
    if not others:
        pytest.skip("needs a second name for the interpreter")
    other = others[0]
    code = write_function(tmp_path / "code", {"app.py": APP})
    launcher = ZygoteLauncher(interpreters={"python3.11": other})
    holder = Environments(gateway, launcher, tmp_path)
    try:
        for runtime in ("python3.11", "python3.12"):
            spec = holder.spec(code, runtime=runtime)
            await holder.start(spec)
            result = await gateway.invoke(spec.environment_id, b"{}")
            assert json.loads(result.payload) == {"calls": 1}
        pids = {launcher.zygote_pid("python3.11"), launcher.zygote_pid("python3.12")}
        assert len(pids) == 2 and None not in pids
        assert launcher.zygote_pid("provided") == launcher.zygote_pid("python3.12")
    finally:
        await holder.close()
        await launcher.close()


@pytest.mark.parametrize("lane", ["unix:@klambda-no-such-lane", "127.0.0.1:1"])
async def test_unreachable_lane_falls_back_to_grpc(envs: Environments, lane: str) -> None:
    """A spec naming a lane nobody serves (here: a gRPC-only gateway) still works."""
    spec, _env = await envs.function({"app.py": APP}, lane=lane)
    result = await envs.gateway.invoke(spec.environment_id, b"{}")
    assert json.loads(result.payload) == {"calls": 1}
    assert envs.gateway.connections[spec.environment_id].via == "grpc"


async def test_agents_use_the_lane_when_offered(envs: Environments) -> None:
    spec, _env = await envs.function({"app.py": APP})
    assert spec.lane == envs.gateway.lane_address != ""
    for n in (1, 2, 3):
        result = await envs.gateway.invoke(spec.environment_id, b"{}")
        assert json.loads(result.payload) == {"calls": n}
    assert envs.gateway.connections[spec.environment_id].via == "lane"


async def test_a_lane_that_never_answers_falls_back_within_seconds(envs: Environments) -> None:
    """A listener whose accept queue is full drops SYNs (like a firewall dropping packets):
    the agent gives the lane 2 s, then registers over gRPC."""
    import socket
    import time

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    fillers = []
    try:
        for _ in range(4):  # fill the accept queue; later SYNs are dropped
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(hole.getsockname())
            fillers.append(c)
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        lane = f"127.0.0.1:{hole.getsockname()[1]}"
        spec, _env = await envs.function({"app.py": APP}, lane=lane)
        result = await envs.gateway.invoke(spec.environment_id, b"{}")
        assert json.loads(result.payload) == {"calls": 1}
        assert envs.gateway.connections[spec.environment_id].via == "grpc"
        assert time.monotonic() - t0 < 10
    finally:
        for c in fillers:
            c.close()
        hole.close()


UNIX_PROBE = """
import os
def handler(event, context):
    port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)[1]
    with open("/proc/net/unix") as f:
        names = [line.split()[-1] for line in f if "klambda-rtapi-" in line]
    return [n for n in names if n.endswith("-" + port)]
"""


async def test_forked_builtin_runtimes_use_the_unix_runtime_api(envs: Environments) -> None:
    """AWS_LAMBDA_RUNTIME_API stays host:port (every runtime can use it); the runtimes the
    agent forks talk to the same API over its abstract Unix socket: listener + connection."""
    spec, _env = await envs.function({"app.py": UNIX_PROBE})
    result = await envs.gateway.invoke(spec.environment_id, b"{}")
    names = json.loads(result.payload)
    assert len(names) >= 2 and len(set(names)) == 1, names  # listener + accepted socket
    assert names[0].startswith("@klambda-rtapi-")
