"""Scaling through the gateway, in one process (platform + client on one event loop):

* burst 0 -> N environments: N concurrent invocations of a cold function; new
  environments per second until all N are ready (goal >= 100/s), against the bare
  launcher's fork rate measured in the same run;
* scale-from-zero trigger latency: request sent -> Launcher.start called (event-driven,
  no tick), against the warm round trip of the same run;
* cold start end to end: first invocation of a function with no environment, with the
  X-Klambda-Cold-Start phases, against the warm round trip.

    .venv/bin/python bench/gateway_scaling.py [--burst 50] [--cold 15]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from klambda_gateway.local_registry import LocalRegistry
from klambda_gateway.platform import Platform
from klambda_gateway.settings import GatewaySettings
from klambda_model import load_documents
from klambda_runtime.launcher import ZygoteLauncher
from klambda_runtime.spec import EnvironmentSpec

sys.path.insert(0, str(Path(__file__).parent))
from gateway_common import pct

CODE = "import time\ndef handler(event, context):\n    time.sleep(event.get('sleep', 0))\n    return 1\n"


class TimedLauncher(ZygoteLauncher):
    """A ZygoteLauncher that records when environment starts were requested: ``start``
    (agent processes) or ``fork_client`` (embedded environments, the default: their
    launcher asks for the zygote first thing)."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: list[float] = []

    async def start(self, spec: EnvironmentSpec) -> Any:
        self.starts.append(time.perf_counter())
        return await super().start(spec)

    async def fork_client(self, runtime: str = "") -> Any:
        self.starts.append(time.perf_counter())
        return await super().fork_client(runtime)

    def first_start_after(self, t0: float) -> float:
        return min(t for t in self.starts if t >= t0)


def function_doc(name: str) -> dict[str, Any]:
    return {"apiVersion": "klambda.io/v1alpha1", "kind": "Function",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"runtime": "python3.12", "handler": "app.handler",
                     "code": {"inline": {"app.py": CODE}}}}


async def invoke(s: aiohttp.ClientSession, url: str, name: str,
                 body: bytes = b"{}") -> tuple[float, dict[str, str]]:
    t0 = time.perf_counter()
    async with s.post(f"{url}/2015-03-31/functions/{name}/invocations", data=body) as r:
        await r.read()
        assert r.status == 200, (r.status, await r.text())
        return (time.perf_counter() - t0) * 1000, dict(r.headers)


async def bare_fork_rate(n: int, gateway: str, state: Path) -> float:
    """Baseline: the launcher alone starting n environments (no gateway involved)."""
    launcher = ZygoteLauncher()
    await launcher.warm()
    code = state / "bare"
    code.mkdir()
    (code / "app.py").write_text(CODE)
    t0 = time.perf_counter()
    envs = await asyncio.gather(*(launcher.start(EnvironmentSpec(
        environment_id=f"bare-{i}", gateway=gateway, namespace="default", function_name="bare",
        version="$LATEST", runtime="python3.12", handler="app.handler", code_dir=str(code)))
        for i in range(n)))
    elapsed = time.perf_counter() - t0
    for e in envs:
        e.kill()
    await asyncio.gather(*(e.wait() for e in envs))
    await launcher.close()
    return n / elapsed


async def main(burst: int, cold: int) -> None:
    state = Path(tempfile.mkdtemp(prefix="klambda-bench-"))
    registry = LocalRegistry(state / "registry")
    names = [f"cold{i}" for i in range(cold)]
    registry.apply(load_documents(yaml.safe_dump_all(
        [function_doc("burst"), function_doc("warm")] + [function_doc(n) for n in names])))
    launcher = TimedLauncher()
    await launcher.warm()
    settings = GatewaySettings(port=0, state_dir=str(state / "state"))
    platform = Platform(settings, registry=registry, launcher=launcher)
    await platform.start()
    url = platform.endpoint
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            await invoke(s, url, "warm")
            warm = [(await invoke(s, url, "warm"))[0] for _ in range(200)]
            warm_p50 = pct(warm, 0.5)

            # ---- scale-from-zero trigger + cold start end to end
            e2e, trig, phases = [], [], []
            for name in names:
                t0 = time.perf_counter()
                ms, headers = await invoke(s, url, name)
                e2e.append(ms)
                trig.append((launcher.first_start_after(t0) - t0) * 1000)
                phases.append(dict(p.split("=") for p in
                                   headers["X-Klambda-Cold-Start"].split(";")))

            # ---- burst 0 -> N
            t0 = time.perf_counter()
            tasks = [asyncio.create_task(invoke(s, url, "burst", b'{"sleep": 0.5}'))
                     for _ in range(burst)]
            deadline = time.monotonic() + 120
            pool = None
            while time.monotonic() < deadline:
                pool = pool or next((p for k, p in platform.dispatcher.pools.items()
                                     if k[1] == "burst"), None)
                ready = [e for e in pool.environments.values() if e.ready_at] if pool else []
                if len(ready) >= burst:
                    break
                await asyncio.sleep(0.002)
            assert pool is not None
            all_ready = time.perf_counter()
            await asyncio.gather(*tasks)
            burst_rate = burst / (all_ready - t0)
            started = len(pool.environments)
        fork_rate = await bare_fork_rate(burst, "127.0.0.1:9", state)  # nobody listens
    finally:
        await platform.stop()
        registry.close()

    print(f"warm round trip (baseline of this run): p50 {warm_p50:.2f} ms")
    print(f"scale-from-zero trigger (request sent -> Launcher.start), {cold} functions:")
    print(f"  p50 {pct(trig, 0.5):.2f} ms  max {max(trig):.2f} ms  "
          f"= {pct(trig, 0.5) / warm_p50:.2f}x the warm round trip")
    print(f"cold start end to end through the gateway, {cold} functions:")
    print(f"  p50 {pct(e2e, 0.5):.1f} ms  p90 {pct(e2e, 0.9):.1f} ms  "
          f"= {pct(e2e, 0.5) / warm_p50:.0f}x the warm round trip")
    for key in ("queue", "start", "init"):
        vals = [float(p[key]) for p in phases]
        print(f"    phase {key:5s}: p50 {pct(vals, 0.5):7.1f} ms")
    print(f"burst 0 -> {burst} environments ({started} started): {burst_rate:.0f} new "
          f"environments/s until all ready (goal >= 100/s: {burst_rate / 100:.2f}x)")
    print(f"  baseline: bare ZygoteLauncher.start x{burst} = {fork_rate:.0f}/s (process "
          f"creation only); gateway path = {burst_rate / fork_rate:.2f}x of it")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--burst", type=int, default=50)
    ap.add_argument("--cold", type=int, default=15)
    args = ap.parse_args()
    asyncio.run(main(args.burst, args.cold))
