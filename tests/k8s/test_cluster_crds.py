"""The CRDs on the real API server: accepted as structural schemas, CEL rules enforced with
their messages, defaults applied, short names and the klambda category served.

Covers: server-side apply of the CRDs; kubectl explain; invalid manifests rejected by the API
server with the CEL message (memory, timeout, layers, code sources, alias weights); published
FunctionVersions immutable.
"""

from __future__ import annotations

import pytest
import yaml
from cluster.harness import ClusterError, TestCluster

pytestmark = pytest.mark.cluster

VALID = {
    "runtime": "python3.12",
    "handler": "app.handler",
    "code": {"inline": {"app.py": "def handler(e, c):\n    return 1\n"}},
}


def _fn(name: str, namespace: str, **spec: object) -> str:
    body = {**VALID, **spec}
    return yaml.safe_dump(
        {
            "apiVersion": "klambda.io/v1alpha1",
            "kind": "Function",
            "metadata": {"name": name, "namespace": namespace},
            "spec": body,
        }
    )


def test_defaults_short_names_and_category(crds_installed: TestCluster, fn_namespace: str) -> None:
    crds_installed.apply(_fn("ok", fn_namespace))
    got = crds_installed.api.get(
        f"/apis/klambda.io/v1alpha1/namespaces/{fn_namespace}/functions/ok"
    )
    assert got["spec"]["memorySize"] == 128 and got["spec"]["timeout"] == 3
    out = crds_installed.kubectl("get", "fn,klambda", "-n", fn_namespace).stdout
    assert "ok" in out and "LATEST-VERSION" in out
    explain = crds_installed.kubectl("explain", "functions.spec.memorySize").stdout
    assert "128..10240" in explain


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(
            {"memorySize": 64},
            "spec.memorySize: Invalid value: 64: spec.memorySize is outside the allowed range 128..10240 MB",
            id="memory-low",
        ),
        pytest.param({"memorySize": 20000}, "128..10240 MB", id="memory-high"),
        pytest.param(
            {"timeout": 901},
            "spec.timeout is outside the allowed range 1..900 seconds",
            id="timeout",
        ),
        pytest.param(
            {"layers": ["a", "b", "c", "d", "e", "f"]},
            "spec.layers: at most 5 layers are allowed",
            id="layers",
        ),
        pytest.param(
            {"code": {"inline": {"a.py": "x"}, "image": "img:1"}},
            "exactly one of inline, zipFile, url, configMapRef, image must be set",
            id="two-code-sources",
        ),
        pytest.param({"code": {}}, "exactly one of", id="no-code-source"),
    ],
)
def test_invalid_functions_rejected_with_cel_message(
    crds_installed: TestCluster, fn_namespace: str, spec: dict[str, object], message: str
) -> None:
    with pytest.raises(ClusterError) as err:
        crds_installed.apply(_fn("bad", fn_namespace, **spec))
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"2": 1.5}, "is outside the allowed range 0.0..1.0"),
        ({"2": 0.6, "3": 0.6}, "must sum to at most 1"),
        ({"1": 0.5}, "weighted routing needs a published functionVersion"),
    ],
    ids=["weight-above-1", "sum-above-1", "names-primary"],
)
def test_invalid_alias_weights_rejected(
    crds_installed: TestCluster, fn_namespace: str, weights: dict[str, float], message: str
) -> None:
    alias = {
        "apiVersion": "klambda.io/v1alpha1",
        "kind": "Alias",
        "metadata": {"name": "live", "namespace": fn_namespace},
        "spec": {
            "functionName": "hello",
            "name": "live",
            "functionVersion": "1",
            "routingConfig": {"additionalVersionWeights": weights},
        },
    }
    with pytest.raises(ClusterError) as err:
        crds_installed.apply(yaml.safe_dump(alias))
    assert message in str(err.value)


def test_function_version_is_immutable(crds_installed: TestCluster, fn_namespace: str) -> None:
    fv = {
        "apiVersion": "klambda.io/v1alpha1",
        "kind": "FunctionVersion",
        "metadata": {"name": "hello-v1", "namespace": fn_namespace},
        "spec": {
            "functionName": "hello",
            "version": "1",
            "revision": "abc",
            "snapshot": {"runtime": "python3.12", "memorySize": 128},
        },
    }
    crds_installed.apply(yaml.safe_dump(fv))
    fv["spec"]["revision"] = "changed"
    with pytest.raises(ClusterError) as err:
        crds_installed.apply(yaml.safe_dump(fv))
    assert "immutable" in str(err.value)
