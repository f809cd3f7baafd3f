"""The admin API over real HTTP: apply (YAML and JSON bodies, namespaces, 400 listing every
error), lists, resources, publish-version (201 then 200), delete (by documents and by path),
logs (tail, 404s, follow streaming new lines) and the JSON error shape."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .adminserver import AdminServer

HELLO = """
apiVersion: klambda.io/v1alpha1
kind: Function
metadata: {name: hello}
spec:
  runtime: python3.12
  handler: app.handler
  code: {inline: {app.py: "def handler(e, c):\\n    return 1\\n"}}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AdminServer]:
    srv = AdminServer(tmp_path / "state")
    try:
        yield srv
    finally:
        srv.close()


def call(srv: AdminServer, method: str, path: str, body: str | None = None
         ) -> tuple[int, Any]:
    req = urllib.request.Request(srv.endpoint + path, method=method,
                                 data=body.encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            status = resp.status
            ctype = resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        raw, status, ctype = exc.read(), exc.code, exc.headers.get("Content-Type", "")
    return status, json.loads(raw) if "json" in ctype else raw.decode()


def test_apply_yaml_then_list(server: AdminServer) -> None:
    assert call(server, "POST", "/klambda/v1/apply", HELLO) == (
        200, {"results": ["function/hello created"]})
    assert call(server, "POST", "/klambda/v1/apply", HELLO)[1] == {
        "results": ["function/hello unchanged"]}
    status, body = call(server, "GET", "/klambda/v1/functions?namespace=default")
    assert status == 200 and [f["name"] for f in body["items"]] == ["hello"]
    assert body["items"][0]["runtime"] == "python3.12"
    status, body = call(server, "GET", "/klambda/v1/versions?function=hello")
    assert [v["version"] for v in body["items"]] == ["$LATEST"]
    status, body = call(server, "GET", "/klambda/v1/resources?kind=functions")
    assert body["items"][0]["metadata"] == {"name": "hello"}


def test_apply_into_a_namespace(server: AdminServer) -> None:
    assert call(server, "POST", "/klambda/v1/apply?namespace=team-a", HELLO)[0] == 200
    assert server.registry.function("team-a", "hello") is not None
    assert call(server, "GET", "/klambda/v1/functions?namespace=default")[1] == {"items": []}


def test_invalid_documents_give_400_with_every_error(server: AdminServer) -> None:
    bad = HELLO.replace("handler: app.handler", "handler: app.handler\n  timeout: 0\n  memorySize: 1")
    status, body = call(server, "POST", "/klambda/v1/apply?source=hello.yaml", bad)
    assert status == 400
    assert body["error"]["type"] == "ValidationError"
    assert body["error"]["errors"] == [
        "hello.yaml[0] Function/hello: spec.memorySize: 1 is below the minimum 128",
        "hello.yaml[0] Function/hello: spec.timeout: 0 is below the minimum 1",
    ]
    status, body = call(server, "POST", "/klambda/v1/apply", HELLO.replace(
        "handler: app.handler", "handler: app.handler\n  layers: [ghost]"))
    assert status == 400 and body["error"]["type"] == "InvalidResourceException"
    assert body["error"]["errors"][0].startswith('function/hello: spec.layers[0]: Layer "ghost"')
    status, body = call(server, "POST", "/klambda/v1/apply", "   ")
    assert (status, body["error"]["errors"]) == (400, ["<request>: no documents found"])


def test_publish_version(server: AdminServer) -> None:
    call(server, "POST", "/klambda/v1/apply", HELLO)
    status, body = call(server, "POST", "/klambda/v1/functions/default/hello/versions",
                        '{"description": "first"}')
    assert (status, body["version"], body["created"], body["description"]) == (
        201, "1", True, "first")
    status, body = call(server, "POST", "/klambda/v1/functions/default/hello/versions", "")
    assert (status, body["version"], body["created"]) == (200, "1", False)
    status, body = call(server, "POST", "/klambda/v1/functions/default/nope/versions", "")
    assert status == 404 and body["error"]["type"] == "ResourceNotFoundException"


def test_delete_by_documents_and_by_path(server: AdminServer) -> None:
    call(server, "POST", "/klambda/v1/apply", HELLO)
    assert call(server, "POST", "/klambda/v1/delete", HELLO) == (
        200, {"results": ["function/hello deleted"]})
    call(server, "POST", "/klambda/v1/apply", HELLO)
    assert call(server, "DELETE", "/klambda/v1/function/default/hello") == (
        200, {"results": ["function/hello deleted"]})
    status, body = call(server, "DELETE", "/klambda/v1/gadget/default/x")
    assert status == 400 and "unknown kind" in body["error"]["message"]


def test_logs_tail_and_errors(server: AdminServer) -> None:
    status, body = call(server, "GET", "/klambda/v1/logs/default/hello")
    assert status == 404 and 'function "hello" does not exist' in body["error"]["message"]
    call(server, "POST", "/klambda/v1/apply", HELLO)
    status, body = call(server, "GET", "/klambda/v1/logs/default/hello")
    assert status == 404 and "no logs yet" in body["error"]["message"]
    log = server.logs_dir / "default" / "hello.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"line {i}\n" for i in range(10)))
    assert call(server, "GET", "/klambda/v1/logs/default/hello?tail=2") == (200, "line 8\nline 9\n")
    assert call(server, "GET", "/klambda/v1/logs/default/hello")[1].count("\n") == 10


def test_logs_follow_streams_new_lines(server: AdminServer) -> None:
    call(server, "POST", "/klambda/v1/apply", HELLO)
    log = server.logs_dir / "default" / "hello.log"
    log.parent.mkdir(parents=True)
    log.write_text("old\n")

    def append() -> None:
        time.sleep(0.3)
        with open(log, "a") as fh:
            fh.write("new line\n")

    writer = threading.Thread(target=append)
    writer.start()
    resp = urllib.request.urlopen(
        server.endpoint + "/klambda/v1/logs/default/hello?follow=1&tail=1", timeout=10)
    seen = b""
    deadline = time.monotonic() + 5
    while b"new line" not in seen and time.monotonic() < deadline:
        seen += resp.read1(1024)
    resp.close()
    writer.join(5)
    assert seen == b"old\nnew line\n"


@pytest.mark.parametrize("block", [7, 64, 65536])
@pytest.mark.parametrize("lines", [0, 1, 3, 50])
def test_tail_reads_backwards_exactly(tmp_path: Path, block: int, lines: int) -> None:
    from klambda_gateway.admin_api import _tail

    log = tmp_path / "f.log"
    content = "".join(f"line {i} " + "x" * (i % 13) + "\n" for i in range(40))
    log.write_text(content)
    data, size = _tail(log, lines, block=block)
    expected = "".join(content.splitlines(keepends=True)[-lines:]) if lines else ""
    assert (data.decode(), size) == (expected, len(content))
    assert _tail(log, -1, block=block)[0].decode() == content
