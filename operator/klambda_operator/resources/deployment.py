"""The Deployment of one function version (published, or $LATEST). Pure and deterministic.

``spec.replicas`` is deliberately absent: after creation the gateway's autoscaler owns it
through the ``/scale`` subresource (the operator creates it with 0 replicas and never
sends the field again, so server-side apply leaves the autoscaler's value alone).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from klambda_runtime.spec import EnvironmentSpec

from klambda_operator.resources.code import merge_layer_items
from klambda_operator.resources.meta import (
    ANNOTATION_REVISION,
    LABEL_FUNCTION,
    LABEL_VERSION,
    base_labels,
    deployment_name,
    owned_metadata,
    version_label,
)
from klambda_operator.resources.version import Artifact, ResolvedVersion

CODE_DIR = "/var/task"
OPT_DIR = "/opt"
# Lambda gives one full vCPU at 1,769 MB and scales CPU linearly with memory.
MB_PER_VCPU = 1769


@dataclass(frozen=True)
class DeploymentSettings:
    """What the builder needs beyond the version itself (from the operator's settings)."""

    gateway_address: str  # host:port of the gateway's gRPC Service
    # host:port of the gateway's lane Service port (the same stream as framed protobuf over
    # plain TCP, klambda_proto.lane; cheaper than gRPC per message). "" = gRPC only. The
    # agent falls back to ``gateway_address`` while the lane cannot be reached.
    lane_address: str = ""
    runtime_images: Mapping[str, str] = field(
        default_factory=lambda: {
            "provided": "ghcr.io/klambda/runtime-python:0.1.0",
            "python3.11": "ghcr.io/klambda/runtime-python:0.1.0-py3.11",
            "python3.12": "ghcr.io/klambda/runtime-python:0.1.0",
        }
    )
    image_pull_policy: str = "IfNotPresent"
    python: str = "python"  # interpreter of the agent and the fetch init container
    run_as_user: int = 1000
    region: str = "us-east-1"
    account_id: str = "000000000000"
    tmp_size: str = "512Mi"
    cpu_limit: bool = False  # a CPU limit throttles; off by default, requests are proportional
    revision_history_limit: int = 2


def cpu_millis(memory_size: int) -> int:
    """CPU request proportional to memory (at least 50m)."""
    return max(50, round(memory_size * 1000 / MB_PER_VCPU))


def _security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def _fetch_container(
    *,
    name: str,
    settings: DeploymentSettings,
    image: str,
    args: list[str],
    mount: str,
    layer_sources: bool = False,
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": [settings.python, "-m", "klambda_operator.fetch", *args],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": _security_context(),
        "volumeMounts": [
            {"name": mount, "mountPath": CODE_DIR if mount == "code" else OPT_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            *(
                [{"name": "layer-sources", "mountPath": "/klambda/layers", "readOnly": True}]
                if layer_sources
                else []
            ),
        ],
    }


def _code_volume(code: Artifact) -> dict[str, Any]:
    if code.kind == "configMap":
        return {
            "name": "code",
            "configMap": {
                "name": code.config_map,
                "items": [{"key": f.key, "path": f.path, "mode": f.mode} for f in code.files],
            },
        }
    return {"name": "code", "emptyDir": {"sizeLimit": "512Mi"}}


def _layer_volumes(version: ResolvedVersion) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """Volumes for /opt and, if some layer needs fetching, the args of the init step."""
    artifacts = [layer.artifact for layer in version.layers]
    if not artifacts:
        return [], []
    if all(a.kind == "configMap" for a in artifacts):
        sources = []
        for config_map, f in merge_layer_items(artifacts):
            sources.append(
                {
                    "configMap": {
                        "name": config_map,
                        "items": [{"key": f.key, "path": f.path, "mode": f.mode}],
                    }
                }
            )
        return [{"name": "opt", "projected": {"sources": sources}}], []
    # Mixed or URL layers: assemble /opt in an emptyDir, in order, in an init container.
    args: list[str] = []
    sources = []
    for index, layer in enumerate(version.layers):
        a = layer.artifact
        if a.kind == "url":
            args += ["--url", a.url, "--sha256", a.sha256]
        else:
            sub = f"{index}"
            sources.append(
                {
                    "configMap": {
                        "name": a.config_map,
                        "items": [
                            {"key": f.key, "path": f"{sub}/{f.path}", "mode": f.mode}
                            for f in a.files
                        ],
                    }
                }
            )
            args += ["--copy", f"/klambda/layers/{sub}"]
    volumes: list[dict[str, Any]] = [{"name": "opt", "emptyDir": {"sizeLimit": "512Mi"}}]
    if sources:
        volumes.append({"name": "layer-sources", "projected": {"sources": sources}})
    return volumes, [args]


def build_deployment(
    version: ResolvedVersion, settings: DeploymentSettings, *, owner: Mapping[str, Any]
) -> dict[str, Any]:
    """The Deployment running environments of ``version`` (no ``spec.replicas``)."""
    selector = {
        LABEL_FUNCTION: version.function_name,
        LABEL_VERSION: version_label(version.version),
    }
    labels = base_labels(**selector)
    revision = version.revision
    has_layers = bool(version.layers)
    env_spec = EnvironmentSpec(
        environment_id="",
        gateway=settings.gateway_address,
        lane=settings.lane_address,
        namespace=version.namespace,
        function_name=version.function_name,
        version=version.version,
        runtime=version.runtime,
        handler=version.handler,
        code_dir=CODE_DIR,
        opt_dir=OPT_DIR if has_layers else "",
        memory_size=version.memory_size,
        timeout=version.timeout,
        environment=version.environment,
        region=settings.region,
        account_id=settings.account_id,
        revision=revision,
    )
    env: list[dict[str, Any]] = []
    for name, value in sorted(env_spec.to_env().items()):
        if name == "KLAMBDA_ENV_ID":  # one id per pod: the pod's name
            env.append({"name": name, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
        else:
            env.append({"name": name, "value": value})

    runtime_image = settings.runtime_images.get(version.runtime, "")
    image = version.code.image or runtime_image
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": settings.tmp_size}}]
    init: list[dict[str, Any]] = []
    if version.code.kind != "image":
        volumes.append(_code_volume(version.code))
        mounts.append({"name": "code", "mountPath": CODE_DIR, "readOnly": True})
        if version.code.kind == "url":
            init.append(
                _fetch_container(
                    name="fetch-code",
                    settings=settings,
                    image=runtime_image,
                    args=[
                        "--url",
                        version.code.url,
                        "--sha256",
                        version.code.sha256,
                        "--dest",
                        CODE_DIR,
                    ],
                    mount="code",
                )
            )
    layer_volumes, layer_args = _layer_volumes(version)
    volumes += layer_volumes
    if has_layers:
        mounts.append({"name": "opt", "mountPath": OPT_DIR, "readOnly": True})
    for args in layer_args:
        init.append(
            _fetch_container(
                name="fetch-layers",
                settings=settings,
                image=runtime_image,
                args=[*args, "--dest", OPT_DIR],
                mount="opt",
                layer_sources=any(v["name"] == "layer-sources" for v in layer_volumes),
            )
        )

    memory = f"{version.memory_size}Mi"
    cpu = f"{cpu_millis(version.memory_size)}m"
    limits = {"memory": memory, **({"cpu": cpu} if settings.cpu_limit else {})}
    container: dict[str, Any] = {
        "name": "function",
        "image": image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": [settings.python, "-m", "klambda_runtime.agent"],
        "env": env,
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": limits},
        "securityContext": _security_context(),
        "volumeMounts": sorted(mounts, key=lambda m: str(m["mountPath"])),
    }
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": bool(version.role),
        "containers": [container],
        "enableServiceLinks": False,
        "securityContext": {
            "fsGroup": settings.run_as_user,
            "runAsGroup": settings.run_as_user,
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # The agent finishes the in-flight invocation (up to its timeout) on SIGTERM.
        "terminationGracePeriodSeconds": version.timeout + 5,
        "volumes": sorted(volumes, key=lambda v: str(v["name"])),
    }
    if init:
        pod_spec["initContainers"] = init
    if version.role:
        pod_spec["serviceAccountName"] = version.role
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owned_metadata(
            name=deployment_name(version.function_name, version.version),
            namespace=version.namespace,
            owner=owner,
            labels=labels,
            annotations={ANNOTATION_REVISION: revision},
        ),
        "spec": {
            "revisionHistoryLimit": settings.revision_history_limit,
            "selector": {"matchLabels": dict(sorted(selector.items()))},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": dict(sorted(labels.items())),
                    "annotations": {ANNOTATION_REVISION: revision},
                },
                "spec": pod_spec,
            },
        },
    }
