"""CRDs generated from the field table: structure (every property typed, status preserved,
required fields), bounds and defaults copied from the model, CEL rules for the cross-field
constraints, printer-friendly names, and determinism."""

from __future__ import annotations

import re
from typing import Any

import pytest
from klambda_model import KINDS
from klambda_model.crd import crd, crd_schema, dump


def walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        out.extend(walk(sub, f"{path}.{name}"))
    if isinstance(schema.get("items"), dict):
        out.extend(walk(schema["items"], f"{path}[]"))
    if isinstance(schema.get("additionalProperties"), dict):
        out.extend(walk(schema["additionalProperties"], f"{path}{{}}"))
    return out


@pytest.mark.parametrize("kind", list(KINDS))
def test_structural(kind: str) -> None:
    schema = crd_schema(kind)
    assert schema["properties"]["status"] == {
        "type": "object", "x-kubernetes-preserve-unknown-fields": True}
    for path, node in walk(schema):
        if path == ".status":
            continue
        assert "type" in node, path
        if "pattern" in node:
            re.compile(node["pattern"])
            assert "(?" not in node["pattern"], f"{path}: lookarounds are not RE2"
        if path.count(".") >= 2 and not path.endswith(("[]", "}")):
            assert node.get("description"), f"{path} has no description"


def test_function_bounds_defaults_and_rules() -> None:
    spec = crd_schema("Function")["properties"]["spec"]
    props = spec["properties"]
    assert {k: props["memorySize"][k] for k in ("minimum", "maximum", "default")} == {
        "minimum": 128, "maximum": 10240, "default": 128}
    assert {k: props["timeout"][k] for k in ("minimum", "maximum", "default")} == {
        "minimum": 1, "maximum": 900, "default": 3}
    assert props["layers"]["maxItems"] == 5
    assert props["runtime"]["enum"] == ["python3.11", "python3.12", "provided"]
    assert spec["required"] == ["runtime", "code"]
    code_rules = [r["rule"] for r in props["code"]["x-kubernetes-validations"]]
    assert code_rules[0] == (
        "(has(self.inline) ? 1 : 0) + (has(self.zipFile) ? 1 : 0) + (has(self.url) ? 1 : 0) + "
        "(has(self.configMapRef) ? 1 : 0) + (has(self.image) ? 1 : 0) == 1")
    eic = props["eventInvokeConfig"]["properties"]
    assert (eic["maximumRetryAttempts"]["maximum"], eic["maximumEventAgeInSeconds"]["minimum"]
            ) == (2, 60)


def test_alias_weight_rules() -> None:
    spec = crd_schema("Alias")["properties"]["spec"]
    weights = spec["properties"]["routingConfig"]["properties"]["additionalVersionWeights"]
    assert weights["additionalProperties"] == {"type": "number", "minimum": 0.0, "maximum": 1.0}
    sum_rule = spec["properties"]["routingConfig"]["x-kubernetes-validations"][0]
    assert sum_rule["message"] == "additionalVersionWeights must sum to at most 1"
    assert ".sum() <= 1.0" in sum_rule["rule"]


def test_crd_names_and_determinism() -> None:
    doc = crd("Function")
    assert doc["metadata"]["name"] == "functions.klambda.io"
    assert doc["spec"]["names"]["categories"] == ["klambda"]
    assert doc["spec"]["versions"][0]["subresources"] == {"status": {}}
    assert dump("Alias") == dump("Alias")


def test_docs_field_reference_is_current() -> None:
    from pathlib import Path

    from klambda_model.reference import BEGIN, END, markdown_reference

    docs = (Path(__file__).resolve().parents[2] / "docs" / "resources.md").read_text()
    current = docs[docs.index(BEGIN): docs.index(END) + len(END)] + "\n"
    assert current == markdown_reference(), "run: python -m klambda_model.reference"
