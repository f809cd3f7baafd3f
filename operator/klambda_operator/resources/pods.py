"""Why a function's pod cannot run, as a Ready-condition reason and a message a user can act
on. Pure (reads a pod dict)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_WAITING = {
    "ErrImagePull": (
        "ImagePullFailed",
        (
            "the image cannot be pulled; check spec.code.image (or the runtime image) and the "
            "registry credentials (imagePullSecrets)"
        ),
    ),
    "ImagePullBackOff": (
        "ImagePullFailed",
        (
            "the image cannot be pulled; check spec.code.image (or the runtime image) and the "
            "registry credentials (imagePullSecrets)"
        ),
    ),
    "InvalidImageName": ("ImagePullFailed", "the image name is invalid; fix spec.code.image"),
    "CrashLoopBackOff": (
        "EnvironmentCrashing",
        "the environment keeps crashing; see the function's log",
    ),
    "CreateContainerConfigError": (
        "EnvironmentConfigInvalid",
        "the container configuration is invalid (a missing ServiceAccount in spec.role?)",
    ),
}


SCALE_DOWN_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"


def pod_problem(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, message) if the pod cannot become a working environment. Pods on their way
    out (being deleted, or picked by the gateway for scale-down) have no problem: their
    environment exits on purpose."""
    meta = pod.get("metadata") or {}
    if (
        meta.get("deletionTimestamp")
        or (meta.get("annotations") or {}).get(SCALE_DOWN_ANNOTATION) == "-1000"
    ):
        return None
    name = meta.get("name", "?")
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if (cond.get("type"), cond.get("status"), cond.get("reason")) == (
            "PodScheduled",
            "False",
            "Unschedulable",
        ):
            return (
                "Unschedulable",
                (
                    f"pod {name} cannot be scheduled: {cond.get('message', '')}; lower "
                    "spec.memorySize or add capacity"
                ),
            )
    for init in status.get("initContainerStatuses") or []:
        state = init.get("state") or {}
        term = state.get("terminated") or (init.get("lastState") or {}).get("terminated")
        if term and int(term.get("exitCode", 0)) != 0 and "running" not in state:
            code = int(term.get("exitCode", 0))
            if code == 3:
                return (
                    "CodeChecksumMismatch",
                    (
                        f"pod {name}: the archive at the code URL no longer matches its sha256 "
                        "(init step fetch-code exit 3); update sha256 or restore the archive"
                    ),
                )
            return (
                "CodeFetchFailed",
                (
                    f"pod {name}: init step {init.get('name')} failed (exit {code}); check that "
                    "the URL is reachable from the cluster"
                ),
            )
    for cs in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason", "")
        if reason in _WAITING:
            why, what = _WAITING[reason]
            return why, f"pod {name}: {what} ({reason})"
    return None
