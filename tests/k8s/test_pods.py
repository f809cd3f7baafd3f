"""klambda_operator.resources.pods.pod_problem: pod states -> Ready reason + actionable text.

Covers: healthy pods, unschedulable, image pull failures, crash loops, init step failures
(checksum exit 3 vs other), a running init container after an earlier failure.
"""

from __future__ import annotations

from typing import Any

import pytest
from klambda_operator.resources.pods import pod_problem


def _pod(status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "p-1"}, "status": status}


@pytest.mark.parametrize(
    ("status", "reason", "needle"),
    [
        pytest.param({"phase": "Running"}, None, "", id="healthy"),
        pytest.param(
            {
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "Insufficient memory",
                    }
                ]
            },
            "Unschedulable",
            "lower spec.memorySize",
            id="unschedulable",
        ),
        pytest.param(
            {"containerStatuses": [{"state": {"waiting": {"reason": "ErrImagePull"}}}]},
            "ImagePullFailed",
            "check spec.code.image",
            id="image-pull",
        ),
        pytest.param(
            {"containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
            "EnvironmentCrashing",
            "see the function's log",
            id="crash-loop",
        ),
        pytest.param(
            {
                "initContainerStatuses": [
                    {"name": "fetch-code", "state": {"terminated": {"exitCode": 3}}}
                ]
            },
            "CodeChecksumMismatch",
            "update sha256",
            id="checksum",
        ),
        pytest.param(
            {
                "initContainerStatuses": [
                    {
                        "name": "fetch-code",
                        "state": {"waiting": {"reason": "PodInitializing"}},
                        "lastState": {"terminated": {"exitCode": 4}},
                    }
                ]
            },
            "CodeFetchFailed",
            "reachable from the cluster",
            id="fetch-failed",
        ),
        pytest.param(
            {
                "initContainerStatuses": [
                    {
                        "name": "fetch-code",
                        "state": {"running": {}},
                        "lastState": {"terminated": {"exitCode": 4}},
                    }
                ]
            },
            None,
            "",
            id="init-retrying-now",
        ),
    ],
)
def test_pod_problem(status: dict[str, Any], reason: str | None, needle: str) -> None:
    problem = pod_problem(_pod(status))
    if reason is None:
        assert problem is None
    else:
        assert problem is not None and problem[0] == reason
        assert needle in problem[1] and "p-1" in problem[1]


def test_pods_on_their_way_out_have_no_problem() -> None:
    crash = {"containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
    marked = {
        "metadata": {
            "name": "p",
            "annotations": {"controller.kubernetes.io/pod-deletion-cost": "-1000"},
        },
        "status": crash,
    }
    deleting = {
        "metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"},
        "status": crash,
    }
    assert pod_problem(marked) is None and pod_problem(deleting) is None
