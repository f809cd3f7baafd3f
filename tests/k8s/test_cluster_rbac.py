"""The chart's RBAC on the API server: `kubectl auth can-i` as each component's
ServiceAccount, for every call its code makes (allowed) and for nearby calls it must not be
able to make (denied: least privilege).

Covers: operator (klambda_operator/kube.py + Kopf) and gateway (k8s_registry.py,
k8s_scaler.py) permissions, cluster-wide.
"""

from __future__ import annotations

import pytest
from cluster.harness import TestCluster

from .conftest import RELEASE, SYSTEM_NS

pytestmark = pytest.mark.cluster

OPERATOR_ALLOWED = [
    # Kopf: resource discovery, cluster-wide namespace watch, Events.
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
    ("watch", "namespaces"),
    ("create", "events"),
    # handlers.py: watched kinds, Kopf's annotations/finalizer, status writes.
    ("watch", "functions.klambda.io"),
    ("patch", "functions.klambda.io"),
    ("patch", "functions.klambda.io/status"),
    ("watch", "layers.klambda.io"),
    ("patch", "layers.klambda.io/status"),
    ("watch", "aliases.klambda.io"),
    ("patch", "aliases.klambda.io/status"),
    # reconcile.py
    ("create", "functionversions.klambda.io"),
    ("list", "functionversions.klambda.io"),
    ("create", "configmaps"),
    ("list", "configmaps"),
    ("delete", "configmaps"),
    ("create", "deployments.apps"),
    ("patch", "deployments.apps"),
    ("delete", "deployments.apps"),
    ("watch", "deployments.apps"),
    ("watch", "pods"),  # pod problems -> the Function's Ready condition
    ("get", "serviceaccounts"),  # spec.role must exist
]
OPERATOR_DENIED = [
    ("get", "secrets"),
    ("create", "pods"),
    ("patch", "pods"),
    ("create", "serviceaccounts/token"),
    ("patch", "deployments.apps/scale"),  # replicas belong to the gateway
    ("update", "functionversions.klambda.io"),  # published versions never change
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("delete", "functions.klambda.io"),
]
GATEWAY_ALLOWED = [
    ("list", "functions.klambda.io"),
    ("watch", "functions.klambda.io"),
    ("watch", "functionversions.klambda.io"),
    ("watch", "aliases.klambda.io"),
    ("patch", "deployments.apps/scale"),
    ("get", "deployments.apps/scale"),
    ("watch", "pods"),
    ("patch", "pods"),
]
GATEWAY_DENIED = [
    ("patch", "deployments.apps"),  # only the scale subresource
    ("create", "deployments.apps"),
    ("get", "configmaps"),
    ("get", "secrets"),
    ("patch", "functions.klambda.io"),
    ("delete", "pods"),
    ("create", "pods/exec"),
]


def _can(cluster: TestCluster, sa: str, verb: str, resource: str) -> bool:
    resource, _, sub = resource.partition("/")
    extra = [f"--subresource={sub}"] if sub else []
    res = cluster.kubectl(
        "auth",
        "can-i",
        verb,
        resource,
        *extra,
        "--all-namespaces",
        f"--as=system:serviceaccount:{SYSTEM_NS}:{RELEASE}-{sa}",
        check=False,
    )
    assert res.stdout.strip() in ("yes", "no"), res.stderr
    return res.stdout.strip() == "yes"


@pytest.mark.parametrize(
    ("sa", "verb", "resource", "allowed"),
    [("operator", v, r, True) for v, r in OPERATOR_ALLOWED]
    + [("operator", v, r, False) for v, r in OPERATOR_DENIED]
    + [("gateway", v, r, True) for v, r in GATEWAY_ALLOWED]
    + [("gateway", v, r, False) for v, r in GATEWAY_DENIED],
    ids=lambda x: str(x).replace(".", "_"),
)
def test_can_i(
    klambda_system: TestCluster, sa: str, verb: str, resource: str, allowed: bool
) -> None:
    assert _can(klambda_system, sa, verb, resource) is allowed
