"""Validation of the four kinds: every rule with a passing and a failing case and the exact
message a user sees; unknown fields with did-you-mean; type errors with quoting hints."""

from __future__ import annotations

import base64
import copy
import io
import zipfile
from typing import Any

import pytest
from klambda_model import ValidationError, decode_document


def _zip_b64() -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "x = 1\n")
    return base64.b64encode(buf.getvalue()).decode()


ZIP_B64 = _zip_b64()
SHA = "a" * 64


def function(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "runtime": "python3.12",
        "handler": "app.handler",
        "code": {"inline": {"app.py": "def handler(e, c):\n    return 1\n"}},
    }
    base.update(spec)
    return {"apiVersion": "klambda.io/v1alpha1", "kind": "Function",
            "metadata": {"name": "hello"}, "spec": base}


def layer(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"content": {"inline": {"python/x.py": "X = 1\n"}}}
    base.update(spec)
    return {"apiVersion": "klambda.io/v1alpha1", "kind": "Layer",
            "metadata": {"name": "deps"}, "spec": base}


def alias(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"functionName": "hello", "name": "live", "functionVersion": "1"}
    base.update(spec)
    return {"apiVersion": "klambda.io/v1alpha1", "kind": "Alias",
            "metadata": {"name": "hello-live"}, "spec": base}


def esm(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"functionName": "hello",
                            "eventSourceArn": "arn:aws:sqs:us-east-1:000000000000:q"}
    base.update(spec)
    return {"apiVersion": "klambda.io/v1alpha1", "kind": "EventSourceMapping",
            "metadata": {"name": "m"}, "spec": base}


def without(doc: dict[str, Any], *path: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return doc


def errors_of(doc: Any) -> list[str]:
    try:
        decode_document(doc)
    except ValidationError as exc:
        return exc.errors
    return []


CASES: list[tuple[str, Any, list[str]]] = [
    # --- Function: valid examples
    ("function-minimal", function(), []),
    ("function-full", function(
        memorySize=10240, timeout=900, environment={"variables": {"GREETING": "hi"}},
        layers=["a", "b:3", "c", "d", "e"], reservedConcurrency=0, publish=True,
        eventInvokeConfig={"maximumRetryAttempts": 0, "maximumEventAgeInSeconds": 60,
                           "destinationConfig": {"onFailure": {"function": "audit:live"},
                                                 "onSuccess": {"arn": "arn:aws:sqs:r:1:q"}}},
    ), []),
    ("provided-without-handler", function(runtime="provided", handler=None), []),
    ("zipfile-ok", function(code={"zipFile": ZIP_B64}), []),
    ("url-ok", function(code={"url": {"location": "https://x/c.zip", "sha256": SHA}}), []),
    ("configmap-ok", function(code={"configMapRef": {"name": "code"}}), []),
    ("image-ok", function(code={"image": "ghcr.io/x/fn:1"}), []),
    # --- Function: bounds
    ("memory-low", function(memorySize=64), ["spec.memorySize: 64 is below the minimum 128"]),
    ("memory-high", function(memorySize=10241),
     ["spec.memorySize: 10241 is above the maximum 10240"]),
    ("timeout-low", function(timeout=0), ["spec.timeout: 0 is below the minimum 1"]),
    ("timeout-high", function(timeout=901), ["spec.timeout: 901 is above the maximum 900"]),
    ("timeout-string", function(timeout="3"), ['spec.timeout: expected an integer, got string "3"']),
    ("timeout-bool", function(timeout=True), ["spec.timeout: expected an integer, got boolean true"]),
    ("reserved-negative", function(reservedConcurrency=-1),
     ["spec.reservedConcurrency: -1 is below the minimum 0"]),
    # --- Function: runtime and handler
    ("runtime-unknown", function(runtime="python3.9"),
     [('spec.runtime: "python3.9" is not supported; use one of python3.11, python3.12, provided; '
      "did you mean python3.12?")]),
    ("runtime-missing", without(function(), "spec", "runtime"),
     ["spec.runtime: required field is missing"]),
    ("handler-missing", function(handler=None),
     [("spec.handler: required for runtime python3.12 (e.g. app.handler: function handler in "
      "app.py)")]),
    ("handler-not-python", function(handler="app"),
     [('spec.handler: "app" is not a Python handler: use module.function, e.g. app.handler for '
      "def handler(event, context) in app.py")]),
    ("handler-whitespace", function(runtime="provided", handler="a b"),
     ['spec.handler: invalid value "a b": the handler must not contain whitespace']),
    ("handler-package", function(handler="pkg/mod.sub.handler"), []),
    # --- Function: code
    ("code-two", function(code={"inline": {"a.py": ""}, "url": {"location": "https://x",
                                                                "sha256": SHA}}),
     [("spec.code: exactly one of inline, zipFile, url, configMapRef, image must be set "
      "(found 2: inline, url)")]),
    ("code-none", function(code={}),
     [("spec.code: exactly one of inline, zipFile, url, configMapRef, image must be set "
      "(found 0)")]),
    ("code-missing", without(function(), "spec", "code"), ["spec.code: required field is missing"]),
    ("inline-slip", function(code={"inline": {"../evil.py": "x"}}),
     [('spec.code.inline: file name "../evil.py" must be a relative path without "..", "." or '
      'empty parts (e.g. "app.py" or "lib/util.py")')]),
    ("inline-absolute", function(code={"inline": {"/etc/x": "x"}}),
     [('spec.code.inline: file name "/etc/x" must be a relative path without "..", "." or '
      'empty parts (e.g. "app.py" or "lib/util.py")')]),
    ("zipfile-not-base64", function(code={"zipFile": "not base64!"}),
     [("spec.code.zipFile: zipFile is not valid base64: encode the archive with "
      "`base64 -w0 code.zip`")]),
    ("zipfile-not-zip", function(code={"zipFile": base64.b64encode(b"hello").decode()}),
     [("spec.code.zipFile: zipFile does not contain a zip archive (it must be a base64-encoded "
      ".zip file)")]),
    ("url-bad", function(code={"url": {"location": "ftp://x", "sha256": "abc"}}),
     ['spec.code.url.location: invalid value "ftp://x": use an http://, https:// or file:// URL',
      ('spec.code.url.sha256: invalid value "abc": use the 64 lowercase hex digits printed by '
      "`sha256sum code.zip`")]),
    ("url-no-sha", function(code={"url": {"location": "https://x/c.zip"}}),
     ["spec.code.url.sha256: required field is missing"]),
    # --- Function: unknown fields
    ("unknown-spec-field", function(memsize=3),
     ["spec.memsize: unknown field; did you mean memorySize?"]),
    ("unknown-top-field", {**function(), "specs": {}},
     ["specs: unknown field; did you mean spec?"]),
    ("unknown-no-hint", function(code={"inline": {"a.py": ""}, "zzz": 1}),
     ["spec.code.zzz: unknown field; known fields: inline, zipFile, url, configMapRef, image"]),
    ("status-ignored", {**function(), "status": {"anything": 1}}, []),
    # --- Function: layers
    ("layers-too-many", function(layers=["a", "b", "c", "d", "e", "f"]),
     ["spec.layers: at most 5 items are allowed (got 6)"]),
    ("layers-bad-version", function(layers=["a:0"]),
     [('spec.layers[0]: invalid value "a:0": use a Layer name, optionally with :version (e.g. '
      "shared-deps or shared-deps:3)")]),
    ("layers-duplicate", function(layers=["a", "a:2"]),
     ["spec.layers: a layer may appear only once (repeated: a)"]),
    # --- Function: environment
    ("env-reserved", function(environment={"variables": {"AWS_REGION": "x"}}),
     ["spec.environment.variables: AWS_REGION is reserved by the platform; choose another name"]),
    ("env-number", function(environment={"variables": {"N": 1}}),
     ['spec.environment.variables.N: expected a string, got integer 1 (quote it: "1")']),
    ("env-bad-key", function(environment={"variables": {"1X": "a"}}),
     [('spec.environment.variables["1X"]: invalid key "1X": start with a letter; use letters, '
      "digits and '_'")]),
    # --- Function: eventInvokeConfig
    ("retries-high", function(eventInvokeConfig={"maximumRetryAttempts": 3}),
     ["spec.eventInvokeConfig.maximumRetryAttempts: 3 is above the maximum 2"]),
    ("event-age-low", function(eventInvokeConfig={"maximumEventAgeInSeconds": 59}),
     ["spec.eventInvokeConfig.maximumEventAgeInSeconds: 59 is below the minimum 60"]),
    ("event-age-high", function(eventInvokeConfig={"maximumEventAgeInSeconds": 21601}),
     ["spec.eventInvokeConfig.maximumEventAgeInSeconds: 21601 is above the maximum 21600"]),
    ("destination-empty", function(eventInvokeConfig={"destinationConfig": {"onFailure": {}}}),
     [("spec.eventInvokeConfig.destinationConfig.onFailure: exactly one of function, arn must "
      "be set (found 0)")]),
    ("destination-bad-arn", function(
        eventInvokeConfig={"destinationConfig": {"onSuccess": {"arn": "queue"}}}),
     [('spec.eventInvokeConfig.destinationConfig.onSuccess.arn: invalid value "queue": use an ARN '
      "such as arn:aws:sqs:us-east-1:000000000000:my-queue")]),
    # --- metadata / envelope
    ("name-invalid", {**function(), "metadata": {"name": "Hello_World"}},
     [('metadata.name: invalid value "Hello_World": use lowercase letters, digits and \'-\', '
      "starting and ending with a letter or digit (at most 63 characters)")]),
    ("name-missing", {**function(), "metadata": {}}, ["metadata.name: required field is missing"]),
    ("metadata-server-fields", {**function(), "metadata": {"name": "hello", "uid": "x",
                                                           "resourceVersion": "1"}}, []),
    ("api-version", {**function(), "apiVersion": "v1"},
     ["apiVersion: must be klambda.io/v1alpha1 (got 'v1')"]),
    ("kind-unknown", {**function(), "kind": "Functoin"},
     ["kind: must be one of Function, Layer, Alias, EventSourceMapping (got 'Functoin')"]),
    ("not-object", ["x"], ["a document must be an object, got list"]),
    # --- Layer
    ("layer-ok", layer(compatibleRuntimes=["python3.12", "provided"]), []),
    ("layer-content-missing", without(layer(), "spec", "content"),
     ["spec.content: required field is missing"]),
    ("layer-runtime-bad", layer(compatibleRuntimes=["nodejs20.x"]),
     [('spec.compatibleRuntimes[0]: "nodejs20.x" is not supported; use one of python3.11, '
      "python3.12, provided")]),
    ("layer-two-sources", layer(content={"inline": {}, "zipFile": ZIP_B64}),
     [("spec.content: exactly one of inline, zipFile, url, configMapRef must be set "
      "(found 2: inline, zipFile)")]),
    ("layer-no-image", layer(content={"image": "x"}),
     ["spec.content.image: unknown field; known fields: inline, zipFile, url, configMapRef",
      "spec.content: exactly one of inline, zipFile, url, configMapRef must be set (found 0)"]),
    ("layer-slip", layer(content={"inline": {"../x": ""}}),
     [('spec.content.inline: file name "../x" must be a relative path without "..", "." or '
      'empty parts (e.g. "app.py" or "lib/util.py")')]),
    # --- Alias
    ("alias-ok", alias(routingConfig={"additionalVersionWeights": {"2": 0.25, "3": 0.75}},
                       provisionedConcurrency=2), []),
    ("alias-latest-ok", alias(functionVersion="$LATEST"), []),
    ("alias-version-int", alias(functionVersion=1),
     ['spec.functionVersion: expected a string, got integer 1 (quote it: "1")']),
    ("alias-version-bad", alias(functionVersion="v1"),
     [('spec.functionVersion: invalid value "v1": use a published version number such as "1", '
      'or "$LATEST"')]),
    ("alias-name-number", alias(name="12"),
     ['spec.name: "12" looks like a version number; an alias name must contain a non-digit']),
    ("alias-name-latest", alias(name="$LATEST"),
     ['spec.name: invalid value "$LATEST": use letters, digits, \'-\' and \'_\'',
      "spec.name: $LATEST is reserved for the unpublished head; choose another alias name"]),
    ("alias-weight-high", alias(routingConfig={"additionalVersionWeights": {"2": 1.5}}),
     ['spec.routingConfig.additionalVersionWeights["2"]: 1.5 is above the maximum 1',
      ("spec.routingConfig.additionalVersionWeights: weights sum to 1.5; they must sum to at "
      "most 1 (the rest goes to functionVersion)")]),
    ("alias-weight-negative", alias(routingConfig={"additionalVersionWeights": {"2": -0.1}}),
     ['spec.routingConfig.additionalVersionWeights["2"]: -0.1 is below the minimum 0']),
    ("alias-weights-sum", alias(routingConfig={"additionalVersionWeights": {"2": 0.6, "3": 0.5}}),
     [("spec.routingConfig.additionalVersionWeights: weights sum to 1.1; they must sum to at "
      "most 1 (the rest goes to functionVersion)")]),
    ("alias-weight-key", alias(routingConfig={"additionalVersionWeights": {"two": 0.1}}),
     [('spec.routingConfig.additionalVersionWeights.two: invalid key "two": use a version number '
      'like "2"')]),
    ("alias-weight-int-key", alias(routingConfig={"additionalVersionWeights": {2: 0.1}}), []),
    ("alias-weights-on-latest", alias(functionVersion="$LATEST",
                                      routingConfig={"additionalVersionWeights": {"2": 0.1}}),
     [("spec.routingConfig: weighted routing needs a published functionVersion, not $LATEST "
      "(publish with `klambda publish-version` or spec.publish: true)")]),
    ("alias-weight-self", alias(routingConfig={"additionalVersionWeights": {"1": 0.1}}),
     ["spec.routingConfig: version 1 is the functionVersion; list only the additional versions"]),
    ("alias-provisioned-negative", alias(provisionedConcurrency=-1),
     ["spec.provisionedConcurrency: -1 is below the minimum 0"]),
    ("alias-provisioned-latest", alias(functionVersion="$LATEST", provisionedConcurrency=1),
     [("spec.provisionedConcurrency: provisioned concurrency needs a published functionVersion, "
      "not $LATEST (publish with `klambda publish-version` or spec.publish: true)")]),
    ("alias-missing-fields", {**alias(), "spec": {}},
     ["spec.functionName: required field is missing", "spec.name: required field is missing",
      "spec.functionVersion: required field is missing"]),
    # --- EventSourceMapping
    ("esm-ok", esm(batchSize=10, maximumBatchingWindowInSeconds=5, enabled=False,
                   functionResponseTypes=["ReportBatchItemFailures"],
                   filterCriteria={"filters": [{"pattern": '{"body": {"k": ["v"]}}'}]},
                   scalingConfig={"maximumConcurrency": 2},
                   destinationConfig={"onFailure": {"function": "dlq"}}), []),
    ("esm-source-ok", esm(eventSourceArn=None, source={"kafka": {
        "bootstrapServers": ["127.0.0.1:9092"], "topic": "t"}}, startingPosition="LATEST"), []),
    ("esm-no-source", esm(eventSourceArn=None),
     ["spec: exactly one of eventSourceArn, source must be set (found 0)"]),
    ("esm-two-sources", esm(source={"sqs": {"queueUrl": "http://q"}}),
     [("spec: exactly one of eventSourceArn, source must be set (found 2: eventSourceArn, "
      "source)")]),
    ("esm-source-empty", esm(eventSourceArn=None, source={}),
     ["spec.source: exactly one of sqs, kafka, rabbitmq must be set (found 0)"]),
    ("esm-batch-size", esm(batchSize=0), ["spec.batchSize: 0 is below the minimum 1"]),
    ("esm-batch-size-high", esm(batchSize=10001),
     ["spec.batchSize: 10001 is above the maximum 10000"]),
    ("esm-window", esm(maximumBatchingWindowInSeconds=301),
     ["spec.maximumBatchingWindowInSeconds: 301 is above the maximum 300"]),
    ("esm-position", esm(startingPosition="EARLIEST"),
     [('spec.startingPosition: "EARLIEST" is not supported; use one of TRIM_HORIZON, LATEST, '
      "AT_TIMESTAMP")]),
    ("esm-at-timestamp", esm(startingPosition="AT_TIMESTAMP"),
     ["spec.startingPositionTimestamp: required with startingPosition AT_TIMESTAMP"]),
    ("esm-at-timestamp-ok", esm(startingPosition="AT_TIMESTAMP",
                                startingPositionTimestamp="2024-01-01T00:00:00Z"), []),
    ("esm-retries", esm(maximumRetryAttempts=-2),
     ["spec.maximumRetryAttempts: -2 is below the minimum -1"]),
    ("esm-record-age", esm(maximumRecordAgeInSeconds=5),
     ["spec.maximumRecordAgeInSeconds: 5 is below the minimum 60 (use -1 for no limit)"]),
    ("esm-record-age-ok", esm(maximumRecordAgeInSeconds=-1), []),
    ("esm-response-types", esm(functionResponseTypes=["Partial"]),
     [('spec.functionResponseTypes[0]: "Partial" is not supported; use one of '
      "ReportBatchItemFailures")]),
    ("esm-filter-json", esm(filterCriteria={"filters": [{"pattern": "{x"}]}),
     [("spec.filterCriteria.filters[0].pattern: pattern is not valid JSON (Expecting property "
      "name enclosed in double quotes at position 1)")]),
    ("esm-filters-too-many", esm(filterCriteria={"filters": [{"pattern": "{}"}] * 6}),
     ["spec.filterCriteria.filters: at most 5 items are allowed (got 6)"]),
    ("esm-scaling", esm(scalingConfig={"maximumConcurrency": 1}),
     ["spec.scalingConfig.maximumConcurrency: 1 is below the minimum 2"]),
    ("esm-parallel", esm(parallelizationFactor=11),
     ["spec.parallelizationFactor: 11 is above the maximum 10"]),
]


def _clean(doc: Any) -> Any:
    """Drops keys set to None by the builders (None means 'absent' in the table)."""
    if isinstance(doc, dict):
        return {k: _clean(v) for k, v in doc.items() if v is not None}
    return doc


@pytest.mark.parametrize(("doc", "expected"), [(c[1], c[2]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_rule(doc: Any, expected: list[str]) -> None:
    assert errors_of(_clean(doc)) == expected


def test_every_error_is_collected() -> None:
    doc = function(memorySize=64, timeout=0, runtime="java", code={}, layers=["A"])
    errors = errors_of(doc)
    assert len(errors) == 5
    assert {e.split(":")[0] for e in errors} == {
        "spec.memorySize", "spec.timeout", "spec.runtime", "spec.code", "spec.layers[0]"
    }


def test_decoded_defaults() -> None:
    fn = decode_document(function())
    assert (fn.spec.memory_size, fn.spec.timeout, fn.metadata.namespace) == (128, 3, "default")
    assert fn.spec.layers == () and fn.spec.publish is False
