"""The EnvironmentGateway gRPC service: one bidirectional stream per environment.

A reader task turns AgentMessages into Dispatcher calls and writes what the Dispatcher
decided for the environment inline (no queue hop: this halves the stream's latency);
the RPC ends when the transport is closed (by the Dispatcher or the reader).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from klambda_runtime import grpc_env

grpc_env.tune()  # must precede the first `import grpc` (gRPC core reads it once)

import grpc
from klambda_proto import environment_pb2 as pb
from klambda_proto import environment_pb2_grpc as pb_grpc

from klambda_gateway.dispatch import Dispatcher
from klambda_gateway.env_session import EnvironmentSession

log = logging.getLogger(__name__)


class GrpcTransport:
    """Writes to one stream, one writer at a time; ``close`` ends the RPC."""

    kind = "grpc"
    writes_wait = True

    def __init__(self, context: Any) -> None:
        self._context = context
        self._lock = asyncio.Lock()
        self.closed = asyncio.Event()

    async def write(self, message: pb.GatewayMessage) -> None:
        if self.closed.is_set():
            return
        async with self._lock:
            await self._context.write(message)

    def write_nowait(self, message: pb.GatewayMessage) -> None:
        raise NotImplementedError("gRPC writes wait; use Dispatcher.flush")

    def close(self) -> None:
        self.closed.set()


class EnvironmentGatewayService(pb_grpc.EnvironmentGatewayServicer):
    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    async def Connect(
        self, request_iterator: AsyncIterator[pb.AgentMessage], context: Any
    ) -> None:
        transport = GrpcTransport(context)
        dispatcher = self._dispatcher
        session = EnvironmentSession(dispatcher, transport)

        async def read() -> None:
            # Messages are handled (and the answers written) inline: no queue hop.
            try:
                async for msg in request_iterator:
                    if not session.on_message(msg):
                        break
                    if session.env is not None:
                        await dispatcher.flush(session.env)
            except (grpc.aio.AioRpcError, asyncio.CancelledError):
                pass
            except Exception:  # a bug here must not leave the stream half-open
                log.exception("reading an environment stream failed")
            finally:
                transport.close()

        reader = asyncio.create_task(read())
        try:
            await transport.closed.wait()
        finally:
            reader.cancel()
            session.ended()


async def start_grpc_server(dispatcher: Dispatcher, *, host: str, port: int) -> tuple[Any, int]:
    """Start the gRPC server; returns it and the bound port."""
    server = grpc.aio.server(options=[
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ])
    pb_grpc.add_EnvironmentGatewayServicer_to_server(  # type: ignore[no-untyped-call]
        EnvironmentGatewayService(dispatcher), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, bound
