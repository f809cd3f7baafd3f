"""A `provided` runtime running AWS's awslambdaric, end to end through the gateway, judged
against the built-in Python runtime running the very same handler (shared via a layer).

Covers (beyond tests/runtime, which drives agents directly): the bootstrap coming from a
*runtime layer* (not the function's code) and the layer's python/ importable; the context
object and the Lambda environment variables identical under both runtimes; a timeout
reported identically (Sandbox.Timedout, message, FunctionError, Tail log lines, and the
next invocation a cold start with Init Duration); a crash (Runtime.ExitError), a handler
exception, an init error (Runtime.ImportModuleError + INIT_REPORT) and running out of
memory (Runtime.OutOfMemory) identical; the client context under both; Powertools'
Logger under awslambdaric; and that the built-in runtime does not leak the platform's own
packages into functions (grpc, aiohttp, yaml, psutil, Powertools... are not importable
without a layer: isolated by ``klambda_runtime.pyruntime.isolation``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Layers, require, run_platform
from .localplatform import EXAMPLES, LocalPlatform

require("awslambdaric", "aws_lambda_powertools")

ARN = "arn:aws:lambda:us-east-1:000000000000:function"
RUNTIMES = ("rt-builtin", "rt-ric")


@pytest.fixture(scope="module")
def plat(tmp_path_factory: pytest.TempPathFactory,
         layer_manifests: Layers) -> Iterator[LocalPlatform]:
    yield from run_platform(tmp_path_factory, "provided",
                            [layer_manifests["powertools"], EXAMPLES / "provided.yaml",
                             EXAMPLES / "provided-powertools.yaml"])


@pytest.fixture(scope="module")
def lam(plat: LocalPlatform) -> Any:
    return plat.client()


def invoke(lam: Any, name: str, event: Any) -> tuple[dict[str, Any], Any, str]:
    r = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode(), LogType="Tail")
    return r, json.loads(r["Payload"].read()), base64.b64decode(r["LogResult"]).decode()


def normalise(value: Any, name: str, request_id: str) -> Any:
    text = json.dumps(value).replace(request_id, "<id>").replace(name, "<fn>")
    return json.loads(text)


def test_bootstrap_from_a_runtime_layer(lam: Any) -> None:
    _, body, _ = invoke(lam, "rt-ric", {"action": "context"})
    assert body["runtime"] == "awslambdaric"
    _, body, _ = invoke(lam, "rt-builtin", {"action": "context"})
    assert body["runtime"] == "builtin"


def test_context_and_environment_identical(lam: Any) -> None:
    seen = {}
    cc = base64.b64encode(json.dumps({"custom": {"k": "v"}, "env": {"e": "1"}}).encode())
    for name in RUNTIMES:
        r = lam.invoke(FunctionName=name, Payload=b'{"action": "context", "n": 1}',
                       ClientContext=cc.decode())
        body = json.loads(r["Payload"].read())
        assert "FunctionError" not in r, body
        request_id = r["ResponseMetadata"]["RequestId"]
        assert body["request_id"] == request_id
        seen[name] = normalise({k: v for k, v in body.items() if k != "runtime"},
                               name, request_id)
    assert seen["rt-builtin"] == seen["rt-ric"]
    ctx = seen["rt-ric"]
    assert ctx["arn"] == f"{ARN}:<fn>" and ctx["memory"] == "192"
    assert ctx["log_group"] == "/aws/lambda/<fn>"
    assert ctx["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "192"
    assert ctx["env"]["COMPAT"] == "yes" and ctx["env"]["TZ"] == ":UTC"
    assert ctx["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert ctx["client_context_custom"] == {"k": "v"}
    assert all(ctx[k] is True for k in ("log_stream_ok", "remaining_ok", "task_root_is_cwd",
                                         "runtime_api_set", "trace_set"))


def timeout_shape(lam: Any, name: str) -> Any:
    r, body, tail = invoke(lam, name, {"action": "sleep", "seconds": 5})
    request_id = r["ResponseMetadata"]["RequestId"]
    lines = tail.splitlines()
    report = next(line for line in lines if line.startswith("REPORT "))
    after_r, after_body, after_tail = invoke(lam, name, {"action": "context"})
    after_report = next(line for line in after_tail.splitlines()
                        if line.startswith("REPORT "))
    return normalise({
        "status": r["StatusCode"], "function_error": r.get("FunctionError"),
        "payload": body,
        "start": any(line.startswith(f"START RequestId: {request_id}") for line in lines),
        "end": f"END RequestId: {request_id}" in lines,
        "timed_out_line": any(line.endswith(f"RequestId: {request_id} Error: Task timed out "
                                            "after 1.00 seconds") for line in lines),
        "billed_at_least_timeout": int(re.search(r"Billed Duration: (\d+) ms",
                                                 report).group(1)) >= 1000,  # type: ignore[union-attr]
        "next_ok": "FunctionError" not in after_r and after_body["event"]["action"] == "context",
        "next_is_cold": "Init Duration: " in after_report,
    }, name, request_id)


def test_timeout_reported_identically(lam: Any) -> None:
    builtin = timeout_shape(lam, "rt-builtin")
    ric = timeout_shape(lam, "rt-ric")
    assert builtin == ric
    assert builtin["function_error"] == "Unhandled" and builtin["status"] == 200
    assert builtin["payload"] == {"errorType": "Sandbox.Timedout",
                                  "errorMessage": "RequestId: <id> Error: Task timed out "
                                                  "after 1.00 seconds"}
    assert all(builtin[k] is True for k in ("start", "end", "timed_out_line",
                                            "billed_at_least_timeout", "next_ok",
                                            "next_is_cold"))


def test_crash_reported_identically(lam: Any) -> None:
    shapes = []
    for name in RUNTIMES:
        r, body, _ = invoke(lam, name, {"action": "exit"})
        assert r["FunctionError"] == "Unhandled"
        shapes.append(normalise(body, name, r["ResponseMetadata"]["RequestId"]))
        again, after, _ = invoke(lam, name, {"action": "context"})
        assert "FunctionError" not in again, after
    assert shapes[0] == shapes[1]
    assert shapes[0]["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in shapes[0]["errorMessage"]


def test_exception_reported_identically(lam: Any) -> None:
    shapes = []
    for name in RUNTIMES:
        r, body, tail = invoke(lam, name, {"action": "raise", "n": 4})
        assert r["FunctionError"] == "Unhandled"
        request_id = r["ResponseMetadata"]["RequestId"]
        assert body["requestId"] == request_id
        assert "[ERROR] RuntimeError: boom 4" in tail
        shapes.append({"type": body["errorType"], "message": body["errorMessage"],
                       "frames": len(body["stackTrace"]),
                       "last": body["stackTrace"][-1].split(",")[-1]})
    assert shapes[0] == shapes[1]
    assert shapes[0]["type"] == "RuntimeError" and shapes[0]["message"] == "boom 4"


def test_init_error_reported_identically(lam: Any) -> None:
    shapes = []
    for name in ("rt-builtin-broken", "rt-ric-broken"):
        r, body, tail = invoke(lam, name, {})
        assert r["FunctionError"] == "Unhandled"
        assert "INIT_REPORT Init Duration: " in tail and "Phase: init" in tail
        shapes.append({k: body.get(k) for k in ("errorType", "errorMessage", "requestId")})
    assert shapes[0] == shapes[1]
    assert shapes[0] == {"errorType": "Runtime.ImportModuleError",
                         "errorMessage": "Unable to import module 'missing': No module named "
                                         "'missing'",
                         "requestId": ""}


def test_out_of_memory_reported_identically(lam: Any) -> None:
    shapes = []
    for name in RUNTIMES:
        r, body, tail = invoke(lam, name, {"action": "oom", "mb": 400})
        assert r["FunctionError"] == "Unhandled", body
        shapes.append(normalise(body, name, r["ResponseMetadata"]["RequestId"]))
        report = next(line for line in tail.splitlines() if line.startswith("REPORT "))
        used = re.search(r"Max Memory Used: (\d+) MB", report)
        assert used is not None and int(used.group(1)) >= 192, report
        again, after, _ = invoke(lam, name, {"action": "context"})
        assert "FunctionError" not in again, after
    assert shapes[0] == shapes[1]
    assert shapes[0]["errorType"] == "Runtime.OutOfMemory"


def test_powertools_logger_under_awslambdaric(lam: Any) -> None:
    r, body, tail = invoke(lam, "rt-ric-powertools", {})
    assert "FunctionError" not in r, body
    assert "/python/aws_lambda_powertools/" in body["powertools_file"]
    records = [json.loads(line) for line in tail.splitlines() if line.startswith("{")]
    record = next(rec for rec in records if rec.get("message") == "under awslambdaric")
    assert record["ric"] is True
    assert record["function_request_id"] == r["ResponseMetadata"]["RequestId"]
    assert record["function_name"] == "rt-ric-powertools"
    assert record["function_arn"] == f"{ARN}:rt-ric-powertools"
    assert str(record["function_memory_size"]) == "128"


def test_builtin_runtime_does_not_leak_platform_packages(lam: Any) -> None:
    _, body, _ = invoke(lam, "rt-builtin", {"action": "imports"})
    assert body == dict.fromkeys(body, False), body
