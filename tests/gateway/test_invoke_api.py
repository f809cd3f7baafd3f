"""The Invoke API through boto3 (real botocore parsing) against a running platform:
namespaces from the ARN account field,
results, qualifiers and ARNs, Tail logs, executed version, function errors, Event -> 202
and executed, DryRun -> 204, 404 for unknown function / version / alias, 413 for sync and
async payloads over the limit, 400 for non-JSON bodies and bad parameters, client context,
the cold-start header, /metrics and /healthz."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from pathlib import Path

import pytest

from .harness import Harness

ECHO = """
import json, os
def handler(event, context):
    return {"event": event, "version": context.function_version,
            "arn": context.invoked_function_arn,
            "client_context": getattr(context.client_context, "custom", None)
                if context.client_context and not isinstance(context.client_context, dict)
                else (context.client_context or {}).get("custom")}
"""

FAILING = """
def handler(event, context):
    raise ValueError("bad input: " + str(event.get("x")))
"""


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def echo(platform: Harness) -> Harness:
    platform.call(lambda: platform.registry.add_function("echo", ECHO))
    return platform


def test_result_and_headers(echo: Harness) -> None:
    c = echo.client()
    r = c.invoke(FunctionName="echo", Payload=json.dumps({"a": 1}))
    body = json.loads(r["Payload"].read())
    assert r["StatusCode"] == 200 and body["event"] == {"a": 1}
    assert r["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in r
    headers = r["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-requestid"] == r["ResponseMetadata"]["RequestId"]
    assert body["arn"] == "arn:aws:lambda:us-east-1:000000000000:function:echo"


def test_cold_start_header_only_on_cold(echo: Harness) -> None:
    c = echo.client()
    first = c.invoke(FunctionName="echo", Payload=b"{}")["ResponseMetadata"]["HTTPHeaders"]
    phases = dict(p.split("=") for p in first["x-klambda-cold-start"].split(";"))
    assert set(phases) == {"queue", "start", "init"}
    assert all(float(v) >= 0 for v in phases.values()) and float(phases["queue"]) > 0
    second = c.invoke(FunctionName="echo", Payload=b"{}")["ResponseMetadata"]["HTTPHeaders"]
    assert "x-klambda-cold-start" not in second


def test_empty_payload_is_empty_object(echo: Harness) -> None:
    r = echo.client().invoke(FunctionName="echo")
    assert json.loads(r["Payload"].read())["event"] == {}


def test_tail_log(echo: Harness) -> None:
    r = echo.client().invoke(FunctionName="echo", Payload=b"{}", LogType="Tail")
    log = base64.b64decode(r["LogResult"]).decode()
    rid = r["ResponseMetadata"]["RequestId"]
    assert f"START RequestId: {rid}" in log
    assert f"END RequestId: {rid}" in log and f"REPORT RequestId: {rid}" in log
    assert "LogResult" not in echo.client().invoke(FunctionName="echo", Payload=b"{}")


def test_function_error(platform: Harness) -> None:
    platform.call(lambda: platform.registry.add_function("fail", FAILING))
    r = platform.client().invoke(FunctionName="fail", Payload=b'{"x": 7}')
    assert r["StatusCode"] == 200 and r["FunctionError"] == "Unhandled"
    err = json.loads(r["Payload"].read())
    assert err["errorType"] == "ValueError" and err["errorMessage"] == "bad input: 7"


@pytest.mark.parametrize("name", [
    "echo:$LATEST", "arn:aws:lambda:us-east-1:000000000000:function:echo",
    "000000000000:function:echo:$LATEST", "arn:aws:lambda:eu-west-1:default:function:echo",
])
def test_name_forms(echo: Harness, name: str) -> None:
    r = echo.client().invoke(FunctionName=name, Payload=b"{}")
    assert r["StatusCode"] == 200 and r["ExecutedVersion"] == "$LATEST"


def test_versions_and_qualifier(echo: Harness) -> None:
    echo.call(lambda: echo.registry.publish("echo"))
    c = echo.client()
    r = c.invoke(FunctionName="echo", Qualifier="1", Payload=b"{}")
    assert r["ExecutedVersion"] == "1"
    assert json.loads(r["Payload"].read())["version"] == "1"
    assert c.invoke(FunctionName="echo:1", Payload=b"{}")["ExecutedVersion"] == "1"


@pytest.mark.parametrize(("name", "qualifier"), [
    ("nope", None), ("echo", "9"), ("echo", "missing-alias"), ("echo:5", None),
    ("arn:aws:lambda:us-east-1:other-ns:function:echo", None),
])
def test_not_found(echo: Harness, name: str, qualifier: str | None) -> None:
    c = echo.client()
    kwargs = {"Qualifier": qualifier} if qualifier else {}
    with pytest.raises(c.exceptions.ResourceNotFoundException) as info:
        c.invoke(FunctionName=name, Payload=b"{}", **kwargs)
    assert info.value.response["Message"].startswith("Function not found: arn:aws:lambda:")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_dry_run(echo: Harness) -> None:
    c = echo.client()
    assert c.invoke(FunctionName="echo", InvocationType="DryRun")["StatusCode"] == 204
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.invoke(FunctionName="nope", InvocationType="DryRun")


def test_event_is_accepted_and_runs(platform: Harness, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    code = f"""
import json, os, pathlib
def handler(event, context):
    tmp = pathlib.Path({str(marks)!r}, "." + context.aws_request_id)
    tmp.write_text(json.dumps(event))
    os.replace(tmp, tmp.with_name(context.aws_request_id))  # appears complete
"""
    platform.call(lambda: platform.registry.add_function("mark", code))
    r = platform.client().invoke(FunctionName="mark", InvocationType="Event",
                                 Payload=b'{"n": 1}')
    assert r["StatusCode"] == 202
    rid = r["ResponseMetadata"]["RequestId"]
    wait_for(lambda: (marks / rid).exists())
    assert json.loads((marks / rid).read_text()) == {"n": 1}


def test_sync_payload_too_large(echo: Harness) -> None:
    c = echo.client()
    with pytest.raises(c.exceptions.RequestTooLargeException) as info:
        c.invoke(FunctionName="echo", Payload=b'"' + b"x" * 6_291_456 + b'"')
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert "6291456" in info.value.response["message"]


def test_async_payload_too_large(echo: Harness) -> None:
    c = echo.client()
    with pytest.raises(c.exceptions.RequestTooLargeException) as info:
        c.invoke(FunctionName="echo", InvocationType="Event",
                 Payload=b'"' + b"x" * 1_048_576 + b'"')
    assert "too large for the Event invocation type" in info.value.response["message"]


def test_invalid_json(echo: Harness) -> None:
    c = echo.client()
    with pytest.raises(c.exceptions.InvalidRequestContentException) as info:
        c.invoke(FunctionName="echo", Payload=b"{not json")
    assert info.value.response["message"].startswith("Could not parse request body into json")


@pytest.mark.parametrize("kwargs", [
    {"FunctionName": "echo:1", "Qualifier": "2"},
    {"FunctionName": "echo", "Qualifier": "bad qualifier"},
    {"FunctionName": "echo", "LogType": "Head"},
    {"FunctionName": "echo", "InvocationType": "Later"},
])
def test_invalid_parameters(echo: Harness, kwargs: dict[str, str]) -> None:
    c = echo.client()
    with pytest.raises(c.exceptions.InvalidParameterValueException):
        c.invoke(Payload=b"{}", **kwargs)


def test_client_context(echo: Harness) -> None:
    ctx = base64.b64encode(json.dumps({"custom": {"user": "ann"}}).encode()).decode()
    r = echo.client().invoke(FunctionName="echo", Payload=b"{}", ClientContext=ctx)
    assert json.loads(r["Payload"].read())["client_context"] == {"user": "ann"}
    c = echo.client()
    with pytest.raises(c.exceptions.InvalidRequestContentException):
        c.invoke(FunctionName="echo", Payload=b"{}", ClientContext="%%%")


def test_metrics_and_healthz(echo: Harness) -> None:
    echo.client().invoke(FunctionName="echo", Payload=b"{}")
    with urllib.request.urlopen(echo.endpoint + "/healthz", timeout=5) as resp:
        assert json.loads(resp.read()) == {"status": "ok"}
    with urllib.request.urlopen(echo.endpoint + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    labels = 'executed_version="$LATEST",function="echo",namespace="default",resource="echo"'
    assert f"klambda_invocations_total{{{labels}}} 1.0" in text
    assert "klambda_cold_starts_total" in text
    assert 'klambda_cold_start_phase_seconds_count{function="echo",namespace="default",' \
           'phase="init"} 1.0' in text
    assert 'klambda_environments{function="echo",namespace="default",state="idle",' \
           'version="$LATEST"} 1.0' in text


def test_namespace_from_arn_account(platform: Harness) -> None:
    platform.call(lambda: platform.registry.add_function("echo", ECHO, namespace="team-a"))
    c = platform.client()
    arn = "arn:aws:lambda:us-east-1:team-a:function:echo"
    body = json.loads(c.invoke(FunctionName=arn, Payload=b"{}")["Payload"].read())
    assert body["arn"] == arn
    assert c.invoke(FunctionName="team-a:function:echo", Payload=b"{}")["StatusCode"] == 200
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.invoke(FunctionName="echo", Payload=b"{}")  # plain names mean "default"
