"""AWS Lambda Powertools for Python 3.x running inside klambda functions, shipped as a Layer
built from the installed package (examples/compat/build_layer.py, `url: file://` + sha256).

Covers: the package is imported from the layer's python/ directory; Logger's structured
JSON lines carry the invocation's request id, function name / ARN / memory, X-Ray trace id
and cold_start (`@logger.inject_lambda_context` reads every context attribute it needs)
and appear in the Tail log and the function's log; `log_event`; Metrics' EMF blobs with
the ColdStart metric; provisioned concurrency as Powertools sees it (cold_start false, no
ColdStart metric, no Init Duration) next to an on-demand cold start; the context object's
attributes; `BatchProcessor` + `process_partial_response` with a Lambda-shaped SQS event
(every SQSRecord field read) -> exactly the failed messageIds as batchItemFailures, an
empty list on success and BatchProcessingError when every record fails; AsyncBatchProcessor
(records run concurrently on an event loop inside the function);
`APIGatewayHttpResolver` routing HTTP API v2 events (path params, query, cookies, 201 +
Set-Cookie + headers, stage prefix stripped, 404s) with the correlation id logged.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Layers, require, run_platform
from .events import http_api_event, sqs_event, sqs_record
from .localplatform import EXAMPLES, LocalPlatform, wait_for

require("aws_lambda_powertools")

ARN = "arn:aws:lambda:us-east-1:000000000000:function"


@pytest.fixture(scope="module")
def plat(tmp_path_factory: pytest.TempPathFactory,
         layer_manifests: Layers) -> Iterator[LocalPlatform]:
    yield from run_platform(tmp_path_factory, "powertools",
                            [layer_manifests["powertools"], EXAMPLES / "powertools.yaml"])


@pytest.fixture(scope="module")
def lam(plat: LocalPlatform) -> Any:
    return plat.client()


def json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def invoke(lam: Any, name: str, event: Any) -> tuple[dict[str, Any], Any, list[dict[str, Any]]]:
    r = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode(), LogType="Tail")
    body = json.loads(r["Payload"].read())
    return r, body, json_lines(base64.b64decode(r["LogResult"]).decode())


def test_powertools_comes_from_the_layer(lam: Any) -> None:
    r, body, _ = invoke(lam, "pt-logger", {"item": "layer"})
    assert "FunctionError" not in r, body
    assert body["layer_python"].endswith("/python")
    assert body["powertools_file"].startswith(body["layer_python"] + "/aws_lambda_powertools/")


def test_logger_json_lines_carry_the_context(lam: Any) -> None:
    r, body, lines = invoke(lam, "pt-logger", {"item": "a-1"})
    request_id = r["ResponseMetadata"]["RequestId"]
    assert body["request_id"] == request_id  # x-amzn-RequestId is the invocation's id
    record = next(rec for rec in lines if rec.get("message") == "processing")
    assert record["level"] == "INFO" and record["service"] == "compat"
    assert record["item"] == "a-1"
    assert record["function_request_id"] == request_id
    assert record["function_name"] == "pt-logger"
    assert record["function_arn"] == f"{ARN}:pt-logger"
    assert str(record["function_memory_size"]) == "256"
    assert isinstance(record["cold_start"], bool)
    assert record["location"].startswith("handler:")
    assert record["xray_trace_id"].startswith("1-")  # from _X_AMZN_TRACE_ID
    logged_event = next(rec for rec in lines if rec.get("message") == {"item": "a-1"})
    assert logged_event["function_request_id"] == request_id


def test_logger_cold_start_flag(plat: LocalPlatform, lam: Any) -> None:
    invoke(lam, "pt-logger", {"item": "warm-1"})
    _, _, lines = invoke(lam, "pt-logger", {"item": "warm-2"})
    assert next(rec for rec in lines if rec.get("message") == "processing")["cold_start"] is False
    in_log = [rec for rec in json_lines(plat.log("pt-logger"))
              if rec.get("message") == "processing"]
    assert in_log[0]["cold_start"] is True  # the environment's first invocation
    assert all(rec["cold_start"] is False for rec in in_log[1:])


def test_metrics_emf(plat: LocalPlatform, lam: Any) -> None:
    _, _, lines = invoke(lam, "pt-logger", {"item": "m"})
    emf = next(rec for rec in lines if "_aws" in rec and "Processed" in rec)
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Compat"
    assert [m["Name"] for m in directive["Metrics"]] == ["Processed"]
    assert emf["Processed"] == [1.0] or emf["Processed"] == 1.0
    assert emf["service"] == "compat"
    cold = [rec for rec in json_lines(plat.log("pt-logger")) if "ColdStart" in rec]
    assert len(cold) == 1 and cold[0]["function_name"] == "pt-logger"


def test_context_object(lam: Any) -> None:
    _, body, _ = invoke(lam, "pt-logger", {})
    assert body["function_name"] == "pt-logger" and body["function_version"] == "$LATEST"
    assert body["memory"] == "256"  # a string, as in Lambda
    assert body["arn"] == f"{ARN}:pt-logger"
    assert body["log_group"] == "/aws/lambda/pt-logger"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", body["log_stream"])
    assert 0 < body["remaining_ms"] <= 3000


def test_provisioned_concurrency_is_not_a_cold_start(plat: LocalPlatform, lam: Any) -> None:
    wait_for(lambda: plat.metric("klambda_environments", function="pt-provisioned",
                                 version="1", state="idle") >= 1,
             timeout=20, what="the provisioned environment is ready")
    r = lam.invoke(FunctionName="pt-provisioned", Qualifier="live", Payload=b"{}",
                   LogType="Tail")
    assert r["ExecutedVersion"] == "1"
    assert json.loads(r["Payload"].read()) == {"initialization_type": "provisioned-concurrency"}
    tail = base64.b64decode(r["LogResult"]).decode()
    record = next(rec for rec in json_lines(tail) if rec.get("message") == "provisioned?")
    assert record["cold_start"] is False
    assert not any("ColdStart" in rec for rec in json_lines(tail))
    report = next(line for line in tail.splitlines() if line.startswith("REPORT "))
    assert "Init Duration" not in report
    # the same code on demand ($LATEST) is a cold start for Powertools and for the platform
    r = lam.invoke(FunctionName="pt-provisioned", Payload=b"{}", LogType="Tail")
    tail = base64.b64decode(r["LogResult"]).decode()
    record = next(rec for rec in json_lines(tail) if rec.get("message") == "provisioned?")
    assert record["cold_start"] is True
    assert any("ColdStart" in rec for rec in json_lines(tail))
    assert "Init Duration" in next(line for line in tail.splitlines()
                                   if line.startswith("REPORT "))


# -- BatchProcessor ----------------------------------------------------------------------


def test_batch_partial_failure_reports_exactly_the_failed_ids(lam: Any) -> None:
    records = [sqs_record({"n": i, "fail": i in (1, 3)}, message_id=f"msg-{i}")
               for i in range(5)]
    r, body, lines = invoke(lam, "pt-batch", sqs_event(records))
    assert "FunctionError" not in r, body
    assert body == {"batchItemFailures": [{"itemIdentifier": "msg-1"},
                                          {"itemIdentifier": "msg-3"}]}
    ok = [rec for rec in lines if rec.get("message") == "ok"]
    assert sorted(rec["id"] for rec in ok) == ["msg-0", "msg-2", "msg-4"]
    first = next(rec for rec in ok if rec["id"] == "msg-0")
    assert first["queue_url"] == "https://sqs.us-east-1.amazonaws.com/000000000000/compat-queue"
    assert first["kind"] == "order" and first["receive_count"] == "1"
    assert first["source"] == "aws:sqs" and first["region"] == "us-east-1"


def test_batch_all_success_is_empty_list(lam: Any) -> None:
    r, body, _ = invoke(lam, "pt-batch", sqs_event([sqs_record({"n": i}) for i in range(3)]))
    assert "FunctionError" not in r and body == {"batchItemFailures": []}


def test_batch_all_failed_raises(lam: Any) -> None:
    records = [sqs_record({"fail": True}) for _ in range(2)]
    r, body, _ = invoke(lam, "pt-batch", sqs_event(records))
    assert r["FunctionError"] == "Unhandled"
    assert body["errorType"] == "BatchProcessingError"
    assert "All records failed processing" in body["errorMessage"]


def test_async_batch_processor(lam: Any) -> None:
    records = [sqs_record({"delay": 0.2, "fail": i == 2}, message_id=f"a-{i}")
               for i in range(5)]
    r = lam.invoke(FunctionName="pt-batch-async", Payload=json.dumps(sqs_event(records)),
                   LogType="Tail")
    body = json.loads(r["Payload"].read())
    assert "FunctionError" not in r, body
    assert body == {"batchItemFailures": [{"itemIdentifier": "a-2"}]}
    steps = [line.split()[0] for line in base64.b64decode(r["LogResult"]).decode().splitlines()
             if line.startswith(("begin a-", "end a-"))]
    # concurrent on one event loop: every record began before the first one ended
    assert steps == ["begin"] * 5 + ["end"] * 5


# -- APIGatewayHttpResolver --------------------------------------------------------------


def test_http_resolver_get(plat: LocalPlatform, lam: Any) -> None:
    event = http_api_event("GET", "/items/42", query="q=blue", cookies=["a=1", "b=2"])
    r, resp, _ = invoke(lam, "pt-http", event)
    assert "FunctionError" not in r, resp
    assert resp["statusCode"] == 200
    assert resp["headers"]["Content-Type"] == "application/json"
    assert resp["isBase64Encoded"] is False
    assert json.loads(resp["body"]) == {"id": "42", "q": "blue", "cookies": ["a=1", "b=2"],
                                        "source_ip": "198.51.100.7", "ua": "compat/1.0"}
    correlation = {rec.get("correlation_id") for rec in json_lines(plat.log("pt-http"))}
    assert event["requestContext"]["requestId"] in correlation


def test_http_resolver_post_cookies_and_headers(lam: Any) -> None:
    event = http_api_event("POST", "/items", body=json.dumps({"id": 7, "name": "lamp"}),
                           headers={"content-type": "application/json"})
    _, resp, _ = invoke(lam, "pt-http", event)
    assert resp["statusCode"] == 201
    assert resp["cookies"] == ["session=abc; Path=/; Secure"]  # Powertools' default
    assert resp["headers"]["Location"] == "/items/7"
    assert json.loads(resp["body"]) == {"created": {"id": 7, "name": "lamp"}}


def test_http_resolver_strips_the_stage(lam: Any) -> None:
    event = http_api_event("GET", "/prod/items/9", stage="prod")
    _, resp, _ = invoke(lam, "pt-http", event)
    assert resp["statusCode"] == 200 and json.loads(resp["body"])["id"] == "9"


def test_http_resolver_not_found(lam: Any) -> None:
    _, missing, _ = invoke(lam, "pt-http", http_api_event("GET", "/items/missing"))
    assert missing["statusCode"] == 404
    assert json.loads(missing["body"])["message"] == "no item missing"
    _, unknown, _ = invoke(lam, "pt-http", http_api_event("DELETE", "/nothing"))
    assert unknown["statusCode"] == 404
