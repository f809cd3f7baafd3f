"""Edges of the environment's life: an init slower than Lambda's init limit (Ready is
sent anyway and the invocation waits for init), an init that never finishes (the
invocation times out and the environment resets), a ``provided`` function without a
bootstrap (Runtime.InvalidEntrypoint), a bootstrap that exits during init without
reporting (Runtime.ExitError), and runtime restarts after the zygote went away (the
agent falls back to starting a fresh interpreter), and a layer's native library directory
on the loader's path.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from klambda_runtime.launcher import ZygoteLauncher
from klambda_runtime.testing import TestGateway

from .conftest import Environments, error_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

SLOW_INIT = """
import time
time.sleep({seconds})
def handler(event, context):
    return "initialised"
"""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def quick_limit() -> AsyncIterator[ZygoteLauncher]:
    launcher = ZygoteLauncher(env={**os.environ, "KLAMBDA_AGENT_INIT_READY_LIMIT": "0.3"})
    await launcher.warm()
    yield launcher
    await launcher.close()


@pytest_asyncio.fixture(loop_scope="module")
async def limited(
    gateway: TestGateway, quick_limit: ZygoteLauncher, tmp_path: Path
) -> AsyncIterator[Environments]:
    holder = Environments(gateway, quick_limit, tmp_path)
    yield holder
    await holder.close()


async def test_init_slower_than_the_limit(limited: Environments) -> None:
    spec, _ = await limited.function({"app.py": SLOW_INIT.format(seconds=1.0)}, timeout=3)
    ready = limited.gateway.connections[spec.environment_id].ready_message
    assert ready.init_error_type == "" and ready.init_duration_ms == 0  # sent before init ended
    result = await limited.gateway.invoke(spec.environment_id, b"{}")
    assert json.loads(result.payload) == "initialised"
    assert result.init_duration_ms >= 900


async def test_init_that_never_finishes_times_out(limited: Environments) -> None:
    spec, _ = await limited.function({"app.py": SLOW_INIT.format(seconds=60)}, timeout=1)
    result = await limited.gateway.invoke(spec.environment_id, b"{}", request_id="rq-hang")
    assert error_of(result) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": "RequestId: rq-hang Error: Task timed out after 1.00 seconds",
    }
    assert result.environment_reset


async def test_provided_without_bootstrap(envs: Environments) -> None:
    spec, _ = await envs.function({"app.py": "x = 1\n"}, runtime="provided")
    ready = envs.gateway.connections[spec.environment_id].ready_message
    assert ready.init_error_type == "Runtime.InvalidEntrypoint"
    error = error_of(await envs.gateway.invoke(spec.environment_id, b"{}"))
    assert error["errorType"] == "Runtime.InvalidEntrypoint"
    assert "executable file named 'bootstrap'" in error["errorMessage"]


async def test_bootstrap_exiting_during_init(envs: Environments) -> None:
    bootstrap = "#!/bin/sh\necho 'cannot start' >&2\nexit 2\n"
    spec, _ = await envs.function({"bootstrap": bootstrap}, runtime="provided")
    ready = envs.gateway.connections[spec.environment_id].ready_message
    assert ready.init_error_type == "Runtime.ExitError"
    result = await envs.gateway.invoke(spec.environment_id, b"{}", request_id="rq-boot")
    assert error_of(result) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": "RequestId: rq-boot Error: Runtime exited with error: exit status 2",
    }
    assert "cannot start" in Path(spec.log_path).read_text()


async def test_restart_after_the_zygote_is_gone(gateway: TestGateway, tmp_path: Path) -> None:
    from .conftest import write_function

    code = write_function(
        tmp_path / "code",
        {
            "app.py": "import os\nN = [0]\ndef handler(e, c):\n"
            "    N[0] += 1\n    if e.get('die'):\n        os._exit(5)\n    return N[0]\n"
        },
    )
    launcher = ZygoteLauncher()
    holder = Environments(gateway, launcher, tmp_path)
    try:
        spec = holder.spec(code)
        env = await holder.start(spec)
        assert json.loads((await gateway.invoke(spec.environment_id, b"{}")).payload) == 1
        await launcher.close()  # environments keep running without their zygote
        crash = await gateway.invoke(spec.environment_id, b'{"die": true}')
        assert crash.error_type == "Runtime.ExitError"
        after = await gateway.invoke(spec.environment_id, b"{}")  # a fresh interpreter
        assert json.loads(after.payload) == 1 and after.init_duration_ms > 0
        env.terminate()
        assert await asyncio.wait_for(env.wait(), 10) in (0, 255)
    finally:
        await holder.close()


async def test_init_failure_output_is_in_the_tail(envs: Environments) -> None:
    bootstrap = "#!/bin/sh\necho 'python3: No module named awslambdaric' >&2\nexit 1\n"
    spec, _ = await envs.function({"bootstrap": bootstrap}, runtime="provided")
    result = await envs.gateway.invoke(spec.environment_id, b"{}")
    tail = result.log_tail.decode()
    assert tail.index("No module named awslambdaric") < tail.index("START RequestId:")
    assert tail.startswith("INIT_START Runtime Version: klambda:provided\n")
    assert re.search(
        r"INIT_REPORT Init Duration: \d+\.\d\d ms\tPhase: init\tStatus: error\t"
        r"Error Type: Runtime.ExitError\n",
        tail,
    )


async def test_layer_native_library_is_loadable(envs: Environments, tmp_path: Path) -> None:
    """``<opt>/lib`` is on LD_LIBRARY_PATH for the loader itself (the runtime is exec'd,
    not forked, when such a directory exists: the loader reads the variable at start)."""
    import ctypes.util
    import shutil

    found = ctypes.util.find_library("z")
    candidates = [f"/usr/lib/x86_64-linux-gnu/{found}", f"/lib/x86_64-linux-gnu/{found}"]
    source = next((c for c in candidates if found and os.path.exists(c)), None)
    if source is None:
        pytest.skip("no libz to stand in for a layer's native library")
    opt = tmp_path / "opt"
    (opt / "lib").mkdir(parents=True)
    shutil.copy(source, opt / "lib" / "libkltest.so")
    app = (
        "import ctypes\n"
        "def handler(event, context):\n"
        "    return bool(ctypes.CDLL('libkltest.so'))\n"
    )
    spec, _ = await envs.function({"app.py": app}, opt_dir=str(opt))
    result = await envs.gateway.invoke(spec.environment_id, b"{}")
    assert result.function_error == "", result.payload
    assert json.loads(result.payload) is True
