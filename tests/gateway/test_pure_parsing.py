"""Pure parsing and error builders: FunctionName/Qualifier/ARN forms, account <-> namespace,
client context, invocation/log type headers, JSON check, error bodies and headers."""

from __future__ import annotations

import base64
import json

import pytest
from klambda_gateway.arn import FunctionRef, function_arn, parse_function_name
from klambda_gateway.errors import (
    InvalidParameterValue,
    InvalidRequestContent,
    InvokeError,
    RequestTooLarge,
    ResourceNotFound,
    TooManyRequests,
    build_error_response,
)
from klambda_gateway.invoke_api import (
    check_json,
    decode_client_context,
    invocation_type,
    log_type,
)

ACCT = "000000000000"


@pytest.mark.parametrize(("raw", "qualifier", "expected"), [
    ("hello", None, FunctionRef("default", "hello", None)),
    ("hello", "", FunctionRef("default", "hello", None)),
    ("hello:live", None, FunctionRef("default", "hello", "live")),
    ("hello", "3", FunctionRef("default", "hello", "3")),
    ("hello:$LATEST", "$LATEST", FunctionRef("default", "hello", "$LATEST")),
    ("arn:aws:lambda:us-east-1:000000000000:function:hello", None,
     FunctionRef("default", "hello", None)),
    ("arn:aws:lambda:eu-west-1:000000000000:function:hello:2", None,
     FunctionRef("default", "hello", "2")),
    ("arn:aws:lambda:us-east-1:team-a:function:hello:live", None,
     FunctionRef("team-a", "hello", "live")),
    ("arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Ahello", "1",
     FunctionRef("default", "hello", "1")),
    ("000000000000:function:hello", None, FunctionRef("default", "hello", None)),
    ("team-b:function:hello:7", None, FunctionRef("team-b", "hello", "7")),
    ("123456789012:function:hello", None, FunctionRef("123456789012", "hello", None)),
], ids=lambda v: str(v))
def test_parse_function_name(raw: str, qualifier: str | None, expected: FunctionRef) -> None:
    assert parse_function_name(raw, qualifier, account_id=ACCT) == expected


@pytest.mark.parametrize(("raw", "qualifier", "fragment"), [
    ("hello:live", "other", "does not match"),
    ("arn:aws:lambda:us-east-1:000000000000:hello", None, "not a function ARN"),
    ("arn:aws:lambda:us-east-1:Not_A_Label:function:hello", None, "account field"),
    ("he llo", None, "Function name"),
    ("a:b:c", None, "not a function name"),
    ("hello", "bad qualifier!", "Qualifier"),
    ("x" * 65, None, "Function name"),
], ids=["mismatch", "short-arn", "bad-account", "space", "three-parts", "bad-qualifier",
        "too-long"])
def test_parse_function_name_rejects(raw: str, qualifier: str | None, fragment: str) -> None:
    with pytest.raises(InvalidParameterValue, match=fragment):
        parse_function_name(raw, qualifier, account_id=ACCT)


@pytest.mark.parametrize(("ns", "q", "arn"), [
    ("default", None, "arn:aws:lambda:us-east-1:000000000000:function:f"),
    ("default", "live", "arn:aws:lambda:us-east-1:000000000000:function:f:live"),
    ("team-a", "$LATEST", "arn:aws:lambda:us-east-1:team-a:function:f:$LATEST"),
])
def test_function_arn(ns: str, q: str | None, arn: str) -> None:
    assert function_arn(ns, "f", q, region="us-east-1", account_id=ACCT) == arn
    back = parse_function_name(arn, None, account_id=ACCT)
    assert (back.namespace, back.name, back.qualifier) == (ns, "f", q)


def test_client_context_round_trip() -> None:
    ctx = {"custom": {"a": 1}, "env": {"locale": "en"}}
    header = base64.b64encode(json.dumps(ctx).encode()).decode()
    assert json.loads(decode_client_context(header)) == ctx
    assert decode_client_context("") == ""


@pytest.mark.parametrize("header", ["not base64!!", base64.b64encode(b"not json").decode(),
                                    "QUFB" * 1000])
def test_client_context_rejects(header: str) -> None:
    with pytest.raises(InvalidRequestContent):
        decode_client_context(header)


@pytest.mark.parametrize(("value", "ok"), [(None, "RequestResponse"), ("Event", "Event"),
                                           ("DryRun", "DryRun"), ("Bogus", None)])
def test_invocation_type(value: str | None, ok: str | None) -> None:
    if ok is None:
        with pytest.raises(InvalidParameterValue):
            invocation_type(value)
    else:
        assert invocation_type(value) == ok


@pytest.mark.parametrize(("value", "ok"), [(None, "None"), ("Tail", "Tail"), ("Head", None)])
def test_log_type(value: str | None, ok: str | None) -> None:
    if ok is None:
        with pytest.raises(InvalidParameterValue):
            log_type(value)
    else:
        assert log_type(value) == ok


@pytest.mark.parametrize(("body", "valid"), [(b"", True), (b"{}", True), (b"[1, 2]", True),
                                             (b'"s"', True), (b"{nope", False),
                                             (b"\xff\xfe", False)])
def test_check_json(body: bytes, valid: bool) -> None:
    if valid:
        check_json(body)
    else:
        with pytest.raises(InvalidRequestContent, match="Could not parse request body"):
            check_json(body)


@pytest.mark.parametrize(("exc", "status", "code", "key"), [
    (ResourceNotFound("Function not found: x"), 404, "ResourceNotFoundException", "Message"),
    (RequestTooLarge("too big"), 413, "RequestTooLargeException", "message"),
    (InvalidRequestContent("bad"), 400, "InvalidRequestContentException", "message"),
    (InvalidParameterValue("bad"), 400, "InvalidParameterValueException", "message"),
    (TooManyRequests("slow down", reason="ConcurrentInvocationLimitExceeded"), 429,
     "TooManyRequestsException", "message"),
], ids=lambda v: getattr(v, "code", str(v)))
def test_error_responses(exc: InvokeError, status: int, code: str, key: str) -> None:
    built = exc.response("rid-1")
    assert built.status == status
    assert built.headers["X-Amzn-ErrorType"] == code
    assert built.headers["x-amzn-RequestId"] == "rid-1"
    body = json.loads(built.body)
    assert body["Type"] == "User" and key in body
    if status == 429:
        assert body["Reason"] == "ConcurrentInvocationLimitExceeded"
        assert built.headers["Retry-After"] == "1"


def test_retry_after_rounds_up() -> None:
    built = build_error_response(status=429, code="X", body={}, request_id="r", retry_after=2.2)
    assert built.headers["Retry-After"] == "3"





@pytest.mark.parametrize(("header", "says"), [
    ("not base64!!", "is not base64"),
    (base64.b64encode(b"not json").decode(), "is not JSON"),
], ids=["not-base64", "not-json"])
def test_client_context_errors_say_what_is_wrong(header: str, says: str) -> None:
    with pytest.raises(InvalidRequestContent) as info:
        decode_client_context(header)
    assert says in str(info.value) and not str(info.value).endswith("Error")


def test_request_ids_are_random_version_4_uuids() -> None:
    import uuid

    from klambda_gateway.datapath import request_id

    ids = [request_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:200]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
