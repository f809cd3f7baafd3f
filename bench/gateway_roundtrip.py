"""Warm no-op round trip and throughput through the gateway, against an aiohttp hello
server measured in the same run (goals: p50 <= 2x, throughput >= 0.5x).

    .venv/bin/python bench/gateway_roundtrip.py [--requests 2000] [--concurrency 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from gateway_common import pct, start_hello, start_platform, summary

PATH = "/2015-03-31/functions/noop/invocations"


async def latency(url: str, n: int) -> list[float]:
    out: list[float] = []
    async with aiohttp.ClientSession() as s:
        for i in range(n + 50):
            t0 = time.perf_counter()
            async with s.post(url + PATH, data=b"{}") as r:
                await r.read()
                assert r.status == 200, r.status
            if i >= 50:  # warm-up
                out.append((time.perf_counter() - t0) * 1000)
    return out


async def throughput(url: str, concurrency: int, seconds: float) -> float:
    done = 0
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as s:
        async def worker(deadline: float) -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with s.post(url + PATH, data=b"{}") as r:
                    await r.read()
                    assert r.status == 200, r.status
                done += 1
        # warm: one environment per concurrent caller
        await asyncio.gather(*(worker(time.perf_counter() + 1.0) for _ in range(concurrency)))
        done = 0
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(t0 + seconds) for _ in range(concurrency)))
        return done / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate hello / gateway this many times (both stay up) and "
                         "report the median ratio: steadier on a shared machine")
    args = ap.parse_args()
    hello = start_hello()
    gw = start_platform(["noop"])
    lat_ratios: list[float] = []
    tp_ratios: list[float] = []
    try:
        for r in range(args.rounds):
            base_lat = asyncio.run(latency(hello.url, args.requests))
            gw_lat = asyncio.run(latency(gw.url, args.requests))
            base_tp = asyncio.run(throughput(hello.url, args.concurrency, args.seconds))
            gw_tp = asyncio.run(throughput(gw.url, args.concurrency, args.seconds))
            lat_ratios.append(pct(gw_lat, 0.5) / pct(base_lat, 0.5))
            tp_ratios.append(gw_tp / base_tp)
            print(f"round {r + 1}: warm no-op round trip ({args.requests} sequential "
                  "requests, keep-alive)")
            print(f"  aiohttp hello : {summary(base_lat)}")
            print(f"  gateway       : {summary(gw_lat)}")
            print(f"  p50 ratio gateway/hello = {lat_ratios[-1]:.2f}x (goal <= 2x)")
            print(f"  throughput ({args.concurrency} concurrent callers, {args.seconds:g} s): "
                  f"hello {base_tp:.0f} req/s, gateway {gw_tp:.0f} req/s = "
                  f"{tp_ratios[-1]:.2f}x (goal >= 0.5x)")
    finally:
        gw.stop()
        hello.stop()
    if args.rounds > 1:
        print(f"median of {args.rounds} rounds: p50 ratio {statistics.median(lat_ratios):.2f}x "
              f"(goal <= 2x), throughput ratio {statistics.median(tp_ratios):.2f}x "
              "(goal >= 0.5x)")


if __name__ == "__main__":
    main()
