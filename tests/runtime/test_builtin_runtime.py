"""The built-in Python runtime through a real agent and a real gRPC gateway.

Covers: results and warm state, an empty payload (the handler gets ``{}``), the context
object (every attribute, client context, cognito identity, remaining time), print/logging capture in Lambda's format and the log
tail with START/END/REPORT, handler exceptions shaped like Lambda's, every init error
type (malformed handler, missing module, missing function, syntax error, exception at
import), per-invoke faults (non-JSON event, unserialisable result), 7 MB responses,
bytes results, layers on sys.path, the runtime's environment variables, and that an
init error is retried on the next invocation.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from .conftest import PLATFORM_RUNTIME, Environments, error_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

APP = """
import json, logging, os, sys
logger = logging.getLogger()
logger.setLevel(logging.INFO)
STATE = {"calls": 0}

def handler(event, context):
    STATE["calls"] += 1
    action = event.get("action") if isinstance(event, dict) else None
    if action == "context":
        cc = context.client_context
        return {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": context.aws_request_id,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "remaining": context.get_remaining_time_in_millis(),
            "identity": [context.identity.cognito_identity_id,
                         context.identity.cognito_identity_pool_id],
            "client_custom": cc.custom if cc else None,
            "client_env": cc.env if cc else None,
            "client_app_title": cc.client.app_title if cc and cc.client else None,
        }
    if action == "env":
        return {k: os.environ.get(k) for k in event["keys"]}
    if action == "log":
        print("printed line")
        logger.info("logged %s", "info")
        logger.debug("hidden debug")
        return "ok"
    if action == "raise":
        raise ValueError("bad value " + str(event.get("n")))
    if action == "unprintable":
        class Odd(Exception):
            def __str__(self):
                raise RuntimeError("no")
        raise Odd()
    if action == "unserialisable":
        return {1, 2, 3}
    if action == "big":
        return "x" * (7 * 1024 * 1024)
    if action == "almost":
        return "y" * (6291556 - 2)  # with its JSON quotes: exactly the limit
    if action == "bytes":
        return b"raw-bytes"
    if action == "unicode":
        return {"text": "h\\u00e9llo"}
    return {"calls": STATE["calls"], "event": event}
"""


async def test_result_and_warm_state(envs: Environments) -> None:
    spec, _ = await envs.function({"app.py": APP})
    gw = envs.gateway
    first = await gw.invoke(spec.environment_id, b'{"k": "v"}')
    assert first.function_error == ""
    assert json.loads(first.payload) == {"calls": 1, "event": {"k": "v"}}
    assert first.init_duration_ms > 0
    second = await gw.invoke(spec.environment_id, b"{}")
    assert json.loads(second.payload)["calls"] == 2  # module state survived: warm
    assert second.init_duration_ms == 0
    assert second.duration_ms > 0 and second.billed_duration_ms >= 1
    assert second.max_memory_used_mb > 0


async def test_empty_payload_is_an_empty_object(envs: Environments) -> None:
    spec, _ = await envs.function({"app.py": APP})
    result = await envs.gateway.invoke(spec.environment_id, b"")
    assert json.loads(result.payload) == {"calls": 1, "event": {}}


async def test_context_attributes(envs: Environments) -> None:
    spec, _ = await envs.function({"app.py": APP}, memory_size=256, timeout=7, version="3")
    arn = "arn:aws:lambda:us-east-1:000000000000:function:fn:live"
    client_context = json.dumps(
        {"client": {"app_title": "demo"}, "custom": {"k": "v"}, "env": {"platform": "x"}}
    )
    cognito = json.dumps({"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"})
    result = await envs.gateway.invoke(
        spec.environment_id,
        b'{"action": "context"}',
        request_id="req-ctx-1",
        invoked_function_arn=arn,
        client_context=client_context,
        cognito_identity=cognito,
    )
    ctx = json.loads(result.payload)
    assert ctx["function_name"] == "fn"
    assert ctx["function_version"] == "3"
    assert ctx["invoked_function_arn"] == arn
    assert ctx["memory_limit_in_mb"] == "256"  # a string, as in Lambda
    assert ctx["aws_request_id"] == "req-ctx-1"
    assert ctx["log_group_name"] == "/aws/lambda/fn"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[3\][0-9a-f]{32}", ctx["log_stream_name"])
    assert 6000 < ctx["remaining"] <= 7000
    assert ctx["identity"] == ["id-1", "pool-1"]
    assert ctx["client_custom"] == {"k": "v"}
    assert ctx["client_env"] == {"platform": "x"}
    assert ctx["client_app_title"] == "demo"


async def test_default_arn_and_environment_variables(envs: Environments, tmp_path) -> None:
    opt = tmp_path / "opt"
    (opt / "bin").mkdir(parents=True)
    spec, _ = await envs.function(
        {"app.py": APP},
        environment={"GREETING": "hi", "AWS_LAMBDA_MAX_CONCURRENCY": "4"},
        opt_dir=str(opt),
        region="eu-west-1",
    )
    keys = [
        "AWS_LAMBDA_RUNTIME_API",
        "_HANDLER",
        "LAMBDA_TASK_ROOT",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "TZ",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "GREETING",
        "AWS_LAMBDA_MAX_CONCURRENCY",
        "_LAMBDA_TELEMETRY_LOG_FD",
        "PATH",
        "KLAMBDA_ENV_ID",
        "_X_AMZN_TRACE_ID",
    ]
    result = await envs.gateway.invoke(
        spec.environment_id, json.dumps({"action": "env", "keys": keys}), trace_id="Root=1-abc"
    )
    env = json.loads(result.payload)
    assert re.fullmatch(r"127\.0\.0\.1:\d+", env["AWS_LAMBDA_RUNTIME_API"])
    assert env["_HANDLER"] == "app.handler"
    assert env["LAMBDA_TASK_ROOT"] == spec.code_dir
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "fn"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["TZ"] == ":UTC"
    assert env["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{PLATFORM_RUNTIME}"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert env["GREETING"] == "hi"
    assert env["AWS_LAMBDA_MAX_CONCURRENCY"] is None  # never passed to a runtime
    assert env["_LAMBDA_TELEMETRY_LOG_FD"] is None
    assert env["KLAMBDA_ENV_ID"] is None  # the agent's description does not leak
    assert env["PATH"].split(":")[-1] == str(opt / "bin")
    assert env["_X_AMZN_TRACE_ID"] == "Root=1-abc"


async def test_print_and_logging_in_lambda_format_and_tail(envs: Environments) -> None:
    spec, _ = await envs.function({"app.py": APP})
    result = await envs.gateway.invoke(
        spec.environment_id, b'{"action": "log"}', request_id="rq-log"
    )
    tail = result.log_tail.decode()
    lines = tail.splitlines()
    assert lines[0] == "START RequestId: rq-log Version: $LATEST"
    assert "printed line" in lines
    assert any(
        re.fullmatch(r"\[INFO\]\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\trq-log\tlogged info", line)
        for line in lines
    ), lines
    assert "hidden debug" not in tail
    assert lines[-2] == "END RequestId: rq-log"
    assert re.fullmatch(
        r"REPORT RequestId: rq-log\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
        r"Memory Size: 128 MB\tMax Memory Used: \d+ MB\tInit Duration: \d+\.\d\d ms\t",
        lines[-1],
    ), lines[-1]
    # The same lines land in the environment's log file.
    log = Path(spec.log_path).read_text()
    assert "START RequestId: rq-log" in log and "printed line" in log


async def test_handler_exception_shape(envs: Environments) -> None:
    spec, _ = await envs.function({"app.py": APP})
    result = await envs.gateway.invoke(
        spec.environment_id, b'{"action": "raise", "n": 7}', request_id="rq-err"
    )
    error = error_of(result)
    assert result.error_type == "ValueError"
    assert set(error) == {"errorMessage", "errorType", "requestId", "stackTrace"}
    assert error["errorMessage"] == "bad value 7"
    assert error["errorType"] == "ValueError"
    assert error["requestId"] == "rq-err"
    assert len(error["stackTrace"]) == 1  # only the user's frame, none of the runtime's
    assert error["stackTrace"][0].startswith(f'  File "{spec.code_dir}/app.py", line ')
    assert "in handler" in error["stackTrace"][0]
    tail = result.log_tail.decode()
    assert "[ERROR] ValueError: bad value 7\rTraceback (most recent call last):\r" in tail
    # The environment is not reset by a handler exception.
    again = await envs.gateway.invoke(spec.environment_id, b"{}")
    assert again.function_error == "" and again.init_duration_ms == 0
    assert not result.environment_reset


@pytest.mark.parametrize(
    ("handler", "files", "error_type", "message"),
    [
        pytest.param(
            "app",
            {"app.py": APP},
            "Runtime.MalformedHandlerName",
            "Bad handler 'app': not enough values to unpack (expected 2, got 1)",
            id="no-dot",
        ),
        pytest.param(
            "app.", {"app.py": APP}, "Runtime.MalformedHandlerName", None, id="trailing-dot"
        ),
        pytest.param("", {"app.py": APP}, "Runtime.MalformedHandlerName", None, id="empty"),
        pytest.param(
            ".handler", {"app.py": APP}, "Runtime.MalformedHandlerName", None, id="no-module"
        ),
        pytest.param(
            "../evil.handler",
            {"app.py": APP},
            "Runtime.MalformedHandlerName",
            None,
            id="relative-path",
        ),
        pytest.param(
            "a..b", {"app.py": APP}, "Runtime.MalformedHandlerName", None, id="empty-segment"
        ),
        pytest.param(
            "my-app.handler", {"my-app.py": APP}, None, None, id="dash-in-file-name-works"
        ),
        pytest.param(
            "app.handler.extra",
            {"app.py": APP},
            "Runtime.ImportModuleError",
            "Unable to import module 'app.handler': No module named 'app.handler'; "
            "'app' is not a package",
            id="too-many-dots",
        ),
        pytest.param(
            "pkg/mod.handler",
            {"app.py": APP, "pkg/__init__.py": "", "pkg/mod.py": APP},
            None,
            None,
            id="package-path-works",
        ),
        pytest.param(
            "nope.handler",
            {"app.py": APP},
            "Runtime.ImportModuleError",
            "Unable to import module 'nope': No module named 'nope'",
            id="missing-module",
        ),
        pytest.param(
            "app.missing",
            {"app.py": APP},
            "Runtime.HandlerNotFound",
            "Handler 'missing' missing on module 'app'",
            id="missing-function",
        ),
        pytest.param(
            "app.handler",
            {"app.py": "def handler(event, context)\n    return 1\n"},
            "Runtime.UserCodeSyntaxError",
            None,
            id="syntax-error",
        ),
        pytest.param(
            "app.handler",
            {"app.py": "import not_installed_pkg\n"},
            "Runtime.ImportModuleError",
            "Unable to import module 'app': No module named 'not_installed_pkg'",
            id="import-inside-module",
        ),
        pytest.param(
            "app.handler",
            {"app.py": "raise RuntimeError('boom at init')\n"},
            "RuntimeError",
            "boom at init",
            id="exception-at-import",
        ),
        pytest.param(
            "sys.handler",
            {"app.py": APP},
            "Runtime.BuiltInModuleConflict",
            None,
            id="builtin-module",
        ),
    ],
)
async def test_init_errors(
    envs: Environments,
    handler: str,
    files: dict[str, str],
    error_type: str | None,
    message: str | None,
) -> None:
    spec, _ = await envs.function(files, handler=handler)
    ready = envs.gateway.connections[spec.environment_id].ready_message
    if error_type is None:  # a valid handler string: it just works
        assert ready.init_error_type == ""
        ok = await envs.gateway.invoke(spec.environment_id, b"{}")
        assert ok.function_error == "", ok.payload
        return
    assert ready.init_error_type == error_type
    result = await envs.gateway.invoke(spec.environment_id, b"{}", request_id="rq-init")
    error = error_of(result)
    assert result.error_type == error_type
    assert error["errorType"] == error_type
    if message is not None:
        assert error["errorMessage"] == message
    assert error["requestId"] == ""  # init errors carry no request id, as in Lambda
    assert result.init_duration_ms > 0
    assert result.environment_reset
    # Init is retried for the next invocation (and fails the same way).
    again = await envs.gateway.invoke(spec.environment_id, b"{}")
    assert again.error_type == error_type and again.init_duration_ms > 0


async def test_syntax_error_message(envs: Environments) -> None:
    spec, _ = await envs.function(
        {"app.py": "def handler(event, context)\n    return 1\n"}, handler="app.handler"
    )
    error = error_of(await envs.gateway.invoke(spec.environment_id, b"{}"))
    assert error["errorMessage"].startswith("Syntax error in module 'app': ")
    assert error["stackTrace"][0].startswith(f'  File "{spec.code_dir}/app.py" Line 1')


@pytest.mark.parametrize(
    ("payload", "error_type", "prefix"),
    [
        pytest.param(
            b"not json", "Runtime.UnmarshalError", "Unable to unmarshal input: ", id="text"
        ),
        pytest.param(b'{"a":', "Runtime.UnmarshalError", "Unable to unmarshal input: ", id="cut"),
        pytest.param(
            b"\xff\xfe", "Runtime.UnmarshalError", "Unable to unmarshal input: ", id="binary"
        ),
        pytest.param(
            b'{"action": "unprintable"}', "Odd", "<unprintable Odd object>", id="unprintable"
        ),
        pytest.param(
            b'{"action": "unserialisable"}',
            "Runtime.MarshalError",
            "Unable to marshal response: Object of type set is not JSON serializable",
            id="set",
        ),
    ],
)
async def test_per_invoke_faults(
    envs: Environments, payload: bytes, error_type: str, prefix: str
) -> None:
    spec, _ = await envs.function({"app.py": APP})
    result = await envs.gateway.invoke(spec.environment_id, payload, request_id="rq-fault")
    error = error_of(result)
    assert result.error_type == error_type == error["errorType"]
    assert error["errorMessage"].startswith(prefix)
    assert error["requestId"] == "rq-fault"
    # Still warm: the next good event works without a new init.
    ok = await envs.gateway.invoke(spec.environment_id, b"{}")
    assert ok.function_error == "" and ok.init_duration_ms == 0


async def test_seven_megabyte_response_is_too_large(envs: Environments) -> None:
    spec, _ = await envs.function({"app.py": APP})
    result = await envs.gateway.invoke(spec.environment_id, b'{"action": "big"}')
    assert error_of(result) == {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
    }
    assert result.error_type == "Function.ResponseSizeTooLarge"
    ok = await envs.gateway.invoke(spec.environment_id, b"{}")
    assert ok.function_error == ""
    limit = await envs.gateway.invoke(spec.environment_id, b'{"action": "almost"}')
    assert limit.function_error == "" and len(limit.payload) == 6291556


async def test_bytes_and_unicode_results(envs: Environments) -> None:
    spec, _ = await envs.function({"app.py": APP}, runtime="python3.12")
    raw = await envs.gateway.invoke(spec.environment_id, b'{"action": "bytes"}')
    assert raw.payload == b"raw-bytes"
    text = await envs.gateway.invoke(spec.environment_id, b'{"action": "unicode"}')
    # python3.12 encodes with ensure_ascii=False, as Lambda's runtime does.
    assert text.payload.decode() == '{"text": "h\u00e9llo"}'


async def test_layer_python_directory_is_importable(envs: Environments, tmp_path) -> None:
    opt = tmp_path / "opt"
    (opt / "python").mkdir(parents=True)
    (opt / "python" / "layer_mod.py").write_text("VALUE = 'from the layer'\n")
    import sys

    site = opt / "python" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    (site / "site-packages").mkdir(parents=True)
    (site / "site-packages" / "layer_pkg.py").write_text("VALUE = 'from site-packages'\n")
    app = (
        "import layer_mod, layer_pkg, sys\n"
        "def handler(event, context):\n"
        "    return [layer_mod.VALUE, layer_pkg.VALUE, sys.path[:3]]\n"
    )
    spec, _ = await envs.function({"app.py": app}, opt_dir=str(opt))
    value, site_value, path = json.loads((await envs.gateway.invoke(spec.environment_id)).payload)
    assert value == "from the layer" and site_value == "from site-packages"
    # Lambda's order: the task root, the layer's site-packages, then its python/.
    assert path == [spec.code_dir, str(site / "site-packages"), str(opt / "python")]


async def test_log_tail_is_last_4kb(envs: Environments) -> None:
    app = "def handler(event, context):\n    for i in range(400):\n        print('line', i, 'x' * 20)\n"
    spec, _ = await envs.function({"app.py": app})
    result = await envs.gateway.invoke(spec.environment_id, b"{}")
    assert len(result.log_tail) == 4096
    assert result.log_tail.decode().splitlines()[-1].startswith("REPORT RequestId:")
    assert base64.b64encode(result.log_tail)  # what the gateway puts in X-Amz-Log-Result
