"""Warm invocation round trip through one environment vs. an aiohttp hello server.

* baseline — an aiohttp client in this process GETs ``/`` from an aiohttp "hello" server
             in another process (one keep-alive connection), sequentially;
* agent    — TestGateway (grpc.aio) -> agent (gRPC stream) -> Runtime API -> built-in
             runtime -> handler -> back: the environment's share of a warm Invoke.

Prints the median / p90 per request and the ratio against the baseline.
Usage: python bench/runtime_warm.py [-n 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from klambda_runtime.launcher import ZygoteLauncher
from klambda_runtime.spec import EnvironmentSpec
from klambda_runtime.testing import TestGateway

SERVER = """
import sys
from aiohttp import web
async def hello(request):
    return web.Response(text='{"ok": true}', content_type="application/json")
app = web.Application()
app.router.add_get("/", hello)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e6, ordered[int(len(ordered) * 0.9) - 1] * 1e6


async def baseline(n: int) -> list[float]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])  # noqa: ASYNC220
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/"
            for _ in range(100):
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            samples = []
            for _ in range(n):
                t0 = time.perf_counter()
                async with session.get(url) as resp:
                    await resp.read()
                samples.append(time.perf_counter() - t0)
            return samples
    finally:
        proc.kill()
        proc.wait()


async def through_agent(n: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp)
        (code / "app.py").write_text("def handler(event, context):\n    return {'ok': True}\n")
        async with TestGateway() as gw:
            launcher = ZygoteLauncher()
            spec = EnvironmentSpec(
                environment_id="warm",
                gateway=gw.address,
                namespace="default",
                function_name="bench",
                version="$LATEST",
                runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",  # the forked path
                handler="app.handler",
                code_dir=str(code),
                log_path=os.devnull,
            )
            env = await launcher.start(spec)
            await gw.wait_ready("warm", timeout=30)
            for _ in range(50):
                await gw.invoke("warm", b"{}")
            samples = []
            for _ in range(n):
                t0 = time.perf_counter()
                await gw.invoke("warm", b"{}")
                samples.append(time.perf_counter() - t0)
            env.kill()
            await env.wait()
            await launcher.close()
            return samples


async def main(n: int) -> None:
    base = await baseline(n)
    agent = await through_agent(n)
    b_med, b_p90 = stats(base)
    a_med, a_p90 = stats(agent)
    print(f"warm round trip, {n} sequential requests")
    print(f"baseline (aiohttp hello)  median {b_med:7.0f} us   p90 {b_p90:7.0f} us")
    print(
        f"agent + built-in runtime  median {a_med:7.0f} us   p90 {a_p90:7.0f} us   "
        f"{a_med / b_med:4.2f}x baseline"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=500)
    asyncio.run(main(parser.parse_args().n))
