"""The lane: the ``EnvironmentGateway.Connect`` stream's messages over a plain TCP socket.

gRPC is the agent's contract with any gateway (environment.proto). klambda's own gateway
also serves the same conversation, message for message, on a second port without HTTP/2:
after a fixed preface, each direction is a sequence of gRPC Length-Prefixed-Messages
(1 byte "compressed" = 0, 4 bytes big-endian length, the serialised ``AgentMessage`` /
``GatewayMessage``). Nothing else differs: the same Register -> Registered -> Ready ->
Invocation -> Result state machine, the same ending by closing. It exists because
grpc.aio costs ~130 µs of CPU per message and side, most of a warm invocation's budget
(bench/perf.md); an asyncio protocol over the same frames costs a few µs.

Pure framing only; the ends live in ``klambda_gateway.lane_server`` and
``klambda_runtime.lane_client``.
"""

from __future__ import annotations

import asyncio
import struct

PREFACE = b"KLAMBDA-LANE/1\r\n"  # sent first by the agent; anything else is hung up on
MAX_MESSAGE = 16 * 1024 * 1024 + 64 * 1024  # like the gRPC channel's 16 MiB limit
_HEADER = struct.Struct(">BI")
HEADER_SIZE = _HEADER.size


class LaneProtocolError(Exception):
    """The peer does not speak the lane (wrong preface, compressed or oversized frame)."""


def frame(message: bytes) -> bytes:
    """One Length-Prefixed-Message."""
    return _HEADER.pack(0, len(message)) + message


class FrameReader:
    """Incremental decoder: ``feed`` bytes, get the complete messages (bytes) back."""

    def __init__(self, *, preface: bool = False) -> None:
        self._buf = bytearray()
        self._want_preface = preface

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        if not buf and not self._want_preface and len(data) >= HEADER_SIZE:
            # the common case: exactly one whole frame in one read, nothing buffered
            compressed, length = _HEADER.unpack_from(data)
            if not compressed and len(data) == HEADER_SIZE + length <= MAX_MESSAGE:
                return [data[HEADER_SIZE:]]
        buf += data
        if self._want_preface:
            if len(buf) < len(PREFACE):
                if not PREFACE.startswith(bytes(buf)):
                    raise LaneProtocolError("not a klambda lane client (bad preface)")
                return []
            if buf[: len(PREFACE)] != PREFACE:
                raise LaneProtocolError("not a klambda lane client (bad preface)")
            del buf[: len(PREFACE)]
            self._want_preface = False
        out: list[bytes] = []
        pos = 0
        end = len(buf)
        while end - pos >= HEADER_SIZE:
            compressed, length = _HEADER.unpack_from(buf, pos)
            if compressed:
                raise LaneProtocolError("compressed lane frames are not supported")
            if length > MAX_MESSAGE:
                raise LaneProtocolError(f"lane frame of {length} bytes is over the limit")
            if end - pos - HEADER_SIZE < length:
                break
            start = pos + HEADER_SIZE
            out.append(bytes(buf[start : start + length]))
            pos = start + length
        if pos:
            del buf[:pos]
        return out


READ_SIZE = 64 * 1024


class PreallocatedReads(asyncio.BufferedProtocol):
    """An asyncio protocol reading into one preallocated buffer (``recv_into``) and
    handing ``data_received`` the bytes: plain protocols get a fresh 256 KiB ``bytes``
    per read, a measurable share of a warm invocation on the lane's two ends."""

    def __init__(self) -> None:
        self._view = memoryview(bytearray(READ_SIZE))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._view[:nbytes]))

    def data_received(self, data: bytes) -> None:
        raise NotImplementedError
