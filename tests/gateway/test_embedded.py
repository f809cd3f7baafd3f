"""Embedded environments (klambda_runtime.embedded, the local default): the agent's code in
the gateway's process, the runtime the environment's only process. A real platform: no
agent processes exist, invocations and queued invocations run (the embedded stream never
re-enters the agent), killing and draining an environment, and the agent-process mode
still available (``embedded_environments=False``)."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import psutil

from .harness import Harness

APP = """
import os, time
STATE = {"calls": 0}
def handler(event, context):
    STATE["calls"] += 1
    time.sleep(event.get("sleep", 0))
    return {"calls": STATE["calls"], "pid": os.getpid()}
"""


def _names_below_us() -> list[str]:
    out = []
    for p in psutil.Process(os.getpid()).children(recursive=True):
        try:
            out.append(p.name())
        except psutil.Error:
            pass
    return out


def _environments(h: Harness) -> list:  # type: ignore[type-arg]
    assert h.platform is not None and h.platform.scaler is not None
    return h.call(lambda: list(h.platform.scaler._running.values()))  # type: ignore[union-attr]


def test_no_agent_process_and_a_warm_runtime(platform: Harness) -> None:
    platform.call(lambda: platform.registry.add_function("emb", APP))
    client = platform.client()
    first = json.loads(client.invoke(FunctionName="emb", Payload=b"{}")["Payload"].read())
    second = json.loads(client.invoke(FunctionName="emb", Payload=b"{}")["Payload"].read())
    assert (first["calls"], second["calls"]) == (1, 2) and first["pid"] == second["pid"]
    names = _names_below_us()
    assert "klambda-agent" not in names, names
    runtime = psutil.Process(first["pid"])
    assert runtime.is_running() and runtime.ppid() != os.getpid()  # forked by a template
    [env] = _environments(platform)
    assert type(env).__name__ == "EmbeddedEnvironment"


def test_queued_invocations_on_one_environment(platform: Harness) -> None:
    platform.call(lambda: platform.registry.add_function("one", APP, reserved=1))
    client = platform.client(retries=1)

    def call(i: int) -> int:
        r = client.invoke(FunctionName="one", Payload=json.dumps({"sleep": 0.02}))
        assert "FunctionError" not in r
        return int(json.loads(r["Payload"].read())["calls"])

    with ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(call, i) for i in range(12)]
        results = []
        for f in calls:
            try:
                results.append(f.result(timeout=60))
            except Exception as exc:  # noqa: BLE001 - a 429 of the reservation, nothing else
                assert "TooManyRequests" in type(exc).__name__ or "429" in str(exc), exc
    assert results and sorted(results) == list(range(1, len(results) + 1))


def test_kill_takes_the_runtime_and_the_platform_recovers(platform: Harness) -> None:
    platform.call(lambda: platform.registry.add_function("victim", APP))
    client = platform.client()
    pid = json.loads(client.invoke(FunctionName="victim", Payload=b"{}")["Payload"].read())["pid"]
    [env] = _environments(platform)

    async def kill_and_wait() -> int:
        env.kill()
        return await env.wait()

    assert platform.run(kill_and_wait()) == -9
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the runtime survived its environment"
        time.sleep(0.05)
    again = json.loads(client.invoke(FunctionName="victim", Payload=b"{}")["Payload"].read())
    assert again["calls"] == 1 and again["pid"] != pid  # a new environment, cold


def test_terminate_drains_the_in_flight_invocation(platform: Harness) -> None:
    platform.call(lambda: platform.registry.add_function("slow", APP))
    client = platform.client()
    client.invoke(FunctionName="slow", Payload=b"{}")
    [env] = _environments(platform)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.invoke, FunctionName="slow",
                              Payload=json.dumps({"sleep": 0.5}))
        time.sleep(0.2)
        platform.call(env.terminate)
        answer = pending.result(timeout=30)
    assert json.loads(answer["Payload"].read())["calls"] == 2
    assert platform.run(env.wait()) == 0


def test_agent_processes_when_not_embedded(make_platform) -> None:  # type: ignore[no-untyped-def]
    h = make_platform(embedded_environments=False)
    h.call(lambda: h.registry.add_function("proc", APP))
    r = h.client().invoke(FunctionName="proc", Payload=b"{}")
    assert json.loads(r["Payload"].read())["calls"] == 1
    assert "klambda-agent" in _names_below_us()


def test_the_gateway_process_may_hold_many_environments(platform: Harness) -> None:
    """Embedded environments keep their descriptors in this process: its soft limit is
    raised (up to the hard limit) when the platform starts."""
    import resource

    from klambda_runtime.embedded import FD_LIMIT_WANTED

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    expected = FD_LIMIT_WANTED if hard == resource.RLIM_INFINITY else min(FD_LIMIT_WANTED, hard)
    assert soft >= expected
