"""The gateway's HTTP/1.1 front: the Invoke API's hot path without aiohttp's machinery.

Every connection starts here. A request this module fully understands —
``POST /2015-03-31/functions/{name}/invocations`` over HTTP/1.1 with a Content-Length body
no larger than the smallest payload limit — is parsed, run (``invoke_api.run_invoke``, the
same code aiohttp's route runs) and answered directly. Anything else (other routes,
chunked bodies, ``Expect: 100-continue``, larger or malformed requests, HTTP/1.0) switches
the connection over to aiohttp's handler for the app, fed with every byte from that
request on: all other routes, and every answer aiohttp gives (413 after draining, 400 for
bad HTTP), stay exactly as they were. The switch happens only between requests.

Why: aiohttp's request/response objects cost about as much CPU as the rest of the
gateway's work on a warm invocation (bench/perf.md).
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import http
import logging
import socket
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qs, unquote

from klambda_proto.lane import PreallocatedReads

from klambda_gateway.arn import FunctionRef, parse_function_name
from klambda_gateway.async_worker import AsyncWorker
from klambda_gateway.datapath import DataPath
from klambda_gateway.datapath import request_id as new_request_id
from klambda_gateway.dispatch import SYNC
from klambda_gateway.invoke_api import (
    Reply,
    body_limit,
    failure_reply,
    request_kind,
    run_invoke,
    sync_reply,
    validate_and_resolve,
)
from klambda_gateway.routing import Resolution

log = logging.getLogger(__name__)

PREFIX = b"/2015-03-31/functions/"
SUFFIX = b"/invocations"
MAX_HEAD = 16 * 1024  # larger heads go to aiohttp, which answers them properly
_PHRASES = {s.value: s.phrase for s in http.HTTPStatus}
_REF_CACHE = 4096  # distinct (FunctionName, Qualifier) pairs remembered, then forgotten


def parse_head(raw: bytes) -> tuple[bytes, bytes, bytes, dict[str, str]] | None:
    """Pure: request line + headers (names lower-cased) of one head, None if malformed."""
    lines = raw.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            return None
        key = name.decode("latin-1").lower()
        if key in headers:  # repeated headers: leave the subtleties to aiohttp
            return None
        headers[key] = value.strip().decode("latin-1")
    return parts[0], parts[1], parts[2], headers


def invoke_target(target: bytes) -> tuple[str, str | None] | None:
    """Pure: (function name, Qualifier query value) of an Invoke URL, None if not one."""
    path, _, query = target.partition(b"?")
    if not path.startswith(PREFIX) or not path.endswith(SUFFIX):
        return None
    name = path[len(PREFIX) : -len(SUFFIX)]
    if not name or b"/" in name:
        return None
    qualifier = None
    if query:
        values = parse_qs(query.decode("latin-1"), keep_blank_values=True).get("Qualifier")
        if values:
            qualifier = values[0]
    return unquote(name.decode("latin-1")), qualifier


def render(reply: Reply, *, date: str, close: bool) -> bytes:
    """Pure: the HTTP/1.1 bytes of one reply."""
    status = reply.status
    lines = [f"HTTP/1.1 {status} {_PHRASES.get(status) or http.HTTPStatus(status).phrase}"]
    lines += [f"{name}: {value}" for name, value in reply.headers.items()]
    if status != 204:
        lines.append(f"Content-Length: {len(reply.body)}")
    lines.append(f"Date: {date}")
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + reply.body if status != 204 else head


class HttpFront:
    """Protocol factory of the gateway's listener (``loop.create_server(front, ...)``)."""

    def __init__(self, datapath: DataPath, worker: AsyncWorker,
                 fallback: Callable[[], asyncio.Protocol]) -> None:
        self.datapath = datapath
        self.worker = worker
        self.fallback = fallback  # aiohttp's web.Server: makes its RequestHandler
        self.connections: set[FrontConnection] = set()
        self.fast_limit = min(body_limit(datapath, "Event"), body_limit(datapath, "Sync"))
        self._date_second = -1
        self._date = ""
        self._refs: dict[tuple[str, str | None], FunctionRef] = {}

    def __call__(self) -> FrontConnection:
        return FrontConnection(self)

    def date(self) -> str:
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = email.utils.formatdate(now, usegmt=True)
        return self._date

    def start(self, name: str, qualifier: str | None, headers: dict[str, str],
              body: bytes, answer: Callable[[Reply], None]) -> asyncio.Future[Any] | None:
        """Serve one Invoke request; ``answer`` gets the reply (maybe at once). Returns what
        to cancel if the caller goes away.

        RequestResponse runs without a task: parse, admit and dispatch now, answer from
        the outcome's callback. Event and DryRun take ``run_invoke`` in a task."""
        request_id = new_request_id()
        dp = self.datapath
        try:
            kind, tail = request_kind(headers, legacy_async=False)
            ref = self._refs.get((name, qualifier))
            if ref is None:  # parsed once per distinct name (errors are never remembered)
                ref = parse_function_name(name, qualifier, account_id=dp.settings.account_id)
                if len(self._refs) >= _REF_CACHE:
                    self._refs.clear()
                self._refs[(name, qualifier)] = ref
            if kind != "RequestResponse":
                task = asyncio.get_running_loop().create_task(run_invoke(
                    dp, self.worker, ref, kind=kind, tail=tail, body=body, headers=headers,
                    request_id=request_id, legacy_async=False))
                task.add_done_callback(functools.partial(self._answer, None, False,
                                                         request_id, answer))
                return task
            target, client_context = validate_and_resolve(dp, ref, body=body,
                                                          headers=headers)
            return dp.begin(target, body or b"{}", request_id=request_id, kind=SYNC,
                            client_context=client_context,
                            then=functools.partial(self._answer, target, tail, request_id,
                                                   answer))
        except Exception as exc:  # noqa: BLE001 - every failure is an answer
            answer(failure_reply(exc, request_id))
            return None

    def _answer(self, target: Resolution | None, tail: bool, request_id: str,
                answer: Callable[[Reply], None], done: asyncio.Future[Any]) -> None:
        if done.cancelled():
            return  # the caller is gone
        exc = done.exception()
        if exc is not None:
            answer(failure_reply(exc, request_id))
        elif target is None:
            answer(done.result())  # run_invoke's Reply
        else:
            answer(sync_reply(target, done.result(), tail=tail, request_id=request_id))

    def close(self) -> None:
        for conn in list(self.connections):
            conn.abort()


class FrontConnection(PreallocatedReads):
    """After a hand-over aiohttp's handler (a plain protocol) owns the connection."""

    def __init__(self, front: HttpFront) -> None:
        super().__init__()
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False  # a request is being served; later ones wait in ``buf``
        self.pending: asyncio.Future[Any] | None = None  # the request being served
        self.in_next = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.front.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.connections.discard(self)
        self.transport = None
        if self.pending is not None:
            self.pending.cancel()  # the caller is gone (like aiohttp's handler cancellation)

    def buffer_updated(self, nbytes: int) -> None:  # appended as is: no bytes copy
        self.buf += self._view[:nbytes]
        if not self.busy:
            self._next()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _next(self) -> None:
        """Serve the buffered requests, one at a time (answers may come synchronously)."""
        if self.in_next:
            return
        self.in_next = True
        try:
            while not self.busy and self.transport is not None and self._take_one():
                pass
        finally:
            self.in_next = False

    def _take_one(self) -> bool:
        """Start the next complete request in ``buf``; False when there is none (yet)."""
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                self._hand_over()
            return False
        parsed = parse_head(bytes(buf[:end]))
        if parsed is None:
            self._hand_over()
            return False
        method, target, version, headers = parsed
        where = invoke_target(target) if method == b"POST" else None
        length = headers.get("content-length", "")
        if (
            where is None
            or version != b"HTTP/1.1"
            or "transfer-encoding" in headers
            or "expect" in headers
            or not length.isdigit()
            or int(length) > self.front.fast_limit
        ):
            self._hand_over()
            return False
        start = end + 4
        stop = start + int(length)
        if len(buf) < stop:
            return False  # the body is still arriving
        body = bytes(buf[start:stop])
        del buf[:stop]
        close = headers.get("connection", "").lower() == "close"
        self.busy = True
        pending = self.front.start(where[0], where[1], headers, body,
                                   functools.partial(self._reply, close))
        if self.busy:  # not answered synchronously
            self.pending = pending
        return True

    def _reply(self, close: bool, reply: Reply) -> None:
        self.pending = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(render(reply, date=self.front.date(), close=close))
        self.busy = False
        if close:
            transport.close()
        elif self.buf:
            # pipelined requests: after this one's bookkeeping (its concurrency lease is
            # released by a callback of the same outcome)
            asyncio.get_running_loop().call_soon(self._next)

    def _hand_over(self) -> None:
        """From this request on, aiohttp serves the connection."""
        transport = self.transport
        if transport is None:
            return
        self.front.connections.discard(self)
        handler: Any = self.front.fallback()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        data, self.buf = bytes(self.buf), bytearray()
        self.transport = None
        if data:
            handler.data_received(data)
