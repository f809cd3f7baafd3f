"""The CustomResourceDefinitions of klambda (apiextensions.k8s.io/v1), built as plain dicts.

The spec schemas of the four public kinds come from the resource model
(``klambda_model.crd.crd_schema``), so the CRDs cannot drift from it; this module adds what
only Kubernetes needs: bounds as CEL rules with actionable messages, the status schema
(conditions, printer-column fields, unknown fields kept for Kopf), printer columns, short
names, the ``klambda`` category, and the internal FunctionVersion kind.
Pure: no I/O, deterministic. ``build_crds()`` returns the five CRDs sorted by name:
Function, Layer, Alias and EventSourceMapping (the public kinds of the resource model) and
FunctionVersion (internal, created by the operator when a version is published; immutable,
like Knative's Revision).

Validation that a user can trip is written as CEL rules (``x-kubernetes-validations``) whose
messages say what was wrong and what to do; the API server returns them verbatim.
"""

from __future__ import annotations

import copy
from typing import Any

from klambda_model.crd import PLURALS as MODEL_NAMES
from klambda_model.crd import crd_schema as model_crd_schema

GROUP = "klambda.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "klambda"


Schema = dict[str, Any]


def _s(type_: str, description: str, **extra: Any) -> Schema:
    return {"type": type_, "description": description, **extra}


def _obj(description: str, properties: dict[str, Schema], **extra: Any) -> Schema:
    return {"type": "object", "description": description, "properties": properties, **extra}


def _rule(rule: str, message: str = "", *, message_expression: str = "") -> dict[str, str]:
    out = {"rule": rule}
    if message:
        out["message"] = message
    if message_expression:
        out["messageExpression"] = message_expression
    return out


def _field_name(path: str) -> str:
    return path.replace("{}", " values").replace("[]", " items")


def actionable(schema: Schema, path: str = "spec") -> Schema:
    """The model's schema with bounds turned into CEL rules whose messages name the field,
    the allowed range and what to do (the API server returns them verbatim). Pure; the
    input is not modified."""
    out = {
        k: v for k, v in schema.items() if k not in ("properties", "items", "additionalProperties")
    }
    rules = list(out.get("x-kubernetes-validations", []))
    kind = out.get("type")
    if kind in ("integer", "number") and "minimum" in out and "maximum" in out:
        low, high = out.pop("minimum"), out.pop("maximum")
        unit = (
            " MB"
            if path.endswith("memorySize")
            else (" seconds" if path.endswith("timeout") else "")
        )
        rules.append(
            _rule(
                f"self >= {low} && self <= {high}",
                f"{_field_name(path)} is outside the allowed range {low}..{high}{unit}; set a "
                "value in that range",
            )
        )
    if kind == "array" and path == "spec.layers" and "maxItems" in out:
        limit = out.pop("maxItems")
        rules.append(
            _rule(
                f"self.size() <= {limit}",
                f"spec.layers: at most {limit} layers are allowed; merge some of them into one "
                "layer",
            )
        )
    if rules:
        out["x-kubernetes-validations"] = rules
    if "properties" in schema:
        out["properties"] = {
            name: actionable(sub, f"{path}.{name}") for name, sub in schema["properties"].items()
        }
    if isinstance(schema.get("items"), dict):
        out["items"] = actionable(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = actionable(schema["additionalProperties"], f"{path}{{}}")
    elif "additionalProperties" in schema:
        out["additionalProperties"] = schema["additionalProperties"]
    return out


def model_spec_schema(kind: str) -> Schema:
    """The spec schema of a public kind, generated from the resource model (the single source
    of truth: fields, types, bounds, defaults, descriptions, cross-field CEL rules)."""
    spec = model_crd_schema(kind)["properties"]["spec"]
    return actionable(copy.deepcopy(spec))


def function_version_spec_schema() -> Schema:
    return {
        "type": "object",
        "description": "An immutable snapshot of a function's code and configuration, made "
        "by the operator when a version is published. Do not create these by hand.",
        "properties": {
            "functionName": _s("string", "The function this version belongs to."),
            "version": _s("string", 'The version number ("1", "2", ...).'),
            "revision": _s("string", "Content hash of code and configuration."),
            "snapshot": {
                "type": "object",
                "description": "The function spec at publish time, with layers resolved.",
                "x-kubernetes-preserve-unknown-fields": True,
            },
        },
        "required": ["functionName", "version", "revision", "snapshot"],
        "x-kubernetes-validations": [
            _rule(
                "self == oldSelf",
                "a published FunctionVersion is immutable; change the Function and publish a "
                "new version instead",
            )
        ],
    }


def _status_schema(extra: dict[str, Schema]) -> Schema:
    condition = _obj(
        "A condition, as in every Kubernetes object.",
        {
            "type": _s("string", "Condition type, e.g. Ready."),
            "status": _s("string", "True, False or Unknown.", enum=["True", "False", "Unknown"]),
            "reason": _s("string", "One CamelCase word."),
            "message": _s("string", "What happened and what to do."),
            "lastTransitionTime": _s("string", "When status last changed.", format="date-time"),
            "observedGeneration": _s("integer", "metadata.generation this is about."),
        },
        required=["type", "status"],
    )
    props: dict[str, Schema] = {
        "observedGeneration": _s("integer", "The metadata.generation last reconciled."),
        "conditions": {
            "type": "array",
            "description": "Conditions; Ready says whether the resource can be used.",
            "items": condition,
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
        **extra,
    }
    return {
        "type": "object",
        "description": "Observed state, written by the operator.",
        "properties": props,
        # Kopf keeps its progress under status; without this it would be pruned.
        "x-kubernetes-preserve-unknown-fields": True,
    }


def _crd(
    *,
    kind: str,
    plural: str,
    short_names: list[str],
    spec: Schema,
    status_props: dict[str, Schema],
    columns: list[dict[str, Any]],
    description: str,
    categories: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "klambda"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": categories if categories is not None else [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        *columns,
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "properties": {
                                "apiVersion": _s("string", "API version (klambda.io/v1alpha1)."),
                                "kind": _s("string", f"{kind}."),
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": _status_schema(status_props),
                            },
                            "required": ["spec"],
                        }
                    },
                }
            ],
        },
    }


def _col(name: str, path: str, type_: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "jsonPath": path, **extra}


_STATE = _s("string", "Active, Pending or Failed (see the Ready condition for why).")


def build_crds() -> list[dict[str, Any]]:
    """All klambda CRDs, sorted by metadata.name."""
    crds = [
        _crd(
            kind="Function",
            plural="functions",
            short_names=list(MODEL_NAMES["Function"][1]),
            spec=model_spec_schema("Function"),
            status_props={
                "state": _STATE,
                "latestVersion": _s("string", "Highest published version, if any."),
                "latestRevision": _s("string", "Revision (content hash) of $LATEST."),
                "readyEnvironments": _s("integer", "Ready pods over all versions."),
                "versions": {
                    "type": "array",
                    "description": "Published versions and the Deployment of each.",
                    "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
                "layers": {
                    "type": "array",
                    "description": "spec.layers resolved to layer versions.",
                    "items": {"type": "string"},
                },
            },
            columns=[
                _col("State", ".status.state"),
                _col("Runtime", ".spec.runtime", priority=1),
                _col("Latest-Version", ".status.latestVersion"),
                _col("Ready-Envs", ".status.readyEnvironments", "integer"),
            ],
            description="A function: code plus configuration, invocable through the gateway.",
        ),
        _crd(
            kind="FunctionVersion",
            plural="functionversions",
            short_names=["fnv"],
            spec=function_version_spec_schema(),
            status_props={"state": _STATE},
            columns=[
                _col("Function", ".spec.functionName"),
                _col("Version", ".spec.version"),
                _col("Revision", ".spec.revision", priority=1),
            ],
            description="An immutable published version of a Function (made by the operator).",
        ),
        _crd(
            kind="Layer",
            plural="layers",
            short_names=list(MODEL_NAMES["Layer"][1]),
            spec=model_spec_schema("Layer"),
            status_props={
                "state": _STATE,
                "latestVersion": _s("string", "Newest layer version."),
                "versions": {
                    "type": "array",
                    "description": "Layer versions with their digest and storage.",
                    "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            },
            columns=[
                _col("State", ".status.state"),
                _col("Latest-Version", ".status.latestVersion"),
            ],
            description="A layer: shared files merged under /opt of functions.",
        ),
        _crd(
            kind="Alias",
            plural="aliases",
            short_names=list(MODEL_NAMES["Alias"][1]),
            spec=model_spec_schema("Alias"),
            status_props={
                "state": _STATE,
                "resolvedVersions": {
                    "type": "object",
                    "description": "Version -> weight actually routed.",
                    "additionalProperties": {"type": "number"},
                },
            },
            columns=[
                _col("Function", ".spec.functionName"),
                _col("Version", ".spec.functionVersion"),
                _col("State", ".status.state"),
                _col("Provisioned", ".spec.provisionedConcurrency", "integer", priority=1),
            ],
            description="An alias of a function version, with optional weighted routing.",
        ),
        _crd(
            kind="EventSourceMapping",
            plural="eventsourcemappings",
            short_names=list(MODEL_NAMES["EventSourceMapping"][1]),
            spec=model_spec_schema("EventSourceMapping"),
            status_props={"state": _STATE},
            columns=[
                _col("Function", ".spec.functionName"),
                _col("Source", ".spec.eventSourceArn"),
                _col("State", ".status.state"),
            ],
            description="Reads batches from a queue or stream and invokes a function.",
        ),
    ]
    return sorted(crds, key=lambda crd: str(crd["metadata"]["name"]))
