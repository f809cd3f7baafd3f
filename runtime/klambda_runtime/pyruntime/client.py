"""A minimal, blocking HTTP/1.1 client for the Lambda Runtime API (stdlib sockets only).

One keep-alive connection to ``127.0.0.1:<port>``; ``/next`` is a long poll without a
timeout, as every Lambda runtime client does.

The warm path is one ``sendall`` of ``POST .../response`` with ``GET /next`` pipelined
behind it, then two answers to read. It runs once per invocation in every runtime, so it
is written for few bytecodes and allocations: the request heads are preformatted bytes
templates (only the id, the length and the body are filled in), and an answer head seen
before (the post's ``202 Accepted``, a ``413``...) is parsed once and then looked up.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

API_PREFIX = "/2018-06-01"
_HEAD_END = b"\r\n\r\n"
# Answer heads worth remembering: those of posts (202, 4xx), a handful of distinct ones.
# /next heads are never remembered (each names its own request id).
_MEMO_LIMIT = 32


class RuntimeApiUnavailable(Exception):
    """The agent closed the Runtime API: the environment is going away."""


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; read-only (remembered heads share theirs)
    body: bytes


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status and headers (lower-case names, stripped values) of a response head (the bytes
    before the blank line)."""
    lines = iter(head.decode("utf-8", "replace").split("\r\n"))
    status = int(next(lines).split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def _post_template(*, host: str, path: str, headers: str, then: bytes) -> bytes:
    """A post's head and ``then`` (the pipelined ``GET /next``) around ``%s`` for the
    request id in ``path``, ``%s`` in ``headers``, ``%d`` for Content-Length and ``%s`` for
    the body: ``template % (request_id, value, len(body), body)`` is byte for byte what
    :meth:`RuntimeClient.request` sends for that post with ``then_next``."""
    head = (
        f"POST {API_PREFIX}{path} HTTP/1.1\r\nHost: {host.replace('%', '%%')}\r\n{headers}"
        "Content-Length: %d\r\n\r\n%s"
    )
    return head.encode("utf-8") + then.replace(b"%", b"%%")


class RuntimeClient:
    def __init__(self, address: str, *, unix: str = "") -> None:
        """``address``: AWS_LAMBDA_RUNTIME_API (host:port). ``unix``: the same API on a Unix
        socket (``@name`` = abstract), which the agent offers to the runtimes it forks:
        the same HTTP bytes, less kernel work per message than loopback TCP."""
        host, _, port = address.rpartition(":")
        self._addr = (host or "127.0.0.1", int(port))
        self._unix = "\0" + unix[1:] if unix.startswith("@") else unix
        self._sock: socket.socket | None = None
        self._buf = b""
        # A /next already sent behind the last response/error post (HTTP/1.1 pipelining):
        # the agent reads both in one go and the runtime waits once, not twice.
        self._next_sent = False
        self._next_request = self._encode("GET", "/runtime/invocation/next")
        self._memo: dict[bytes, tuple[int, dict[str, str]]] = {}
        host_name = self._addr[0]
        self._response_template = _post_template(
            host=host_name,
            path="/runtime/invocation/%s/response",
            headers="Content-Type: %s\r\n",
            then=self._next_request,
        )
        self._error_template = _post_template(
            host=host_name,
            path="/runtime/invocation/%s/error",
            headers="Content-Type: application/json\r\nLambda-Runtime-Function-Error-Type: %s\r\n",
            then=self._next_request,
        )

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._next_sent = False

    def _connect(self) -> socket.socket:
        if self._sock is None:
            try:
                if self._unix:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    try:
                        sock.connect(self._unix)
                    except OSError:
                        sock.close()
                        raise
                else:
                    sock = socket.create_connection(self._addr)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as exc:
                raise RuntimeApiUnavailable(str(exc)) from exc
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
        if then_next:
            data += self._next_request
        return self._exchange(data, then_next=then_next, method=method, path=path)

    def _exchange(
        self, data: bytes, *, then_next: bool, method: str, path: str, request_id: str = ""
    ) -> Response:
        """Send ``data`` (one request, or a post with ``GET /next`` behind it) and read the
        first answer; on a closed connection, once more on a new one. ``path`` (for error
        messages) may have a ``%s`` for ``request_id``."""
        if self._next_sent:  # never reorder behind an unanswered /next
            where = f"{method} {path % request_id if request_id else path}"
            raise RuntimeApiUnavailable(f"{where}: a /next is still outstanding")
        for attempt in (1, 2):
            sock = self._sock or self._connect()
            try:
                sock.sendall(data)
                self._next_sent = then_next
                return self._read_response(sock, memo=True)
            except (ConnectionError, RuntimeApiUnavailable):
                self.close()
                if attempt == 2:
                    where = f"{method} {path % request_id if request_id else path}"
                    raise RuntimeApiUnavailable(f"{where}: connection closed") from None
        raise AssertionError("unreachable")

    def _read_response(self, sock: socket.socket, *, memo: bool = False) -> Response:
        buf = self._buf
        end = buf.find(_HEAD_END)
        while end < 0:
            # 64 KiB: below glibc's mmap threshold, so a read costs no mmap/munmap pair
            chunk = sock.recv(65536)
            if not chunk:
                self._buf = buf
                raise RuntimeApiUnavailable("connection closed by the agent")
            buf += chunk
            end = buf.find(_HEAD_END)
        head = buf[:end]
        parsed = self._memo.get(head) if memo else None
        if parsed is None:
            parsed = parse_head(head)
            if memo and parsed[0] != 200 and len(self._memo) < _MEMO_LIMIT:
                self._memo[head] = parsed
        status, headers = parsed
        start = end + 4
        stop = start + int(headers.get("content-length", "0"))
        while len(buf) < stop:
            chunk = sock.recv(65536)
            if not chunk:
                self._buf = buf
                raise RuntimeApiUnavailable("connection closed by the agent")
            buf += chunk
        body = buf[start:stop]
        self._buf = buf[stop:]
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
        data = self._response_template % (
            request_id.encode("utf-8"),
            content_type.encode("utf-8"),
            len(body),
            body,
        )
        return self._exchange(
            data,
            then_next=True,
            method="POST",
            path="/runtime/invocation/%s/response",
            request_id=request_id,
        )

    def post_error(self, request_id: str, body: bytes, error_type: str) -> Response:
        data = self._error_template % (
            request_id.encode("utf-8"),
            error_type.encode("utf-8"),
            len(body),
            body,
        )
        return self._exchange(
            data,
            then_next=True,
            method="POST",
            path="/runtime/invocation/%s/error",
            request_id=request_id,
        )

    def post_init_error(self, body: bytes, error_type: str) -> Response:
        return self.request(
            "POST",
            "/runtime/init/error",
            body,
            {"Content-Type": "application/json", "Lambda-Runtime-Function-Error-Type": error_type},
        )
