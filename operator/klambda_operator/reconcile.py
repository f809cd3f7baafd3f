"""Reconcilers: from a klambda object to the Kubernetes objects it needs, idempotently.

Each reconciler reads what exists through :class:`~klambda_operator.kube.KubeApi`, builds
the whole desired state with the pure builders in :mod:`klambda_operator.resources`, applies
it (create-if-absent for immutable artifacts, server-side apply for Deployments) and returns
the status to write. Errors a user can fix are :class:`~klambda_operator.errors.OperatorError`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from klambda_operator.errors import (
    InvalidCode,
    KubeError,
    MissingConfigMap,
    MissingServiceAccount,
    UnknownFunction,
    UnknownLayer,
    UnknownVersion,
)
from klambda_operator.kube import KubeApi
from klambda_operator.resources.code import build_code_configmap, files_from_source
from klambda_operator.resources.crds import API_VERSION
from klambda_operator.resources.deployment import DeploymentSettings, build_deployment
from klambda_operator.resources.meta import (
    LABEL_FUNCTION,
    LABEL_LAYER,
    LABEL_VERSION,
    base_labels,
    deployment_name,
    function_version_name,
    owned_metadata,
    version_label,
)
from klambda_operator.resources.pods import pod_problem
from klambda_operator.resources.status import version_sort_key
from klambda_operator.resources.version import (
    LATEST,
    Artifact,
    ResolvedLayer,
    ResolvedVersion,
)
from klambda_operator.verify import UrlVerifier

LABEL_ARTIFACT = "klambda.io/artifact"
LABEL_LAYER_VERSION = "klambda.io/layer-version"
LABEL_DIGEST = "klambda.io/content-digest"
ANNOTATION_ARTIFACT = "klambda.io/artifact"

Obj = dict[str, Any]


def _meta(body: Mapping[str, Any]) -> tuple[str, str]:
    return str(body["metadata"]["namespace"]), str(body["metadata"]["name"])


def _owner(body: Mapping[str, Any]) -> Obj:
    """What an ownerReference needs from a Kopf body or fetched object."""
    return {
        "apiVersion": body.get("apiVersion", API_VERSION),
        "kind": body["kind"],
        "metadata": {"name": body["metadata"]["name"], "uid": body["metadata"]["uid"]},
    }


async def _ensure(kube: KubeApi, obj: Mapping[str, Any]) -> None:
    """Create an immutable object unless it exists (409 from a racing create is fine)."""
    meta = obj["metadata"]
    if await kube.get(str(obj["apiVersion"]), str(obj["kind"]), meta["namespace"], meta["name"]):
        return
    try:
        await kube.create(obj)
    except KubeError as exc:
        if exc.status != 409:
            raise


async def _source_files(
    kube: KubeApi, source: Mapping[str, Any], *, namespace: str, field: str
) -> dict[str, tuple[bytes, int]]:
    """Files of an inline / zipFile / configMapRef source."""
    ref = source.get("configMapRef")
    if not ref:
        return files_from_source(source, field=field)
    cm = await kube.get("v1", "ConfigMap", namespace, str(ref["name"]))
    if cm is None:
        raise MissingConfigMap(
            f"{field}.configMapRef: ConfigMap {ref['name']!r} not found in namespace "
            f"{namespace}; create it or fix the name"
        )
    data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    key = ref.get("key")
    if key:
        if key not in data:
            raise MissingConfigMap(
                f"{field}.configMapRef: ConfigMap {ref['name']!r} has no key {key!r}; "
                "add it or fix configMapRef.key"
            )
        encoded = base64.b64encode(data[key]).decode()
        return files_from_source({"zipFile": encoded}, field=f"{field}.configMapRef")
    return files_from_source(
        {"inline": {k: v.decode("utf-8", "replace") for k, v in data.items()}},
        field=f"{field}.configMapRef",
    )


async def resolve_code(
    kube: KubeApi,
    *,
    body: Mapping[str, Any],
    source: Mapping[str, Any],
    field: str,
    name_prefix: str,
    labels: Mapping[str, str],
    verifier: UrlVerifier | None,
) -> tuple[Artifact, Obj | None]:
    """The Artifact of a code source and the ConfigMap to create for it (if any)."""
    namespace, _ = _meta(body)
    if source.get("image"):
        return Artifact(image=str(source["image"])), None
    if source.get("url"):
        url = source["url"]
        location, sha256 = str(url["location"]), str(url["sha256"]).lower()
        if verifier is not None:
            await verifier.verify(location, sha256, field=field)
        return Artifact(url=location, sha256=sha256), None
    files = await _source_files(kube, source, namespace=namespace, field=field)
    if not files:
        raise InvalidCode(f"{field}: the code has no files; add at least the handler's module")
    configmap, artifact = build_code_configmap(
        namespace=namespace,
        name_prefix=name_prefix,
        files=files,
        owner=_owner(body),
        labels=labels,
    )
    return artifact, configmap


# ---------------------------------------------------------------- layers


async def layer_versions(kube: KubeApi, namespace: str, layer: str) -> list[Obj]:
    cms = await kube.list("v1", "ConfigMap", namespace, {LABEL_LAYER: layer})
    return sorted(
        (cm for cm in cms if LABEL_LAYER_VERSION in cm["metadata"].get("labels", {})),
        key=lambda cm: int(cm["metadata"]["labels"][LABEL_LAYER_VERSION]),
    )


def _layer_artifact(cm: Mapping[str, Any]) -> Artifact:
    return Artifact.from_dict(json.loads(cm["metadata"]["annotations"][ANNOTATION_ARTIFACT]))


async def reconcile_layer(
    kube: KubeApi, body: Mapping[str, Any], *, verifier: UrlVerifier | None
) -> dict[str, Any]:
    """Publishes a new layer version when the content changed; returns the status."""
    namespace, name = _meta(body)
    spec = body["spec"]
    content = spec["content"]
    existing = await layer_versions(kube, namespace, name)
    artifact, configmap = await resolve_code(
        kube,
        body=body,
        source=content,
        field="spec.content",
        name_prefix=f"{name}-layer",
        labels={},
        verifier=verifier,
    )
    digest = (
        configmap["metadata"]["labels"][LABEL_DIGEST][:16] if configmap else fetch_digest(artifact)
    )
    match = next(
        (cm for cm in existing if cm["metadata"]["labels"].get(LABEL_DIGEST) == digest), None
    )
    if match is None:
        number = int(existing[-1]["metadata"]["labels"][LABEL_LAYER_VERSION]) + 1 if existing else 1
        version_cm: Obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": owned_metadata(
                name=f"{name}-layer-v{number}",
                namespace=namespace,
                owner=_owner(body),
                labels=base_labels(
                    **{LABEL_LAYER: name, LABEL_LAYER_VERSION: str(number), LABEL_DIGEST: digest}
                ),
            ),
            "immutable": True,
        }
        artifact = Artifact(
            config_map=version_cm["metadata"]["name"] if configmap else "",
            files=artifact.files,
            url=artifact.url,
            sha256=artifact.sha256,
        )
        version_cm["metadata"]["annotations"] = {
            ANNOTATION_ARTIFACT: json.dumps(artifact.to_dict(), sort_keys=True)
        }
        if configmap:
            for key in ("data", "binaryData"):
                if key in configmap:
                    version_cm[key] = configmap[key]
        await _ensure(kube, version_cm)
        existing = await layer_versions(kube, namespace, name)
    versions = [
        {
            "version": cm["metadata"]["labels"][LABEL_LAYER_VERSION],
            "configMap": cm["metadata"]["name"],
            "digest": cm["metadata"]["labels"].get(LABEL_DIGEST, ""),
        }
        for cm in existing
    ]
    return {"state": "Active", "latestVersion": versions[-1]["version"], "versions": versions}


def fetch_digest(artifact: Artifact) -> str:
    return (artifact.sha256 or artifact.image)[:16]


async def resolve_layers(
    kube: KubeApi, *, namespace: str, refs: list[str]
) -> tuple[ResolvedLayer, ...]:
    out = []
    for index, ref in enumerate(refs):
        name, _, wanted = ref.partition(":")
        versions = await layer_versions(kube, namespace, name)
        if wanted:
            versions = [
                cm for cm in versions if cm["metadata"]["labels"][LABEL_LAYER_VERSION] == wanted
            ]
        if not versions:
            which = f"version {wanted} of layer {name!r}" if wanted else f"layer {name!r}"
            raise UnknownLayer(
                f"spec.layers[{index}]: {which} does not exist in namespace {namespace}; "
                "apply the Layer first (it publishes version 1), or fix the name"
            )
        cm = versions[-1]
        out.append(
            ResolvedLayer(
                name=name,
                version=cm["metadata"]["labels"][LABEL_LAYER_VERSION],
                artifact=_layer_artifact(cm),
            )
        )
    return tuple(out)


# ---------------------------------------------------------------- functions


async def function_versions(
    kube: KubeApi, namespace: str, function: str, *, owner_uid: str = ""
) -> list[Obj]:
    """Published versions of a function, oldest first. With ``owner_uid``, only those owned
    by that incarnation (a deleted and re-created Function must not inherit the old one's
    versions while the garbage collector is still removing them)."""
    fvs = await kube.list(API_VERSION, "FunctionVersion", namespace, {LABEL_FUNCTION: function})
    if owner_uid:
        fvs = [
            fv
            for fv in fvs
            if any(r.get("uid") == owner_uid for r in fv["metadata"].get("ownerReferences", []))
        ]
    return sorted(fvs, key=lambda o: version_sort_key(str(o["spec"]["version"])))


async def _apply_deployment(kube: KubeApi, deployment: Obj, *, replicas: int) -> None:
    meta = deployment["metadata"]
    if await kube.get("apps/v1", "Deployment", meta["namespace"], meta["name"]) is None:
        try:  # replicas only at creation: afterwards the gateway owns them via /scale
            await kube.create({**deployment, "spec": {**deployment["spec"], "replicas": replicas}})
            return
        except KubeError as exc:
            if exc.status != 409:
                raise
    await kube.apply(deployment)


async def reconcile_function(
    kube: KubeApi,
    body: Mapping[str, Any],
    *,
    settings: DeploymentSettings,
    verifier: UrlVerifier | None,
) -> dict[str, Any]:
    """Artifacts, published versions and Deployments of a Function; returns its status."""
    namespace, name = _meta(body)
    spec = body["spec"]
    owner = _owner(body)
    code, configmap = await resolve_code(
        kube,
        body=body,
        source=spec["code"],
        field="spec.code",
        name_prefix=f"{name}-code",
        labels=base_labels(**{LABEL_FUNCTION: name, LABEL_ARTIFACT: "code"}),
        verifier=verifier,
    )
    layers = await resolve_layers(kube, namespace=namespace, refs=list(spec.get("layers") or []))
    role = str(spec.get("role") or "")
    if role and await kube.get("v1", "ServiceAccount", namespace, role) is None:
        raise MissingServiceAccount(
            f"spec.role: ServiceAccount {role!r} not found in namespace {namespace}; create it "
            "(kubectl create serviceaccount ...) or remove spec.role"
        )
    latest = ResolvedVersion(
        namespace=namespace,
        function_name=name,
        version=LATEST,
        runtime=str(spec.get("runtime", "python3.12")),
        handler=str(spec.get("handler") or ""),
        memory_size=int(spec.get("memorySize", 128)),
        timeout=int(spec.get("timeout", 3)),
        code=code,
        environment=dict((spec.get("environment") or {}).get("variables") or {}),
        layers=layers,
        role=str(spec.get("role") or ""),
        description=str(spec.get("description") or ""),
    )
    if configmap is not None:
        await _ensure(kube, configmap)

    uid = str(body["metadata"]["uid"])
    published = await function_versions(kube, namespace, name, owner_uid=uid)
    if spec.get("publish") and (
        not published or published[-1]["spec"]["revision"] != latest.revision
    ):
        number = str(int(published[-1]["spec"]["version"]) + 1) if published else "1"
        await _ensure(kube, _function_version(latest, number=number, owner=owner))
        published = await function_versions(kube, namespace, name, owner_uid=uid)

    versions = [latest] + [
        ResolvedVersion.from_snapshot(
            fv["spec"]["snapshot"],
            namespace=namespace,
            function_name=name,
            version=str(fv["spec"]["version"]),
        )
        for fv in published
    ]
    for version in versions:
        # Created with 0 replicas; the gateway's autoscaler scales them (provisioned
        # concurrency included) through /scale from then on.
        await _apply_deployment(kube, build_deployment(version, settings, owner=owner), replicas=0)
    await _collect_garbage(kube, namespace=namespace, function=name, versions=versions)
    problem = await function_pod_problem(kube, namespace, name)
    return {
        **({"problem": {"reason": problem[0], "message": problem[1]}} if problem else {}),
        "state": "Active",
        "latestRevision": latest.revision,
        "latestVersion": versions[-1].version if published else "",
        "layers": [f"{layer.name}:{layer.version}" for layer in layers],
        "versions": [
            {
                "version": v.version,
                "revision": v.revision,
                "deployment": deployment_name(name, v.version),
            }
            for v in versions
        ],
    }


async def function_pod_problem(
    kube: KubeApi, namespace: str, function: str
) -> tuple[str, str] | None:
    """The first reason a pod of this function cannot run (current Deployments only)."""
    for pod in await kube.list("v1", "Pod", namespace, {LABEL_FUNCTION: function}):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        problem = pod_problem(pod)
        if problem is not None:
            return problem
    return None


def _function_version(latest: ResolvedVersion, *, number: str, owner: Obj) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": "FunctionVersion",
        "metadata": owned_metadata(
            name=function_version_name(latest.function_name, number),
            namespace=latest.namespace,
            owner=owner,
            labels=base_labels(**{LABEL_FUNCTION: latest.function_name, LABEL_VERSION: number}),
        ),
        "spec": {
            "functionName": latest.function_name,
            "version": number,
            "revision": latest.revision,
            "snapshot": latest.snapshot(),
        },
    }


async def _collect_garbage(
    kube: KubeApi, *, namespace: str, function: str, versions: list[ResolvedVersion]
) -> None:
    """Deletes Deployments of versions that no longer exist and unreferenced code."""
    wanted = {deployment_name(function, v.version) for v in versions}
    for dep in await kube.list("apps/v1", "Deployment", namespace, {LABEL_FUNCTION: function}):
        if dep["metadata"]["name"] not in wanted:
            await kube.delete("apps/v1", "Deployment", namespace, dep["metadata"]["name"])
    used = {v.code.config_map for v in versions if v.code.config_map}
    labels = {LABEL_FUNCTION: function, LABEL_ARTIFACT: "code"}
    for cm in await kube.list("v1", "ConfigMap", namespace, labels):
        if cm["metadata"]["name"] not in used:
            await kube.delete("v1", "ConfigMap", namespace, cm["metadata"]["name"])


# ---------------------------------------------------------------- aliases


async def reconcile_alias(kube: KubeApi, body: Mapping[str, Any]) -> dict[str, Any]:
    namespace, _ = _meta(body)
    spec = body["spec"]
    function = str(spec["functionName"])
    if await kube.get(API_VERSION, "Function", namespace, function) is None:
        raise UnknownFunction(
            f"spec.functionName: function {function!r} does not exist in namespace "
            f"{namespace}; apply it first or fix the name"
        )
    known = {
        str(fv["spec"]["version"]) for fv in await function_versions(kube, namespace, function)
    }
    known.add(LATEST)
    primary = str(spec["functionVersion"])
    weights = {
        str(k): float(v)
        for k, v in (
            (spec.get("routingConfig") or {}).get("additionalVersionWeights") or {}
        ).items()
    }
    missing = sorted(v for v in [primary, *weights] if v not in known)
    if missing:
        raise UnknownVersion(
            f"version {', '.join(missing)} of function {function!r} does not exist; publish it "
            "(spec.publish: true on the Function, or klambda publish-version) or point the "
            "alias at an existing version"
        )
    resolved = {primary: round(1.0 - sum(weights.values()), 6), **weights}
    return {"state": "Active", "resolvedVersions": dict(sorted(resolved.items()))}


def deployment_version(dep: Mapping[str, Any]) -> str:
    label = str(dep["metadata"].get("labels", {}).get(LABEL_VERSION, ""))
    return LATEST if label == version_label(LATEST) else label


async def reconcile_event_source_mapping(kube: KubeApi, body: Mapping[str, Any]) -> dict[str, Any]:
    """Event source mappings are stored and validated; their pollers come in a later release,
    so the status says so instead of pretending to be Ready."""
    return {
        "state": "Pending",
        "problem": {
            "reason": "PollerNotAvailable",
            "message": "the mapping is valid and stored, but event source pollers are not "
            "available in this release yet; invoke the function directly meanwhile",
        },
    }
