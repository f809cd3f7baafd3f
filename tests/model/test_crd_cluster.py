"""The CRDs generated from the model on the real API server (installed under a test group so
they coexist with the operator's): accepted as structural schemas with CEL rules that compile
within the cost budget, the examples accepted, defaults applied, and invalid manifests
rejected with the model's bounds and CEL messages."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster.harness import ClusterError, TestCluster
from cluster.plugin import k8s_cluster  # noqa: F401 - the session fixture
from klambda_model import KINDS, load_documents, to_document
from klambda_model.crd import crd

pytestmark = pytest.mark.cluster

GROUP = "modelcheck.klambda.io"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_ns = itertools.count(1)


@pytest.fixture(scope="module")
def installed(k8s_cluster: TestCluster) -> Iterator[TestCluster]:  # noqa: F811
    docs = [crd(kind, group=GROUP) for kind in KINDS]
    k8s_cluster.kubectl("apply", "--server-side", "--field-manager=model-test", "-f", "-",
                        input=yaml.safe_dump_all(docs))
    names = [f"crd/{d['metadata']['name']}" for d in docs]
    k8s_cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    yield k8s_cluster
    k8s_cluster.kubectl("delete", "--wait=false", *names, check=False)


@pytest.fixture
def namespace(installed: TestCluster) -> Iterator[str]:
    name = f"model-{next(_ns)}"
    installed.create_namespace(name)
    yield name
    installed.api.delete(f"/api/v1/namespaces/{name}")


def as_test_group(doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    return {**doc, "apiVersion": f"{GROUP}/v1alpha1",
            "metadata": {**doc["metadata"], "namespace": namespace}}


def test_examples_are_accepted_with_defaults(installed: TestCluster, namespace: str) -> None:
    docs = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs += [as_test_group(to_document(r), namespace)
                 for r in load_documents(path.read_text())]
    installed.apply(yaml.safe_dump_all(docs))
    got = installed.api.get(f"/apis/{GROUP}/v1alpha1/namespaces/{namespace}/functions/hello")
    assert (got["spec"]["memorySize"], got["spec"]["timeout"], got["spec"]["publish"]) == (
        128, 3, False)


def function(**spec: Any) -> dict[str, Any]:
    base = {"runtime": "python3.12", "handler": "app.handler",
            "code": {"inline": {"app.py": "def handler(e, c):\n    return 1\n"}}}
    return {"apiVersion": "x", "kind": "Function", "metadata": {"name": "f"},
            "spec": {**base, **spec}}


def alias(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "x", "kind": "Alias", "metadata": {"name": "a"},
            "spec": {"functionName": "f", "name": "live", "functionVersion": "1", **spec}}


@pytest.mark.parametrize(("doc", "message"), [
    pytest.param(function(memorySize=64), "should be greater than or equal to 128", id="memory"),
    pytest.param(function(timeout=901), "should be less than or equal to 900", id="timeout"),
    pytest.param(function(layers=list("abcdef")), "must have at most 5 items", id="layers"),
    pytest.param(function(code={}),
                 "exactly one of inline, zipFile, url, configMapRef, image must be set",
                 id="no-code"),
    pytest.param(function(code={"inline": {"a.py": ""}, "image": "x"}),
                 "exactly one of inline, zipFile, url, configMapRef, image must be set",
                 id="two-codes"),
    pytest.param(function(handler=None), "handler is required for Python runtimes",
                 id="handler"),
    pytest.param(function(code={"inline": {"../x.py": ""}}),
                 "inline file names must be relative paths", id="inline-slip"),
    pytest.param(alias(routingConfig={"additionalVersionWeights": {"2": 0.7, "3": 0.5}}),
                 "additionalVersionWeights must sum to at most 1", id="weights-sum"),
    pytest.param(alias(routingConfig={"additionalVersionWeights": {"2": 1.5}}),
                 "should be less than or equal to 1", id="weight-high"),
    pytest.param(alias(routingConfig={"additionalVersionWeights": {"x": 0.1}}),
                 "invalid key", id="weight-key"),
    pytest.param(alias(name="12"), "name must not be $LATEST or a number", id="alias-name"),
    pytest.param(alias(functionVersion="$LATEST", provisionedConcurrency=1),
                 "provisioned concurrency needs a published functionVersion", id="pc-latest"),
])
def test_invalid_rejected_with_model_message(
    installed: TestCluster, namespace: str, doc: dict[str, Any], message: str
) -> None:
    doc = as_test_group(doc, namespace)
    doc["spec"] = {k: v for k, v in doc["spec"].items() if v is not None}
    with pytest.raises(ClusterError) as info:
        installed.apply(yaml.safe_dump(doc))
    assert message in str(info.value)
