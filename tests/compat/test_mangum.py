"""Mangum 0.22 running ASGI apps inside klambda functions (a raw ASGI 3 app and a Starlette
app, from a layer built of the installed packages), invoked with API Gateway HTTP API
payload 2.0 events through boto3.

Covers: method / path / query / scheme / server / client / cookies / body reaching the
ASGI scope, the Lambda context and event in the scope; status codes (200, 201-style
custom, 204, 404, 418); response headers (lower-cased, custom ones kept); `cookies` in the
response from several Set-Cookie headers; binary responses base64-encoded with
`isBase64Encoded`; base64 request bodies decoded; Starlette routing, lifespan startup,
path/query params (repeated keys) and set_cookie.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Layers, require, run_platform
from .events import http_api_event
from .localplatform import EXAMPLES, LocalPlatform

require("mangum", "starlette")

PNG_START = bytes.fromhex("89504e470d0a1a0a")


@pytest.fixture(scope="module")
def plat(tmp_path_factory: pytest.TempPathFactory,
         layer_manifests: Layers) -> Iterator[LocalPlatform]:
    yield from run_platform(tmp_path_factory, "mangum",
                            [layer_manifests["asgi"], EXAMPLES / "mangum.yaml"])


@pytest.fixture(scope="module")
def lam(plat: LocalPlatform) -> Any:
    return plat.client()


def call(lam: Any, name: str, event: dict[str, Any]) -> dict[str, Any]:
    r = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    body = json.loads(r["Payload"].read())
    assert "FunctionError" not in r, body
    assert isinstance(body, dict)
    return body


def test_raw_asgi_scope(lam: Any) -> None:
    event = http_api_event("POST", "/things", query="a=1&b=two", cookies=["k=v", "x=y"],
                           body='{"hello": "asgi"}', headers={"content-type": "application/json"})
    resp = call(lam, "asgi-raw", event)
    assert resp["statusCode"] == 200
    assert resp["headers"]["content-type"] == "application/json"
    assert resp["headers"]["x-compat"] == "raw"
    assert resp["isBase64Encoded"] is False
    got = json.loads(resp["body"])
    assert got["method"] == "POST" and got["path"] == "/things"
    assert got["query"] == "a=1&b=two" and got["scheme"] == "https"
    assert got["server"] == ["compat.execute-api.us-east-1.amazonaws.com", 443]
    assert got["client"] == "198.51.100.7"
    assert got["cookie"] == "k=v; x=y"
    assert got["body"] == '{"hello": "asgi"}'
    assert got["route_key"] == "$default"
    assert len(got["aws_request_id"]) == 36  # the invocation's request id via the context
    assert got["layer_python"].endswith("/python")
    assert got["mangum_file"].startswith(got["layer_python"] + "/mangum/")  # from the layer


def test_raw_asgi_status_and_cookies(lam: Any) -> None:
    resp = call(lam, "asgi-raw", http_api_event("GET", "/cookies"))
    assert resp["statusCode"] == 204
    assert resp["cookies"] == ["a=1; Path=/", "b=2; HttpOnly"]
    assert "set-cookie" not in resp["headers"]
    assert call(lam, "asgi-raw", http_api_event("GET", "/missing"))["statusCode"] == 404


def test_raw_asgi_binary_response_is_base64(lam: Any) -> None:
    resp = call(lam, "asgi-raw", http_api_event("GET", "/image"))
    assert resp["statusCode"] == 200 and resp["headers"]["content-type"] == "image/png"
    assert resp["isBase64Encoded"] is True
    assert base64.b64decode(resp["body"]).startswith(PNG_START)


def test_raw_asgi_binary_request_is_decoded(lam: Any) -> None:
    data = bytes(range(256)) * 4
    event = http_api_event("POST", "/upload", body=data, binary=True,
                           headers={"content-type": "application/octet-stream"})
    resp = call(lam, "asgi-raw", event)
    assert json.loads(resp["body"]) == {"size": 1024, "first": "00010203"}


def test_starlette_routing_params_and_cookies(lam: Any) -> None:
    event = http_api_event("GET", "/items/abc", query="q=1&q=2", cookies=["session=s1"])
    resp = call(lam, "asgi-starlette", event)
    assert resp["statusCode"] == 200
    assert resp["headers"]["content-type"] == "application/json"
    got = json.loads(resp["body"])
    assert got["id"] == "abc" and got["q"] == ["1", "2"]
    assert got["cookies"] == {"session": "s1"}
    assert got["started"] >= 1  # the lifespan startup ran before the request
    assert sorted(c.split(";")[0] for c in resp["cookies"]) == ["seen=abc", "theme=dark"]
    assert any("httponly" in c.lower() for c in resp["cookies"] if c.startswith("seen="))


def test_starlette_status_headers_and_binary_echo(lam: Any) -> None:
    teapot = call(lam, "asgi-starlette", http_api_event("GET", "/teapot"))
    assert teapot["statusCode"] == 418 and teapot["body"] == "short and stout"
    assert teapot["headers"]["x-brew"] == "earl grey"
    data = PNG_START + bytes(range(200))
    event = http_api_event("POST", "/echo", body=data, binary=True,
                           headers={"content-type": "image/png"})
    echoed = call(lam, "asgi-starlette", event)
    assert echoed["isBase64Encoded"] is True
    assert base64.b64decode(echoed["body"]) == data
    assert call(lam, "asgi-starlette", http_api_event("GET", "/nope"))["statusCode"] == 404
