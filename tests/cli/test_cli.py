"""The klambda CLI as real subprocesses: --help everywhere, apply/get/publish-version/delete
against a real admin API server, exit codes (0, 2 usage/invalid manifests, 3 unreachable or
service errors) and readable messages; invoke and logs against a real `klambda up` running
the examples (results, function errors -> 1, unknown function -> 3, --log, --event,
--dry-run, aliases); `get event-source-mappings` / `get esm` (declared, not polled yet)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .adminserver import AdminServer, free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
KLAMBDA = [sys.executable, "-m", "klambda_cli.main"]


def klambda(*args: str, endpoint: str | None = None, stdin: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    extra = ["--endpoint", endpoint] if endpoint else []
    return subprocess.run([*KLAMBDA, *args, *extra], capture_output=True, text=True,
                          input=stdin, timeout=timeout, cwd=REPO, check=False)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AdminServer]:
    srv = AdminServer(tmp_path / "state")
    try:
        yield srv
    finally:
        srv.close()


def test_help_everywhere() -> None:
    top = klambda("--help")
    assert top.returncode == 0
    for word in ("up", "apply", "delete", "get", "invoke", "publish-version", "logs",
                 "exit codes", "KLAMBDA_ENDPOINT"):
        assert word in top.stdout
    for command in ("up", "apply", "delete", "get", "invoke", "publish-version", "logs"):
        result = klambda(command, "--help")
        assert result.returncode == 0 and "usage: klambda " + command in result.stdout


def test_usage_errors_exit_2() -> None:
    assert klambda().returncode == 2
    assert klambda("get", "gadgets").returncode == 2
    missing = klambda("apply", "-f", "/nonexistent.yaml")
    assert missing.returncode == 2
    assert "error: /nonexistent.yaml: no such file or directory" in missing.stderr
    bad_payload = klambda("invoke", "hello", "--payload", "{not json")
    assert bad_payload.returncode == 2 and "--payload is not valid JSON" in bad_payload.stderr


def test_unreachable_platform_exit_3() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = klambda("get", "functions", endpoint=endpoint)
    assert result.returncode == 3
    assert f"cannot reach the klambda platform at {endpoint}" in result.stderr
    assert "is `klambda up` running?" in result.stderr


def test_invalid_manifest_lists_every_error_exit_2(server: AdminServer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((EXAMPLES / "hello.yaml").read_text()
                   .replace("memorySize: 128", "memorySize: 64")
                   .replace("timeout: 3 ", "timeout: 1000 "))
    result = klambda("apply", "-f", str(bad), endpoint=server.endpoint)
    assert result.returncode == 2
    assert f"{bad}[0] Function/hello: spec.memorySize: 64 is below the minimum 128" \
        in result.stderr
    assert f"{bad}[0] Function/hello: spec.timeout: 1000 is above the maximum 900" \
        in result.stderr
    assert "nothing was applied" in result.stderr
    assert server.registry.functions() == []


def test_apply_get_publish_delete(server: AdminServer) -> None:
    ep = server.endpoint
    result = klambda("apply", "-f", str(EXAMPLES), endpoint=ep)
    assert result.returncode == 0, result.stderr
    assert "layer/shared-deps created (version 1)" in result.stdout
    assert "function/canary created (published version 1)" in result.stdout
    assert "alias/canary-live created" in result.stdout
    again = klambda("apply", "-f", str(EXAMPLES), endpoint=ep)
    assert all(line.endswith("unchanged") for line in again.stdout.splitlines())

    table = klambda("get", "functions", endpoint=ep).stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "RUNTIME", "HANDLER"]
    assert {row.split()[0] for row in table[1:]} >= {"hello", "canary", "orders", "ric"}

    step2 = klambda("apply", "-f", str(EXAMPLES / "canary-step-2"), endpoint=ep)
    assert step2.stdout.splitlines() == ["function/canary configured (published version 2)",
                                         "alias/canary-live configured"]
    aliases = klambda("get", "aliases", "canary", endpoint=ep).stdout.splitlines()
    assert aliases[1].split() == ["canary", "live", "1", "1=80%,2=20%", "1"]

    published = klambda("publish-version", "hello", "-d", "first", endpoint=ep)
    assert published.stdout.strip() == "function/hello published version 1"
    unchanged = klambda("publish-version", "hello", endpoint=ep)
    assert "unchanged since version 1" in unchanged.stdout
    versions = klambda("get", "versions", "hello", "-o", "json", endpoint=ep)
    assert '"version": "1"' in versions.stdout and '"description": "first"' in versions.stdout

    gone = klambda("delete", "-f", str(EXAMPLES / "alias.yaml"), endpoint=ep)
    assert gone.stdout.splitlines() == ["alias/canary-live deleted", "function/canary deleted"]
    one = klambda("delete", "function", "hello", endpoint=ep)
    assert one.stdout.strip() == "function/hello deleted"
    missing = klambda("publish-version", "hello", endpoint=ep)
    assert missing.returncode == 3 and "ResourceNotFoundException" in missing.stderr


def test_apply_from_stdin_into_namespace(server: AdminServer) -> None:
    text = (EXAMPLES / "hello.yaml").read_text().replace("namespace: default", "")
    result = klambda("apply", "-f", "-", "-n", "team-a", stdin=text, endpoint=server.endpoint)
    assert result.returncode == 0 and result.stdout.strip() == "function/hello created"
    assert server.registry.function("team-a", "hello") is not None
    listed = klambda("get", "functions", "-A", endpoint=server.endpoint).stdout.splitlines()
    assert listed[1].split()[:2] == ["team-a", "hello"]


ESM = """
apiVersion: klambda.io/v1alpha1
kind: Function
metadata: {name: consumer}
spec:
  runtime: python3.12
  handler: app.handler
  code: {inline: {app.py: "def handler(e, c):\\n    return 1\\n"}}
---
apiVersion: klambda.io/v1alpha1
kind: EventSourceMapping
metadata: {name: orders-queue}
spec:
  functionName: consumer
  eventSourceArn: arn:aws:sqs:us-east-1:000000000000:orders
  batchSize: 5
---
apiVersion: klambda.io/v1alpha1
kind: EventSourceMapping
metadata: {name: clicks}
spec:
  functionName: consumer:1
  enabled: false
  source: {kafka: {bootstrapServers: ["kafka:9092"], topic: clicks}}
"""


def test_get_event_source_mappings(server: AdminServer) -> None:
    ep = server.endpoint
    assert klambda("apply", "-f", "-", stdin=ESM, endpoint=ep).returncode == 0
    table = klambda("get", "event-source-mappings", endpoint=ep)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "FUNCTION", "SOURCE", "ENABLED", "BATCH", "STATE"]
    assert lines[1].split() == ["clicks", "consumer:1", "kafka://kafka:9092/clicks", "false",
                                "default", "disabled", "(not", "polled", "yet)"]
    assert lines[2].split() == ["orders-queue", "consumer",
                                "arn:aws:sqs:us-east-1:000000000000:orders", "true", "5",
                                "not", "polled", "yet"]
    one = klambda("get", "esm", "orders-queue", "-o", "json", endpoint=ep)
    assert '"name": "orders-queue"' in one.stdout and "clicks" not in one.stdout
    wide = klambda("get", "esm", "-A", endpoint=ep).stdout.splitlines()
    assert wide[1].split()[:2] == ["default", "clicks"]
    other = klambda("get", "esm", "-n", "team-a", endpoint=ep)
    assert other.returncode == 0 and 'no event source mappings in namespace "team-a"' in \
        other.stderr


# --- against a real platform ------------------------------------------------------------

FAILING = """
apiVersion: klambda.io/v1alpha1
kind: Function
metadata: {name: broken}
spec:
  runtime: python3.12
  handler: app.handler
  code: {inline: {app.py: "def handler(e, c):\\n    raise ValueError('boom')\\n"}}
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("up")
    (state / "broken.yaml").write_text(FAILING)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = open(state / "up.log", "wb")  # noqa: SIM115 (closed in the finally below)
    proc = subprocess.Popen(
        [*KLAMBDA, "up", "--port", str(port), "--state-dir", str(state / "state"),
         "-f", str(EXAMPLES / "hello.yaml"), "-f", str(EXAMPLES / "alias.yaml"),
         "-f", str(state / "broken.yaml"), "-f", str(EXAMPLES / "provided.yaml"),
         "-f", str(EXAMPLES / "layer.yaml"), "-f", str(EXAMPLES / "async.yaml")],
        stdout=subprocess.DEVNULL, stderr=log, cwd=REPO,
        start_new_session=True,
        env={**os.environ, "KLAMBDA_KEEP_WARM_SECONDS": "30",
             "KLAMBDA_ASYNC_RETRY_BASE_SECONDS": "0.2", "KLAMBDA_ASYNC_POLL_SECONDS": "0.1",
             # the provided example's bootstrap runs the python3 on PATH with awslambdaric
             "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint + "/healthz", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("klambda up did not start: "
                                       + (state / "up.log").read_text()) from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()


def test_invoke_quick_start(platform: str) -> None:
    result = klambda("invoke", "hello", "--payload", '{"name":"you"}', endpoint=platform)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '{"hello": "you", "greeting": "hi"}'


def test_invoke_payload_from_file_and_log(platform: str, tmp_path: Path) -> None:
    payload = tmp_path / "p.json"
    payload.write_text('{"name": "file"}')
    result = klambda("invoke", "hello", "--payload", f"@{payload}", "--log", endpoint=platform)
    assert result.returncode == 0
    assert '"hello": "file"' in result.stdout
    assert "START RequestId:" in result.stderr and "REPORT RequestId:" in result.stderr


def test_invoke_function_error_exit_1(platform: str) -> None:
    result = klambda("invoke", "broken", endpoint=platform)
    assert result.returncode == 1
    assert '"errorType": "ValueError"' in result.stdout
    assert "function error (Unhandled)" in result.stderr


def test_invoke_unknown_function_exit_3(platform: str) -> None:
    result = klambda("invoke", "nope", endpoint=platform)
    assert result.returncode == 3
    assert "ResourceNotFoundException" in result.stderr


def test_invoke_event_dry_run_and_alias(platform: str) -> None:
    event = klambda("invoke", "hello", "--event", endpoint=platform)
    assert event.returncode == 0 and "accepted (202)" in event.stderr
    dry = klambda("invoke", "hello", "--dry-run", endpoint=platform)
    assert dry.returncode == 0 and "dry run ok (204)" in dry.stderr
    live = klambda("invoke", "canary:live", endpoint=platform)
    assert live.returncode == 0 and '"version": "1"' in live.stdout


def test_logs(platform: str) -> None:
    klambda("invoke", "hello", endpoint=platform)
    result = klambda("logs", "hello", "--tail", "3", endpoint=platform)
    assert result.returncode == 0
    assert "REPORT RequestId:" in result.stdout and len(result.stdout.splitlines()) == 3


def _start_up(state: Path, port: int, *manifests: Path,
              cwd: Path = REPO) -> subprocess.Popen[bytes]:
    args = [*KLAMBDA, "up", "--port", str(port), "--state-dir", str(state)]
    for m in manifests:
        args += ["-f", str(m)]
    log_path = (cwd / state).parent / f"up-{port}-{time.monotonic_ns()}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log,
                                cwd=cwd, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop(proc)
                raise RuntimeError("klambda up did not start: " + log_path.read_text()) \
                    from None
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def test_up_keeps_state_across_restart(tmp_path: Path) -> None:
    state, port = tmp_path / "state", free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = _start_up(state, port, EXAMPLES / "hello.yaml")
    try:
        assert klambda("publish-version", "hello", endpoint=endpoint).returncode == 0
    finally:
        _stop(proc)
    proc = _start_up(state, port)  # no manifests: everything comes from the state dir
    try:
        versions = klambda("get", "versions", "hello", endpoint=endpoint).stdout.splitlines()
        assert [row.split()[1] for row in versions[1:]] == ["$LATEST", "1"]
        result = klambda("invoke", "hello:1", "--payload", '{"name": "again"}', endpoint=endpoint)
        assert result.returncode == 0 and '"hello": "again"' in result.stdout
    finally:
        _stop(proc)


def test_up_with_a_relative_state_dir(tmp_path: Path) -> None:
    """`make run` uses the default `./.klambda`: environments (forked elsewhere) still find
    the code, because the state dir is made absolute at the edge."""
    (tmp_path / "work").mkdir()
    port = free_port()
    proc = _start_up(Path("rel-state"), port, EXAMPLES / "hello.yaml", cwd=tmp_path / "work")
    try:
        result = klambda("invoke", "hello", "--payload", '{"name": "rel"}',
                         endpoint=f"http://127.0.0.1:{port}")
        assert result.returncode == 0 and '"hello": "rel"' in result.stdout, result
        assert (tmp_path / "work" / "rel-state" / "logs").is_dir()
    finally:
        _stop(proc)


def test_up_rejects_invalid_manifests_before_starting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((EXAMPLES / "hello.yaml").read_text().replace("timeout: 3 ", "timeout: 0 "))
    result = klambda("up", "--port", str(free_port()), "--state-dir", str(tmp_path / "s"),
                     "-f", str(bad), timeout=30)
    assert result.returncode == 2
    assert f"{bad}[0] Function/hello: spec.timeout: 0 is below the minimum 1" in result.stderr


def test_namespaced_apply_and_invoke(platform: str) -> None:
    text = (EXAMPLES / "hello.yaml").read_text().replace("namespace: default", "")
    applied = klambda("apply", "-f", "-", "-n", "team-b", stdin=text, endpoint=platform)
    assert applied.returncode == 0, applied.stderr
    result = klambda("invoke", "hello", "-n", "team-b", "--payload", '{"name": "b"}',
                     endpoint=platform)
    assert result.returncode == 0, result.stderr
    assert '"hello": "b"' in result.stdout
    listed = klambda("get", "functions", "-n", "team-b", endpoint=platform).stdout
    assert listed.splitlines()[1].split()[0] == "hello"


def test_namespace_mismatch_is_a_usage_error(server: AdminServer) -> None:
    result = klambda("apply", "-f", str(EXAMPLES / "hello.yaml"), "-n", "team-c",
                     endpoint=server.endpoint)
    assert result.returncode == 2
    assert (f'{EXAMPLES / "hello.yaml"}[0] Function/hello: metadata.namespace "default" does '
            'not match --namespace "team-c"; remove one of them') in result.stderr


def test_examples_layer_and_provided_awslambdaric(platform: str) -> None:
    layered = klambda("invoke", "greeter-with-layer", "--payload", '{"name": "x"}',
                      endpoint=platform)
    assert layered.returncode == 0, layered.stdout + layered.stderr
    assert layered.stdout.strip() == '{"message": "hello, x (from the shared-deps layer)"}'
    ric = klambda("invoke", "ric", "--payload", '{"x": 1}', endpoint=platform)
    assert ric.returncode == 0, ric.stdout + ric.stderr
    assert ric.stdout.strip() == '{"runtime": "awslambdaric", "echo": {"x": 1}}'


def test_example_async_failure_reaches_the_destination(platform: str) -> None:
    sent = klambda("invoke", "orders", "--event", "--payload", '{"order": 7, "fail": true}',
                   endpoint=platform)
    assert sent.returncode == 0, sent.stderr
    deadline = time.monotonic() + 30
    logs = ""
    while time.monotonic() < deadline:
        logs = klambda("logs", "audit", endpoint=platform).stdout
        if "AUDIT RetriesExhausted" in logs:
            break
        time.sleep(0.3)
    assert 'AUDIT RetriesExhausted 2 {"order": 7, "fail": true}' in logs


def test_apply_dry_run_validates_without_a_platform(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    ok = klambda("apply", "--dry-run", "-f", str(EXAMPLES / "layer.yaml"), endpoint=endpoint)
    assert ok.returncode == 0
    assert ok.stdout.splitlines() == ["layer/shared-deps valid (dry run)",
                                      "function/greeter-with-layer valid (dry run)"]
    bad = tmp_path / "bad.yaml"
    bad.write_text((EXAMPLES / "hello.yaml").read_text().replace("python3.12", "python3.13"))
    failed = klambda("apply", "--dry-run", "-f", str(bad), endpoint=endpoint)
    assert failed.returncode == 2 and "spec.runtime: \"python3.13\" is not supported" in failed.stderr
