"""The gateway's HTTP/1.1 front (klambda_gateway.http_front): its pure parsers and
renderer, then a real platform over raw sockets and http.client — invokes served by the
front (keep-alive, pipelined, Connection: close, percent-encoded ARNs, Qualifier query),
and every request it does not take (other routes, chunked, Expect: 100-continue,
oversized, HTTP/1.0, malformed) handed to aiohttp on the same connection."""

from __future__ import annotations

import http.client
import json
import socket

import pytest
from klambda_gateway.http_front import invoke_target, parse_head, render
from klambda_gateway.invoke_api import Reply

from .harness import Harness

APP = """
def handler(event, context):
    return {"event": event, "version": context.function_version}
"""
INVOKE = "/2015-03-31/functions/front/invocations"


# ------------------------------------------------------------------ pure
def test_parse_head() -> None:
    head = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nX-Amz-Log-Type:Tail"
    assert parse_head(head) == (b"POST", b"/x", b"HTTP/1.1",
                                {"host": "a", "content-length": "2", "x-amz-log-type": "Tail"})
    assert parse_head(b"GARBAGE") is None
    assert parse_head(b"POST /x HTTP/1.1\r\nno colon") is None
    assert parse_head(b"POST /x HTTP/1.1\r\nA: 1\r\na: 2") is None  # repeated: aiohttp's job
    assert parse_head(b"POST /x HTTP/1.1\r\nHost : a") is None  # space before the colon


def test_invoke_target() -> None:
    assert invoke_target(b"/2015-03-31/functions/f/invocations") == ("f", None)
    assert invoke_target(b"/2015-03-31/functions/f:live/invocations?Qualifier=2") == (
        "f:live", "2")
    arn = b"arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af"
    assert invoke_target(b"/2015-03-31/functions/" + arn + b"/invocations") == (
        "arn:aws:lambda:us-east-1:000000000000:function:f", None)
    assert invoke_target(b"/2015-03-31/functions/f/invocations?Qualifier=") == ("f", "")
    assert invoke_target(b"/2015-03-31/functions/f/configuration") is None
    assert invoke_target(b"/2015-03-31/functions//invocations") is None
    assert invoke_target(b"/2015-03-31/functions/a/b/invocations") is None


def test_render() -> None:
    raw = render(Reply(200, {"X-A": "1"}, b"{}"), date="D", close=False)
    assert raw == b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\nDate: D\r\n\r\n{}"
    raw = render(Reply(204, {}), date="D", close=True)
    assert raw == b"HTTP/1.1 204 No Content\r\nDate: D\r\nConnection: close\r\n\r\n"
    assert render(Reply(429, {}, b"x"), date="D", close=False).startswith(
        b"HTTP/1.1 429 Too Many Requests\r\n")


# ------------------------------------------------------------------ real platform
@pytest.fixture
def front(platform: Harness) -> Harness:
    platform.call(lambda: platform.registry.add_function("front", APP))
    return platform


def _conn(h: Harness) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", h.platform.http_port, timeout=30)


def _read_responses(sock: socket.socket, n: int) -> list[tuple[int, dict[str, str], bytes]]:
    f = sock.makefile("rb")
    out = []
    for _ in range(n):
        status = int(f.readline().split()[1])
        headers = {}
        while (line := f.readline()) not in (b"\r\n", b""):
            k, _, v = line.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        body = f.read(int(headers.get("content-length", "0")))
        out.append((status, headers, body))
    return out


def test_keep_alive_then_other_routes_on_the_same_connection(front: Harness) -> None:
    c = _conn(front)
    for n in range(3):
        c.request("POST", INVOKE, body=json.dumps({"n": n}))
        r = c.getresponse()
        assert r.status == 200 and r.getheader("X-Amz-Executed-Version") == "$LATEST"
        assert r.getheader("Date") and r.getheader("x-amzn-RequestId")
        assert json.loads(r.read()) == {"event": {"n": n}, "version": "$LATEST"}
    c.request("GET", "/healthz")  # handed over to aiohttp
    r = c.getresponse()
    assert r.status == 200
    r.read()
    c.request("POST", INVOKE, body=b"{}")  # aiohttp serves the rest of this connection
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read())["event"] == {}
    c.close()


def test_pipelined_invokes_answer_in_order(front: Harness) -> None:
    with socket.create_connection(("127.0.0.1", front.platform.http_port), timeout=30) as s:
        reqs = b"".join(
            f"POST {INVOKE} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(b)}\r\n\r\n".encode()
            + b for b in (b'{"i": 1}', b'{"i": 2}', b'{"i": 3}'))
        s.sendall(reqs + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answers = _read_responses(s, 4)
    assert [json.loads(b)["event"] for _, _, b in answers[:3]] == [{"i": 1}, {"i": 2}, {"i": 3}]
    assert [status for status, _, _ in answers] == [200, 200, 200, 200]


def test_connection_close_and_errors_from_the_front(front: Harness) -> None:
    with socket.create_connection(("127.0.0.1", front.platform.http_port), timeout=30) as s:
        s.sendall(b"POST /2015-03-31/functions/nope/invocations HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\nContent-Length: 2\r\n\r\n{}")
        [(status, headers, _body)] = _read_responses(s, 1)
        assert s.recv(10) == b""  # closed after the answer
    assert status == 404 and headers["x-amzn-errortype"] == "ResourceNotFoundException"
    c = _conn(front)
    c.request("POST", INVOKE, body=b"not json")
    r = c.getresponse()
    assert r.status == 400 and r.getheader("X-Amzn-ErrorType") == "InvalidRequestContentException"
    r.read()
    c.request("POST", INVOKE, body=b"{}", headers={"X-Amz-Invocation-Type": "DryRun"})
    r = c.getresponse()
    assert r.status == 204 and r.read() == b""
    c.request("POST", INVOKE + "?Qualifier=9", body=b"{}")
    r = c.getresponse()
    assert r.status == 404
    r.read()


def test_requests_the_front_hands_to_aiohttp(front: Harness) -> None:
    port = front.platform.http_port
    chunked = (f"POST {INVOKE} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "8\r\n{\"c\": 1}\r\n0\r\n\r\n").encode()
    expect = (f"POST {INVOKE} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
              "Content-Length: 2\r\n\r\n{}").encode()
    old = f"POST {INVOKE} HTTP/1.0\r\nContent-Length: 2\r\n\r\n{{}}".encode()
    for raw, event in ((chunked, {"c": 1}), (expect, {}), (old, {})):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(raw)
            data = b""
            while b'"version"' not in data:
                chunk = s.recv(65536)
                assert chunk, data
                data += chunk
        assert b" 200 OK" in data and json.dumps(event).encode() in data
    # oversized: aiohttp drains it and answers the modelled 413
    c = _conn(front)
    c.request("POST", INVOKE, body=b'"' + b"x" * 6_300_000 + b'"')
    r = c.getresponse()
    assert r.status == 413 and r.getheader("X-Amzn-ErrorType") == "RequestTooLargeException"
    r.read()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"NONSENSE\r\n\r\n")
        assert b" 400 " in s.recv(1000)


def test_many_pipelined_errors_answered_in_order(front: Harness) -> None:
    """Answers that come synchronously (errors) are served in a loop, not by recursion."""
    n = 2000
    one = (b"POST /2015-03-31/functions/nope/invocations HTTP/1.1\r\nHost: x\r\n"
           b"Content-Length: 2\r\n\r\n{}")
    with socket.create_connection(("127.0.0.1", front.platform.http_port), timeout=30) as s:
        s.sendall(one * n + f"POST {INVOKE} HTTP/1.1\r\nContent-Length: 2\r\n\r\n{{}}".encode())
        answers = _read_responses(s, n + 1)
    assert [status for status, _, _ in answers] == [404] * n + [200]


def test_pipelined_invokes_respect_a_reservation_of_one(platform: Harness) -> None:
    """The next pipelined request starts only after the previous one's lease is released:
    a function reserved to 1 answers every pipelined invoke with 200, never 429."""
    platform.call(lambda: platform.registry.add_function("one", APP, reserved=1))
    path = "/2015-03-31/functions/one/invocations"
    with socket.create_connection(("127.0.0.1", platform.platform.http_port), timeout=30) as s:
        s.sendall(b"".join(
            f"POST {path} HTTP/1.1\r\nContent-Length: 8\r\n\r\n{{\"i\": {i}}}".encode()
            for i in range(5)))
        answers = _read_responses(s, 5)
    assert [status for status, _, _ in answers] == [200] * 5
    assert [json.loads(b)["event"]["i"] for _, _, b in answers] == [0, 1, 2, 3, 4]
