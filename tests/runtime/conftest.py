"""Fixtures for the runtime tests: a real test gateway (grpc.aio) and real agents.

One gateway and one zygote per test module (module-scoped event loop) keep the suite
fast; every environment a test starts is killed at the end of that test.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest_asyncio
from klambda_runtime.launcher import ProcessEnvironment, ZygoteLauncher
from klambda_runtime.spec import EnvironmentSpec
from klambda_runtime.testing import TestGateway

PYTHON = sys.executable
# The runtime whose version is the platform's own interpreter: forked from the zygote.
# (Another pythonX.Y runs on its own interpreter, forked from the zygote's runtime server on
# it or exec'd: see test_runtime_servers.py and test_interpreters.py.)
PLATFORM_RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"
_ids = itertools.count(1)


def write_function(root: Path, files: dict[str, str]) -> Path:
    """Materialise a function's code directory from {relative path: source}."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, source in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"))
        if rel == "bootstrap":
            path.chmod(0o755)
    return root


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gateway() -> AsyncIterator[TestGateway]:
    # agents hold their stream on the lane (as with klambda's gateway), so the suite covers
    # the agent's warm path; tests on TestGateway() without a lane cover gRPC
    gw = TestGateway(lane=True)
    await gw.start()
    yield gw
    await gw.stop(None)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def zygote() -> AsyncIterator[ZygoteLauncher]:
    launcher = ZygoteLauncher()
    await launcher.warm()
    yield launcher
    await launcher.close()


class Environments:
    """Starts environments for one test and kills whatever is left at its end."""

    def __init__(self, gateway: TestGateway, launcher: Any, tmp_path: Path) -> None:
        self.gateway = gateway
        self.launcher = launcher
        self.tmp_path = tmp_path
        self.started: list[ProcessEnvironment] = []

    def spec(self, code_dir: Path, **overrides: Any) -> EnvironmentSpec:
        env_id = f"env-{next(_ids)}"
        base = EnvironmentSpec(
            environment_id=env_id,
            gateway=self.gateway.address,
            namespace="default",
            function_name="fn",
            version="$LATEST",
            runtime=PLATFORM_RUNTIME,
            handler="app.handler",
            code_dir=str(code_dir),
            log_path=str(self.tmp_path / f"{env_id}.log"),
            lane=self.gateway.lane_address,
        )
        return replace(base, **overrides)

    async def start(self, spec: EnvironmentSpec, *, ready: bool = True) -> ProcessEnvironment:
        env = await self.launcher.start(spec)
        self.started.append(env)
        if ready:
            await self.gateway.wait_ready(spec.environment_id, timeout=20)
        return env

    async def function(
        self, files: dict[str, str], *, name: str = "code", **overrides: Any
    ) -> tuple[EnvironmentSpec, ProcessEnvironment]:
        code = write_function(self.tmp_path / name, files)
        spec = self.spec(code, **overrides)
        return spec, await self.start(spec)

    async def close(self) -> None:
        for env in self.started:
            env.kill()
        for env in self.started:
            try:
                await asyncio.wait_for(env.wait(), 5)
            except TimeoutError:
                pass


@pytest_asyncio.fixture(loop_scope="module")
async def envs(
    gateway: TestGateway, zygote: ZygoteLauncher, tmp_path: Path
) -> AsyncIterator[Environments]:
    holder = Environments(gateway, zygote, tmp_path)
    yield holder
    await holder.close()


def error_of(result: Any) -> dict[str, Any]:
    import json

    assert result.function_error == "Unhandled", result
    body: dict[str, Any] = json.loads(result.payload)
    return body


Factory = Callable[..., Any]
