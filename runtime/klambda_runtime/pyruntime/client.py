"""A minimal, blocking HTTP/1.1 client for the Lambda Runtime API (stdlib sockets only).

One keep-alive connection to ``127.0.0.1:<port>``; ``/next`` is a long poll without a
timeout, as every Lambda runtime client does.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

API_PREFIX = "/2018-06-01"


class RuntimeApiUnavailable(Exception):
    """The agent closed the Runtime API: the environment is going away."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class RuntimeClient:
    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self._addr = (host or "127.0.0.1", int(port))
        self._sock: socket.socket | None = None
        self._buf = b""
        # A /next already sent behind the last response/error post (HTTP/1.1 pipelining):
        # the agent reads both in one go and the runtime waits once, not twice.
        self._next_sent = False
        self._next_request = self._encode("GET", "/runtime/invocation/next")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._next_sent = False

    def _connect(self) -> socket.socket:
        if self._sock is None:
            try:
                sock = socket.create_connection(self._addr)
            except OSError as exc:
                raise RuntimeApiUnavailable(str(exc)) from exc
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self._buf = b""
        return self._sock

    def _encode(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> bytes:
        head = [f"{method} {API_PREFIX}{path} HTTP/1.1", f"Host: {self._addr[0]}"]
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}")
        if method != "GET" or body:
            head.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + body

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        then_next: bool = False,
    ) -> Response:
        """One request/response; with ``then_next`` a ``GET /next`` is sent right behind it
        (pipelined) and :meth:`next_invocation` only waits for its answer."""
        data = self._encode(method, path, body, headers)
        if self._next_sent:  # never reorder behind an unanswered /next
            raise RuntimeApiUnavailable(f"{method} {path}: a /next is still outstanding")
        for attempt in (1, 2):
            sock = self._connect()
            try:
                sock.sendall(data + self._next_request if then_next else data)
                self._next_sent = then_next
                return self._read_response(sock)
            except (ConnectionError, RuntimeApiUnavailable):
                self.close()
                if attempt == 2:
                    raise RuntimeApiUnavailable(f"{method} {path}: connection closed") from None
        raise RuntimeApiUnavailable(f"{method} {path}: connection closed")

    def _recv(self, sock: socket.socket) -> None:
        # 64 KiB: below glibc's mmap threshold, so a read costs no mmap/munmap pair
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeApiUnavailable("connection closed by the agent")
        self._buf += chunk

    def _read_response(self, sock: socket.socket) -> Response:
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            self._recv(sock)
        head = self._buf[:end].decode("utf-8", "replace")
        self._buf = self._buf[end + 4 :]
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self._buf) < length:
            self._recv(sock)
        body, self._buf = self._buf[:length], self._buf[length:]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, body)

    # The four calls a runtime makes.
    def next_invocation(self) -> Response:
        if self._next_sent and self._sock is not None:
            self._next_sent = False
            try:
                return self._read_response(self._sock)
            except (ConnectionError, RuntimeApiUnavailable):
                self.close()  # ask again on a new connection (as request() would)
        self._next_sent = False
        return self.request("GET", "/runtime/invocation/next")

    def post_response(self, request_id: str, body: bytes, content_type: str) -> Response:
        return self.request(
            "POST",
            f"/runtime/invocation/{request_id}/response",
            body,
            {"Content-Type": content_type},
            then_next=True,
        )

    def post_error(self, request_id: str, body: bytes, error_type: str) -> Response:
        return self.request(
            "POST",
            f"/runtime/invocation/{request_id}/error",
            body,
            {"Content-Type": "application/json", "Lambda-Runtime-Function-Error-Type": error_type},
            then_next=True,
        )

    def post_init_error(self, body: bytes, error_type: str) -> Response:
        return self.request(
            "POST",
            "/runtime/init/error",
            body,
            {"Content-Type": "application/json", "Lambda-Runtime-Function-Error-Type": error_type},
        )
