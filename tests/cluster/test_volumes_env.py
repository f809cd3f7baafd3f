"""Pod environment and volumes on the test node agent: a ConfigMap volume and a ConfigMap key
in env, Secret and fieldRef env (name, namespace, podIP, label), a downwardAPI volume, an emptyDir
over /tmp (which must not hide the other volumes, nor the emulated image when the checkout, its
venv or the agent's state dir live under /tmp), workingDir, and the projected ServiceAccount token
(with kube-root-ca.crt) mounted at the standard path; the process uses that token against the API
server and is authenticated as the pod's ServiceAccount. An emptyDir over the directory holding
the project's venv leaves the interpreter and the klambda packages usable."""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Any

import pytest

from .harness import TestCluster
from .rootfs import image_dirs, is_within, resolve

pytestmark = pytest.mark.cluster

PROBE_SCRIPT = r"""
import json, os, ssl, urllib.request, urllib.error
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(f"{sa}/token").read()
ctx = ssl.create_default_context(cafile=f"{sa}/ca.crt")
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
ns = open(f"{sa}/namespace").read()
req = urllib.request.Request(
    f"https://{host}:{port}/apis/authentication.k8s.io/v1/selfsubjectreviews",
    data=b'{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}',
    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    method="POST")
user = json.load(urllib.request.urlopen(req, context=ctx))["status"]["userInfo"]
report = {
    "greeting_file": open("/srv/klambda-test/config/greeting").read(),
    "renamed_file": open("/srv/klambda-test/config/sub/renamed.txt").read(),
    "labels_file": open("/srv/klambda-test/podinfo/labels").read(),
    "env": {k: os.environ.get(k) for k in ("POD_NAME", "POD_NAMESPACE", "POD_IP", "APP_LABEL",
                                          "GREETING", "PASSWORD", "COMBINED")},
    "cwd": os.getcwd(), "tmp": sorted(os.listdir("/tmp")), "sa_namespace": ns, "username": user["username"],
}
print("REPORT " + json.dumps(report), flush=True)
import time; time.sleep(3600)
"""


def test_configmap_volume_env_and_projected_token(k8s_cluster: TestCluster, namespace: str) -> None:
    api = k8s_cluster.api
    api.create(
        f"/api/v1/namespaces/{namespace}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings"},
            "data": {"greeting": "hello from a configmap", "other": "second key"},
        },
    )
    api.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "stringData": {"password": "s3cret"},
        },
    )
    k8s_cluster.ensure_service_account(namespace, "worker")
    workdir = f"/tmp/klambda-test-workdir-{namespace}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "inspect", "labels": {"app": "inspect"}},
        "spec": {
            "serviceAccountName": "worker",
            "terminationGracePeriodSeconds": 2,
            "volumes": [
                {"name": "config", "configMap": {"name": "settings"}},
                {"name": "tmp", "emptyDir": {}},
                {
                    "name": "config-items",
                    "configMap": {
                        "name": "settings",
                        "items": [{"key": "other", "path": "renamed.txt"}],
                    },
                },
                {
                    "name": "podinfo",
                    "downwardAPI": {
                        "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
                    },
                },
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "python:3.11-slim",
                    "workingDir": workdir,
                    "command": ["python", "-c", PROBE_SCRIPT],
                    "env": [
                        {
                            "name": "POD_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                        {
                            "name": "POD_NAMESPACE",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                        },
                        {
                            "name": "POD_IP",
                            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                        },
                        {
                            "name": "APP_LABEL",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}},
                        },
                        {
                            "name": "GREETING",
                            "valueFrom": {
                                "configMapKeyRef": {"name": "settings", "key": "greeting"}
                            },
                        },
                        {
                            "name": "PASSWORD",
                            "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}},
                        },
                        {"name": "COMBINED", "value": "$(POD_NAME)@$(POD_NAMESPACE)"},
                    ],
                    "volumeMounts": [
                        {
                            "name": "config",
                            "mountPath": "/srv/klambda-test/config",
                            "readOnly": True,
                        },
                        {"name": "config-items", "mountPath": "/srv/klambda-test/config/sub"},
                        {"name": "podinfo", "mountPath": "/srv/klambda-test/podinfo"},
                        # Hides the host's /tmp, where the other volumes' sources live.
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                }
            ],
        },
    }
    api.create(f"/api/v1/namespaces/{namespace}/pods", pod)

    def report() -> dict[str, Any] | None:
        for line in k8s_cluster.pod_log(namespace, "inspect", "main").splitlines():
            if line.startswith("REPORT "):
                return dict(json.loads(line[len("REPORT ") :]))
        return None

    try:
        r = k8s_cluster.wait_for(report, timeout=60, what="the inspect pod's REPORT line")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    live = api.get(f"/api/v1/namespaces/{namespace}/pods/inspect")
    assert r["greeting_file"] == "hello from a configmap"
    assert r["renamed_file"] == "second key"
    assert 'app="inspect"' in r["labels_file"]
    assert r["env"] == {
        "POD_NAME": "inspect",
        "POD_NAMESPACE": namespace,
        "POD_IP": live["status"]["podIP"],
        "APP_LABEL": "inspect",
        "GREETING": "hello from a configmap",
        "PASSWORD": "s3cret",
        "COMBINED": f"inspect@{namespace}",
    }
    assert r["cwd"] == workdir
    # A fresh emptyDir holding only workingDir and the mountpoints of the image dirs under /tmp
    # (a checkout in /tmp with its .venv, the node agent's state dir) re-bound on top of it.
    node_state = os.path.join(k8s_cluster.state_dir, "nodes", "node-1")
    tmp = resolve("/tmp")
    image_tops = {
        d[len(tmp) + 1 :].split("/")[0]
        for d in image_dirs(python=sys.executable, state_dir=node_state)
        if d != tmp and is_within(d, tmp)
    }
    assert sorted(r["tmp"]) == sorted({workdir.rsplit("/", 1)[1]} | image_tops)
    assert r["sa_namespace"] == namespace
    assert r["username"] == f"system:serviceaccount:{namespace}:worker"
    # The projected volume was injected by the real ServiceAccount admission plugin.
    vols = [v["name"] for v in live["spec"]["volumes"]]
    assert any(v.startswith("kube-api-access-") for v in vols)


IMAGE_SCRIPT = r"""
import json, os, sys
import klambda_runtime.agent  # the editable install's sources, under the volume's path
print("IMAGE " + json.dumps({"prefix": sys.prefix, "listing": sorted(os.listdir(sys.argv[1])),
      "pkg": os.path.dirname(klambda_runtime.__file__)}), flush=True)
import time; time.sleep(3600)
"""


def test_volume_over_the_venvs_parent_keeps_the_image(
    k8s_cluster: TestCluster, namespace: str
) -> None:
    """Like an emptyDir at /tmp over a CI checkout in /tmp/ci (with /tmp/ci/.venv), wherever the
    checkout is: an emptyDir at the parent of sys.prefix."""
    parent = os.path.dirname(resolve(sys.prefix))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "image"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
            "volumes": [{"name": "cover", "emptyDir": {}}],
            "containers": [
                {
                    "name": "main",
                    "image": "python:3.11-slim",
                    "command": ["python", "-c", IMAGE_SCRIPT, parent],
                    "volumeMounts": [{"name": "cover", "mountPath": parent}],
                }
            ],
        },
    }
    k8s_cluster.api.create(f"/api/v1/namespaces/{namespace}/pods", pod)

    def report() -> dict[str, Any] | None:
        for line in k8s_cluster.pod_log(namespace, "image", "main").splitlines():
            if line.startswith("IMAGE "):
                return dict(json.loads(line[len("IMAGE ") :]))
        return None

    r = k8s_cluster.wait_for(report, timeout=60, what="the image pod's IMAGE line")
    assert r["prefix"] == sys.prefix
    import klambda_runtime

    assert r["pkg"] == os.path.dirname(klambda_runtime.__file__)
    # The volume is really there: the parent holds only mountpoints, not the host's content.
    host_listing = set(os.listdir(parent))
    assert set(r["listing"]) < host_listing
    assert os.path.basename(resolve(sys.prefix)) in r["listing"]
