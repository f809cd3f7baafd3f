"""The desired state the data path reads: function versions, aliases, limits.

This is the seam between *where desired state comes from* (the local SQLite
registry of ``klambda up``; later the Kubernetes watch) and the data path
(dispatch, admission, autoscaler). Everything here is immutable: a change to
the desired state produces new snapshot objects and bumps ``generation``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

LATEST = "$LATEST"


@dataclass(frozen=True)
class FunctionVersion:
    """One runnable snapshot: an immutable published version, or a revision of $LATEST.

    ``revision`` identifies the exact code + configuration (a content hash).
    Published versions never change revision; $LATEST gets a new revision on
    every update, and environments of an older revision are retired.
    """

    namespace: str
    function_name: str
    version: str  # "$LATEST" or "1", "2", ...
    revision: str
    runtime: str  # python3.11 | python3.12 | provided
    handler: str
    memory_size: int  # MB
    timeout: int  # seconds
    environment: Mapping[str, str] = field(default_factory=dict)
    code_dir: str = ""  # local path of the extracted code (LAMBDA_TASK_ROOT)
    opt_dir: str = ""  # local path of the merged layers (/opt), "" if none
    image: str = ""  # container image (Kubernetes substrate only)
    role: str = ""  # execution role (a ServiceAccount on Kubernetes)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Dispatch key: one queue and one pool of environments per key."""
        return (self.namespace, self.function_name, self.version, self.revision)


@dataclass(frozen=True)
class Destination:
    """An async destination: another function (local) or a queue ARN (later)."""

    function: str = ""  # function name, optionally name:qualifier
    arn: str = ""


@dataclass(frozen=True)
class EventInvokeConfig:
    maximum_retry_attempts: int = 2  # 0..2
    maximum_event_age_seconds: int = 21600  # 60..21600
    on_success: Destination | None = None
    on_failure: Destination | None = None


@dataclass(frozen=True)
class FunctionConfig:
    """Function-level, mutable settings plus the current $LATEST snapshot."""

    namespace: str
    name: str
    latest: FunctionVersion
    reserved_concurrency: int | None = None  # None = unreserved; 0 throttles all
    event_invoke_config: EventInvokeConfig = EventInvokeConfig()
    published_versions: tuple[str, ...] = ()  # "1", "2", ... ascending


@dataclass(frozen=True)
class AliasConfig:
    namespace: str
    function_name: str
    name: str
    function_version: str
    additional_version_weights: Mapping[str, float] = field(default_factory=dict)
    provisioned_concurrency: int = 0


class Registry(Protocol):
    """Read side of the desired state (implemented by the local registry and,
    later, by the Kubernetes watch). All methods are cheap, in-memory reads."""

    @property
    def generation(self) -> int:
        """Increases on every change of the desired state."""

    def function(self, namespace: str, name: str) -> FunctionConfig | None: ...

    def version(self, namespace: str, name: str, version: str) -> FunctionVersion | None:
        """A published version ("1", ...) or the current $LATEST."""

    def alias(self, namespace: str, function_name: str, name: str) -> AliasConfig | None: ...

    def aliases(self) -> list[AliasConfig]:
        """Every alias (the autoscaler reads provisioned concurrency from here)."""

    def functions(self) -> list[FunctionConfig]: ...

    async def wait_changed(self, generation: int) -> int:
        """Returns the new generation once it differs from ``generation``."""
