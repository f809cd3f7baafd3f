"""CRDs generated from the field table: ``crd_schema(kind)`` (the openAPIV3Schema with
descriptions, bounds, defaults and CEL rules) and ``crd(kind)`` (the whole
CustomResourceDefinition). Pure and deterministic."""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from collections.abc import Mapping
from typing import Any

from .common import GROUP, VERSION
from .decode import object_fields, rules_of, unwrap_optional
from .fields import Constraints, FieldMeta
from .loader import KINDS

PLURALS = {
    "Function": ("functions", ["fn", "fns"]),
    "Layer": ("layers", ["lyr"]),
    "Alias": ("aliases", ["als"]),
    "EventSourceMapping": ("eventsourcemappings", ["esm"]),
}


def _doc(cls: type) -> str:
    return inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].replace("\n", " ")


def _scalar(tp: Any, c: Constraints) -> dict[str, Any]:
    if tp is str:
        out: dict[str, Any] = {"type": "string"}
        if c.enum:
            out["enum"] = list(c.enum)
        if c.pattern:
            out["pattern"] = f"^{c.pattern}$"
        if c.min_length is not None:
            out["minLength"] = c.min_length
        if c.max_length is not None:
            out["maxLength"] = c.max_length
        return out
    if tp is bool:
        return {"type": "boolean"}
    out = {"type": "integer" if tp is int else "number"}
    if c.minimum is not None:
        out["minimum"] = int(c.minimum) if tp is int else c.minimum
    if c.maximum is not None:
        out["maximum"] = int(c.maximum) if tp is int else c.maximum
    return out


def _value(tp: Any, meta: FieldMeta) -> dict[str, Any]:
    tp, _ = unwrap_optional(tp)
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return object_schema(tp)
    if origin is tuple:
        item_tp = typing.get_args(tp)[0]
        out: dict[str, Any] = {"type": "array", "items": _value(item_tp, dataclasses.replace(
            meta, max_items=None, min_items=None))}
        if meta.max_items is not None:
            out["maxItems"] = meta.max_items
        if meta.min_items is not None:
            out["minItems"] = meta.min_items
        return out
    if origin in (Mapping, dict):
        value_tp = typing.get_args(tp)[1]
        out = {"type": "object", "additionalProperties": _value(
            value_tp, dataclasses.replace(meta, max_items=None))}
        if meta.max_items is not None:
            out["maxProperties"] = meta.max_items
        rules = []
        if meta.key.pattern:
            rules.append({
                "rule": f"self.all(k, k.matches('^{meta.key.pattern}$'))",
                "message": f"invalid key: {meta.key.pattern_hint or meta.key.pattern}",
            })
        if meta.key.max_length is not None:
            rules.append({"rule": f"self.all(k, size(k) <= {meta.key.max_length})",
                          "message": f"keys are at most {meta.key.max_length} characters"})
        if rules:
            out["x-kubernetes-validations"] = rules
        return out
    return _scalar(tp, meta.value)


def object_schema(cls: type) -> dict[str, Any]:
    """The structural schema of one dataclass of the field table."""
    props: dict[str, Any] = {}
    required: list[str] = []
    defaults = {f.name: f for f in dataclasses.fields(cls)}
    for info in object_fields(cls):
        schema = _value(info.type, info.meta)
        schema["description"] = info.meta.description
        default = defaults[info.attr].default
        if (info.meta.crd_default and default is not dataclasses.MISSING and default is not None
                and not isinstance(default, tuple) and schema.get("type") != "object"):
            schema["default"] = default
        props[info.json] = schema
        if info.meta.required:
            required.append(info.json)
    out: dict[str, Any] = {"type": "object", "description": _doc(cls), "properties": props}
    if required:
        out["required"] = required
    rules = []
    for rule in rules_of(cls):
        if not rule.cel:
            continue
        entry = {"rule": rule.cel, "message": rule.message}
        if rule.field:
            entry["fieldPath"] = f".{rule.field}"
        rules.append(entry)
    if rules:
        out["x-kubernetes-validations"] = rules
    return out


def crd_schema(kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of ``kind`` (Function, Layer, Alias, EventSourceMapping)."""
    cls = KINDS[kind]
    spec_tp = typing.get_type_hints(cls)["spec"]
    return {
        "type": "object",
        "description": _doc(cls),
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": object_schema(spec_tp),
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
        "required": ["spec"],
    }


def crd(
    kind: str, *, printer_columns: list[dict[str, Any]] | None = None, group: str = GROUP
) -> dict[str, Any]:
    """The CustomResourceDefinition of ``kind`` (namespaced, status subresource).
    ``group`` exists for tests that install these next to the operator's CRDs."""
    plural, short = PLURALS[kind]
    version: dict[str, Any] = {
        "name": VERSION, "served": True, "storage": True,
        "schema": {"openAPIV3Schema": crd_schema(kind)},
        "subresources": {"status": {}},
    }
    if printer_columns:
        version["additionalPrinterColumns"] = printer_columns
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                      "shortNames": short, "categories": ["klambda"]},
            "versions": [version],
        },
    }


def dump(kind: str) -> str:
    """Canonical JSON of a kind's CRD (for drift checks)."""
    return json.dumps(crd(kind), sort_keys=True, indent=2)
