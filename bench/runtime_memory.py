"""Idle memory of Python environments: PSS per environment (agent + runtime template +
runtime), for N environments forked from one zygote, each initialised and invoked once.

PSS (proportional set size, /proc/<pid>/smaps_rollup) charges every shared page to its
sharers in equal parts, so the sum over all processes is the real memory they cost.
The zygote's own PSS is reported separately (one per launcher, not per environment).

Baseline in the same run: N fresh ``python`` processes that imported asyncio and idle —
what one interpreter per environment would cost before doing anything at all.
Goal: <= 15 MB per Python environment.
Usage: python bench/runtime_memory.py [-n 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from klambda_runtime.launcher import SubprocessLauncher, ZygoteLauncher
from klambda_runtime.memory import pss_bytes
from klambda_runtime.spec import EnvironmentSpec
from klambda_runtime.testing import TestGateway

APP = "import json\nSTATE = {}\ndef handler(event, context):\n    return {'ok': True}\n"
MB = 1024 * 1024


def group_pids(pgid: int) -> list[int]:
    pids = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                pids.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            pass
    return pids


async def environments_pss(launcher, gw: TestGateway, code: Path, n: int, tag: str):
    envs = []
    for i in range(n):
        spec = EnvironmentSpec(
            environment_id=f"{tag}-{i}",
            gateway=gw.address,
            namespace="default",
            function_name="bench",
            version="$LATEST",
            runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",  # the forked path
            handler="app.handler",
            code_dir=str(code),
            log_path=os.devnull,
        )
        envs.append(await launcher.start(spec))
        await gw.wait_ready(spec.environment_id, timeout=60)
        await gw.invoke(spec.environment_id, b"{}")
    await asyncio.sleep(1.0)  # idle
    per_env, procs = [], 0
    for env in envs:
        pids = group_pids(env.pid)
        procs += len(pids)
        per_env.append(sum(pss_bytes(p) for p in pids))
    for env in envs:
        env.kill()
    for env in envs:
        await env.wait()
    return per_env, procs


def baseline_pss(n: int) -> list[int]:
    code = (
        "import asyncio, sys, time\nsys.stdout.write('up\\n'); sys.stdout.flush(); time.sleep(60)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE) for _ in range(n)
    ]
    for p in procs:
        p.stdout.readline()
    time.sleep(0.5)
    values = [pss_bytes(p.pid) for p in procs]
    for p in procs:
        p.kill()
        p.wait()
    return values


def line(name: str, values: list[int], base: float | None) -> str:
    avg = sum(values) / len(values) / MB
    ratio = f"{avg / base:5.2f}x baseline" if base else "   (baseline)"
    return f"{name:<22} {avg:6.1f} MB PSS per environment   {ratio}"


async def main(n: int, with_subprocess: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / "code"
        code.mkdir()
        (code / "app.py").write_text(APP)
        async with TestGateway() as gw:
            zygote = ZygoteLauncher()
            await zygote.warm()
            zyg, procs = await environments_pss(zygote, gw, code, n, "zygote")
            zygote_pid = zygote.zygote_pid()
            zygote_pss = pss_bytes(zygote_pid) if zygote_pid else 0
            await zygote.close()
            sub = None
            if with_subprocess:
                sub, _ = await environments_pss(SubprocessLauncher(), gw, code, min(n, 4), "sub")
    base = baseline_pss(n)
    b = sum(base) / len(base) / MB
    print(f"idle environment memory (PSS), {n} environments, {procs} processes")
    print(line("baseline python+asyncio", base, None))
    print(line("zygote environments", zyg, b))
    if sub:
        print(line("subprocess environments", sub, b))
    print(f"zygote itself: {zygote_pss / MB:.1f} MB PSS (once per launcher)")
    avg = sum(zyg) / len(zyg) / MB
    print(f"goal: <= 15 MB per Python environment -> {'met' if avg <= 15 else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=10)
    parser.add_argument("--subprocess", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.subprocess))
