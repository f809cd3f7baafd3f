"""Pure builders: REPORT/START/END lines, billing, the runtime's environment, layer paths,
Lambda's error payloads and Go-style exit descriptions, the settings parser, and the
/next header block.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from klambda_runtime import errors, reports
from klambda_runtime.outcomes import (
    InitOutcome,
    Outcome,
    decide,
    error_line,
    init_error_payload,
    invalid_entrypoint_payload,
)
from klambda_runtime.runtime_api import event_head
from klambda_runtime.runtime_env import build_runtime_env, layer_python_paths, log_stream_name
from klambda_runtime.settings import AgentSettings
from klambda_runtime.spec import EnvironmentSpec

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
SPEC = EnvironmentSpec(
    environment_id="e-1",
    gateway="127.0.0.1:1",
    namespace="default",
    function_name="fn",
    version="7",
    runtime="python3.12",
    handler="app.handler",
    code_dir="/code",
    opt_dir="/layers",
    memory_size=256,
    timeout=9,
    environment={"A": "1", "TZ": "Europe/Paris"},
)


@pytest.mark.parametrize(
    ("duration", "init", "expected"),
    [
        (
            12.344,
            0.0,
            (
                "REPORT RequestId: r\tDuration: 12.34 ms\tBilled Duration: 13 ms\t"
                "Memory Size: 128 MB\tMax Memory Used: 35 MB\t\n"
            ),
        ),
        (
            0.2,
            130.281,
            (
                "REPORT RequestId: r\tDuration: 0.20 ms\tBilled Duration: 1 ms\t"
                "Memory Size: 128 MB\tMax Memory Used: 35 MB\tInit Duration: 130.28 ms\t\n"
            ),
        ),
    ],
    ids=["warm", "cold-init-last"],
)
def test_report_line(duration: float, init: float, expected: str) -> None:
    assert (
        reports.report_line(
            "r",
            duration_ms=duration,
            memory_size_mb=128,
            max_memory_used_mb=35,
            init_duration_ms=init,
        )
        == expected
    )


def test_init_lines() -> None:
    assert (
        reports.init_start_line("python3.12") == "INIT_START Runtime Version: klambda:python3.12\n"
    )
    assert reports.init_report_line(
        duration_ms=12.345, status="error", error_type="Runtime.ExitError"
    ) == (
        "INIT_REPORT Init Duration: 12.35 ms\tPhase: init\tStatus: error\t"
        "Error Type: Runtime.ExitError\n"
    )


def test_start_end_and_tail() -> None:
    assert reports.start_line("r", version="$LATEST") == "START RequestId: r Version: $LATEST\n"
    assert reports.end_line("r") == "END RequestId: r\n"
    assert reports.tail(b"a" * 5000 + b"end") == (b"a" * 5000 + b"end")[-4096:]
    assert reports.tail(b"short") == b"short"
    assert reports.memory_mb(1) == 1 and reports.memory_mb(35 * 1024 * 1024 + 1) == 36


@pytest.mark.parametrize(
    ("returncode", "text"),
    [
        (1, "exit status 1"),
        (0, "exit status 0"),
        (-9, "signal: killed"),
        (-11, "signal: segmentation fault"),
        (-6, "signal: aborted"),
        (-15, "signal: terminated"),
    ],
)
def test_describe_exit(returncode: int, text: str) -> None:
    assert errors.describe_exit(returncode) == text


def test_platform_payloads() -> None:
    assert json.loads(errors.timeout_payload("r", timeout_s=3)) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": "RequestId: r Error: Task timed out after 3.00 seconds",
    }
    assert json.loads(errors.exit_payload("r", returncode=-9))["errorMessage"] == (
        "RequestId: r Error: Runtime exited with error: signal: killed"
    )
    assert json.loads(errors.oom_payload("r"))["errorType"] == "Runtime.OutOfMemory"
    assert errors.error_type_of(b'{"errorType": "X"}') == "X"
    assert errors.error_type_of(b'{"errorType": "X"}', "H") == "H"
    assert errors.error_type_of(b"garbage") == "Runtime.Unknown"


def test_runtime_env() -> None:
    env = build_runtime_env(
        SPEC,
        api_address="127.0.0.1:5",
        host_env={"PATH": "/usr/bin", "SECRET": "s"},
        python_version=(3, 12),
        now=NOW,
    )
    assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:5"
    assert env["TZ"] == ":UTC"  # reserved variables win over the function's
    assert env["A"] == "1"
    assert "SECRET" not in env
    assert env["PATH"] == "/usr/bin:/layers/bin"
    assert env["LD_LIBRARY_PATH"] == "/code/lib:/layers/lib"
    assert env["PYTHONPATH"] == "/layers/python:/layers/python/lib/python3.12/site-packages"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"].startswith("2026/03/04/[7]")
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"


def test_interpreter_directory_leads_path() -> None:
    env = build_runtime_env(
        SPEC,
        api_address="a:1",
        host_env={"PATH": "/usr/bin"},
        python_version=(3, 12),
        now=NOW,
        lang_bin="/venv/bin",
    )
    assert env["PATH"] == "/venv/bin:/usr/bin:/layers/bin"
    again = build_runtime_env(
        SPEC,
        api_address="a:1",
        host_env={"PATH": "/venv/bin:/usr/bin"},
        python_version=(3, 12),
        now=NOW,
        lang_bin="/venv/bin",
    )
    assert again["PATH"] == "/venv/bin:/usr/bin:/layers/bin"


def test_provided_env_has_no_execution_env() -> None:
    from dataclasses import replace

    env = build_runtime_env(
        replace(SPEC, runtime="provided", opt_dir=""),
        api_address="a:1",
        host_env={},
        python_version=(3, 11),
        now=NOW,
    )
    assert "AWS_EXECUTION_ENV" not in env and "PYTHONPATH" not in env


def test_layer_paths_and_stream_name() -> None:
    assert layer_python_paths("", python_version=(3, 11)) == []
    assert layer_python_paths("/o", python_version=(3, 11)) == [
        "/o/python",
        "/o/python/lib/python3.11/site-packages",
    ]
    assert log_stream_name(SPEC, now=NOW) == log_stream_name(SPEC, now=NOW)


def test_settings_from_env() -> None:
    assert AgentSettings.from_env({}).reconnect_max_s == 2.0
    assert AgentSettings.from_env({"KLAMBDA_AGENT_RECONNECT_MAX": "0.5"}).reconnect_max_s == 0.5
    with pytest.raises(errors.SettingsError, match="is not a number"):
        AgentSettings.from_env({"KLAMBDA_AGENT_RECONNECT_MAX": "soon"})


def test_event_head_is_single_line_headers() -> None:
    head = event_head(
        request_id="r",
        deadline_ms=5,
        invoked_function_arn="arn",
        trace_id="",
        client_context='{\n"a": 1}',
        cognito_identity="",
        body_length=2,
    )
    assert head.endswith(b"Content-Length: 2\r\n\r\n")
    assert b'Lambda-Runtime-Client-Context: {"a":1}\r\n' in head
    assert b"Lambda-Runtime-Trace-Id" not in head


@pytest.mark.parametrize(
    ("outcome", "expected_type", "function_error", "resets"),
    [
        (Outcome("response", b'"ok"'), "", "", False),
        (Outcome("error", b"{}", "ValueError"), "ValueError", "Unhandled", False),
        (Outcome("too_large"), "Function.ResponseSizeTooLarge", "Unhandled", False),
        (Outcome("timeout"), "Sandbox.Timedout", "Unhandled", True),
        (Outcome("exit", returncode=-9), "Runtime.ExitError", "Unhandled", True),
        (Outcome("oom"), "Runtime.OutOfMemory", "Unhandled", True),
    ],
    ids=lambda v: v.kind if isinstance(v, Outcome) else None,
)
def test_decide(outcome: Outcome, expected_type: str, function_error: str, resets: bool) -> None:
    got_error, got_type, payload = decide(outcome, "r", timeout_s=2)
    assert (got_error, got_type, outcome.resets) == (function_error, expected_type, resets)
    if outcome.kind == "timeout":
        assert b"Task timed out after 2.00 seconds" in payload
    if outcome.kind == "response":
        assert payload == b'"ok"'


def test_init_error_payloads() -> None:
    exit_init = InitOutcome(5.0, "Runtime.ExitError", returncode=2)
    assert json.loads(init_error_payload(exit_init, "r"))["errorMessage"].endswith("exit status 2")
    body = b'{"errorType": "Runtime.ImportModuleError"}'
    assert init_error_payload(InitOutcome(5.0, "Runtime.ImportModuleError", body), "r") == body
    assert (
        json.loads(init_error_payload(InitOutcome(1.0, "Runtime.OutOfMemory"), "r"))["errorType"]
        == "Runtime.OutOfMemory"
    )
    missing = json.loads(invalid_entrypoint_payload(FileNotFoundError("no bootstrap")))
    assert missing["errorType"] == "Runtime.InvalidEntrypoint"


def test_error_line() -> None:
    line = error_line(errors.timeout_payload("r", timeout_s=1), now=NOW)
    assert (
        line == "2026-03-04T05:06:07.000Z RequestId: r Error: Task timed out after 1.00 seconds\n"
    )
    assert error_line(b"not json", now=NOW) == ""


def test_agent_failure_result_is_lambda_shaped() -> None:
    from klambda_runtime.agent import agent_failure_result

    result = agent_failure_result("r", RuntimeError("bug"))
    assert result.function_error == "Unhandled" and result.error_type == "Runtime.Unknown"
    assert json.loads(result.payload)["errorMessage"].endswith("RuntimeError: bug")


def test_builtin_runtime_imports_only_the_standard_library() -> None:
    """The built-in runtime stays small and fork-friendly: no grpc, aiohttp, psutil."""
    import subprocess
    import sys

    code = (
        "import sys; import klambda_runtime.pyruntime.bootstrap, klambda_runtime.pyruntime.client;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'grpc', 'aiohttp', 'psutil', 'google', 'klambda_proto'});"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
