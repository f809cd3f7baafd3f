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
        ("Function", "set exactly one of inline, zipFile, url, configMapRef or image"),
        ("Layer", "set exactly one of inline, zipFile, url or configMapRef"),
        ("Alias", "between 0 and 1"),
        ("Alias", "sum to at most 1"),
        ("FunctionVersion", "immutable"),
    ],
)
def test_cel_rules_have_actionable_messages(kind: str, needle: str) -> None:
    schema = _by_kind()[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    messages = [r.get("message", "") + r.get("messageExpression", "") for r in _rules(schema)]
    assert any(needle in m for m in messages), messages
