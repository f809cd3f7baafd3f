"""The built-in runtime's cheap warm path does exactly what the general code did.

Covers: the preformatted response/error posts are byte for byte the generic request
with ``GET /next`` pipelined behind it (ids and bodies with ``%`` and non-ASCII
characters) over a real socket; remembered answer heads (202, 413) give the same
responses as parsing, ``/next`` heads are never remembered; the head parser (case,
whitespace, lines without a colon); ``unmarshal_event`` equals ``json.loads`` on bytes
(UTF-16/32, BOMs, invalid UTF-8, surrogates, whitespace, trailing data) in values and
error messages; ``marshal_result`` equals ``json.dumps(..., default=...)`` (Decimal, NaN,
``ensure_ascii``, unserialisable and circular values, the same containers encoded again
after a failure half-way);
the context's environment reader follows every change of ``os.environ``; the context
object keeps its attributes in their order; ``_X_AMZN_TRACE_ID`` is set and removed in
``os.environ`` and in the C environment a child process inherits (also after the function
set it itself, for values longer than the first buffer, and failing on a NUL byte like
``os.environ``), and distinct trace ids do not pile up in memory as setenv's copies.
"""

from __future__ import annotations

import decimal
import json
import math
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from klambda_runtime.pyruntime import bootstrap, context, faults
from klambda_runtime.pyruntime.client import RuntimeClient, parse_head

ACCEPTED = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
    b'{"status":"OK"}'
)
TOO_LARGE = (
    b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\n\r\n{}"
)


class Recorder:
    """A loopback server that answers each received chunk with the next canned answer
    and keeps every byte it received."""

    def __init__(self, answers: list[bytes]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.answers = answers
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(10)
        conn, _ = self.listener.accept()
        conn.settimeout(10)
        with conn:
            for answer in self.answers:
                data = conn.recv(65536)
                if not data:
                    return
                self.received += data
                conn.sendall(answer)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=10)


@pytest.fixture
def recorder_factory() -> Iterator[Any]:
    made: list[Recorder] = []

    def make(answers: list[bytes]) -> Recorder:
        made.append(Recorder(answers))
        return made[-1]

    yield make
    for rec in made:
        rec.close()


@pytest.mark.parametrize(
    ("request_id", "body", "value"),
    [
        ("8476a536-e9f4-11e8-9739-2dfe598c3fcd", b'{"ok": true}', "application/json"),
        ("id-%s-%d-\u00e9", b"%s %d %% \xff", "application/unknown"),
        ("x", b"", "text/plain; charset=\u00e9"),
    ],
)
def test_posts_are_the_generic_request_byte_for_byte(
    recorder_factory: Any, request_id: str, body: bytes, value: str
) -> None:
    rec = recorder_factory([ACCEPTED, ACCEPTED])
    client = RuntimeClient(rec.address)
    resp = client.post_response(request_id, body, value)
    assert (resp.status, resp.body) == (202, b'{"status":"OK"}')
    client._next_sent = False  # the /next behind it is not answered here
    client.post_error(request_id, body, value)
    expected = (
        client._encode(
            "POST",
            f"/runtime/invocation/{request_id}/response",
            body,
            {"Content-Type": value},
        )
        + client._next_request
        + client._encode(
            "POST",
            f"/runtime/invocation/{request_id}/error",
            body,
            {"Content-Type": "application/json", "Lambda-Runtime-Function-Error-Type": value},
        )
        + client._next_request
    )
    client.close()
    rec.close()
    assert rec.received == expected


def test_remembered_heads_answer_like_parsed_ones(recorder_factory: Any) -> None:
    event = b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r1\r\nContent-Length: 2\r\n\r\n{}"
    rec = recorder_factory([event, ACCEPTED, ACCEPTED, TOO_LARGE, TOO_LARGE])
    client = RuntimeClient(rec.address)
    first = client.request("GET", "/runtime/invocation/next")
    assert first.status == 200 and first.headers["lambda-runtime-aws-request-id"] == "r1"
    answers = []
    for _ in range(4):
        answers.append(client.post_response("r1", b"{}", "application/json"))
        client._next_sent = False
    client.close()
    assert [a.status for a in answers] == [202, 202, 413, 413]
    assert answers[0] == answers[1] and answers[2] == answers[3]
    assert answers[0].headers == {"content-type": "application/json", "content-length": "15"}
    assert answers[2].body == b"{}"
    # the 200 of /next is never remembered: every event head is different
    assert sorted(status for status, _ in client._memo.values()) == [202, 413]


def test_parse_head() -> None:
    head = b"HTTP/1.1 403 Forbidden\r\nX-A:  one \r\n  Mixed-Case :two:three\r\nnocolon\r\nE:"
    assert parse_head(head) == (
        403,
        {"x-a": "one", "mixed-case": "two:three", "nocolon": "", "e": ""},
    )
    assert parse_head(b"HTTP/1.1 202 Accepted") == (202, {})


def _loads_outcome(body: bytes) -> tuple[str, Any]:
    try:
        return "value", json.loads(body)
    except Exception as exc:  # noqa: BLE001 - compared to the runtime's answer
        return "error", f"Unable to unmarshal input: {exc}"


def _unmarshal_outcome(body: bytes) -> tuple[str, Any]:
    try:
        return "value", faults.unmarshal_event(body, "application/json")
    except faults.Fault as fault:
        assert fault.error_type == faults.UNMARSHAL_ERROR
        return "error", fault.message


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b'{"a": [1, 2.5, null, true], "b": "\xc3\xa9"}',
        b' {"a": 1}',
        b'{"a": 1} ',
        b"{} x",
        b"{",
        b"nul",
        b"",
        b"1",
        b"12",
        b"1\x002",
        b"\x00",
        b'"\xed\xa0\x80"',  # an encoded surrogate: json decodes with surrogatepass
        b'"\xff"',
        b"\xef\xbb\xbf{}",
        '{"a": "\u00e9"}'.encode("utf-16"),
        '{"a": 1}'.encode("utf-16-le"),
        '{"a": 1}'.encode("utf-16-be"),
        '{"a": 1}'.encode("utf-32"),
        b"[" * 100_000,
    ],
)
def test_unmarshal_event_is_json_loads(body: bytes) -> None:
    assert _unmarshal_outcome(body) == _loads_outcome(body)


def test_unmarshal_event_other_content_types() -> None:
    assert faults.unmarshal_event(b"\xff", "application/octet-stream") == b"\xff"
    assert faults.unmarshal_event(b"[1]", "") == [1]


def _dumps_outcome(obj: Any, ensure_ascii: bool) -> tuple[str, Any]:
    try:
        text = json.dumps(obj, default=faults._default, ensure_ascii=ensure_ascii, allow_nan=True)
    except Exception as exc:  # noqa: BLE001 - compared to the runtime's answer
        return "error", f"Unable to marshal response: {exc}"
    return "value", (text.encode("utf-8"), "application/json")


def _marshal_outcome(obj: Any, ensure_ascii: bool) -> tuple[str, Any]:
    try:
        return "value", faults.marshal_result(obj, ensure_ascii=ensure_ascii)
    except faults.Fault as fault:
        assert fault.error_type == faults.MARSHAL_ERROR
        return "error", fault.message


CIRCULAR: list[Any] = []
CIRCULAR.append(CIRCULAR)


@pytest.mark.parametrize("ensure_ascii", [True, False])
@pytest.mark.parametrize(
    "obj",
    [
        {"ok": True},
        "caf\u00e9 \u2028",
        None,
        [1, -2.5, math.nan, math.inf, (1, 2)],
        {"d": decimal.Decimal("2.50"), "i": decimal.Decimal("3.00"), "n": decimal.Decimal("NaN")},
        {1: "int key", 2.5: "float key", None: "null key", False: "bool key"},
        {"nested": {"deep": [{"x": "\U0001f600"}]}},
        {"bad": object()},
        {(1, 2): "tuple key"},
        CIRCULAR,
    ],
    ids=lambda o: type(o).__name__,
)
def test_marshal_result_is_json_dumps(obj: Any, ensure_ascii: bool) -> None:
    assert _marshal_outcome(obj, ensure_ascii) == _dumps_outcome(obj, ensure_ascii)
    # and again: a failed encoding leaves nothing behind for the next one
    assert _marshal_outcome({"after": obj is CIRCULAR}, ensure_ascii) == _dumps_outcome(
        {"after": obj is CIRCULAR}, ensure_ascii
    )


@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_marshal_after_a_failure_half_way(ensure_ascii: bool) -> None:
    """A failed encoding leaves its containers marked; the next one must not see them."""
    result: dict[str, Any] = {"outer": [1, {"bad": object()}]}
    with pytest.raises(faults.Fault, match="not JSON serializable"):
        faults.marshal_result(result, ensure_ascii=ensure_ascii)
    result["outer"][1]["bad"] = "fixed"
    assert faults.marshal_result(result, ensure_ascii=ensure_ascii) == (
        b'{"outer": [1, {"bad": "fixed"}]}',
        "application/json",
    )


def test_marshal_bytes_unchanged() -> None:
    assert faults.marshal_result(b"\x00raw", ensure_ascii=True) == (
        b"\x00raw",
        "application/unknown",
    )


def test_env_reader_follows_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("KLAMBDA_TEST_A", "KLAMBDA_TEST_B")
    reader = context.EnvReader(names)

    def expected() -> tuple[str | None, ...]:
        return tuple(os.environ.get(n) for n in names)

    monkeypatch.delenv("KLAMBDA_TEST_A", raising=False)
    monkeypatch.delenv("KLAMBDA_TEST_B", raising=False)
    assert reader.read() == expected() == (None, None)
    monkeypatch.setenv("KLAMBDA_TEST_A", "one")
    assert reader.read() == expected() == ("one", None)
    monkeypatch.setenv("KLAMBDA_TEST_A", "two \u00e9")
    monkeypatch.setenv("KLAMBDA_TEST_B", "b")
    assert reader.read() == expected() == ("two \u00e9", "b")
    os.environ.update({"KLAMBDA_TEST_A": "three"})
    assert reader.read() == expected() == ("three", "b")
    monkeypatch.delenv("KLAMBDA_TEST_B")
    assert reader.read() == expected() == ("three", None)
    # an os.environ that is not CPython's mapping: read through it
    monkeypatch.setattr(os, "environ", {"KLAMBDA_TEST_B": "plain"})
    assert reader.read() == (None, "plain")


def test_context_attributes_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
    monkeypatch.delenv("AWS_LAMBDA_LOG_GROUP_NAME", raising=False)
    ctx = context.LambdaContext(
        request_id="r",
        deadline_ms=0,
        invoked_function_arn="arn",
        client_context=None,
        cognito_identity={"cognitoIdentityId": "i"},
    )
    assert list(vars(ctx)) == [
        "aws_request_id",
        "log_group_name",
        "log_stream_name",
        "function_name",
        "memory_limit_in_mb",
        "function_version",
        "invoked_function_arn",
        "tenant_id",
        "client_context",
        "identity",
        "_deadline_ms",
    ]
    assert (ctx.function_name, ctx.memory_limit_in_mb, ctx.log_group_name) == ("fn", "256", None)
    assert ctx.identity.cognito_identity_id == "i"
    assert ctx.identity.cognito_identity_pool_id is None
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "renamed")
    again = context.LambdaContext(
        request_id="r",
        deadline_ms=0,
        invoked_function_arn="arn",
        client_context=None,
        cognito_identity=None,
    )
    assert again.function_name == "renamed"
    assert again.identity.cognito_identity_id is None
    assert ctx.get_remaining_time_in_millis() == 0


def _child_sees() -> str:
    """What a child process started without ``env=`` (the C environment) has."""
    out = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ.get('_X_AMZN_TRACE_ID'))"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout.strip()


@pytest.fixture
def trace_env_restored() -> Iterator[None]:
    saved = os.environ.get("_X_AMZN_TRACE_ID")
    yield
    if saved is None:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    else:
        os.environ["_X_AMZN_TRACE_ID"] = saved


@pytest.mark.usefixtures("trace_env_restored")
def test_trace_id_in_os_environ_and_c_environment() -> None:
    set_trace = bootstrap._trace_env.set
    set_trace("Root=1-abc;Sampled=1")
    assert os.environ["_X_AMZN_TRACE_ID"] == "Root=1-abc;Sampled=1"
    assert _child_sees() == "Root=1-abc;Sampled=1"
    set_trace("Root=1-def")  # shorter: nothing of the previous value is left
    assert os.environ["_X_AMZN_TRACE_ID"] == "Root=1-def"
    assert _child_sees() == "Root=1-def"
    set_trace(None)
    assert "_X_AMZN_TRACE_ID" not in os.environ
    assert _child_sees() == "None"
    set_trace("")  # absent stays absent
    assert "_X_AMZN_TRACE_ID" not in os.environ
    set_trace("Root=1-back")
    assert _child_sees() == "Root=1-back"
    # the function sets it itself, then the next invocation's value wins again
    os.environ["_X_AMZN_TRACE_ID"] = "by-the-function"
    assert _child_sees() == "by-the-function"
    set_trace("Root=1-next")
    assert os.environ["_X_AMZN_TRACE_ID"] == "Root=1-next"
    assert _child_sees() == "Root=1-next"
    long_value = "Root=1-" + "x" * 3000  # beyond the first buffer
    set_trace(long_value)
    assert os.environ["_X_AMZN_TRACE_ID"] == long_value
    assert _child_sees() == long_value
    set_trace("caf\u00e9")
    assert _child_sees() == "caf\u00e9"


@pytest.mark.usefixtures("trace_env_restored")
def test_trace_id_with_a_nul_byte_fails_like_os_environ() -> None:
    with pytest.raises(ValueError, match="embedded null byte") as expected:
        os.environ["_X_AMZN_TRACE_ID"] = "a\0b"
    with pytest.raises(ValueError, match="embedded null byte") as got:
        bootstrap._trace_env.set("a\0b")
    assert str(got.value) == str(expected.value)


LEAK_PROBE = """
import os, sys
from klambda_runtime.pyruntime import bootstrap

def rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE") // 1024

values = [f"Root=1-5bef4de7-{i:024x};Parent=9a9197af755a6419;Sampled=1" for i in range(50000)]
set_trace = bootstrap._trace_env.set
if sys.argv[1] == "os.environ":
    def set_trace(value):
        os.environ["_X_AMZN_TRACE_ID"] = value
set_trace(values[0])
before = rss_kb()
for value in values:
    set_trace(value)
print(rss_kb() - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's setenv and /proc")
def test_trace_ids_do_not_accumulate_in_memory() -> None:
    """50,000 distinct trace ids: setenv (os.environ) keeps a copy of each (~7 MB);
    the runtime's own buffer does not grow."""

    def growth_kb(how: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", LEAK_PROBE, how],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return int(out.stdout)

    assert growth_kb("os.environ") > 3000  # what the runtime did before
    assert growth_kb("runtime") < 1000
