"""Lambda-shaped event payloads (lambda-wire reference §4), built the way the Lambda service
sends them, for consumer libraries that parse them (Powertools, Mangum)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any

REGION = "us-east-1"
ACCOUNT = "000000000000"
QUEUE = "compat-queue"


def sqs_record(body: Any, *, message_id: str | None = None, kind: str = "order",
               receive_count: int = 1, now_ms: int | None = None) -> dict[str, Any]:
    """One SQS record with every field Powertools' SQSRecord / SqsRecordModel reads."""
    text = body if isinstance(body, str) else json.dumps(body)
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": base64.b64encode(uuid.uuid4().bytes * 4).decode(),
        "body": text,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(now_ms - 5),
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": str(now_ms),
        },
        "messageAttributes": {
            "kind": {"stringValue": kind, "stringListValues": [], "binaryListValues": [],
                     "dataType": "String"},
        },
        "md5OfBody": hashlib.md5(text.encode()).hexdigest(),
        "md5OfMessageAttributes": None,
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}",
        "awsRegion": REGION,
    }


def sqs_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": records}


def http_api_event(method: str, path: str, *, query: str = "",
                   headers: dict[str, str] | None = None, cookies: list[str] | None = None,
                   body: bytes | str | None = None, binary: bool = False,
                   route_key: str = "$default", stage: str = "$default",
                   now_ms: int | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API payload 2.0 event (also what a Function URL sends)."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    hdrs = {"host": "compat.execute-api.us-east-1.amazonaws.com", "user-agent": "compat/1.0",
            "x-forwarded-proto": "https", "x-forwarded-port": "443",
            "x-forwarded-for": "198.51.100.7"}
    hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": hdrs,
        "requestContext": {
            "accountId": ACCOUNT, "apiId": "compat", "domainName": hdrs["host"],
            "domainPrefix": "compat",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "198.51.100.7", "userAgent": hdrs["user-agent"]},
            "requestId": str(uuid.uuid4()), "routeKey": route_key, "stage": stage,
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now_ms / 1000)),
            "timeEpoch": now_ms,
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = list(cookies)
    if query:
        params: dict[str, str] = {}
        for part in query.split("&"):
            key, _, value = part.partition("=")
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    if body is not None:
        if binary:
            raw = body.encode() if isinstance(body, str) else body
            event["body"] = base64.b64encode(raw).decode()
            event["isBase64Encoded"] = True
        else:
            event["body"] = body if isinstance(body, str) else body.decode()
    return event
