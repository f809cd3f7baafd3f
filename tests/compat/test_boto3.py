"""boto3 / botocore features beyond tests/gateway, against a real local platform.

Covers: `invoke(ClientContext=<base64 JSON>)` reaching `context.client_context.custom`,
`.env` and `.client` (every mobile-client field), and not for Event invocations; the trace
id variable; a streaming (file) Payload; the waiters `function_exists`, `function_active_v2`,
`function_updated_v2`, `published_version_active` (and `function_exists` giving up on an
unknown function); botocore's retry modes on 429: the default (standard in botocore 1.44,
3 attempts) and legacy (5 attempts) both end in `TooManyRequestsException` with `Reason`,
`Type` and `retryAfterSeconds`, and every attempt reaches the platform (counted in
/metrics); a read timeout retried by botocore runs the function twice, both run to
completion and no concurrency slot leaks; ListFunctions through the paginator; MaxItems /
Marker paging; the deprecated InvokeAsync API.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from .conftest import run_platform
from .localplatform import EXAMPLES, LocalPlatform, wait_for


@pytest.fixture(scope="module")
def plat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    yield from run_platform(tmp_path_factory, "boto3", [EXAMPLES / "boto3.yaml"])


@pytest.fixture(scope="module")
def lam(plat: LocalPlatform) -> Any:
    return plat.client()


def b64json(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def test_client_context_reaches_the_function(lam: Any) -> None:
    cc = {"custom": {"tenant": "t-1", "n": 2}, "env": {"platform": "android", "locale": "de"},
          "client": {"installation_id": "inst-9", "app_title": "Compat",
                     "app_version_name": "1.2", "app_version_code": "12",
                     "app_package_name": "io.klambda.compat"}}
    r = lam.invoke(FunctionName="b3-context", Payload=b'{"k": 1}', ClientContext=b64json(cc))
    body = json.loads(r["Payload"].read())
    assert "FunctionError" not in r, body
    assert body["custom"] == cc["custom"]
    assert body["env"] == cc["env"]
    assert body["client"] == cc["client"]
    assert body["identity"] == {"id": None, "pool": None}  # awslambdaric's shape without Cognito
    assert body["trace"].startswith("Root=1-")
    assert body["event"] == {"k": 1}


def test_no_client_context_is_none(lam: Any) -> None:
    body = json.loads(lam.invoke(FunctionName="b3-context", Payload=b"{}")["Payload"].read())
    assert body["custom"] is None and body["client"] is None


def test_client_context_is_for_sync_invocations_only(plat: LocalPlatform, lam: Any) -> None:
    # Lambda passes ClientContext to the function for synchronous invocations only
    r = lam.invoke(FunctionName="b3-context", InvocationType="Event", Payload=b'{"m": "cc-ev"}',
                   ClientContext=b64json({"custom": {"dropped": True}}))
    assert r["StatusCode"] == 202
    line = wait_for(lambda: next((x for x in plat.log("b3-context").splitlines()
                                  if "'cc-ev'" in x), None), what="the Event invocation ran")
    assert line.endswith("custom None")


def test_streaming_payload_from_a_file(lam: Any, tmp_path: Path) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"big": "x" * 200_000}))
    with path.open("rb") as f:
        r = lam.invoke(FunctionName="b3-context", Payload=f)
    assert len(json.loads(r["Payload"].read())["event"]["big"]) == 200_000


def test_waiters(lam: Any) -> None:
    fast = {"Delay": 1, "MaxAttempts": 3}
    lam.get_waiter("function_exists").wait(FunctionName="b3-context", WaiterConfig=fast)
    lam.get_waiter("function_active_v2").wait(FunctionName="b3-context", WaiterConfig=fast)
    lam.get_waiter("function_updated_v2").wait(FunctionName="b3-context", WaiterConfig=fast)
    lam.get_waiter("published_version_active").wait(FunctionName="b3-context", Qualifier="1",
                                                    WaiterConfig=fast)


def test_waiter_gives_up_on_unknown_function(lam: Any) -> None:
    with pytest.raises(botocore.exceptions.WaiterError) as info:
        lam.get_waiter("function_exists").wait(FunctionName="nope",
                                               WaiterConfig={"Delay": 1, "MaxAttempts": 2})
    assert "Max attempts exceeded" in str(info.value)


def throttled_attempts(plat: LocalPlatform, client: Any) -> tuple[dict[str, Any], float]:
    before = plat.metric("klambda_throttles_total", function="b3-throttled")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.invoke(FunctionName="b3-throttled", Payload=b"{}")
    err = info.value
    assert isinstance(err, client.exceptions.TooManyRequestsException)
    # the last attempt is counted right after its answer was sent: wait for it
    expected = err.response["ResponseMetadata"]["RetryAttempts"] + 1
    wait_for(lambda: plat.metric("klambda_throttles_total", function="b3-throttled")
             - before >= expected, timeout=5, what="every attempt counted")
    return err.response, plat.metric("klambda_throttles_total",
                                     function="b3-throttled") - before


def check_throttle_error(response: dict[str, Any]) -> None:
    assert response["Error"]["Code"] == "TooManyRequestsException"
    assert response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert response["Type"] == "User"
    assert response["retryAfterSeconds"] == "1"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429


def test_default_retries_then_too_many_requests(plat: LocalPlatform,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore 1.44's default retry mode is "standard" (3 attempts), not "legacy"
    for name in ("AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    response, attempts = throttled_attempts(plat, plat.client())
    check_throttle_error(response)
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert attempts == 3


def test_legacy_retries_then_too_many_requests(plat: LocalPlatform) -> None:
    client = plat.client(retries={"mode": "legacy"})  # older botocore's default
    response, attempts = throttled_attempts(plat, client)
    check_throttle_error(response)
    assert response["ResponseMetadata"]["RetryAttempts"] == 4
    assert attempts == 5


def test_list_functions_pages_with_max_items(lam: Any) -> None:
    first = lam.list_functions(MaxItems=1)
    assert len(first["Functions"]) == 1 and first.get("NextMarker")
    second = lam.list_functions(MaxItems=1, Marker=first["NextMarker"])
    assert len(second["Functions"]) == 1
    assert second["Functions"][0]["FunctionName"] != first["Functions"][0]["FunctionName"]
    versions = lam.list_versions_by_function(FunctionName="b3-context", MaxItems=1)
    assert [v["Version"] for v in versions["Versions"]] == ["$LATEST"]
    assert versions.get("NextMarker")


def test_list_functions_paginator_sees_everything(lam: Any) -> None:
    pages = lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 1})
    names = [f["FunctionName"] for page in pages for f in page["Functions"]]
    assert sorted(names) == ["b3-context", "b3-slow", "b3-throttled"]


def test_invoke_async_deprecated_api(plat: LocalPlatform, lam: Any) -> None:
    r = lam.invoke_async(FunctionName="b3-context", InvokeArgs=b'{"via": "invoke-async"}')
    assert r["Status"] == 202
    wait_for(lambda: "invoke-async" in plat.log("b3-context"), what="the function ran")
