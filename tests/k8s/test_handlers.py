"""The handlers' status logic (klambda_operator.handlers._status) on the in-memory API.

Covers: success -> state Active + Ready=True (observedGeneration, a message saying what to
do next); a user error -> state Failed + Ready=False with the error's reason and message; a
pod that cannot run -> Ready=False with the pod's reason while the objects stay applied;
lastTransitionTime kept while the status does not flip.
"""

from __future__ import annotations

from typing import Any

import kopf
from klambda_operator import handlers
from klambda_operator.settings import OperatorSettings

from .fake_kube import FakeKube


def _memo(kube: FakeKube) -> kopf.Memo:
    return kopf.Memo(kube=kube, settings=OperatorSettings.from_env({}), verifier=None)


def _fn(kube: FakeKube, **spec: Any) -> dict[str, Any]:
    return kube.put(
        {
            "apiVersion": "klambda.io/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "hello", "namespace": "ns", "generation": 4},
            "spec": {
                "runtime": "python3.12",
                "handler": "app.handler",
                "code": {"inline": {"app.py": "x = 1\n"}},
                **spec,
            },
        }
    )


def _ready(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Ready")


async def test_success_failure_and_pod_problem() -> None:
    kube = FakeKube()
    memo = _memo(kube)
    body = _fn(kube)
    status, error = await handlers._status("Function", handlers._function, body, memo)
    assert error is None and status["state"] == "Active"
    ready = _ready(status)
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == (
        "True",
        "Reconciled",
        4,
    )
    assert "invoke it" in ready["message"]

    body["status"] = status
    again, _ = await handlers._status("Function", handlers._function, body, memo)
    assert _ready(again)["lastTransitionTime"] == ready["lastTransitionTime"]

    broken = _fn(kube, layers=["nope"])
    failed, error = await handlers._status("Function", handlers._function, broken, memo)
    assert error is not None and failed["state"] == "Failed"
    assert _ready(failed)["reason"] == "UnknownLayer"
    assert "apply the Layer first" in _ready(failed)["message"]

    kube.put(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "hello-latest-1",
                "namespace": "ns",
                "labels": {"klambda.io/function": "hello"},
            },
            "status": {
                "containerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]
            },
        }
    )
    sick, error = await handlers._status("Function", handlers._function, _fn(kube), memo)
    assert error is None and sick["state"] == "Active"
    assert (_ready(sick)["status"], _ready(sick)["reason"]) == ("False", "ImagePullFailed")
    assert "imagePullSecrets" in _ready(sick)["message"]
