"""The lane server: environments' streams as framed protobuf over plain TCP.

Same conversation as the gRPC service (klambda_proto.lane explains why both exist);
messages are handled in ``data_received`` itself and the answers written at once, so a
Result and the next Invocation for the environment cost one wake-up and one write.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from typing import Any, cast

from klambda_proto import environment_pb2 as pb
from klambda_proto.lane import FrameReader, LaneProtocolError, PreallocatedReads, frame

from klambda_gateway.dispatch import Dispatcher
from klambda_gateway.env_session import EnvironmentSession

log = logging.getLogger(__name__)


class LaneTransport:
    """The Dispatcher's handle on one lane connection."""

    kind = "lane"
    writes_wait = False

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    async def write(self, message: pb.GatewayMessage) -> None:
        self.write_nowait(message)

    def write_nowait(self, message: pb.GatewayMessage) -> None:
        if not self._transport.is_closing():
            self._transport.write(frame(message.SerializeToString()))

    def close(self) -> None:
        self._transport.close()


class LaneConnection(PreallocatedReads):
    def __init__(self, dispatcher: Dispatcher) -> None:
        super().__init__()
        self._dispatcher = dispatcher
        self._reader = FrameReader(preface=True)
        self._session: EnvironmentSession | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop: not a subclass
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._session = EnvironmentSession(self._dispatcher, LaneTransport(transport))

    def data_received(self, data: bytes) -> None:
        session, transport = self._session, self._transport
        assert session is not None and transport is not None
        try:
            for raw in self._reader.feed(data):
                if not session.on_message(pb.AgentMessage.FromString(raw)):
                    transport.close()
                    return
                if session.env is not None:
                    self._dispatcher.flush_now(session.env)
        except LaneProtocolError as exc:
            log.warning("closing a lane connection: %s", exc)
            transport.close()
        except Exception:  # a bug here must not leave the stream half-open
            log.exception("handling an environment's lane message failed")
            transport.close()

    def eof_received(self) -> bool:
        return False  # close our side too: the agent hung up

    def connection_lost(self, exc: Exception | None) -> None:
        if self._session is not None:
            self._session.ended()
            self._session = None


async def start_lane_server(dispatcher: Dispatcher, *, host: str, port: int
                            ) -> tuple[asyncio.Server, str]:
    """Listen for lane connections; returns the server and its address for agents.

    ``host`` "unix" listens on an abstract Unix socket (Linux; half the kernel cost of
    loopback TCP per message, for environments on this machine): the address is then
    ``unix:@<name>``, otherwise ``host:port``.
    """
    loop = asyncio.get_running_loop()
    if host == "unix":
        name = f"klambda-lane-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        server: Any = await loop.create_unix_server(lambda: LaneConnection(dispatcher),
                                                    "\0" + name)
        return server, "unix:@" + name
    server = await loop.create_server(lambda: LaneConnection(dispatcher), host, port)
    bound = server.sockets[0].getsockname()[1]
    return server, f"{host}:{bound}"
