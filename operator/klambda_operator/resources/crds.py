"""The CustomResourceDefinitions of klambda (apiextensions.k8s.io/v1), built as plain dicts.

Pure: no I/O, deterministic. ``build_crds()`` returns the five CRDs sorted by name:
Function, Layer, Alias and EventSourceMapping (the public kinds of the resource model) and
FunctionVersion (internal, created by the operator when a version is published; immutable,
like Knative's Revision).

Validation that a user can trip is written as CEL rules (``x-kubernetes-validations``) whose
messages say what was wrong and what to do; the API server returns them verbatim.
"""

from __future__ import annotations

from typing import Any

GROUP = "klambda.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "klambda"

RUNTIMES = ("provided", "python3.11", "python3.12")
MEMORY_MIN, MEMORY_MAX, MEMORY_DEFAULT = 128, 10240, 128
TIMEOUT_MIN, TIMEOUT_MAX, TIMEOUT_DEFAULT = 1, 900, 3
MAX_LAYERS = 5
CODE_SOURCES = ("inline", "zipFile", "url", "configMapRef", "image")
LAYER_SOURCES = ("inline", "zipFile", "url", "configMapRef")

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


def _string_map(description: str, *, max_properties: int = 1000) -> Schema:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": {"type": "string"},
        "maxProperties": max_properties,
    }


def _bounded_int(
    *, field: str, unit: str, low: int, high: int, default: int | None, description: str
) -> Schema:
    schema: Schema = _s("integer", description)
    if default is not None:
        schema["default"] = default
    schema["x-kubernetes-validations"] = [
        _rule(
            f"self >= {low} && self <= {high}",
            f"{field} is outside the allowed range {low}..{high} {unit}; set a value in that "
            "range",
        )
    ]
    return schema


def _exactly_one(sources: tuple[str, ...], *, field: str) -> dict[str, str]:
    checks = ", ".join(f"has(self.{name})" for name in sources)
    names = ", ".join(sources[:-1]) + " or " + sources[-1]
    return _rule(
        f"[{checks}].filter(x, x).size() == 1",
        f"{field}: set exactly one of {names}",
    )


def _code_schema(*, field: str, sources: tuple[str, ...], description: str) -> Schema:
    props: dict[str, Schema] = {
        "inline": _string_map(
            "Files by relative path (e.g. app.py, pkg/util.py) and their text content. "
            "Stored in a ConfigMap, so the total must stay under about 1 MiB.",
            max_properties=500,
        ),
        "zipFile": _s(
            "string",
            "A zip archive, base64-encoded (small archives only: it is stored in a ConfigMap).",
            maxLength=1_400_000,
        ),
        "url": _obj(
            "A zip archive at a URL, fetched by an init step of each environment and checked "
            "against its SHA-256.",
            {
                "location": _s(
                    "string",
                    "http(s):// URL of a .zip archive.",
                    maxLength=2048,
                    pattern="^(https?|file)://.+$",
                ),
                "sha256": _s(
                    "string",
                    "Hex SHA-256 of the archive (sha256sum code.zip); a mismatch fails the "
                    "deployment.",
                    pattern="^[0-9a-f]{64}$",
                ),
            },
            required=["location", "sha256"],
        ),
        "configMapRef": _obj(
            "An existing ConfigMap in the same namespace whose keys are file names.",
            {
                "name": _s("string", "Name of the ConfigMap.", maxLength=253),
                "key": _s(
                    "string",
                    "If set, this key (binaryData) holds a zip archive; otherwise every key "
                    "is one file.",
                    maxLength=253,
                ),
            },
            required=["name"],
        ),
    }
    if "image" in sources:
        props["image"] = _s(
            "string",
            "A container image that already holds the code under /var/task (a Lambda-"
            "compatible image); it is used as is.",
            maxLength=1024,
        )
    return _obj(
        description,
        props,
        **{
            "x-kubernetes-validations": [
                _exactly_one(sources, field=field),
            ]
        },
    )


def _destination(description: str) -> Schema:
    return _obj(
        description,
        {
            "function": _s("string", "Name of a function (optionally name:qualifier)."),
            "arn": _s("string", "ARN of a queue or function destination."),
        },
    )


def function_spec_schema() -> Schema:
    return _obj(
        "Desired state of a function: its code, runtime and configuration ($LATEST).",
        {
            "description": _s("string", "Free text.", maxLength=256),
            "runtime": _s(
                "string",
                "Runtime identifier: python3.11, python3.12, or provided (a bootstrap).",
                enum=list(RUNTIMES),
                default="python3.12",
            ),
            "handler": _s(
                "string", "Handler as module.function (e.g. app.handler).", maxLength=128
            ),
            "code": _code_schema(
                field="spec.code",
                sources=CODE_SOURCES,
                description="Where the code comes from: exactly one source.",
            ),
            "memorySize": _bounded_int(
                field="spec.memorySize",
                unit="MB",
                low=MEMORY_MIN,
                high=MEMORY_MAX,
                default=MEMORY_DEFAULT,
                description="Memory in MB (128..10240); the pod's memory limit, CPU is "
                "proportional to it.",
            ),
            "timeout": _bounded_int(
                field="spec.timeout",
                unit="seconds",
                low=TIMEOUT_MIN,
                high=TIMEOUT_MAX,
                default=TIMEOUT_DEFAULT,
                description="Maximum run time of one invocation in seconds (1..900).",
            ),
            "environment": _obj(
                "Environment of the function.",
                {"variables": _string_map("Environment variables.", max_properties=200)},
            ),
            "layers": {
                "type": "array",
                "description": "Layer names in the same namespace, optionally name:version; "
                "their content is merged under /opt in this order (later layers win).",
                "items": {"type": "string", "maxLength": 128},
                "x-kubernetes-validations": [
                    _rule(
                        f"self.size() <= {MAX_LAYERS}",
                        f"spec.layers: at most {MAX_LAYERS} layers are allowed; merge some of "
                        "them into one layer",
                    )
                ],
            },
            "role": _s(
                "string",
                "Execution role: the name of a ServiceAccount the function's pods run as "
                "(with IRSA on EKS). Without it pods get no ServiceAccount token.",
                maxLength=253,
            ),
            "reservedConcurrency": _s(
                "integer",
                "Reserved concurrency: the maximum concurrent invocations; 0 throttles all.",
                minimum=0,
            ),
            "publish": _s(
                "boolean",
                "Publish a new immutable version whenever the code or configuration changes "
                "(the declarative equivalent of publish-version).",
            ),
            "eventInvokeConfig": _obj(
                "Asynchronous invocation settings.",
                {
                    "maximumRetryAttempts": _s(
                        "integer", "Retries of a failed async event (0..2).", minimum=0, maximum=2
                    ),
                    "maximumEventAgeInSeconds": _s(
                        "integer",
                        "Maximum age of an async event (60..21600 seconds).",
                        minimum=60,
                        maximum=21600,
                    ),
                    "destinationConfig": _obj(
                        "Where results of async invocations are sent.",
                        {
                            "onSuccess": _destination("Destination for successful events."),
                            "onFailure": _destination("Destination for failed events."),
                        },
                    ),
                },
            ),
        },
        required=["code"],
        **{
            "x-kubernetes-validations": [
                _rule(
                    "has(self.handler) || has(self.code.image) || self.runtime == 'provided'",
                    "spec.handler is required (e.g. app.handler) unless the code is an image "
                    "or the runtime is provided",
                )
            ]
        },
    )


def layer_spec_schema() -> Schema:
    return _obj(
        "A layer: content merged under /opt of the functions that use it. Every change of "
        "the content publishes a new layer version.",
        {
            "description": _s("string", "Free text.", maxLength=256),
            "content": _code_schema(
                field="spec.content",
                sources=LAYER_SOURCES,
                description="Where the layer content comes from: exactly one source.",
            ),
            "compatibleRuntimes": {
                "type": "array",
                "description": "Runtimes this layer works with.",
                "items": {"type": "string", "enum": list(RUNTIMES)},
                "maxItems": 15,
            },
        },
        required=["content"],
    )


def alias_spec_schema() -> Schema:
    weight_rules = [
        _rule(
            "self.all(k, self[k] >= 0.0 && self[k] <= 1.0)",
            "spec.routingConfig.additionalVersionWeights: every weight must be between 0 "
            "and 1 (e.g. 0.1 sends 10% of traffic to that version)",
        ),
        _rule(
            "self.map(k, self[k]).sum() <= 1.0",
            "spec.routingConfig.additionalVersionWeights: the weights sum to more than 1; "
            "lower them so that they sum to at most 1",
        ),
    ]
    return _obj(
        "An alias: a named pointer to a function version, with optional weighted routing.",
        {
            "functionName": _s("string", "Name of the function in this namespace.", maxLength=64),
            "name": _s(
                "string",
                "Alias name used as the qualifier (hello:live); defaults to metadata.name.",
                maxLength=128,
                pattern="^[a-zA-Z0-9_-]+$",
            ),
            "description": _s("string", "Free text.", maxLength=256),
            "functionVersion": _s(
                "string",
                'The version the alias points at: a published version ("1") or $LATEST.',
                pattern="^(\\$LATEST|[0-9]+)$",
            ),
            "routingConfig": _obj(
                "Weighted routing to additional versions.",
                {
                    "additionalVersionWeights": {
                        "type": "object",
                        "description": "Version -> fraction of traffic (0..1) it receives; "
                        "the rest goes to functionVersion.",
                        "additionalProperties": {"type": "number"},
                        "maxProperties": 16,
                        "x-kubernetes-validations": weight_rules,
                    }
                },
            ),
            "provisionedConcurrency": _s(
                "integer",
                "Environments kept initialised ahead of traffic for this alias.",
                minimum=0,
                maximum=1000,
            ),
        },
        required=["functionName", "functionVersion"],
        **{
            "x-kubernetes-validations": [
                _rule(
                    "!has(self.routingConfig) || "
                    "!has(self.routingConfig.additionalVersionWeights) || "
                    "!(self.functionVersion in self.routingConfig.additionalVersionWeights)",
                    "spec.routingConfig.additionalVersionWeights must not name "
                    "spec.functionVersion itself; list only the additional versions",
                )
            ]
        },
    )


def event_source_mapping_spec_schema() -> Schema:
    return _obj(
        "An event source mapping: a poller that reads batches from a queue or stream and "
        "invokes a function (pollers arrive in a later release).",
        {
            "functionName": _s(
                "string", "Function name, optionally name:qualifier.", maxLength=140
            ),
            "eventSourceArn": _s("string", "ARN or URI of the queue or stream.", maxLength=1024),
            "batchSize": _bounded_int(
                field="spec.batchSize",
                unit="records",
                low=1,
                high=10000,
                default=10,
                description="Records per invocation (1..10000).",
            ),
            "maximumBatchingWindowInSeconds": _s(
                "integer", "Wait up to this long to fill a batch (0..300).", minimum=0, maximum=300
            ),
            "enabled": _s("boolean", "Whether the poller runs.", default=True),
            "startingPosition": _s(
                "string", "For streams: where to start.", enum=["LATEST", "TRIM_HORIZON"]
            ),
        },
        required=["functionName", "eventSourceArn"],
    )


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
            short_names=["fn", "fns"],
            spec=function_spec_schema(),
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
            short_names=["lyr"],
            spec=layer_spec_schema(),
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
            short_names=["fnalias"],
            spec=alias_spec_schema(),
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
            short_names=["esm"],
            spec=event_source_mapping_spec_schema(),
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
