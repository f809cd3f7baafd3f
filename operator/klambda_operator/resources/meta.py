"""Names, labels and owner references shared by the builders. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from klambda_operator.resources.crds import API_VERSION
from klambda_operator.resources.version import LATEST

MANAGER = "klambda-operator"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_FUNCTION = "klambda.io/function"
LABEL_VERSION = "klambda.io/version"
LABEL_LAYER = "klambda.io/layer"
ANNOTATION_REVISION = "klambda.io/revision"


def version_label(version: str) -> str:
    """Label value of a version ($ is not allowed in label values)."""
    return "latest" if version == LATEST else version


def deployment_name(function_name: str, version: str) -> str:
    return f"{function_name}-{'latest' if version == LATEST else 'v' + version}"


def function_version_name(function_name: str, version: str) -> str:
    return f"{function_name}-v{version}"


def base_labels(**extra: str) -> dict[str, str]:
    return {LABEL_MANAGED_BY: MANAGER, LABEL_PART_OF: "klambda", **extra}


def owner_reference(obj: Mapping[str, Any], *, controller: bool = True) -> dict[str, Any]:
    """An ownerReference to a klambda object (a fetched object or a Kopf body)."""
    meta = obj["metadata"]
    return {
        "apiVersion": str(obj.get("apiVersion", API_VERSION)),
        "kind": str(obj["kind"]),
        "name": str(meta["name"]),
        "uid": str(meta["uid"]),
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def owned_metadata(
    *,
    name: str,
    namespace: str,
    owner: Mapping[str, Any],
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": dict(sorted(labels.items())),
        "ownerReferences": [owner_reference(owner)],
    }
    if annotations:
        meta["annotations"] = dict(sorted(annotations.items()))
    return meta
