"""The CRDs as built (pure checks; the API server checks them in test_cluster_crds.py).

Covers: the five kinds with group/version/scope/short names/category, status subresource
keeping unknown fields for Kopf, printer columns, structural schema (every node typed, every
field described), CEL rules and messages for the bounds a user can trip, deterministic output.
"""

from __future__ import annotations

from typing import Any

import pytest
from klambda_operator.resources.crds import CATEGORY, build_crds


def _by_kind() -> dict[str, dict[str, Any]]:
    return {c["spec"]["names"]["kind"]: c for c in build_crds()}


def _walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        out += _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        out += _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        out += _walk(schema["additionalProperties"], f"{path}{{}}")
    return out


def test_kinds_and_determinism() -> None:
    assert build_crds() == build_crds()
    names = [c["metadata"]["name"] for c in build_crds()]
    assert names == sorted(names)
    assert set(_by_kind()) == {
        "Function",
        "FunctionVersion",
        "Layer",
        "Alias",
        "EventSourceMapping",
    }


@pytest.mark.parametrize(
    "kind", ["Function", "FunctionVersion", "Layer", "Alias", "EventSourceMapping"]
)
def test_crd_shape(kind: str) -> None:
    crd = _by_kind()[kind]
    spec = crd["spec"]
    assert spec["group"] == "klambda.io" and spec["scope"] == "Namespaced"
    assert CATEGORY in spec["names"]["categories"]
    assert spec["names"]["shortNames"]
    (version,) = spec["versions"]
    assert version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] is True
    assert version["additionalPrinterColumns"][-1]["name"] == "Age"
    for path, node in _walk(schema["properties"]["spec"], ".spec"):
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        if path.count(".") >= 2 and not path.endswith(("[]", "{}")):
            assert node.get("description"), f"{kind}{path} has no description"


def _rules(schema: dict[str, Any]) -> list[dict[str, str]]:
    return [r for _, node in _walk(schema) for r in node.get("x-kubernetes-validations", [])]


def test_function_columns_and_ready_condition() -> None:
    version = _by_kind()["Function"]["spec"]["versions"][0]
    cols = [c["name"] for c in version["additionalPrinterColumns"]]
    assert cols == ["State", "Runtime", "Latest-Version", "Ready-Envs", "Age"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    cond = status["properties"]["conditions"]
    assert cond["x-kubernetes-list-map-keys"] == ["type"]


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("Function", "spec.memorySize"),
        ("Function", "spec.timeout"),
        ("Function", "spec.layers"),
        ("Function", "exactly one of inline, zipFile, url, configMapRef, image must be set"),
        ("Layer", "exactly one of inline, zipFile, url, configMapRef must be set"),
        ("Alias", "additionalVersionWeights values is outside the allowed range 0.0..1.0"),
        ("Alias", "must sum to at most 1"),
        ("FunctionVersion", "immutable"),
    ],
)
def test_cel_rules_have_actionable_messages(kind: str, needle: str) -> None:
    schema = _by_kind()[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    messages = [r.get("message", "") + r.get("messageExpression", "") for r in _rules(schema)]
    assert any(needle in m for m in messages), messages


def _paths(schema: dict[str, Any]) -> set[str]:
    return {path for path, _ in _walk(schema)}


@pytest.mark.parametrize("kind", ["Function", "Layer", "Alias", "EventSourceMapping"])
def test_spec_schemas_are_the_model_s(kind: str) -> None:
    """No drift: same fields, types, defaults and descriptions as klambda_model; only bounds
    moved into CEL rules (with messages)."""
    from klambda_model.crd import crd_schema

    model = crd_schema(kind)["properties"]["spec"]
    ours = _by_kind()[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    assert _paths(ours) == _paths(model)
    model_nodes, our_nodes = dict(_walk(model)), dict(_walk(ours))
    for path, node in model_nodes.items():
        mine = our_nodes[path]
        for key in ("type", "default", "description", "enum", "pattern", "maxLength"):
            assert mine.get(key) == node.get(key), (path, key)
        if "minimum" in node and "maximum" in node:
            rules = mine["x-kubernetes-validations"]
            assert any(f"{node['minimum']}..{node['maximum']}" in r["message"] for r in rules)
        model_rules = [r["rule"] for r in node.get("x-kubernetes-validations", [])]
        assert (
            model_rules
            == [r["rule"] for r in mine.get("x-kubernetes-validations", [])][: len(model_rules)]
        )


def test_names_are_the_model_s() -> None:
    from klambda_model.crd import PLURALS

    for kind, (plural, short) in PLURALS.items():
        names = _by_kind()[kind]["spec"]["names"]
        assert (names["plural"], names["shortNames"]) == (plural, list(short))
