"""Status and conditions of klambda objects. Pure: ``now`` is an argument."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any


def timestamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def ready_condition(
    previous: Sequence[Mapping[str, Any]] | None,
    *,
    ready: bool,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """The conditions list with Ready set; lastTransitionTime moves only when status flips."""
    status = "True" if ready else "False"
    old = next((c for c in previous or () if c.get("type") == "Ready"), None)
    since = (
        str(old["lastTransitionTime"])
        if old is not None and old.get("status") == status and old.get("lastTransitionTime")
        else timestamp(now)
    )
    others = [dict(c) for c in previous or () if c.get("type") != "Ready"]
    ready_cond = {
        "lastTransitionTime": since,
        "message": message,
        "observedGeneration": generation,
        "reason": reason,
        "status": status,
        "type": "Ready",
    }
    return sorted([*others, ready_cond], key=lambda c: str(c["type"]))


def failed_status(
    previous: Sequence[Mapping[str, Any]] | None,
    *,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> dict[str, Any]:
    return {
        "state": "Failed",
        "observedGeneration": generation,
        "conditions": ready_condition(
            previous, ready=False, reason=reason, message=message, generation=generation, now=now
        ),
    }


def version_sort_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)
