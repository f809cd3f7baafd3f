"""load_documents: multi-document YAML and JSON, labels naming file/index/kind/name, YAML
syntax errors with line numbers, kubectl `kind: List`, default namespaces, canonical form."""

from __future__ import annotations

import json

import pytest
from klambda_model import (
    Alias,
    Function,
    Layer,
    ValidationError,
    content_hash,
    load_documents,
    to_document,
)

HELLO = """\
apiVersion: klambda.io/v1alpha1
kind: Function
metadata: {name: hello, namespace: default}
spec:
  runtime: python3.12
  handler: app.handler
  code:
    inline:
      app.py: |
        def handler(event, context):
            return {"hello": event.get("name", "world")}
  memorySize: 128
  timeout: 3
  environment: {variables: {GREETING: hi}}
  layers: [shared-deps]
  reservedConcurrency: 10
  eventInvokeConfig: {maximumRetryAttempts: 2, maximumEventAgeInSeconds: 21600,
                      destinationConfig: {onFailure: {function: audit}}}
---
apiVersion: klambda.io/v1alpha1
kind: Layer
metadata: {name: shared-deps}
spec:
  content: {inline: {python/shared.py: "X = 1\\n"}}   # same choices as Function code
  compatibleRuntimes: [python3.12]
---
apiVersion: klambda.io/v1alpha1
kind: Alias
metadata: {name: hello-live}
spec:
  functionName: hello
  name: live                     # invoked as hello:live
  functionVersion: "1"
  routingConfig: {additionalVersionWeights: {"2": 0.1}}   # any number of versions
  provisionedConcurrency: 2
"""


def test_issue_manifest_loads() -> None:
    fn, la, al = load_documents(HELLO, source="hello.yaml")
    assert isinstance(fn, Function) and isinstance(la, Layer) and isinstance(al, Alias)
    assert fn.spec.reserved_concurrency == 10
    assert fn.spec.event_invoke_config is not None
    dc = fn.spec.event_invoke_config.destination_config
    assert dc is not None and dc.on_failure is not None and dc.on_failure.function == "audit"
    assert la.spec.content.inline == {"python/shared.py": "X = 1\n"}
    assert al.spec.routing_config is not None
    assert al.spec.routing_config.additional_version_weights == {"2": 0.1}


def test_errors_name_file_index_kind_and_name() -> None:
    text = HELLO.replace("memorySize: 128", "memorySize: 64").replace(
        'functionVersion: "1"', "functionVersion: 1")
    with pytest.raises(ValidationError) as info:
        load_documents(text, source="hello.yaml")
    assert info.value.errors == [
        "hello.yaml[0] Function/hello: spec.memorySize: 64 is below the minimum 128",
        ('hello.yaml[2] Alias/hello-live: spec.functionVersion: expected a string, got integer 1 '
        '(quote it: "1")'),
    ]
    assert str(info.value).startswith("2 validation errors:\n  - hello.yaml[0]")


def test_yaml_syntax_error_has_line() -> None:
    with pytest.raises(ValidationError) as info:
        load_documents("kind: Function\nspec: {a: [}\n", source="bad.yaml")
    (message,) = info.value.errors
    assert message.startswith("bad.yaml:2:") and "not valid YAML/JSON" in message


def test_json_and_lists() -> None:
    docs = load_documents(HELLO)
    as_json = json.dumps([to_document(d) for d in docs])
    assert load_documents(as_json) == docs
    kube_list = json.dumps({"apiVersion": "v1", "kind": "List",
                            "items": [to_document(d) for d in docs]})
    assert load_documents(kube_list) == docs


def test_empty_documents_are_skipped_and_default_namespace_applies() -> None:
    text = "---\n---\n" + HELLO.replace("namespace: default", "")
    docs = load_documents(text, default_namespace="team-a")
    assert [d.metadata.namespace for d in docs] == ["team-a"] * 3
    explicit = load_documents(HELLO, default_namespace="team-a")
    assert explicit[0].metadata.namespace == "default"


def test_timestamps_stay_strings() -> None:
    text = """
apiVersion: klambda.io/v1alpha1
kind: EventSourceMapping
metadata: {name: m}
spec:
  functionName: hello
  eventSourceArn: arn:aws:kinesis:us-east-1:000000000000:stream/s
  startingPosition: AT_TIMESTAMP
  startingPositionTimestamp: 2024-01-01T00:00:00Z
"""
    (doc,) = load_documents(text)
    assert doc.spec.starting_position_timestamp == "2024-01-01T00:00:00Z"


def test_canonical_form_omits_defaults_and_hash_is_stable() -> None:
    fn = load_documents(HELLO)[0]
    doc = to_document(fn)
    assert "memorySize" not in doc["spec"] and "timeout" not in doc["spec"]
    reordered = HELLO.replace("  memorySize: 128\n  timeout: 3\n", "  timeout: 3\n")
    assert content_hash(load_documents(reordered)[0].spec) == content_hash(fn.spec)
    changed = HELLO.replace("timeout: 3", "timeout: 4")
    assert content_hash(load_documents(changed)[0].spec) != content_hash(fn.spec)
