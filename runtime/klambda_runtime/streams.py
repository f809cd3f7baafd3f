"""The agent's two ways to hold its stream to the gateway: gRPC and the lane.

Both carry ``AgentMessage`` up and ``GatewayMessage`` down (environment.proto) and offer
the same small interface to the agent: ``write``, ``read`` (``None`` at the end of the
stream), ``done_writing``, ``close``. gRPC is the contract every gateway serves; the lane
(klambda_proto.lane) is the same conversation without HTTP/2, which klambda's gateway
offers too, at a fraction of grpc.aio's CPU per message. ``open_stream`` dials the lane
when the spec names one and falls back to gRPC when it cannot be reached.

gRPC failures surface as ``grpc.aio.AioRpcError`` (the agent tells refusals from breaks
by status code); a broken lane raises ``ConnectionError``.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import Callable
from typing import Any, Protocol, cast

from klambda_proto import environment_pb2 as pb
from klambda_proto.lane import (
    PREFACE,
    FrameReader,
    LaneProtocolError,
    PreallocatedReads,
    frame,
)

from klambda_runtime.spec import EnvironmentSpec

LANE_CONNECT_TIMEOUT_S = 2.0

GRPC_OPTIONS = [
    ("grpc.keepalive_time_ms", 300_000),
    ("grpc.enable_retries", 0),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
]


Handler = Callable[[pb.GatewayMessage], None]


class Stream(Protocol):
    kind: str

    async def write(self, message: pb.AgentMessage) -> None: ...

    async def read(self) -> pb.GatewayMessage | None: ...

    async def listen(self, handler: Handler) -> None:
        """Hand every further message to ``handler`` until the stream ends (returns) or
        breaks (raises)."""

    async def done_writing(self) -> None: ...

    async def close(self) -> None: ...


class GrpcStream:
    kind = "grpc"

    def __init__(self, address: str) -> None:
        import grpc
        from klambda_proto import environment_pb2_grpc as pb_grpc

        self._eof = grpc.aio.EOF
        self._channel = grpc.aio.insecure_channel(address, options=GRPC_OPTIONS)
        self._call = pb_grpc.EnvironmentGatewayStub(self._channel).Connect()  # type: ignore[no-untyped-call]

    async def write(self, message: pb.AgentMessage) -> None:
        await self._call.write(message)

    async def read(self) -> pb.GatewayMessage | None:
        message = await self._call.read()
        return None if message is self._eof else message

    async def listen(self, handler: Handler) -> None:
        while (message := await self.read()) is not None:
            handler(message)

    async def done_writing(self) -> None:
        await self._call.done_writing()

    async def close(self) -> None:
        await self._channel.close(grace=None)


class _LaneProtocol(PreallocatedReads):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self._reader = FrameReader()
        self.inbox: collections.deque[pb.GatewayMessage] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.ended = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.handler: Handler | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop: not a subclass
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            for raw in self._reader.feed(data):
                message = pb.GatewayMessage.FromString(raw)
                if self.handler is not None:
                    self.handler(message)  # the agent's warm path: no task hop
                else:
                    self.inbox.append(message)
        except (LaneProtocolError, ValueError) as exc:  # protobuf's DecodeError too
            self.error = exc
            assert self.transport is not None
            self.transport.close()
        self._wake()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        if exc is not None and self.error is None:
            self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class LaneStream:
    kind = "lane"

    def __init__(self, protocol: _LaneProtocol) -> None:
        self._p = protocol
        assert protocol.transport is not None
        self._t = protocol.transport

    @classmethod
    async def open(cls, address: str) -> LaneStream:
        loop = asyncio.get_running_loop()
        if address.startswith("unix:"):
            path = address[len("unix:"):]
            if path.startswith("@"):  # Linux abstract socket
                path = "\0" + path[1:]
            transport, protocol = await loop.create_unix_connection(
                lambda: _LaneProtocol(loop), path)
        else:
            host, _, port = address.rpartition(":")
            transport, protocol = await loop.create_connection(
                lambda: _LaneProtocol(loop), host.strip("[]"), int(port))
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.write(PREFACE)
        return cls(protocol)

    async def write(self, message: pb.AgentMessage) -> None:
        self.write_nowait(message)

    def write_nowait(self, message: pb.AgentMessage) -> None:
        if self._t.is_closing():
            raise ConnectionError("the lane to the gateway is closed")
        self._t.write(frame(message.SerializeToString()))

    async def listen(self, handler: Handler) -> None:
        p = self._p
        while p.inbox:
            handler(p.inbox.popleft())
        p.handler = handler
        try:
            while not p.ended and p.error is None:
                p.waiter = asyncio.get_running_loop().create_future()
                await p.waiter
        finally:
            p.handler = None
        if p.error is not None:
            raise ConnectionError(f"the lane to the gateway broke: {p.error!r}")

    async def read(self) -> pb.GatewayMessage | None:
        p = self._p
        while not p.inbox:
            if p.error is not None:
                raise ConnectionError(f"the lane to the gateway broke: {p.error!r}")
            if p.ended:
                return None
            p.waiter = asyncio.get_running_loop().create_future()
            await p.waiter
        return p.inbox.popleft()

    async def done_writing(self) -> None:
        if not self._t.is_closing() and self._t.can_write_eof():
            self._t.write_eof()

    async def close(self) -> None:
        self._t.close()


async def open_stream(spec: EnvironmentSpec) -> Any:
    """The lane when the spec names one and it answers, gRPC otherwise."""
    if spec.lane:
        try:
            # bounded: a network that drops packets to the lane port must not hold the
            # agent for the kernel's connect timeout before it tries gRPC
            return await asyncio.wait_for(LaneStream.open(spec.lane), LANE_CONNECT_TIMEOUT_S)
        except (OSError, ValueError, TimeoutError):
            pass  # no lane here: the gRPC endpoint is the contract
    return GrpcStream(spec.gateway)
