"""The Runtime API server on its own, spoken to over real HTTP/1.1 sockets.

Covers: /next long-poll and every Lambda-Runtime-* header (Content-Type always
application/json), 202 for response/error/init-error, 400 for an id never issued, 403
for an id already answered or abandoned and for /next while an invocation is unanswered,
403 for a late init error, 413 with Lambda's body above 6,291,556 bytes (and the
connection stays usable), chunked request bodies, 404/405, keep-alive, and the error
type taken from the header or else from the body.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from klambda_runtime.runtime_api import RuntimeApi, event_head


class Recorder:
    """In-memory fake of the supervisor side (RuntimeApiEvents)."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def runtime_ready(self) -> None:
        self.events.append(("ready",))

    def event_delivered(self, request_id: str) -> None:
        self.events.append(("delivered", request_id))

    def init_error(self, error_type: str, body: bytes) -> None:
        self.events.append(("init_error", error_type, body))

    def invocation_response(self, request_id: str, body: bytes) -> None:
        self.events.append(("response", request_id, body))

    def invocation_error(self, request_id: str, error_type: str, body: bytes) -> None:
        self.events.append(("error", request_id, error_type, body))

    def response_too_large(self, request_id: str) -> None:
        self.events.append(("too_large", request_id))


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, address: str) -> Client:
        host, port = address.rsplit(":", 1)
        return cls(*await asyncio.open_connection(host, int(port)))

    def send(self, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> None:
        lines = [f"{method} /2018-06-01{path} HTTP/1.1", "Host: x"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if "Transfer-Encoding" not in (headers or {}):
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    async def read(self) -> tuple[int, dict[str, str], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", 0)))
        return status, headers, body

    async def call(self, method: str, path: str, body: bytes = b"", headers: dict | None = None):
        self.send(method, path, body, headers)
        return await self.read()

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def api():
    recorder = Recorder()
    server = RuntimeApi(recorder)
    await server.start()
    yield server, recorder
    await server.close()


def _event(request_id: str, payload: bytes = b'{"a": 1}', **extra) -> bytes:
    fields = {
        "request_id": request_id,
        "deadline_ms": 1_700_000_000_000,
        "invoked_function_arn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
        "trace_id": "Root=1-5e1b4151-5ac6c58f5b5dbd6a4d4d1d4c;Parent=1;Sampled=0",
        "client_context": "",
        "cognito_identity": "",
        "body_length": len(payload),
    }
    fields.update(extra)
    return event_head(**fields) + payload


async def test_next_long_poll_and_headers(api) -> None:
    server, recorder = api
    client = await Client.connect(server.address)
    client.send("GET", "/runtime/invocation/next")
    await asyncio.sleep(0.05)
    assert recorder.events == [("ready",)]  # the first /next ends init
    server.dispatch(
        "rq-1",
        _event(
            "rq-1",
            client_context='{\n "custom": {"a": 1}\n}',
            cognito_identity='{"cognitoIdentityId": "i"}',
        ),
    )
    status, headers, body = await client.read()
    assert status == 200 and body == b'{"a": 1}'
    assert headers["content-type"] == "application/json"
    assert headers["lambda-runtime-aws-request-id"] == "rq-1"
    assert headers["lambda-runtime-deadline-ms"] == "1700000000000"
    assert headers["lambda-runtime-invoked-function-arn"].endswith(":function:fn")
    assert headers["lambda-runtime-trace-id"].startswith("Root=1-")
    assert json.loads(headers["lambda-runtime-client-context"]) == {"custom": {"a": 1}}
    assert headers["lambda-runtime-cognito-identity"] == '{"cognitoIdentityId": "i"}'
    status, _, body = await client.call("POST", "/runtime/invocation/rq-1/response", b'"ok"')
    assert (status, json.loads(body)) == (202, {"status": "OK"})
    assert recorder.events[-1] == ("response", "rq-1", b'"ok"')
    client.close()


async def test_queued_event_is_delivered_on_next(api) -> None:
    server, _recorder = api
    client = await Client.connect(server.address)
    server.dispatch("rq-q", _event("rq-q"))  # the runtime is not polling yet
    status, headers, _ = await client.call("GET", "/runtime/invocation/next")
    assert status == 200 and headers["lambda-runtime-aws-request-id"] == "rq-q"
    client.close()


async def test_status_codes_for_ids(api) -> None:
    server, recorder = api
    client = await Client.connect(server.address)
    client.send("GET", "/runtime/invocation/next")
    server.dispatch("rq-2", _event("rq-2"))
    await client.read()
    status, _, body = await client.call("GET", "/runtime/invocation/next")
    assert status == 403 and json.loads(body)["errorType"] == "InvalidStateTransition"
    status, _, body = await client.call("POST", "/runtime/invocation/unknown/response", b"1")
    assert status == 400 and json.loads(body) == {
        "errorMessage": "Invalid request ID",
        "errorType": "InvalidRequestID",
    }
    err = b'{"errorType": "ValueError", "errorMessage": "x"}'
    status, _, _ = await client.call("POST", "/runtime/invocation/rq-2/error", err)
    assert status == 202
    assert recorder.events[-1] == ("error", "rq-2", "", err)  # type resolved by the supervisor
    for kind in ("response", "error"):
        status, _, body = await client.call("POST", f"/runtime/invocation/rq-2/{kind}", b"1")
        assert status == 403 and json.loads(body)["errorType"] == "InvalidStateTransition"
    client.close()


async def test_abandoned_id_is_forbidden(api) -> None:
    server, _recorder = api
    client = await Client.connect(server.address)
    client.send("GET", "/runtime/invocation/next")
    server.dispatch("rq-3", _event("rq-3"))
    await client.read()
    server.abandon("rq-3")  # e.g. timed out
    status, _, _ = await client.call("POST", "/runtime/invocation/rq-3/response", b"1")
    assert status == 403
    client.close()


async def test_error_type_header(api) -> None:
    server, recorder = api
    client = await Client.connect(server.address)
    client.send("GET", "/runtime/invocation/next")
    server.dispatch("rq-4", _event("rq-4"))
    await client.read()
    status, _, _ = await client.call(
        "POST",
        "/runtime/invocation/rq-4/error",
        b"{}",
        {"Lambda-Runtime-Function-Error-Type": "Custom.Type"},
    )
    assert status == 202 and recorder.events[-1] == ("error", "rq-4", "Custom.Type", b"{}")
    client.close()


async def test_413_above_limit_and_connection_survives(api) -> None:
    server, recorder = api
    client = await Client.connect(server.address)
    client.send("GET", "/runtime/invocation/next")
    server.dispatch("rq-big", _event("rq-big"))
    await client.read()
    big = b"x" * (6_291_556 + 1)
    status, _, body = await client.call("POST", "/runtime/invocation/rq-big/response", big)
    assert status == 413
    assert json.loads(body) == {
        "errorMessage": "Exceeded maximum allowed payload size (6291556 bytes).",
        "errorType": "RequestEntityTooLarge",
    }
    assert recorder.events[-1] == ("too_large", "rq-big")
    # Keep-alive: the same connection serves the next long poll.
    client.send("GET", "/runtime/invocation/next")
    server.dispatch("rq-5", _event("rq-5"))
    status, headers, _ = await client.read()
    assert status == 200 and headers["lambda-runtime-aws-request-id"] == "rq-5"
    exact = b"y" * 6_291_556  # exactly at the limit is accepted
    status, _, _ = await client.call("POST", "/runtime/invocation/rq-5/response", exact)
    assert status == 202
    client.close()


async def test_chunked_body(api) -> None:
    server, recorder = api
    client = await Client.connect(server.address)
    client.send("GET", "/runtime/invocation/next")
    server.dispatch("rq-c", _event("rq-c"))
    await client.read()
    chunked = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    status, _, _ = await client.call(
        "POST", "/runtime/invocation/rq-c/response", chunked, {"Transfer-Encoding": "chunked"}
    )
    assert status == 202 and recorder.events[-1] == ("response", "rq-c", b"abcde")
    client.close()


async def test_init_error_then_late_init_error(api) -> None:
    server, recorder = api
    client = await Client.connect(server.address)
    body = b'{"errorType": "Runtime.ImportModuleError", "errorMessage": "m"}'
    status, _, reply = await client.call(
        "POST",
        "/runtime/init/error",
        body,
        {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"},
    )
    assert (status, json.loads(reply)) == (202, {"status": "OK"})
    assert recorder.events == [("init_error", "Runtime.ImportModuleError", body)]
    status, _, _ = await client.call("POST", "/runtime/init/error", body)
    assert status == 403
    client.close()


async def test_init_error_after_next_is_forbidden(api) -> None:
    server, _recorder = api
    client = await Client.connect(server.address)
    client.send("GET", "/runtime/invocation/next")
    await asyncio.sleep(0.05)
    other = await Client.connect(server.address)
    status, _, _ = await other.call("POST", "/runtime/init/error", b"{}")
    assert status == 403
    client.close()
    other.close()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/runtime/nothing", 404),
        ("POST", "/runtime/invocation/next", 405),
        ("GET", "/runtime/invocation/x/response", 405),
        ("GET", "/runtime/restore/next", 404),
    ],
)
async def test_unknown_routes(api, method: str, path: str, status: int) -> None:
    server, _ = api
    client = await Client.connect(server.address)
    got, _, body = await client.call(method, path)
    assert got == status and "errorType" in json.loads(body)
    client.close()


async def test_expect_100_continue(api) -> None:
    server, recorder = api
    client = await Client.connect(server.address)
    client.send("GET", "/runtime/invocation/next")
    server.dispatch("rq-e", _event("rq-e"))
    await client.read()
    head = (
        "POST /2018-06-01/runtime/invocation/rq-e/response HTTP/1.1\r\nHost: x\r\n"
        "Expect: 100-continue\r\nContent-Length: 4\r\n\r\n"
    )
    client.writer.write(head.encode())
    interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    client.writer.write(b"body")
    status, _, _ = await client.read()
    assert status == 202 and recorder.events[-1] == ("response", "rq-e", b"body")
    client.close()
