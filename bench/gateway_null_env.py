"""The gateway alone: the same warm round trip and throughput as gateway_roundtrip.py, but
every environment is a *null agent* (a tiny process speaking the proto that answers each
Invocation at once, no runtime behind it). Separates the gateway's own cost (HTTP +
resolve + admission + dispatch + one hop on the lane) from the environment's.

    .venv/bin/python bench/gateway_null_env.py [--requests 2000] [--concurrency 8]
    (internally re-runs itself with ``--serve PORT`` as the platform process)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from gateway_common import Server, free_port, pct, start_hello, summary
from gateway_roundtrip import latency, throughput

NULL_AGENT = r"""
import asyncio, os
from klambda_proto import environment_pb2 as pb
from klambda_runtime.spec import EnvironmentSpec
from klambda_runtime.streams import open_stream
async def main():
    spec = EnvironmentSpec.from_env(os.environ)
    stream = await open_stream(spec)  # the lane when the gateway offers one, else gRPC
    await stream.write(pb.AgentMessage(register=pb.Register(
        namespace=spec.namespace, function_name=spec.function_name, version=spec.version,
        environment_id=spec.environment_id, initialization_type=spec.initialization_type)))
    await stream.read()
    await stream.write(pb.AgentMessage(ready=pb.Ready(init_duration_ms=0.1)))
    while True:
        msg = await stream.read()
        if msg is None or msg.WhichOneof("kind") == "shutdown":
            return
        inv = msg.invocation
        await stream.write(pb.AgentMessage(result=pb.Result(
            request_id=inv.request_id, payload=b'{"ok": true}', duration_ms=0.01)))
asyncio.run(main())
"""


class NullProcess:
    def __init__(self, proc: asyncio.subprocess.Process, environment_id: str) -> None:
        self._proc, self.pid, self.environment_id = proc, proc.pid, environment_id

    def terminate(self) -> None:
        if self._proc.returncode is None:
            self._proc.terminate()

    def kill(self) -> None:
        if self._proc.returncode is None:
            self._proc.kill()

    async def wait(self) -> int:
        return await self._proc.wait()


class NullLauncher:
    async def start(self, spec: Any) -> NullProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", NULL_AGENT, env={**os.environ, **spec.to_env()})
        return NullProcess(proc, spec.environment_id)

    async def close(self) -> None:
        return None


async def serve(port: int) -> None:
    import yaml
    from klambda_gateway.local_registry import LocalRegistry
    from klambda_gateway.platform import Platform
    from klambda_gateway.settings import GatewaySettings
    from klambda_model import load_documents

    state = Path(tempfile.mkdtemp(prefix="klambda-null-"))
    registry = LocalRegistry(state / "registry")
    registry.apply(load_documents(yaml.safe_dump({
        "apiVersion": "klambda.io/v1alpha1", "kind": "Function",
        "metadata": {"name": "noop", "namespace": "default"},
        "spec": {"runtime": "python3.12", "handler": "app.handler",
                 "code": {"inline": {"app.py": "def handler(e, c):\n    return 1\n"}}}})))
    platform = Platform(GatewaySettings(port=port, state_dir=str(state / "state")),
                        registry=registry, launcher=NullLauncher())
    await platform.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await platform.stop()
    registry.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    hello = start_hello()
    try:
        base_lat = asyncio.run(latency(hello.url, args.requests))
        base_tp = asyncio.run(throughput(hello.url, args.concurrency, args.seconds))
    finally:
        hello.stop()
    port = free_port()
    gw = Server([sys.executable, __file__, "--serve", str(port)], f"http://127.0.0.1:{port}",
                f"http://127.0.0.1:{port}/healthz")
    try:
        gw_lat = asyncio.run(latency(gw.url, args.requests))
        gw_tp = asyncio.run(throughput(gw.url, args.concurrency, args.seconds))
    finally:
        gw.stop()
    print("gateway with null environments (no runtime): the gateway's own cost")
    print(f"  aiohttp hello : {summary(base_lat)}")
    print(f"  gateway       : {summary(gw_lat)}")
    print(f"  p50 ratio = {pct(gw_lat, 0.5) / pct(base_lat, 0.5):.2f}x (goal <= 2x)")
    print(f"  throughput: hello {base_tp:.0f} req/s, gateway {gw_tp:.0f} req/s "
          f"= {gw_tp / base_tp:.2f}x (goal >= 0.5x)")


if __name__ == "__main__":
    main()
