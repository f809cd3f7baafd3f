"""The AWS CLI v1 (the `awscli` package, run as real `aws` subprocesses with dummy
credentials) against a real local platform.

Covers: `aws lambda invoke` stdout JSON (StatusCode, ExecutedVersion) and the outfile;
`--payload file://`; `--client-context`; non-ASCII payloads; FunctionError for a failing
function; LogResult with `--log-type Tail` (the last 4 KB); `--invocation-type Event` ->
202 and the function runs (also for a throttled function: Lambda queues it); DryRun ->
204; qualifiers (`--qualifier`, `name:alias`); a klambda namespace as the ARN's account;
service errors on stderr with exit 255 (unknown function, non-JSON payload, throttling
after the CLI's default retries); the management subset (get-function,
get-function-configuration, list-functions, publish-version, list-versions-by-function,
list-aliases, get-alias, PreconditionFailed on publish-version) and `aws lambda wait`;
list-aliases --function-version.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import require, run_platform
from .localplatform import EXAMPLES, LocalPlatform, wait_for

require("awscli")

ARN = "arn:aws:lambda:us-east-1:000000000000:function"


@pytest.fixture(scope="module")
def plat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    yield from run_platform(tmp_path_factory, "awscli", [EXAMPLES / "awscli.yaml"])


def invoke(plat: LocalPlatform, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], str, str]:
    """`aws lambda invoke ARGS out.json` -> (exit code, stdout JSON, outfile text, stderr)."""
    out = tmp_path / "out.json"
    out.unlink(missing_ok=True)
    cp = plat.aws("lambda", "invoke", *args, str(out), cwd=tmp_path)
    stdout = json.loads(cp.stdout) if cp.returncode == 0 else {}
    return cp.returncode, stdout, out.read_text() if out.exists() else "", cp.stderr


def test_invoke_sync(plat: LocalPlatform, tmp_path: Path) -> None:
    rc, stdout, body, err = invoke(plat, tmp_path, "--function-name", "cli-hello",
                                   "--payload", '{"name":"x"}')
    assert rc == 0, err
    assert stdout == {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
    assert json.loads(body) == {"hello": "x", "version": "$LATEST"}


def test_invoke_payload_from_file_and_full_arn(plat: LocalPlatform, tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text('{"name": "from-file"}')
    rc, stdout, body, err = invoke(plat, tmp_path, "--function-name", f"{ARN}:cli-hello",
                                   "--payload", "file://in.json")
    assert rc == 0, err
    assert stdout["StatusCode"] == 200
    assert json.loads(body)["hello"] == "from-file"


def test_invoke_function_error(plat: LocalPlatform, tmp_path: Path) -> None:
    rc, stdout, body, err = invoke(plat, tmp_path, "--function-name", "cli-fail",
                                   "--payload", '{"x": 7}')
    assert rc == 0, err  # a function error is not a CLI error
    assert stdout == {"StatusCode": 200, "FunctionError": "Unhandled",
                      "ExecutedVersion": "$LATEST"}
    error = json.loads(body)
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "cannot handle 7"
    assert error["requestId"] and isinstance(error["stackTrace"], list)


def test_invoke_log_tail(plat: LocalPlatform, tmp_path: Path) -> None:
    rc, stdout, _, err = invoke(plat, tmp_path, "--function-name", "cli-hello",
                                "--payload", '{"name":"tail"}', "--log-type", "Tail")
    assert rc == 0, err
    log = base64.b64decode(stdout["LogResult"]).decode()
    lines = log.splitlines()
    start = next(line for line in lines if line.startswith("START RequestId: "))
    request_id = start.split()[2]
    assert start.endswith("Version: $LATEST")
    assert 'got {"name": "tail"}' in lines
    assert f"END RequestId: {request_id}" in lines
    report = next(line for line in lines if line.startswith("REPORT RequestId: "))
    assert request_id in report and "\tDuration: " in report and "Max Memory Used: " in report


def test_invoke_log_tail_is_the_last_4_kb(plat: LocalPlatform, tmp_path: Path) -> None:
    rc, stdout, _, err = invoke(plat, tmp_path, "--function-name", "cli-hello", "--payload",
                                '{"noise_lines": 100}', "--log-type", "Tail")
    assert rc == 0, err
    log = base64.b64decode(stdout["LogResult"])
    assert 4000 <= len(log) <= 4096
    assert b"START RequestId" not in log  # cut from the front
    assert log.decode().splitlines()[-1].startswith("REPORT RequestId: ")


def test_invoke_unicode(plat: LocalPlatform, tmp_path: Path) -> None:
    rc, _, body, err = invoke(plat, tmp_path, "--function-name", "cli-hello",
                              "--payload", '{"name": "Zoë ☃ 😀"}', "--log-type", "Tail")
    assert rc == 0, err
    assert json.loads(body)["hello"] == "Zoë ☃ 😀"
    assert "Zoë ☃ 😀" in plat.log("cli-hello")


def test_invoke_event_is_202_and_runs(plat: LocalPlatform, tmp_path: Path) -> None:
    rc, stdout, body, err = invoke(plat, tmp_path, "--function-name", "cli-hello",
                                   "--invocation-type", "Event",
                                   "--payload", '{"name":"async-cli"}')
    assert rc == 0, err
    assert stdout == {"StatusCode": 202}
    assert body == ""
    wait_for(lambda: 'got {"name": "async-cli"}' in plat.log("cli-hello"),
             what="the Event invocation ran")


def test_invoke_event_to_a_throttled_function_is_accepted(plat: LocalPlatform,
                                                          tmp_path: Path) -> None:
    # Lambda queues Event invocations and retries throttles internally: 202, not 429
    rc, stdout, _, err = invoke(plat, tmp_path, "--function-name", "cli-throttled-async",
                                "--invocation-type", "Event")
    assert rc == 0, err
    assert stdout == {"StatusCode": 202}


def test_invoke_client_context(plat: LocalPlatform, tmp_path: Path) -> None:
    context = base64.b64encode(json.dumps({"custom": {"from": "cli"}}).encode()).decode()
    rc, _, body, err = invoke(plat, tmp_path, "--function-name", "cli-hello",
                              "--client-context", context)
    assert rc == 0, err
    assert json.loads(body)["custom"] == {"from": "cli"}


def test_invoke_dry_run_is_204(plat: LocalPlatform, tmp_path: Path) -> None:
    rc, stdout, body, err = invoke(plat, tmp_path, "--function-name", "cli-hello",
                                   "--invocation-type", "DryRun")
    assert rc == 0, err
    assert stdout == {"StatusCode": 204}
    assert body == ""


def test_invoke_qualifiers(plat: LocalPlatform, tmp_path: Path) -> None:
    rc, stdout, body, err = invoke(plat, tmp_path, "--function-name", "cli-hello",
                                   "--qualifier", "live", "--payload", "{}")
    assert rc == 0, err
    assert stdout["ExecutedVersion"] == "1" and json.loads(body)["version"] == "1"
    rc, stdout, body, err = invoke(plat, tmp_path, "--function-name", "cli-hello:1")
    assert rc == 0, err
    assert stdout["ExecutedVersion"] == "1"


def test_invoke_namespace_arn(plat: LocalPlatform, tmp_path: Path) -> None:
    arn = "arn:aws:lambda:us-east-1:team-a:function:cli-ns"
    rc, stdout, body, err = invoke(plat, tmp_path, "--function-name", arn)
    assert rc == 0, err
    assert stdout["StatusCode"] == 200 and json.loads(body) == {"arn": arn}
    conf = aws_json(plat, "get-function-configuration", "--function-name",
                    "team-a:function:cli-ns")
    assert conf["FunctionArn"] == arn
    rc, _, _, err = invoke(plat, tmp_path, "--function-name", "cli-ns")  # not in default
    assert rc == 255 and f"Function not found: {ARN}:cli-ns" in err


def test_unknown_function_exit_255(plat: LocalPlatform, tmp_path: Path) -> None:
    rc, _, body, err = invoke(plat, tmp_path, "--function-name", "nope")
    assert rc == 255
    assert ("An error occurred (ResourceNotFoundException) when calling the Invoke operation: "
            f"Function not found: {ARN}:nope") in err
    assert body == ""


def test_unknown_alias_exit_255(plat: LocalPlatform, tmp_path: Path) -> None:
    rc, _, _, err = invoke(plat, tmp_path, "--function-name", "cli-hello",
                           "--qualifier", "nosuch")
    assert rc == 255
    assert f"(ResourceNotFoundException) when calling the Invoke operation: Function not " \
           f"found: {ARN}:cli-hello:nosuch" in err


def test_non_json_payload_exit_255(plat: LocalPlatform, tmp_path: Path) -> None:
    rc, _, _, err = invoke(plat, tmp_path, "--function-name", "cli-hello",
                           "--payload", "not json")
    assert rc == 255
    assert "An error occurred (InvalidRequestContentException) when calling the Invoke " \
           "operation: Could not parse request body into json" in err


def test_throttled_after_cli_retries(plat: LocalPlatform, tmp_path: Path) -> None:
    before = plat.metric("klambda_throttles_total", function="cli-throttled")
    out = tmp_path / "out.json"
    # the CLI v1's default retries: legacy mode, 5 attempts (boto3 1.44 defaults to standard)
    cp = plat.aws("lambda", "invoke", "--function-name", "cli-throttled", str(out),
                  cwd=tmp_path)
    assert cp.returncode == 255
    assert ("An error occurred (TooManyRequestsException) when calling the Invoke operation "
            "(reached max retries: 4): Rate Exceeded") in cp.stderr
    wait_for(lambda: plat.metric("klambda_throttles_total", function="cli-throttled")
             - before == 5, timeout=5, what="every attempt reached the platform")


# -- management subset -------------------------------------------------------------------


def aws_json(plat: LocalPlatform, *args: str) -> dict[str, Any]:
    cp = plat.aws("lambda", *args)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)  # type: ignore[no-any-return]


def test_get_function(plat: LocalPlatform) -> None:
    got = aws_json(plat, "get-function", "--function-name", "cli-hello")
    cfg = got["Configuration"]
    assert cfg["FunctionName"] == "cli-hello" and cfg["Version"] == "$LATEST"
    assert cfg["FunctionArn"] == f"{ARN}:cli-hello"
    assert (cfg["Runtime"], cfg["Handler"], cfg["State"]) == ("python3.12", "app.handler",
                                                               "Active")
    assert (cfg["Timeout"], cfg["MemorySize"]) == (3, 128)
    assert len(base64.b64decode(cfg["CodeSha256"])) == 32
    one = aws_json(plat, "get-function", "--function-name", "cli-hello", "--qualifier", "1")
    assert one["Configuration"]["Version"] == "1"
    assert one["Configuration"]["FunctionArn"] == f"{ARN}:cli-hello:1"
    assert one["Configuration"]["CodeSha256"] == cfg["CodeSha256"]
    conf = aws_json(plat, "get-function-configuration", "--function-name", "cli-hello")
    assert conf == cfg


def test_get_function_unknown(plat: LocalPlatform) -> None:
    cp = plat.aws("lambda", "get-function", "--function-name", "nope")
    assert cp.returncode == 255
    assert "An error occurred (ResourceNotFoundException) when calling the GetFunction " \
           f"operation: Function not found: {ARN}:nope" in cp.stderr


def test_list_functions(plat: LocalPlatform) -> None:
    got = aws_json(plat, "list-functions")
    names = {f["FunctionName"] for f in got["Functions"]}
    assert {"cli-hello", "cli-fail", "cli-throttled"} <= names
    assert all(f["Version"] == "$LATEST" for f in got["Functions"])


def test_versions_publish_and_aliases(plat: LocalPlatform) -> None:
    versions = aws_json(plat, "list-versions-by-function", "--function-name", "cli-hello")
    assert [v["Version"] for v in versions["Versions"]] == ["$LATEST", "1"]
    # nothing changed since version 1: PublishVersion returns it (Lambda's rule)
    published = aws_json(plat, "publish-version", "--function-name", "cli-hello",
                         "--description", "again")
    assert published["Version"] == "1" and published["FunctionArn"] == f"{ARN}:cli-hello:1"
    alias = aws_json(plat, "get-alias", "--function-name", "cli-hello", "--name", "live")
    assert alias["Name"] == "live" and alias["FunctionVersion"] == "1"
    assert alias["AliasArn"] == f"{ARN}:cli-hello:live"
    assert alias["Description"] == "what users call"
    listed = aws_json(plat, "list-aliases", "--function-name", "cli-hello")
    assert [a["Name"] for a in listed["Aliases"]] == ["live"]
    cp = plat.aws("lambda", "get-alias", "--function-name", "cli-hello", "--name", "gone")
    assert cp.returncode == 255 and "(ResourceNotFoundException)" in cp.stderr
    cp = plat.aws("lambda", "publish-version", "--function-name", "cli-hello",
                  "--code-sha256", "c3RhbGU=")
    assert cp.returncode == 255
    assert "An error occurred (PreconditionFailedException) when calling the PublishVersion " \
           "operation: " in cp.stderr


def test_list_aliases_filtered_by_version(plat: LocalPlatform) -> None:
    none = aws_json(plat, "list-aliases", "--function-name", "cli-hello",
                    "--function-version", "7")
    assert none["Aliases"] == []
    one = aws_json(plat, "list-aliases", "--function-name", "cli-hello",
                   "--function-version", "1")
    assert [a["Name"] for a in one["Aliases"]] == ["live"]


def test_publish_new_version_of_changed_function(plat: LocalPlatform) -> None:
    cp = plat.aws("lambda", "publish-version", "--function-name", "cli-fail")
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout)["Version"] == "1"
    again = aws_json(plat, "list-versions-by-function", "--function-name", "cli-fail")
    assert [v["Version"] for v in again["Versions"]] == ["$LATEST", "1"]


def test_wait_function_active(plat: LocalPlatform) -> None:
    cp = plat.aws("lambda", "wait", "function-active-v2", "--function-name", "cli-hello")
    assert cp.returncode == 0, cp.stderr
    cp = plat.aws("lambda", "wait", "function-exists", "--function-name", "cli-hello")
    assert cp.returncode == 0, cp.stderr
