"""A small real-process fake of the agent (the proto side only), for gateway tests that
must not depend on the runtime: reads KLAMBDA_ENV_*, dials the gateway, runs the Python
handler in-process, one invocation at a time. Run as ``python fake_agent.py``."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import sys
import time
import traceback

import grpc
from klambda_proto import environment_pb2 as pb
from klambda_proto import environment_pb2_grpc as pb_grpc
from klambda_runtime.spec import EnvironmentSpec


class Context:
    def __init__(self, inv: pb.Invocation, spec: EnvironmentSpec) -> None:
        self.aws_request_id = inv.request_id
        self.invoked_function_arn = inv.invoked_function_arn
        self.function_name = spec.function_name
        self.function_version = spec.version
        self.client_context = json.loads(inv.client_context) if inv.client_context else None


async def main() -> None:
    spec = EnvironmentSpec.from_env(os.environ)
    sys.path.insert(0, spec.code_dir)
    os.environ.update(spec.environment)
    queue: asyncio.Queue[pb.AgentMessage | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: queue.put_nowait(
        pb.AgentMessage(draining=pb.Draining())))

    async def outgoing():  # type: ignore[no-untyped-def]
        while (m := await queue.get()) is not None:
            yield m

    queue.put_nowait(pb.AgentMessage(register=pb.Register(
        namespace=spec.namespace, function_name=spec.function_name, version=spec.version,
        environment_id=spec.environment_id, memory_size_mb=spec.memory_size,
        runtime=spec.runtime, initialization_type=spec.initialization_type)))
    t0 = time.monotonic()
    module_name, func_name = spec.handler.rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), func_name)
    init_ms = (time.monotonic() - t0) * 1000 + 0.01
    provisioned = spec.initialization_type == "provisioned-concurrency"
    queue.put_nowait(pb.AgentMessage(ready=pb.Ready(init_duration_ms=init_ms)))
    first = not provisioned
    async with grpc.aio.insecure_channel(spec.gateway) as channel:
        stream = pb_grpc.EnvironmentGatewayStub(channel).Connect(outgoing())
        async for msg in stream:
            kind = msg.WhichOneof("kind")
            if kind == "shutdown":
                queue.put_nowait(None)
                break
            if kind != "invocation":
                continue
            inv = msg.invocation
            start = time.monotonic()
            error = ""
            try:
                out = handler(json.loads(inv.payload or b"{}"), Context(inv, spec))
                payload = json.dumps(out).encode()
            except Exception as exc:  # noqa: BLE001
                error = "Unhandled"
                payload = json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__,
                                      "requestId": inv.request_id,
                                      "stackTrace": traceback.format_tb(exc.__traceback__)}
                                     ).encode()
            duration = (time.monotonic() - start) * 1000
            report = f"REPORT RequestId: {inv.request_id}\tDuration: {duration:.2f} ms"
            if first:
                report += f"\tInit Duration: {init_ms:.2f} ms"
            tail = (f"START RequestId: {inv.request_id} Version: {spec.version}\n"
                    f"END RequestId: {inv.request_id}\n{report}\n").encode()
            queue.put_nowait(pb.AgentMessage(result=pb.Result(
                request_id=inv.request_id, payload=payload, function_error=error,
                duration_ms=duration, init_duration_ms=init_ms if first else 0.0,
                log_tail=tail)))
            first = False


if __name__ == "__main__":
    asyncio.run(main())
