"""Pure resolution rules shared by the local registry and the Kubernetes operator:
layer references, function revisions, alias references. No I/O, no clock."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from .alias import AliasSpec
from .common import LATEST
from .function import FunctionSpec
from .loader import canonical_json, to_document


@dataclass(frozen=True)
class LayerVersionInfo:
    """What resolution needs to know about one published layer version."""

    version: int
    digest: str  # hex SHA-256 of the layer's zip
    compatible_runtimes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResolvedLayer:
    name: str
    version: int
    digest: str


def parse_layer_ref(ref: str) -> tuple[str, int | None]:
    """'shared-deps' -> ('shared-deps', None); 'shared-deps:3' -> ('shared-deps', 3)."""
    name, _, version = ref.partition(":")
    return name, int(version) if version else None


def resolve_layers(
    spec: FunctionSpec,
    available: Mapping[str, Sequence[LayerVersionInfo]],
    *,
    path: str = "spec.layers",
) -> tuple[list[ResolvedLayer], list[str]]:
    """Layer references -> exact versions (a bare name means the latest version).

    ``available`` maps a Layer name (same namespace) to its versions, ascending.
    Returns the resolved layers in order and every error found."""
    resolved: list[ResolvedLayer] = []
    errors: list[str] = []
    for index, ref in enumerate(spec.layers):
        name, wanted = parse_layer_ref(ref)
        versions = available.get(name) or ()
        where = f"{path}[{index}]"
        if not versions:
            errors.append(
                f'{where}: Layer "{name}" does not exist in this namespace; apply a Layer '
                f"named {name} first (or fix the name)"
            )
            continue
        if wanted is None:
            info = versions[-1]
        else:
            match = [v for v in versions if v.version == wanted]
            if not match:
                known = ", ".join(str(v.version) for v in versions)
                errors.append(
                    f'{where}: Layer "{name}" has no version {wanted} (versions: {known}); '
                    f"use one of them or just {name} for the latest"
                )
                continue
            info = match[0]
        if info.compatible_runtimes and spec.runtime not in info.compatible_runtimes:
            errors.append(
                f'{where}: Layer "{name}" version {info.version} is compatible with '
                f"{', '.join(info.compatible_runtimes)}, not {spec.runtime}; add {spec.runtime} "
                "to its compatibleRuntimes or use another layer"
            )
            continue
        resolved.append(ResolvedLayer(name=name, version=info.version, digest=info.digest))
    return resolved, errors


def function_revision(
    spec: FunctionSpec, *, code_digest: str, layers: Sequence[ResolvedLayer]
) -> str:
    """Content hash of everything a version snapshots: code + configuration (not the
    function-level settings reservedConcurrency, eventInvokeConfig, publish)."""
    snapshot = {
        "runtime": spec.runtime,
        "handler": spec.handler or "",
        "memorySize": spec.memory_size,
        "timeout": spec.timeout,
        "environment": to_document(spec.environment.variables) if spec.environment else {},
        "code": code_digest,
        "layers": [[la.name, la.version, la.digest] for la in layers],
        "role": spec.role,
        "description": spec.description,
    }
    return hashlib.sha256(canonical_json(snapshot).encode()).hexdigest()[:20]


def code_source_key(spec: FunctionSpec) -> str:
    """A key of the code *source* (what to materialise), for caching artifacts."""
    return hashlib.sha256(canonical_json(to_document(spec.code)).encode()).hexdigest()


def check_alias(
    spec: AliasSpec,
    *,
    function_exists: bool,
    published: Collection[str],
    path: str = "spec",
) -> list[str]:
    """An alias may only point at an existing function and existing versions."""
    if not function_exists:
        return [
            (f'{path}.functionName: function "{spec.function_name}" does not exist in this '
            "namespace; apply the Function first")
        ]
    errors: list[str] = []
    shown = ", ".join(sorted(published, key=int)) or "none yet"
    hint = (
        f"publish one with `klambda publish-version {spec.function_name}` or set "
        "spec.publish: true on the Function"
    )
    if spec.function_version != LATEST and spec.function_version not in published:
        errors.append(
            f'{path}.functionVersion: function "{spec.function_name}" has no version '
            f"{spec.function_version} (published: {shown}); {hint}"
        )
    weights = spec.routing_config.additional_version_weights if spec.routing_config else {}
    for version in sorted(weights, key=int):
        if version not in published:
            errors.append(
                f"{path}.routingConfig.additionalVersionWeights[\"{version}\"]: function "
                f'"{spec.function_name}" has no version {version} (published: {shown}); {hint}'
            )
    return errors
