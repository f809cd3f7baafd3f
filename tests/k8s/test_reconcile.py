"""Reconcilers against an in-memory API (tests/k8s/fake_kube.py); the real API server runs
them in test_cluster_operator.py.

Covers: Function -> code ConfigMap + $LATEST Deployment created with replicas 0 (the
provisioned floor when an alias asks for it) and never reset by later applies; idempotence
(no duplicate versions or objects); spec.publish publishes on change only; code change
garbage-collects the old code ConfigMap; layers resolve (latest or pinned), unknown layers
and missing ConfigMaps fail with actionable messages; layer versions publish on content
change only; alias resolution and unknown versions.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from klambda_operator import reconcile
from klambda_operator.errors import MissingConfigMap, UnknownLayer, UnknownVersion
from klambda_operator.resources.deployment import DeploymentSettings

from .fake_kube import FakeKube

SETTINGS = DeploymentSettings(gateway_address="127.0.0.1:50051")


def _function(kube: FakeKube, **spec: Any) -> dict[str, Any]:
    base = {
        "runtime": "python3.12",
        "handler": "app.handler",
        "code": {"inline": {"app.py": "def handler(e, c):\n    return 1\n"}},
        "memorySize": 128,
        "timeout": 3,
    }
    base.update(spec)
    return kube.put(
        {
            "apiVersion": "klambda.io/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "hello", "namespace": "ns"},
            "spec": base,
        }
    )


def _layer(kube: FakeKube, name: str, files: dict[str, str]) -> dict[str, Any]:
    return kube.put(
        {
            "apiVersion": "klambda.io/v1alpha1",
            "kind": "Layer",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"content": {"inline": files}},
        }
    )


async def _reconcile(kube: FakeKube, body: dict[str, Any]) -> dict[str, Any]:
    return await reconcile.reconcile_function(kube, body, settings=SETTINGS, verifier=None)


async def test_function_creates_code_and_latest_deployment_idempotently() -> None:
    kube = FakeKube()
    body = _function(kube)
    status = await _reconcile(kube, body)
    (dep,) = kube.of_kind("Deployment")
    assert dep["metadata"]["name"] == "hello-latest"
    assert dep["spec"]["replicas"] == 0
    assert len(kube.of_kind("ConfigMap")) == 1
    assert status["state"] == "Active" and status["latestVersion"] == ""
    dep_in_store = kube.objects[("Deployment", "ns", "hello-latest")]
    dep_in_store["spec"]["replicas"] = 3  # the gateway scaled it through /scale
    again = await _reconcile(kube, body)
    assert again == status
    assert kube.objects[("Deployment", "ns", "hello-latest")]["spec"]["replicas"] == 3
    assert len(kube.objects) == 3  # the Function, its code ConfigMap, its Deployment


async def test_publish_on_change_only_and_old_code_collected() -> None:
    kube = FakeKube()
    body = _function(kube, publish=True)
    await _reconcile(kube, body)
    await _reconcile(kube, body)
    assert [o["spec"]["version"] for o in kube.of_kind("FunctionVersion")] == ["1"]
    changed = copy.deepcopy(body)
    changed["spec"]["code"] = {"inline": {"app.py": "def handler(e, c):\n    return 2\n"}}
    status = await _reconcile(kube, changed)
    assert [o["spec"]["version"] for o in kube.of_kind("FunctionVersion")] == ["1", "2"]
    assert status["latestVersion"] == "2"
    names = sorted(o["metadata"]["name"] for o in kube.of_kind("Deployment"))
    assert names == ["hello-latest", "hello-v1", "hello-v2"]
    # v1 still needs the first code ConfigMap; both survive, nothing else does.
    assert len(kube.of_kind("ConfigMap")) == 2
    v1 = kube.objects[("Deployment", "ns", "hello-v1")]
    latest = kube.objects[("Deployment", "ns", "hello-latest")]
    assert (
        v1["spec"]["template"]["spec"]["volumes"] != latest["spec"]["template"]["spec"]["volumes"]
    )


async def test_unpublished_code_change_collects_old_configmap() -> None:
    kube = FakeKube()
    body = _function(kube)
    await _reconcile(kube, body)
    (old,) = kube.of_kind("ConfigMap")
    changed = copy.deepcopy(body)
    changed["spec"]["code"] = {"inline": {"app.py": "x = 2\n"}}
    await _reconcile(kube, changed)
    (new,) = kube.of_kind("ConfigMap")
    assert new["metadata"]["name"] != old["metadata"]["name"]


async def test_deployments_start_at_zero_even_with_provisioned_aliases() -> None:
    """The gateway scales to the provisioned floor; the operator must not double it."""
    kube = FakeKube()
    kube.put(
        {
            "apiVersion": "klambda.io/v1alpha1",
            "kind": "Alias",
            "metadata": {"name": "hello-live", "namespace": "ns"},
            "spec": {"functionName": "hello", "functionVersion": "1", "provisionedConcurrency": 2},
        }
    )
    await _reconcile(kube, _function(kube, publish=True))
    assert kube.objects[("Deployment", "ns", "hello-v1")]["spec"]["replicas"] == 0
    assert kube.objects[("Deployment", "ns", "hello-latest")]["spec"]["replicas"] == 0


async def test_layers_resolve_latest_or_pinned_and_publish_on_change() -> None:
    kube = FakeKube()
    layer = _layer(kube, "deps", {"python/a.py": "A = 1\n"})
    s1 = await reconcile.reconcile_layer(kube, layer, verifier=None)
    assert s1["latestVersion"] == "1"
    assert (await reconcile.reconcile_layer(kube, layer, verifier=None)) == s1
    layer["spec"]["content"]["inline"]["python/a.py"] = "A = 2\n"
    s2 = await reconcile.reconcile_layer(kube, layer, verifier=None)
    assert [v["version"] for v in s2["versions"]] == ["1", "2"]
    status = await _reconcile(kube, _function(kube, layers=["deps", "deps:1"]))
    assert status["layers"] == ["deps:2", "deps:1"]
    dep = kube.objects[("Deployment", "ns", "hello-latest")]
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    # Both versions carry python/a.py; the later one in spec.layers (deps:1) wins.
    (source,) = volumes["opt"]["projected"]["sources"]
    assert source["configMap"]["name"] == "deps-layer-v1"


@pytest.mark.parametrize(
    ("layers", "needle"),
    [
        (["nope"], "spec.layers[0]: layer 'nope' does not exist in namespace ns"),
        (["deps:7"], "version 7 of layer 'deps' does not exist"),
    ],
)
async def test_unknown_layer_is_actionable(layers: list[str], needle: str) -> None:
    kube = FakeKube()
    await reconcile.reconcile_layer(kube, _layer(kube, "deps", {"a": "b"}), verifier=None)
    with pytest.raises(UnknownLayer) as err:
        await _reconcile(kube, _function(kube, layers=layers))
    assert needle in err.value.message and "apply the Layer first" in err.value.message
    assert kube.of_kind("Deployment") == []


async def test_config_map_code_is_copied_and_missing_one_reported() -> None:
    kube = FakeKube()
    body = _function(kube, code={"configMapRef": {"name": "src"}})
    with pytest.raises(MissingConfigMap, match="ConfigMap 'src' not found in namespace ns"):
        await _reconcile(kube, body)
    kube.put(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "src", "namespace": "ns"},
            "data": {"app.py": "def handler(e, c): return 3\n"},
        }
    )
    await _reconcile(kube, body)
    copies = [c for c in kube.of_kind("ConfigMap") if c["metadata"]["name"] != "src"]
    assert len(copies) == 1 and copies[0]["immutable"] is True


async def test_alias_resolution() -> None:
    kube = FakeKube()
    await _reconcile(kube, _function(kube, publish=True))
    alias = {
        "kind": "Alias",
        "metadata": {"name": "live", "namespace": "ns"},
        "spec": {
            "functionName": "hello",
            "functionVersion": "1",
            "routingConfig": {"additionalVersionWeights": {"$LATEST": 0.25}},
        },
    }
    status = await reconcile.reconcile_alias(kube, alias)
    assert status["resolvedVersions"] == {"$LATEST": 0.25, "1": 0.75}
    alias["spec"]["functionVersion"] = "9"
    with pytest.raises(UnknownVersion, match="version 9 of function 'hello' does not exist"):
        await reconcile.reconcile_alias(kube, alias)


async def test_role_must_name_an_existing_service_account() -> None:
    from klambda_operator.errors import MissingServiceAccount

    kube = FakeKube()
    body = _function(kube, role="reader")
    with pytest.raises(MissingServiceAccount, match="ServiceAccount 'reader' not found"):
        await _reconcile(kube, body)
    kube.put(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "reader", "namespace": "ns"},
        }
    )
    await _reconcile(kube, body)
    dep = kube.objects[("Deployment", "ns", "hello-latest")]
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == "reader"


async def test_a_recreated_function_does_not_inherit_old_versions() -> None:
    """The garbage collector may still be removing the versions of a deleted Function of the
    same name; they are not the new Function's versions."""
    kube = FakeKube()
    kube.put(
        {
            "apiVersion": "klambda.io/v1alpha1",
            "kind": "FunctionVersion",
            "metadata": {
                "name": "hello-v1",
                "namespace": "ns",
                "labels": {"klambda.io/function": "hello", "klambda.io/version": "1"},
                "ownerReferences": [{"kind": "Function", "name": "hello", "uid": "old"}],
            },
            "spec": {
                "functionName": "hello",
                "version": "1",
                "revision": "r-old",
                "snapshot": {
                    "runtime": "python3.12",
                    "memorySize": 128,
                    "timeout": 3,
                    "code": {"image": "old:1"},
                },
            },
        }
    )
    status = await _reconcile(kube, _function(kube))
    assert status["latestVersion"] == ""
    assert [d["metadata"]["name"] for d in kube.of_kind("Deployment")] == ["hello-latest"]


async def test_url_layer_versions_and_init_step() -> None:
    kube = FakeKube()
    sha = "a" * 64
    layer = kube.put(
        {
            "apiVersion": "klambda.io/v1alpha1",
            "kind": "Layer",
            "metadata": {"name": "big", "namespace": "ns"},
            "spec": {"content": {"url": {"location": "https://h/big.zip", "sha256": sha}}},
        }
    )
    status = await reconcile.reconcile_layer(kube, layer, verifier=None)
    assert status["latestVersion"] == "1"
    assert (await reconcile.reconcile_layer(kube, layer, verifier=None)) == status
    await _reconcile(kube, _function(kube, layers=["big"]))
    pod = kube.objects[("Deployment", "ns", "hello-latest")]["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["name"] == "fetch-layers"
    assert init["command"][3:] == ["--url", "https://h/big.zip", "--sha256", sha, "--dest", "/opt"]
