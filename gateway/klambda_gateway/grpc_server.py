"""The EnvironmentGateway gRPC service: one bidirectional stream per environment.

A reader task turns AgentMessages into Dispatcher calls; this coroutine writes the
environment's outbox (Registered, Invocation, Shutdown) and closes the stream on ``None``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from klambda_proto import environment_pb2 as pb
from klambda_proto import environment_pb2_grpc as pb_grpc

from klambda_gateway.dispatch import Dispatcher, Environment

log = logging.getLogger(__name__)


class EnvironmentGatewayService(pb_grpc.EnvironmentGatewayServicer):  # type: ignore[misc]
    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    async def Connect(
        self, request_iterator: AsyncIterator[pb.AgentMessage], context: Any
    ) -> None:
        outbox: asyncio.Queue[pb.GatewayMessage | None] = asyncio.Queue()
        env: Environment | None = None
        dispatcher = self._dispatcher

        async def read() -> None:
            nonlocal env
            try:
                async for msg in request_iterator:
                    kind = msg.WhichOneof("kind")
                    if kind == "register":
                        env = dispatcher.connected(msg.register, outbox)
                        if env is None:
                            log.warning("unknown environment %s of %s/%s:%s registered; "
                                        "closing", msg.register.environment_id,
                                        msg.register.namespace, msg.register.function_name,
                                        msg.register.version)
                            break
                        outbox.put_nowait(pb.GatewayMessage(
                            registered=pb.Registered(environment_id=env.environment_id)))
                    elif env is None:
                        log.warning("agent sent %s before Register; closing", kind)
                        break
                    elif kind == "result":
                        dispatcher.result(env, msg.result)
                    elif kind == "ready":
                        dispatcher.ready(env, msg.ready)
                    elif kind == "draining":
                        dispatcher.draining(env)
            except (grpc.aio.AioRpcError, asyncio.CancelledError):
                pass
            except Exception:  # a bug here must not leave the stream half-open
                log.exception("reading an environment stream failed")
            finally:
                outbox.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (out := await outbox.get()) is not None:
                await context.write(out)
        except Exception as exc:  # noqa: BLE001 - stream broken underneath us
            log.debug("environment stream write failed: %s", exc)
        finally:
            reader.cancel()
            if env is not None:
                dispatcher.disconnected(env)


async def start_grpc_server(dispatcher: Dispatcher, *, host: str, port: int) -> tuple[Any, int]:
    """Start the gRPC server; returns it and the bound port."""
    server = grpc.aio.server(options=[
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ])
    pb_grpc.add_EnvironmentGatewayServicer_to_server(EnvironmentGatewayService(dispatcher), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, bound
