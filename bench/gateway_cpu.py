"""CPU cost of one warm no-op invocation, per process kind, against the aiohttp hello
server measured in the same run. Wall-clock ratios on a shared 2-core machine swing with
whatever else runs; CPU time per request barely does, so this is the number to compare
before/after a change of the warm path.

For a fixed number of requests at a fixed concurrency it reads the CPU time (user+system,
all threads, from /proc) of the gateway process, of every agent and of every runtime,
and divides by the number of requests. The client's own CPU is printed too (it is the
same aiohttp client for both servers).

    .venv/bin/python bench/gateway_cpu.py [--requests 3000] [--concurrency 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from gateway_common import Server, pct, start_hello, start_platform
from gateway_roundtrip import PATH, latency


def process_kinds(root: int) -> dict[str, list[psutil.Process]]:
    """The server process and, below it, agents and runtimes (by process name)."""
    out: dict[str, list[psutil.Process]] = {"server": [psutil.Process(root)]}
    for child in psutil.Process(root).children(recursive=True):
        try:
            name = child.name()
        except psutil.Error:
            continue
        if name == "klambda-agent":
            out.setdefault("agent", []).append(child)
        elif name == "klambda-runtime":
            out.setdefault("runtime", []).append(child)
    return out


def cpu_seconds(kinds: dict[str, list[psutil.Process]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for kind, procs in kinds.items():
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        totals[kind] = total
    return totals


async def fixed_load(url: str, requests: int, concurrency: int) -> float:
    """Send exactly ``requests`` requests from ``concurrency`` callers; requests/s."""
    left = requests
    async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        async def caller() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with s.post(url + PATH, data=b"{}") as r:
                    await r.read()
                    assert r.status == 200, r.status

        t0 = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return requests / (time.perf_counter() - t0)


def measure(server: Server, requests: int, concurrency: int) -> tuple[float, float, dict[str, int]]:
    asyncio.run(fixed_load(server.url, 400, concurrency))  # warm: one environment per caller
    kinds = process_kinds(server.proc.pid)
    me = psutil.Process(os.getpid())
    before, client0 = cpu_seconds(kinds), sum(me.cpu_times()[:2])
    rate = asyncio.run(fixed_load(server.url, requests, concurrency))
    after, client1 = cpu_seconds(kinds), sum(me.cpu_times()[:2])
    per_request = {k: round((after[k] - before[k]) / requests * 1e6) for k in before}
    per_request["client"] = round((client1 - client0) / requests * 1e6)
    p50 = pct(asyncio.run(latency(server.url, 1000)), 0.5)
    return rate, p50, per_request


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    for n in range(args.rounds):
        hello = start_hello()
        try:
            h_rate, h_p50, h_cpu = measure(hello, args.requests, args.concurrency)
        finally:
            hello.stop()
        gw = start_platform(["noop"])
        try:
            g_rate, g_p50, g_cpu = measure(gw, args.requests, args.concurrency)
        finally:
            gw.stop()
        server_side = sum(v for k, v in g_cpu.items() if k != "client")
        print(f"round {n + 1}: CPU us per request (user+system, all threads)")
        print(f"  aiohttp hello : server {h_cpu['server']:4d}   client {h_cpu['client']:4d}   "
              f"{h_rate:6.0f} req/s  p50 {h_p50:.2f} ms")
        agent = (f"agent {g_cpu['agent']:4d}" if "agent" in g_cpu
                 else "agent  (embedded in the gateway)")
        print(f"  klambda       : gateway {g_cpu['server']:4d}  {agent}  "
              f"runtime {g_cpu.get('runtime', 0):4d}  = {server_side:4d}   client "
              f"{g_cpu['client']:4d}   {g_rate:6.0f} req/s  p50 {g_p50:.2f} ms")
        print(f"  server CPU per request: {server_side / h_cpu['server']:.1f}x the hello server; "
              f"throughput {g_rate / h_rate:.2f}x, p50 {g_p50 / h_p50:.2f}x")


if __name__ == "__main__":
    main()
