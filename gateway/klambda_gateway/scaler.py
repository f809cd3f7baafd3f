"""The Scaler seam (start N / stop these environments) and its local implementation.

``LocalScaler`` starts environments as local processes through a
``klambda_runtime.launcher.Launcher`` (the ZygoteLauncher by default), appends their
output to ``<state>/logs/<namespace>/<function>.log`` and reports every exit (or failed
start) to ``on_exit`` so waiting invocations fail quickly instead of timing out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from klambda_runtime.spec import EnvironmentSpec

from klambda_gateway.registry import FunctionVersion

log = logging.getLogger(__name__)


class Scaler(Protocol):
    async def start(
        self, version: FunctionVersion, environment_ids: Sequence[str], *, provisioned: bool
    ) -> None:
        """Start one environment per id (they dial the gateway when up)."""

    async def stop(self, environment_ids: Sequence[str]) -> None:
        """Stop these environments (the dispatcher already took them out of service)."""

    async def close(self) -> None: ...


def environment_log_path(logs_dir: Path, version: FunctionVersion) -> Path:
    return logs_dir / version.namespace / f"{version.function_name}.log"


class LocalScaler:
    def __init__(
        self,
        launcher: Any,  # klambda_runtime.launcher.Launcher
        *,
        gateway_address: str,
        lane_address: str = "",
        logs_dir: Path,
        region: str,
        account_id: str,
        stop_grace_seconds: float,
        on_exit: Callable[[str, str], None],
    ) -> None:
        self._launcher = launcher
        self._gateway = gateway_address
        self._lane = lane_address
        self._logs_dir = logs_dir
        self._region = region
        self._account_id = account_id
        self._grace = stop_grace_seconds
        self._on_exit = on_exit
        self._running: dict[str, Any] = {}  # environment id -> LaunchedEnvironment
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def running(self) -> int:
        return len(self._running)

    def spec(self, version: FunctionVersion, environment_id: str, *,
             provisioned: bool) -> EnvironmentSpec:
        log_path = environment_log_path(self._logs_dir, version)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        return EnvironmentSpec(
            environment_id=environment_id, gateway=self._gateway, lane=self._lane,
            namespace=version.namespace, function_name=version.function_name,
            version=version.version, runtime=version.runtime, handler=version.handler,
            code_dir=version.code_dir, opt_dir=version.opt_dir,
            memory_size=version.memory_size, timeout=version.timeout,
            environment=dict(version.environment),
            initialization_type="provisioned-concurrency" if provisioned else "on-demand",
            region=self._region, account_id=self._account_id, revision=version.revision,
            log_path=str(log_path),
        )

    async def start(
        self, version: FunctionVersion, environment_ids: Sequence[str], *, provisioned: bool
    ) -> None:
        await asyncio.gather(*(self._start_one(version, env_id, provisioned)
                               for env_id in environment_ids))

    async def _start_one(self, version: FunctionVersion, env_id: str, provisioned: bool) -> None:
        try:
            launched = await self._launcher.start(self.spec(version, env_id,
                                                            provisioned=provisioned))
        except Exception as exc:  # noqa: BLE001 - any launcher failure is reported
            log.warning("starting environment %s of %s failed: %s", env_id,
                        version.function_name, exc)
            self._on_exit(env_id, f"start failed: {exc}")
            return
        if self._closing:
            launched.kill()
            return
        self._running[env_id] = launched
        task = asyncio.create_task(self._watch(env_id, launched))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, env_id: str, launched: Any) -> None:
        try:
            status = await launched.wait()
            reason = f"exit status {status}" if status >= 0 else f"signal {-status}"
        except Exception as exc:  # noqa: BLE001 - launcher bug
            reason = f"lost: {exc}"
        self._running.pop(env_id, None)
        self._on_exit(env_id, reason)

    async def stop(self, environment_ids: Sequence[str]) -> None:
        for env_id in environment_ids:
            launched = self._running.get(env_id)
            if launched is None:
                continue
            with contextlib.suppress(ProcessLookupError, OSError):
                launched.terminate()
            task = asyncio.create_task(self._kill_later(env_id, launched))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _kill_later(self, env_id: str, launched: Any) -> None:
        await asyncio.sleep(self._grace)
        if env_id in self._running:
            with contextlib.suppress(ProcessLookupError, OSError):
                launched.kill()

    async def close(self) -> None:
        """Stop every environment (SIGTERM, then SIGKILL after a short grace)."""
        self._closing = True
        for launched in list(self._running.values()):
            with contextlib.suppress(ProcessLookupError, OSError):
                launched.terminate()
        deadline = asyncio.get_running_loop().time() + min(self._grace, 3.0)
        while self._running and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for launched in list(self._running.values()):
            with contextlib.suppress(ProcessLookupError, OSError):
                launched.kill()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=3.0)
        for task in list(self._tasks):
            task.cancel()
        await self._launcher.close()
