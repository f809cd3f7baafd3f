"""The Lambda Runtime API 2018-06-01, served by the agent on 127.0.0.1 to the runtime.

A deliberately small asyncio HTTP/1.1 server (``asyncio.Protocol``, keep-alive, no
framework): it sits on the warm path of every invocation, where aiohttp's request
machinery costs more than the whole hop. It implements exactly the four endpoints a
runtime uses, with the status codes and error bodies of lambda-wire.md §3:

* ``GET /runtime/invocation/next`` — long poll; answered with the event and every
  ``Lambda-Runtime-*`` header (``Content-Type: application/json`` always: awslambdaric
  segfaults without it);
* ``POST /runtime/invocation/{id}/response`` — 202; 413 above 6,291,556 bytes; 400 for an
  id never issued; 403 for an id already answered;
* ``POST /runtime/invocation/{id}/error`` — 202 (type from the header, else the body);
* ``POST /runtime/init/error`` — 202 before the first ``/next``, 403 after.

State belongs to one runtime *generation* (``reset`` starts a new one after a restart).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections import OrderedDict
from typing import Protocol, cast

from klambda_runtime.errors import MAX_RESPONSE_BYTES
from klambda_runtime.runtime_api_wire import (
    ACCEPTED,
    ALREADY_ANSWERED,
    BAD_METHOD,
    BAD_REQUEST,
    CONTINUE,
    INIT_ERROR_LATE,
    INVALID_ID,
    MAX_HEAD,
    NEXT_WHILE_BUSY,
    NOT_FOUND,
    PREFIX,
    TOO_LARGE,
    event_head,
)

__all__ = ["RuntimeApi", "RuntimeApiEvents", "event_head"]

_ANSWERED_MEMORY = 256


class RuntimeApiEvents(Protocol):
    """What the Runtime API tells the supervisor (all called on the event loop)."""

    def runtime_ready(self) -> None: ...
    def event_delivered(self, request_id: str) -> None: ...
    def init_error(self, error_type: str, body: bytes) -> None: ...
    def invocation_response(self, request_id: str, body: bytes) -> None: ...
    def invocation_error(self, request_id: str, error_type: str, body: bytes) -> None: ...
    def response_too_large(self, request_id: str) -> None: ...


class RuntimeApi:
    """The Runtime API's state for the current runtime generation, plus its listener."""

    def __init__(self, events: RuntimeApiEvents) -> None:
        self.events = events
        self.address = ""
        self._server: asyncio.base_events.Server | None = None
        self._sock: socket.socket | None = None
        self._unix_sock: socket.socket | None = None
        self._unix_server: asyncio.base_events.Server | None = None
        self.unix_address = ""
        self._answered: OrderedDict[str, None] = OrderedDict()
        self.reset()

    def bind(self, host: str = "127.0.0.1") -> str:
        """Reserve the listening sockets (synchronously: the runtime may be started at once
        and its first connection waits in the backlog until :meth:`start`): TCP (what
        ``AWS_LAMBDA_RUNTIME_API`` names, for every runtime) and an abstract Unix socket
        (``unix_address``, ``@name``: the built-in runtimes the agent forks use it)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((host, 0))
        sock.listen(16)
        sock.setblocking(False)
        self._sock = sock
        self.address = f"{host}:{sock.getsockname()[1]}"
        try:
            unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            name = f"klambda-rtapi-{os.getpid()}-{sock.getsockname()[1]}"
            unix.bind("\0" + name)
            unix.listen(16)
            unix.setblocking(False)
            self._unix_sock = unix
            self.unix_address = "@" + name
        except OSError:  # no abstract sockets here: TCP only
            self.unix_address = ""
        return self.address

    async def start(self) -> str:
        if self._sock is None:
            self.bind()
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), sock=self._sock)
        if self._unix_sock is not None:
            self._unix_server = await loop.create_unix_server(
                lambda: _Connection(self), sock=self._unix_sock
            )
        return self.address

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._unix_server is not None:
            self._unix_server.close()
            self._unix_server = None

    def reset(self) -> None:
        """A new runtime process: nothing delivered, init not finished."""
        self.initialized = False
        self.init_failed = False
        self.current: str | None = None
        self.delivered: str | None = None  # the last event the runtime has received
        self._pending: _Connection | None = None
        self._queued: bytes | None = None

    def dispatch(self, request_id: str, message: bytes) -> None:
        """Deliver an event (``event_head(...) + payload``) to the runtime's ``/next``."""
        self.current = request_id
        pending, self._pending = self._pending, None
        if pending is not None and pending.deliver(message):
            self._delivered(request_id)
            return
        self._queued = message

    def _delivered(self, request_id: str) -> None:
        self.delivered = request_id
        self.events.event_delivered(request_id)

    def abandon(self, request_id: str) -> None:
        """The agent gave up on ``request_id`` (timeout, crash): later posts get 403."""
        if self.current == request_id:
            self.current = None
            self._queued = None
        self._remember(request_id)

    def _remember(self, request_id: str) -> None:
        self._answered[request_id] = None
        if len(self._answered) > _ANSWERED_MEMORY:
            self._answered.popitem(last=False)

    # Called by connections.
    def on_next(self, conn: _Connection) -> bytes | None:
        if self.current is not None and self._queued is None:
            return NEXT_WHILE_BUSY
        if not self.initialized:
            self.initialized = True
            self.events.runtime_ready()
        if self._queued is not None:
            message, self._queued = self._queued, None
            if self.current is not None:
                self._delivered(self.current)
            return message
        self._pending = conn
        return None

    def on_gone(self, conn: _Connection) -> None:
        if self._pending is conn:
            self._pending = None

    def _check_id(self, request_id: str) -> bytes | None:
        if request_id == self.current and self._queued is None:
            return None
        if request_id in self._answered:
            return ALREADY_ANSWERED
        return INVALID_ID

    def on_response(self, request_id: str, body: bytes) -> bytes:
        problem = self._check_id(request_id)
        if problem is not None:
            return problem
        self.current = None
        self._remember(request_id)
        self.events.invocation_response(request_id, body)
        return ACCEPTED

    def on_too_large(self, request_id: str) -> bytes:
        problem = self._check_id(request_id)
        if problem is not None:
            return problem
        self.current = None
        self._remember(request_id)
        self.events.response_too_large(request_id)
        return TOO_LARGE

    def on_error(self, request_id: str, error_type: str, body: bytes) -> bytes:
        problem = self._check_id(request_id)
        if problem is not None:
            return problem
        self.current = None
        self._remember(request_id)
        self.events.invocation_error(request_id, error_type, body)
        return ACCEPTED

    def on_init_error(self, error_type: str, body: bytes) -> bytes:
        if self.initialized or self.init_failed:
            return INIT_ERROR_LATE
        self.init_failed = True
        self.events.init_error(error_type, body)
        return ACCEPTED


_READ_SIZE = 64 * 1024


class _Connection(asyncio.BufferedProtocol):
    """One keep-alive HTTP/1.1 connection from the runtime.

    A buffered protocol: the transport reads into one preallocated buffer per connection
    (``recv_into``) instead of allocating a 256 KiB ``bytes`` per read, which glibc serves
    with mmap + mremap + munmap: three syscalls per read on the warm path.
    """

    def __init__(self, api: RuntimeApi) -> None:
        self.api = api
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self._read_buf = memoryview(bytearray(_READ_SIZE))
        self.waiting = False  # a /next is parked on this connection
        self.closed = False
        # Request being read: (method, path, headers) + body length / discard counter.
        self.head: tuple[bytes, bytes, dict[bytes, bytes]] | None = None
        self.body_length = 0
        self.discard = 0
        self.chunked = False
        self.expect_continue = False
        self.corked: list[bytes] | None = None  # answers held until the read is processed
        self.held = b""  # answers a parked /next's runtime will read with its next event

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop: not a subclass
        self.transport = transport
        # asyncio sets TCP_NODELAY only on sockets created with proto=IPPROTO_TCP, not on
        # ours: without it, an event written while our last answer (the 202 of a post the
        # runtime pipelined with its /next) is still unacknowledged waits for the
        # runtime's delayed ACK (40 ms).
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.api.on_gone(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_buf

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._read_buf[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        # Answers to the requests of this read go out in one write, after the supervisor
        # has reacted to them (e.g. sent the Result on): the 202 of a response post is not
        # what anyone waits for.
        self.corked = []
        try:
            self._received(data)
        finally:
            out, self.corked = self.corked, None
            if out and self.transport is not None and not self.closed:
                data = b"".join(out) if len(out) > 1 else out[0]
                if self.waiting:
                    # A pipelining runtime (post + /next in one read) reads these answers
                    # only after its next event anyway: they go out with that event, so
                    # the runtime wakes once per invocation instead of twice.
                    self.held = data
                else:
                    self.transport.write(data)

    def _received(self, data: bytes | memoryview) -> None:
        if self.discard:
            take = min(self.discard, len(data))
            self.discard -= take
            data = data[take:]
            if self.discard == 0:
                self._finish_discard()
        self.buf += data
        self._process()

    def deliver(self, message: bytes) -> bool:
        if self.closed or self.transport is None or self.transport.is_closing():
            return False
        self.waiting = False
        if self.held:
            message, self.held = self.held + message, b""
        if self.corked is not None:
            self.corked.append(message)
        else:
            self.transport.write(message)
        if self.buf:
            self._process()
        return True

    def _send(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            if self.corked is not None:
                self.corked.append(data)
            else:
                self.transport.write(data)

    def _fail(self, data: bytes) -> None:
        self._send(data)
        if self.transport is not None:
            if self.corked:
                self.transport.write(b"".join(self.corked))
            self.corked = None if self.corked is None else []
            self.transport.close()
        self.closed = True

    def _process(self) -> None:
        while not self.waiting and not self.closed and not self.discard:
            if self.head is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > MAX_HEAD:
                        self._fail(BAD_REQUEST)
                    return
                if not self._parse_head(bytes(self.buf[:end])):
                    return
                del self.buf[: end + 4]
                if self.expect_continue and (
                    self.chunked or self.discard or len(self.buf) < self.body_length
                ):
                    # libcurl-based clients wait (up to 1 s) for this before a large body.
                    self._send(CONTINUE)
                if self.discard:  # oversized body: skip it without buffering
                    take = min(self.discard, len(self.buf))
                    self.discard -= take
                    del self.buf[:take]
                    if self.discard == 0:
                        self._finish_discard()
                    continue
            if self.chunked:
                body = self._take_chunked()
                if body is None:
                    return
            else:
                if len(self.buf) < self.body_length:
                    return
                body = bytes(self.buf[: self.body_length])
                del self.buf[: self.body_length]
            head, self.head = self.head, None
            assert head is not None
            self._route(head, body)

    def _parse_head(self, raw: bytes) -> bool:
        lines = raw.split(b"\r\n")
        try:
            method, path, _version = lines[0].split(b" ", 2)
        except ValueError:
            self._fail(BAD_REQUEST)
            return False
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        self.head = (method, path, headers)
        self.chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        self.expect_continue = headers.get(b"expect", b"").lower() == b"100-continue"
        try:
            self.body_length = 0 if self.chunked else int(headers.get(b"content-length", b"0"))
        except ValueError:
            self._fail(BAD_REQUEST)
            return False
        if self.body_length > MAX_RESPONSE_BYTES:
            self.discard = self.body_length
            self.body_length = 0
        return True

    def _finish_discard(self) -> None:
        head, self.head = self.head, None
        if head is None:
            return
        request_id = _invocation_id(head[1])
        self._send(self.api.on_too_large(request_id) if request_id else TOO_LARGE)

    def _take_chunked(self) -> bytes | None:
        """Decode a complete chunked body from the buffer, or None if incomplete."""
        pos, out = 0, bytearray()
        while True:
            eol = self.buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            try:
                size = int(bytes(self.buf[pos:eol]).split(b";")[0], 16)
            except ValueError:
                self._fail(BAD_REQUEST)
                return None
            if size == 0:
                end = self.buf.find(b"\r\n\r\n", eol)
                if end < 0:
                    return None
                del self.buf[: end + 4]
                return bytes(out)
            if len(self.buf) < eol + 2 + size + 2:
                return None
            out += self.buf[eol + 2 : eol + 2 + size]
            pos = eol + 2 + size + 2

    def _route(self, head: tuple[bytes, bytes, dict[bytes, bytes]], body: bytes) -> None:
        method, path, headers = head
        if not path.startswith(PREFIX):
            self._send(NOT_FOUND)
            return
        rest = path[len(PREFIX) :]
        if rest == b"invocation/next":
            if method != b"GET":
                self._send(BAD_METHOD)
                return
            answer = self.api.on_next(self)
            if answer is None:
                self.waiting = True
            else:
                self._send(answer)
            return
        if method != b"POST":
            self._send(BAD_METHOD if rest.startswith((b"invocation/", b"init/")) else NOT_FOUND)
            return
        if rest == b"init/error":
            error_type = headers.get(b"lambda-runtime-function-error-type", b"").decode()
            self._send(self.api.on_init_error(error_type, body))
            return
        request_id = _invocation_id(path)
        if request_id and rest.endswith(b"/response"):
            if len(body) > MAX_RESPONSE_BYTES:
                self._send(self.api.on_too_large(request_id))
            else:
                self._send(self.api.on_response(request_id, body))
            return
        if request_id and rest.endswith(b"/error"):
            error_type = headers.get(b"lambda-runtime-function-error-type", b"").decode()
            self._send(self.api.on_error(request_id, error_type, body))
            return
        self._send(NOT_FOUND)


def _invocation_id(path: bytes) -> str:
    """``…/invocation/<id>/(response|error)`` → ``<id>`` (URL-decoded), else ``""``."""
    parts = path.split(b"?", 1)[0].split(b"/")
    # ['', '2018-06-01', 'runtime', 'invocation', id, kind]
    if len(parts) == 6 and parts[3] == b"invocation" and parts[5] in (b"response", b"error"):
        raw = parts[4].decode("utf-8", "replace")
        if "%" not in raw:
            return raw
        from urllib.parse import unquote

        return unquote(raw)
    return ""
