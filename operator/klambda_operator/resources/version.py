"""A function version with every reference resolved: what one Deployment runs.

This is also the ``spec.snapshot`` of a FunctionVersion object (``to_dict`` / ``from_dict``),
so a published version keeps pointing at the exact, immutable artifacts it was built from.
Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

LATEST = "$LATEST"


@dataclass(frozen=True)
class CodeFile:
    """One file projected from a ConfigMap key to a relative path."""

    key: str
    path: str
    mode: int = 0o444


@dataclass(frozen=True)
class Artifact:
    """Where some files come from: an operator-made ConfigMap, a URL + sha256, or an image.

    ``files`` lists the ConfigMap keys and their paths (for the ConfigMap kind).
    """

    config_map: str = ""
    files: tuple[CodeFile, ...] = ()
    url: str = ""
    sha256: str = ""
    image: str = ""

    @property
    def kind(self) -> str:
        if self.image:
            return "image"
        if self.url:
            return "url"
        return "configMap"

    def to_dict(self) -> dict[str, Any]:
        if self.image:
            return {"image": self.image}
        if self.url:
            return {"sha256": self.sha256, "url": self.url}
        return {
            "configMap": self.config_map,
            "files": [{"key": f.key, "mode": f.mode, "path": f.path} for f in self.files],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Artifact:
        files = tuple(
            CodeFile(key=str(f["key"]), path=str(f["path"]), mode=int(f.get("mode", 0o444)))
            for f in data.get("files", ())
        )
        return cls(
            config_map=str(data.get("configMap", "")),
            files=files,
            url=str(data.get("url", "")),
            sha256=str(data.get("sha256", "")),
            image=str(data.get("image", "")),
        )


@dataclass(frozen=True)
class ResolvedLayer:
    name: str
    version: str
    artifact: Artifact

    def to_dict(self) -> dict[str, Any]:
        return {"artifact": self.artifact.to_dict(), "name": self.name, "version": self.version}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResolvedLayer:
        return cls(
            name=str(data["name"]),
            version=str(data["version"]),
            artifact=Artifact.from_dict(data["artifact"]),
        )


@dataclass(frozen=True)
class ResolvedVersion:
    """Everything a Deployment of one function version needs."""

    namespace: str
    function_name: str
    version: str  # "$LATEST" or "1", "2", ...
    runtime: str
    handler: str
    memory_size: int
    timeout: int
    code: Artifact
    environment: Mapping[str, str] = field(default_factory=dict)
    layers: tuple[ResolvedLayer, ...] = ()
    role: str = ""
    description: str = ""

    def snapshot(self) -> dict[str, Any]:
        """The version-independent content (what a published version freezes)."""
        return {
            "code": self.code.to_dict(),
            "description": self.description,
            "environment": dict(sorted(self.environment.items())),
            "handler": self.handler,
            "layers": [layer.to_dict() for layer in self.layers],
            "memorySize": self.memory_size,
            "role": self.role,
            "runtime": self.runtime,
            "timeout": self.timeout,
        }

    @property
    def revision(self) -> str:
        """Content hash of code + configuration (same content, same revision)."""
        blob = json.dumps(self.snapshot(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def from_snapshot(
        cls, snapshot: Mapping[str, Any], *, namespace: str, function_name: str, version: str
    ) -> ResolvedVersion:
        return cls(
            namespace=namespace,
            function_name=function_name,
            version=version,
            runtime=str(snapshot["runtime"]),
            handler=str(snapshot.get("handler", "")),
            memory_size=int(snapshot["memorySize"]),
            timeout=int(snapshot["timeout"]),
            code=Artifact.from_dict(snapshot["code"]),
            environment={str(k): str(v) for k, v in snapshot.get("environment", {}).items()},
            layers=tuple(ResolvedLayer.from_dict(x) for x in snapshot.get("layers", ())),
            role=str(snapshot.get("role", "")),
            description=str(snapshot.get("description", "")),
        )
