"""awslambdaric 4.x (the official Python runtime client) through the agent's Runtime API.

A ``provided`` function whose ``bootstrap`` runs ``python -m awslambdaric app.handler``
must behave exactly like the built-in runtime: every case below runs against both and
compares. Covers: result, handler exception, init error (missing module, missing
function), client context, cognito identity, remaining time, non-JSON event, an
oversized response (the next invocation still succeeds although awslambdaric exits on
the 413), and that a crash of awslambdaric's process is a Runtime.ExitError followed by a
cold start.
"""

from __future__ import annotations

import json
import sys

import pytest

from .conftest import Environments, error_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

APP = """
import logging
STATE = {"calls": 0}

def handler(event, context):
    STATE["calls"] += 1
    if event.get("action") == "raise":
        raise KeyError("missing thing")
    if event.get("action") == "big":
        return "x" * (7 * 1024 * 1024)
    if event.get("action") == "exit":
        import os
        os._exit(4)
    cc = context.client_context
    return {
        "calls": STATE["calls"],
        "event": event,
        "remaining_ok": 0 < context.get_remaining_time_in_millis() <= 3000,
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "function": [context.function_name, context.function_version, context.memory_limit_in_mb],
        "custom": cc.custom if cc else None,
        "identity": context.identity.cognito_identity_id,
    }
"""

BOOTSTRAP = f'#!/bin/sh\nexec {sys.executable} -m awslambdaric "$_HANDLER"\n'


async def _pair(envs: Environments, files: dict[str, str], handler: str = "app.handler"):
    builtin, _ = await envs.function(files, name="builtin", handler=handler)
    ric, _ = await envs.function(
        {**files, "bootstrap": BOOTSTRAP}, name="ric", runtime="provided", handler=handler
    )
    return builtin.environment_id, ric.environment_id


async def test_results_match(envs: Environments) -> None:
    ids = await _pair(envs, {"app.py": APP})
    context = json.dumps({"custom": {"tenant": "t1"}, "client": {"app_title": "x"}, "env": {}})
    outs = []
    for env_id in ids:
        result = await envs.gateway.invoke(
            env_id,
            b'{"hello": "world"}',
            request_id="rq-same",
            invoked_function_arn="arn:aws:lambda:us-east-1:000000000000:function:fn:prod",
            client_context=context,
            cognito_identity='{"cognitoIdentityId": "cid", "cognitoIdentityPoolId": "pool"}',
        )
        assert result.function_error == ""
        outs.append(json.loads(result.payload))
    builtin, ric = outs
    assert ric == builtin
    assert ric == {
        "calls": 1,
        "event": {"hello": "world"},
        "remaining_ok": True,
        "request_id": "rq-same",
        "arn": "arn:aws:lambda:us-east-1:000000000000:function:fn:prod",
        "function": ["fn", "$LATEST", "128"],
        "custom": {"tenant": "t1"},
        "identity": "cid",
    }
    # Warm state persists in awslambdaric's process too.
    again = await envs.gateway.invoke(ids[1], b"{}")
    assert json.loads(again.payload)["calls"] == 2


async def test_handler_exception_matches(envs: Environments) -> None:
    ids = await _pair(envs, {"app.py": APP})
    errors = []
    for env_id in ids:
        result = await envs.gateway.invoke(env_id, b'{"action": "raise"}', request_id="rq-x")
        assert result.error_type == "KeyError"
        errors.append(error_of(result))
    builtin, ric = errors
    assert ric["errorType"] == builtin["errorType"] == "KeyError"
    assert ric["errorMessage"] == builtin["errorMessage"] == "'missing thing'"
    assert ric["requestId"] == builtin["requestId"] == "rq-x"
    assert [f.split(",")[1:] for f in ric["stackTrace"]] == [
        f.split(",")[1:] for f in builtin["stackTrace"]
    ]
    assert len(ric["stackTrace"]) == 1


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        (
            "nope.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'nope': No module named 'nope'",
        ),
        ("app.absent", "Runtime.HandlerNotFound", "Handler 'absent' missing on module 'app'"),
    ],
)
async def test_init_error_matches(
    envs: Environments, handler: str, error_type: str, message: str
) -> None:
    ids = await _pair(envs, {"app.py": APP}, handler=handler)
    for env_id in ids:
        assert envs.gateway.connections[env_id].ready_message.init_error_type == error_type
        result = await envs.gateway.invoke(env_id, b"{}")
        assert result.error_type == error_type
        error = error_of(result)
        assert error == {
            "errorMessage": message,
            "errorType": error_type,
            "requestId": "",
            "stackTrace": [],
        }
        assert result.init_duration_ms > 0


async def test_non_json_event_matches(envs: Environments) -> None:
    ids = await _pair(envs, {"app.py": APP})
    for env_id in ids:
        result = await envs.gateway.invoke(env_id, b"definitely not json")
        error = error_of(result)
        assert error["errorType"] == "Runtime.UnmarshalError"
        assert error["errorMessage"].startswith("Unable to unmarshal input: ")


async def test_crash_is_exit_error_then_cold(envs: Environments) -> None:
    _, ric = await _pair(envs, {"app.py": APP})
    result = await envs.gateway.invoke(ric, b'{"action": "exit"}', request_id="rq-die")
    assert error_of(result) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": "RequestId: rq-die Error: Runtime exited with error: exit status 4",
    }
    after = await envs.gateway.invoke(ric, b"{}")
    assert json.loads(after.payload)["calls"] == 1 and after.init_duration_ms > 0


async def test_oversized_response_then_next_invocation_succeeds(envs: Environments) -> None:
    ids = await _pair(envs, {"app.py": APP})
    for env_id in ids:
        big = await envs.gateway.invoke(env_id, b'{"action": "big"}')
        assert big.error_type == "Function.ResponseSizeTooLarge"
        # awslambdaric raises on the 413 and exits; the next invocation must not pay for
        # it: it runs (on a fresh runtime if needed) instead of failing.
        nxt = await envs.gateway.invoke(env_id, b"{}")
        assert nxt.function_error == "", nxt.payload
