"""Invocations that end the runtime: timeout, crash (exit status / signal), memory over
the function's memory size. Each gives Lambda's error payload, marks the environment
reset, and the next invocation is a cold start that reports an Init Duration again; a
runtime that dies while idle is replaced too. Also: provisioned-concurrency
environments do not report the init of their first runtime.
"""

from __future__ import annotations

import json
import re

import pytest

from .conftest import Environments, error_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

APP = """
import os, signal, sys, time
STATE = {"calls": 0}

def handler(event, context):
    STATE["calls"] += 1
    action = event.get("action")
    if action == "sleep":
        print("going to sleep")
        time.sleep(event["seconds"])
    elif action == "exit":
        sys.exit(event["code"])
    elif action == "signal":
        os.kill(os.getpid(), getattr(signal, event["name"]))
        time.sleep(5)
    elif action == "hog":
        blocks = []
        for _ in range(event["mb"] // 8):
            blocks.append(bytearray(8 * 1024 * 1024))
            time.sleep(0.005)
        return len(blocks)
    elif action == "exit_later":
        import threading
        threading.Timer(0.05, lambda: os._exit(9)).start()
    return {"calls": STATE["calls"]}
"""


async def _assert_cold_again(envs: Environments, env_id: str) -> None:
    after = await envs.gateway.invoke(env_id, b"{}")
    assert after.function_error == "", after
    assert json.loads(after.payload) == {"calls": 1}  # a fresh runtime: module state is new
    assert after.init_duration_ms > 0
    assert "Init Duration: " in after.log_tail.decode()


async def test_timeout(envs: Environments) -> None:
    spec, _ = await envs.function({"app.py": APP}, timeout=1)
    await envs.gateway.invoke(spec.environment_id, b"{}")  # warm it
    result = await envs.gateway.invoke(
        spec.environment_id, b'{"action": "sleep", "seconds": 10}', request_id="rq-slow"
    )
    assert error_of(result) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": "RequestId: rq-slow Error: Task timed out after 1.00 seconds",
    }
    assert result.error_type == "Sandbox.Timedout"
    assert result.environment_reset
    assert 1000 <= result.duration_ms < 1500
    tail = result.log_tail.decode()
    assert "going to sleep" in tail
    assert re.search(r"Z RequestId: rq-slow Error: Task timed out after 1.00 seconds\n", tail)
    await _assert_cold_again(envs, spec.environment_id)


@pytest.mark.parametrize(
    ("event", "description"),
    [
        pytest.param({"action": "exit", "code": 3}, "exit status 3", id="exit-3"),
        pytest.param({"action": "signal", "name": "SIGKILL"}, "signal: killed", id="sigkill"),
        pytest.param(
            {"action": "signal", "name": "SIGSEGV"}, "signal: segmentation fault", id="sigsegv"
        ),
    ],
)
async def test_crash(envs: Environments, event: dict, description: str) -> None:
    spec, _ = await envs.function({"app.py": APP})
    result = await envs.gateway.invoke(
        spec.environment_id, json.dumps(event), request_id="rq-crash"
    )
    assert error_of(result) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: rq-crash Error: Runtime exited with error: {description}",
    }
    assert result.environment_reset
    await _assert_cold_again(envs, spec.environment_id)


async def test_out_of_memory(envs: Environments) -> None:
    spec, _ = await envs.function({"app.py": APP}, memory_size=128)
    result = await envs.gateway.invoke(
        spec.environment_id, b'{"action": "hog", "mb": 400}', request_id="rq-oom"
    )
    assert error_of(result) == {
        "errorType": "Runtime.OutOfMemory",
        "errorMessage": "RequestId: rq-oom Error: Runtime exited with error: signal: killed",
    }
    assert result.environment_reset
    assert result.max_memory_used_mb >= 128
    await _assert_cold_again(envs, spec.environment_id)


async def test_memory_under_the_limit_is_fine(envs: Environments) -> None:
    spec, _ = await envs.function({"app.py": APP}, memory_size=512)
    result = await envs.gateway.invoke(spec.environment_id, b'{"action": "hog", "mb": 64}')
    assert result.function_error == ""
    assert result.max_memory_used_mb >= 64


async def test_runtime_dying_while_idle_is_replaced(envs: Environments) -> None:
    spec, _ = await envs.function({"app.py": APP})
    first = await envs.gateway.invoke(spec.environment_id, b'{"action": "exit_later"}')
    assert first.function_error == ""
    import asyncio

    await asyncio.sleep(0.3)  # the runtime exits 9 in the background, idle
    await _assert_cold_again(envs, spec.environment_id)


async def test_provisioned_environment_reports_no_first_init(envs: Environments) -> None:
    spec, _ = await envs.function({"app.py": APP}, initialization_type="provisioned-concurrency")
    first = await envs.gateway.invoke(spec.environment_id, b'{"action": "exit", "code": 1}')
    assert first.init_duration_ms == 0
    assert "Init Duration" not in first.log_tail.decode()
    # ...but after a reset the re-init is reported like any cold start.
    await _assert_cold_again(envs, spec.environment_id)


async def test_timeout_is_exact_after_a_stream_of_quick_invocations(envs: Environments) -> None:
    """One timeout timer per environment, re-armed lazily: after 1.5 s of back-to-back
    invocations (each well inside the 1 s timeout, so the timer moved on several times)
    none timed out, and a slow one still times out at its own deadline."""
    import time

    spec, _ = await envs.function({"app.py": APP}, timeout=1)
    t0 = time.monotonic()
    calls = 0
    while time.monotonic() - t0 < 1.5:
        quick = await envs.gateway.invoke(
            spec.environment_id, json.dumps({"action": "sleep", "seconds": 0.05}))
        assert quick.function_error == "", quick
        calls += 1
    assert calls >= 10
    started = time.monotonic()
    slow = await envs.gateway.invoke(
        spec.environment_id, json.dumps({"action": "sleep", "seconds": 3}))
    waited = time.monotonic() - started
    assert slow.error_type == "Sandbox.Timedout"
    assert 0.95 <= waited < 2.8, waited  # at its deadline, not after the 3 s sleep
    assert 990 <= slow.duration_ms < 2800, slow.duration_ms
