"""A minimal subprocess launcher of tests/gateway/fake_agent.py (Launcher protocol)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from klambda_runtime.spec import EnvironmentSpec

FAKE_AGENT = Path(__file__).with_name("fake_agent.py")


class FakeAgentProcess:
    def __init__(self, proc: asyncio.subprocess.Process, environment_id: str) -> None:
        self._proc = proc
        self.pid = proc.pid
        self.environment_id = environment_id

    def terminate(self) -> None:
        if self._proc.returncode is None:
            self._proc.terminate()

    def kill(self) -> None:
        if self._proc.returncode is None:
            self._proc.kill()

    async def wait(self) -> int:
        return await self._proc.wait()


class FakeAgentLauncher:
    def __init__(self) -> None:
        self.started: list[EnvironmentSpec] = []

    async def start(self, spec: EnvironmentSpec) -> FakeAgentProcess:
        self.started.append(spec)
        env = {**os.environ, **spec.to_env()}
        log = open(spec.log_path, "ab") if spec.log_path else None  # noqa: SIM115, ASYNC230
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(FAKE_AGENT), env=env, stdout=log, stderr=log)
        if log:
            log.close()
        return FakeAgentProcess(proc, spec.environment_id)

    async def close(self) -> None:
        return None
