"""In-memory fakes of the gateway's seams (used until / besides the real LocalRegistry)."""

from __future__ import annotations

import asyncio
import hashlib
import textwrap
from dataclasses import replace
from pathlib import Path

from klambda_gateway.registry import (
    LATEST,
    AliasConfig,
    EventInvokeConfig,
    FunctionConfig,
    FunctionVersion,
)


class FakeRegistry:
    """Implements klambda_gateway.registry.Registry from dicts; ``add_function`` writes code."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._generation = 0
        self._functions: dict[tuple[str, str], FunctionConfig] = {}
        self._versions: dict[tuple[str, str, str], FunctionVersion] = {}
        self._aliases: dict[tuple[str, str, str], AliasConfig] = {}
        self._changed = asyncio.Event()

    # ------------------------------------------------------------- read side
    @property
    def generation(self) -> int:
        return self._generation

    def function(self, namespace: str, name: str) -> FunctionConfig | None:
        return self._functions.get((namespace, name))

    def version(self, namespace: str, name: str, version: str) -> FunctionVersion | None:
        if version == LATEST:
            fn = self._functions.get((namespace, name))
            return fn.latest if fn else None
        return self._versions.get((namespace, name, version))

    def alias(self, namespace: str, function_name: str, name: str) -> AliasConfig | None:
        return self._aliases.get((namespace, function_name, name))

    def aliases(self) -> list[AliasConfig]:
        return list(self._aliases.values())

    def functions(self) -> list[FunctionConfig]:
        return list(self._functions.values())

    async def wait_changed(self, generation: int) -> int:
        while self._generation == generation:
            self._changed.clear()
            await self._changed.wait()
        return self._generation

    # ------------------------------------------------------------ write side
    def _bump(self) -> None:
        self._generation += 1
        self._changed.set()

    def add_function(
        self, name: str, code: str, *, namespace: str = "default", handler: str = "app.handler",
        timeout: int = 3, reserved: int | None = None,
        event_invoke_config: EventInvokeConfig | None = None,
        environment: dict[str, str] | None = None,
    ) -> FunctionConfig:
        source = textwrap.dedent(code)
        revision = hashlib.sha256(f"{source}{handler}{timeout}{environment}".encode()).hexdigest()[:12]
        code_dir = self.root / "code" / namespace / name / revision
        code_dir.mkdir(parents=True, exist_ok=True)
        (code_dir / "app.py").write_text(source)
        latest = FunctionVersion(namespace=namespace, function_name=name, version=LATEST,
                                 revision=revision, runtime="python3.12", handler=handler,
                                 memory_size=128, timeout=timeout, code_dir=str(code_dir),
                                 environment=environment or {})
        old = self._functions.get((namespace, name))
        fn = FunctionConfig(namespace=namespace, name=name, latest=latest,
                            reserved_concurrency=reserved,
                            event_invoke_config=event_invoke_config or EventInvokeConfig(),
                            published_versions=old.published_versions if old else ())
        self._functions[(namespace, name)] = fn
        self._bump()
        return fn

    def publish(self, name: str, *, namespace: str = "default") -> FunctionVersion:
        fn = self._functions[(namespace, name)]
        number = str(len(fn.published_versions) + 1)
        fv = replace(fn.latest, version=number)
        self._versions[(namespace, name, number)] = fv
        self._functions[(namespace, name)] = replace(
            fn, published_versions=(*fn.published_versions, number))
        self._bump()
        return fv

    def set_reserved(self, name: str, reserved: int | None, *, namespace: str = "default") -> None:
        fn = self._functions[(namespace, name)]
        self._functions[(namespace, name)] = replace(fn, reserved_concurrency=reserved)
        self._bump()

    def set_alias(self, function: str, alias: str, version: str, *,
                  weights: dict[str, float] | None = None, provisioned: int = 0,
                  namespace: str = "default") -> None:
        self._aliases[(namespace, function, alias)] = AliasConfig(
            namespace=namespace, function_name=function, name=alias, function_version=version,
            additional_version_weights=weights or {}, provisioned_concurrency=provisioned)
        self._bump()

    def delete_function(self, name: str, *, namespace: str = "default") -> None:
        self._functions.pop((namespace, name), None)
        self._bump()
