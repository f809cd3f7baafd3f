"""Cold start of a Python environment: "environment requested" -> first response.

Measured in one run, side by side:

* baseline  — spawn a fresh ``python`` that imports asyncio and answers on a socket
              (the floor of any design that starts an interpreter per environment);
* zygote    — ZygoteLauncher.start(spec) -> agent registers over gRPC -> runtime forked
              and initialised -> Ready -> Invocation -> Result (the whole path);
* subprocess— the same path with SubprocessLauncher (fresh interpreter for the agent).
* exec      — zygote agent, but the runtime exec'd (``python -c …`` on the platform's
              interpreter: what a function with ``<code>/lib`` gets), isolated on start;
* py3.12    — a ``python3.12`` function on a separate 3.12 interpreter, when this machine
              has one (KLAMBDA_PYTHON3_12, PATH, pyenv): the runtime forked from the
              zygote's warm 3.12 runtime server (started by a warm-up environment);
* py3.12exec— the same with ``KLAMBDA_ZYGOTE_RUNTIME_SERVERS=0`` on another zygote: the
              runtime exec'd on 3.12 by the agent (what every python3.12 start cost before).

The zygote/subprocess/exec rows use the runtime of the platform's own Python version.
Prints medians / p90 and the ratios against the baseline (goal: zygote <= 0.5x).
Usage: python bench/runtime_coldstart.py [-n 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from klambda_runtime import interpreters
from klambda_runtime.launcher import SubprocessLauncher, ZygoteLauncher
from klambda_runtime.spec import EnvironmentSpec
from klambda_runtime.testing import TestGateway

APP = "def handler(event, context):\n    return {'ok': True}\n"
PLATFORM_RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"
BASELINE = (
    "import asyncio, socket, sys\n"
    "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
    "s.sendall(b'ok'); s.close()\n"
)


def baseline_once(listener: socket.socket) -> float:
    port = listener.getsockname()[1]
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", BASELINE, str(port)])
    conn, _ = listener.accept()
    assert conn.recv(2) == b"ok"
    elapsed = time.perf_counter() - t0
    conn.close()
    proc.wait()
    return elapsed


async def environment_once(
    gw: TestGateway, launcher, code: Path, n: int, tag: str, runtime: str = PLATFORM_RUNTIME
) -> float:
    spec = EnvironmentSpec(
        environment_id=f"{tag}-{n}",
        gateway=gw.address,
        namespace="default",
        function_name="bench",
        version="$LATEST",
        runtime=runtime,
        handler="app.handler",
        code_dir=str(code),
        log_path=os.devnull,
    )
    t0 = time.perf_counter()
    env = await launcher.start(spec)
    await gw.wait_ready(spec.environment_id, timeout=30)
    result = await gw.invoke(spec.environment_id, b"{}")
    elapsed = time.perf_counter() - t0
    assert result.function_error == "", result
    env.kill()
    await env.wait()
    return elapsed


def summary(name: str, samples: list[float], base: float | None) -> str:
    med = statistics.median(samples) * 1000
    p90 = sorted(samples)[int(len(samples) * 0.9) - 1] * 1000
    ratio = f"{med / base:5.2f}x baseline" if base else "   (baseline)"
    return f"{name:<12} median {med:7.1f} ms   p90 {p90:7.1f} ms   {ratio}"


async def main(n: int) -> None:
    py312 = interpreters.choose(
        "python3.12", env=os.environ, platform_python=sys.executable, platform_version=(0, 0)
    )
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / "code"
        code.mkdir()
        (code / "app.py").write_text(APP)
        native = Path(tmp) / "native"  # <code>/lib exists: the runtime is exec'd
        (native / "lib").mkdir(parents=True)
        (native / "app.py").write_text(APP)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        async with TestGateway() as gw:
            zygote = ZygoteLauncher()
            await zygote.warm()
            sub = SubprocessLauncher()
            await environment_once(gw, zygote, code, -1, "warmup")  # zygote finishes importing
            rows: dict[str, list[float]] = {"zygote": [], "subprocess": [], "exec": []}
            no_servers = ZygoteLauncher(env={**os.environ, "KLAMBDA_ZYGOTE_RUNTIME_SERVERS": "0"})
            if py312.found and sys.version_info[:2] != (3, 12):
                rows["py3.12"] = []
                rows["py3.12exec"] = []
                # The 3.12 runtime server starts on the first python3.12 runtime.
                await environment_once(gw, zygote, code, -1, "warm312", "python3.12")
                await no_servers.warm()
                await environment_once(gw, no_servers, code, -1, "warm312x", "python3.12")
            few = max(3, n // 4)
            for i in range(n):  # interleaved, so machine load hits all rows alike
                rows.setdefault("baseline", []).append(baseline_once(listener))
                rows["zygote"].append(await environment_once(gw, zygote, code, i, "zygote"))
                if i < few:
                    rows["subprocess"].append(await environment_once(gw, sub, code, i, "sub"))
                    rows["exec"].append(await environment_once(gw, zygote, native, i, "exec"))
                if "py3.12" in rows:
                    rows["py3.12"].append(
                        await environment_once(gw, zygote, code, i, "py312", "python3.12")
                    )
                    if i < few:
                        rows["py3.12exec"].append(
                            await environment_once(gw, no_servers, code, i, "py312x", "python3.12")
                        )
            await zygote.close()
            await no_servers.close()
        listener.close()
    base = rows.pop("baseline")
    b = statistics.median(base) * 1000
    print(f"cold start, {n} samples each (subprocess, exec, py3.12exec: {few})")
    print(summary("baseline", base, None))
    for name, samples in rows.items():
        print(summary(name, samples, b))
    met = statistics.median(rows["zygote"]) * 1000 <= 0.5 * b
    print(f"goal: zygote <= 0.50x baseline -> {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=20)
    asyncio.run(main(parser.parse_args().n))
