"""Burst of environment starts through the launcher + a real gRPC gateway (no HTTP front):
N concurrent ``ZygoteLauncher.start`` calls, each agent registering with a ``TestGateway``,
new environments per second until all N sent Ready. Per start path (python3.11 plain
zygote fork, python3.12 via the runtime server, python3.12 exec'd), against the bare
``start`` rate (process creation only) of the same run, with each agent's timeline
(``KLAMBDA_AGENT_LOG_LEVEL=DEBUG``: loop running, dialing, registered, runtime launched,
ready sent) and the runtime's Init Duration.

    .venv/bin/python bench/runtime_burst.py [--burst 50] [--rounds 2] [--paths 311,312,312exec]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

from klambda_runtime.launcher import ZygoteLauncher
from klambda_runtime.spec import EnvironmentSpec
from klambda_runtime.testing import TestGateway

CODE = "def handler(event, context):\n    return 1\n"
PATHS = {
    "311": ("python3.11", "1"),
    "312": ("python3.12", "python3.12"),
    "312exec": ("python3.12", "0"),
}
STAMP = re.compile(r"t=(\d+\.\d+) (loop running|dialing|registered|launching runtime|ready sent)")


def spec(i: int, *, tag: str, runtime: str, gateway: str, code: Path, logs: Path) -> EnvironmentSpec:
    return EnvironmentSpec(
        environment_id=f"{tag}-{i}", gateway=gateway, namespace="default",
        function_name=f"burst-{tag}", version="$LATEST", runtime=runtime,
        handler="app.handler", code_dir=str(code), log_path=str(logs / f"{tag}-{i}.log"))


def timeline(logs: Path, tag: str, n: int, t0: float) -> dict[str, list[float]]:
    """ms after the burst began at which each agent reached each point (median later)."""
    points: dict[str, list[float]] = {}
    for i in range(n):
        try:
            text = (logs / f"{tag}-{i}.log").read_text()
        except OSError:
            continue
        for m in STAMP.finditer(text):
            points.setdefault(m[2], []).append((float(m[1]) - t0) * 1000)
    return points


def cpu_of(pids: list[int]) -> float:
    """User+system CPU so far (ms, all threads) of these processes."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += (t.user + t.system) * 1000
    return total


def runtimes_of(agents: list[int]) -> list[int]:
    """The runtime processes of these agents (members of their process groups)."""
    groups, found = set(agents), []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in groups:
            try:
                if os.getpgid(int(name)) in groups:
                    found.append(int(name))
            except OSError:
                pass
    return found


def own_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_utime + r.ru_stime) * 1000


async def one_round(path: str, n: int, base: Path, gateway: TestGateway) -> tuple[float, float]:
    runtime, servers = PATHS[path]
    env = {**os.environ, "KLAMBDA_ZYGOTE_RUNTIME_SERVERS": servers,
           "KLAMBDA_AGENT_LOG_LEVEL": "DEBUG"}
    launcher = ZygoteLauncher(env=env)
    await launcher.warm()
    code = base / "code"
    code.mkdir(exist_ok=True)
    (code / "app.py").write_text(CODE)
    logs = Path(tempfile.mkdtemp(dir=base))
    # one warm-up start (the runtime server, if any, and first-use costs), not counted
    warm = await launcher.start(spec(0, tag=f"w{path}", runtime=runtime,
                                     gateway=gateway.address, code=code, logs=logs))
    await gateway.wait_ready(f"w{path}-0", timeout=30)
    tag = f"{path}-{time.monotonic_ns()}"
    import psutil

    zygote = psutil.Process(launcher.zygote_pid())
    helpers = [zygote.pid] + [c.pid for c in zygote.children() if c.pid != warm.pid]
    helper_cpu0, own_cpu0 = cpu_of(helpers), own_cpu()
    t0m = time.monotonic()
    t0 = time.perf_counter()
    envs = await asyncio.gather(*(launcher.start(spec(
        i, tag=tag, runtime=runtime, gateway=gateway.address, code=code, logs=logs))
        for i in range(n)))
    started = time.perf_counter()
    await asyncio.gather(*(gateway.wait_ready(f"{tag}-{i}", timeout=60) for i in range(n)))
    ready = time.perf_counter()
    inits = [gateway.connections[f"{tag}-{i}"].ready_message.init_duration_ms for i in range(n)]
    points = timeline(logs, tag, n, t0m)
    agents = [e.pid for e in envs]
    agent_cpu = cpu_of(agents) / n
    runtime_cpu = cpu_of(runtimes_of(agents)) / n
    helper_cpu = (cpu_of(helpers) - helper_cpu0) / n
    gateway_cpu = (own_cpu() - own_cpu0) / n
    for e in [*envs, warm]:
        e.kill()
    await asyncio.gather(*(e.wait() for e in [*envs, warm]))
    await launcher.close()
    rate = n / (ready - t0)
    bare = n / (started - t0)
    print(f"  {path:8s} {rate:6.0f} env/s until all Ready ({(ready - t0) * 1000:6.0f} ms); "
          f"start() x{n} returned after {(started - t0) * 1000:5.0f} ms ({bare:.0f}/s); "
          f"Init Duration p50 {statistics.median(inits):.0f} ms max {max(inits):.0f} ms")
    print(f"           CPU per environment until Ready (ms): agent {agent_cpu:.1f}, runtime "
          f"{runtime_cpu:.1f}, zygote + runtime server {helper_cpu:.1f}, this process (gateway "
          f"+ launcher) {gateway_cpu:.1f}; total {agent_cpu + runtime_cpu + helper_cpu + gateway_cpu:.1f}")
    order = ["loop running", "launching runtime", "dialing", "registered", "ready sent"]
    print("           agent timeline, ms after the burst began (p50 / max): " + ", ".join(
        f"{k} {statistics.median(points[k]):.0f}/{max(points[k]):.0f}"
        for k in order if k in points))
    return rate, bare


async def main(n: int, rounds: int, paths: list[str]) -> None:
    base = Path(tempfile.mkdtemp(prefix="klambda-burst-"))
    async with TestGateway() as gateway:
        results: dict[str, list[float]] = {p: [] for p in paths}
        for r in range(rounds):
            print(f"round {r + 1}:")
            for path in paths:
                rate, _bare = await one_round(path, n, base, gateway)
                results[path].append(rate)
    print("summary (env/s until all Ready, per round): " + "; ".join(
        f"{p}: {', '.join(f'{x:.0f}' for x in v)}" for p, v in results.items()))
    if "311" in results:
        ref = statistics.median(results["311"])
        print("ratio to the python3.11 plain-fork path of the same run: " + ", ".join(
            f"{p} {statistics.median(v) / ref:.2f}x" for p, v in results.items()))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--burst", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--paths", default="311,312,312exec")
    args = ap.parse_args()
    asyncio.run(main(args.burst, args.rounds, args.paths.split(",")))
