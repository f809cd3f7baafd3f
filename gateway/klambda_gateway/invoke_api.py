"""The Lambda Invoke API on aiohttp: ``POST /2015-03-31/functions/{name}/invocations``.

Reference §1: RequestResponse / Event / DryRun, ``Qualifier`` or ``name:qualifier``,
ARNs, Tail logs, executed version, function errors, and service errors with
``X-Amzn-ErrorType`` so botocore raises the modelled exceptions.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from klambda_gateway.arn import FunctionRef, parse_function_name
from klambda_gateway.async_store import AsyncEvent
from klambda_gateway.async_worker import AsyncWorker
from klambda_gateway.datapath import DataPath
from klambda_gateway.datapath import request_id as new_request_id
from klambda_gateway.dispatch import SYNC, Outcome
from klambda_gateway.errors import (
    InvalidParameterValue,
    InvalidRequestContent,
    InvokeError,
    RequestTooLarge,
    ServiceError,
)
from klambda_gateway.routing import Resolution
from klambda_gateway.settings import SYNC_PAYLOAD_LIMIT

INVOKE_PATH = "/2015-03-31/functions/{name}/invocations"
INVOKE_ASYNC_PATH = "/2014-11-13/functions/{name}/invoke-async"  # deprecated InvokeAsync
COLD_START_HEADER = "X-Klambda-Cold-Start"
LOG_TAIL_BYTES = 4096
CLIENT_CONTEXT_LIMIT = 3583
_DRAIN_LIMIT = 64 * 1024 * 1024  # we read (and drop) at most this much of an oversized body

log = logging.getLogger(__name__)

DATAPATH: web.AppKey[DataPath] = web.AppKey("datapath", DataPath)
WORKER: web.AppKey[AsyncWorker] = web.AppKey("async_worker", AsyncWorker)


def decode_client_context(header: str) -> str:
    """Pure: the X-Amz-Client-Context header (base64 JSON) -> JSON text for the runtime."""
    if not header:
        return ""
    if len(header) > CLIENT_CONTEXT_LIMIT:
        raise InvalidRequestContent(
            f"X-Amz-Client-Context is {len(header)} bytes; the limit is "
            f"{CLIENT_CONTEXT_LIMIT} bytes of base64: send a smaller client context")
    try:
        text = base64.b64decode(header, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequestContent(
            "Client context must be a valid Base64-encoded JSON object: the "
            "X-Amz-Client-Context header is not base64 of UTF-8 text") from exc
    try:
        json.loads(text)
    except ValueError as exc:
        raise InvalidRequestContent(
            "Client context must be a valid Base64-encoded JSON object: the decoded "
            f"X-Amz-Client-Context is not JSON ({exc})") from exc
    return text


def check_json(body: bytes) -> None:
    """Pure: Lambda accepts only JSON payloads (an empty body means no payload)."""
    if not body:
        return
    try:
        json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestContent(
            f"Could not parse request body into json: {exc}. Send a JSON document "
            "(e.g. '{}') as the payload") from exc


def invocation_type(header: str | None) -> str:
    value = header or "RequestResponse"
    if value not in ("RequestResponse", "Event", "DryRun"):
        raise InvalidParameterValue(
            f"X-Amz-Invocation-Type {value!r} is invalid: use RequestResponse, Event or DryRun")
    return value


def log_type(header: str | None) -> str:
    value = header or "None"
    if value not in ("None", "Tail"):
        raise InvalidParameterValue(f"X-Amz-Log-Type {value!r} is invalid: use None or Tail")
    return value


async def read_body(request: web.Request, *, limit: int, kind: str) -> bytes:
    """Read the body; oversized ones are drained (so the client sees our 413) and refused."""
    length = request.content_length
    if length is not None and length <= limit:
        return await request.read()  # the common case: one read, no chunk loop
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > _DRAIN_LIMIT:
            break
    if size > limit:
        if kind == "Event":
            msg = (f"{size} byte payload is too large for the Event invocation type "
                   f"(limit {limit} bytes)")
        else:
            msg = (f"Request must be smaller than {limit} bytes for the InvokeFunction "
                   "operation")
        raise RequestTooLarge(msg)
    return b"".join(chunks)


@dataclass(slots=True, unsafe_hash=True)  # hot path: frozen's setattr per field costs 2.5x
class Reply:
    """One Invoke API answer, whichever HTTP server writes it (aiohttp or http_front)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""


def error_reply(exc: InvokeError, request_id: str) -> Reply:
    built = exc.response(request_id)
    return Reply(built.status, dict(built.headers), built.body)


def request_kind(headers: Mapping[str, str], *, legacy_async: bool) -> tuple[str, bool]:
    """The invocation type and whether the log tail was asked for (raises InvokeError)."""
    kind = "Event" if legacy_async else invocation_type(headers.get("x-amz-invocation-type"))
    return kind, log_type(headers.get("x-amz-log-type")) == "Tail"


def body_limit(dp: DataPath, kind: str) -> int:
    return dp.settings.async_payload_limit if kind == "Event" else SYNC_PAYLOAD_LIMIT


async def run_invoke(dp: DataPath, worker: AsyncWorker, ref: FunctionRef, *, kind: str,
                     tail: bool, body: bytes, headers: Mapping[str, str], request_id: str,
                     legacy_async: bool) -> Reply:
    """Everything after parsing: validate, resolve, then run / enqueue / dry-run."""
    target, client_context = validate_and_resolve(dp, ref, body=body, headers=headers)
    if kind == "DryRun":
        return Reply(204, {"x-amzn-RequestId": request_id})
    if kind == "Event":
        await worker.enqueue(AsyncEvent(
            event_id=request_id, namespace=ref.namespace, function=ref.name,
            qualifier=ref.qualifier or "", payload=body or b"{}", created_at=time.time()))
        if legacy_async:
            return Reply(202, {"Content-Type": "application/json",
                               "x-amzn-RequestId": request_id}, b'{"Status": 202}')
        return Reply(202, {"x-amzn-RequestId": request_id})
    outcome = await dp.invoke(target, body or b"{}", request_id=request_id, kind=SYNC,
                              client_context=client_context)
    return sync_reply(target, outcome, tail=tail, request_id=request_id)


def validate_and_resolve(dp: DataPath, ref: FunctionRef, *, body: bytes,
                         headers: Mapping[str, str]) -> tuple[Resolution, str]:
    """The JSON payload check, the client context and the target (raise InvokeError)."""
    check_json(body)
    client_context = decode_client_context(headers.get("x-amz-client-context", ""))
    return dp.resolve(ref), client_context


def failure_reply(exc: BaseException, request_id: str) -> Reply:
    """Any failure of an invoke as an answer: an InvokeError's own, else a bug's 500
    (logged; still Lambda-shaped, never a bare traceback)."""
    if isinstance(exc, InvokeError):
        return error_reply(exc, request_id)
    log.error("invoke failed", exc_info=exc)
    return error_reply(ServiceError(f"Internal error in the gateway: {exc}"), request_id)


def sync_reply(target: Resolution, outcome: Outcome, *, tail: bool, request_id: str) -> Reply:
    """The 200 of a finished RequestResponse invocation (pure)."""
    result = outcome.result
    out = {
        "Content-Type": "application/json",
        "x-amzn-RequestId": request_id,
        "X-Amz-Executed-Version": target.version.version,
    }
    if result.function_error:
        out["X-Amz-Function-Error"] = result.function_error
    if tail:
        out["X-Amz-Log-Result"] = base64.b64encode(result.log_tail[-LOG_TAIL_BYTES:]).decode()
    if outcome.cold is not None:
        out[COLD_START_HEADER] = outcome.cold.header()
    return Reply(200, out, result.payload)


def _web_response(reply: Reply) -> web.Response:
    return web.Response(status=reply.status, body=reply.body, headers=reply.headers)


async def handle_invoke(request: web.Request) -> web.StreamResponse:
    return _web_response(await _guarded(request, legacy_async=False))


async def handle_invoke_async(request: web.Request) -> web.StreamResponse:
    """The deprecated InvokeAsync API: an ``Event`` invocation answered ``{"Status": 202}``."""
    return _web_response(await _guarded(request, legacy_async=True))


async def _guarded(request: web.Request, *, legacy_async: bool) -> Reply:
    request_id = new_request_id()
    try:
        dp = request.app[DATAPATH]
        kind, tail = request_kind(request.headers, legacy_async=legacy_async)
        ref = parse_function_name(request.match_info["name"], request.query.get("Qualifier"),
                                  account_id=dp.settings.account_id)
        body = await read_body(request, limit=body_limit(dp, kind), kind=kind)
        return await run_invoke(dp, request.app[WORKER], ref, kind=kind, tail=tail, body=body,
                                headers=request.headers, request_id=request_id,
                                legacy_async=legacy_async)
    except Exception as exc:  # noqa: BLE001 - every failure is an answer
        return failure_reply(exc, request_id)


def invoke_routes() -> list[web.RouteDef]:
    return [web.post(INVOKE_PATH, handle_invoke),
            web.post(INVOKE_ASYNC_PATH, handle_invoke_async),
            web.post(INVOKE_ASYNC_PATH + "/", handle_invoke_async)]
