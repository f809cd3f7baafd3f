"""Runs a whole gateway Platform on its own event loop in a background thread, so tests
can drive it with the (synchronous) boto3 client exactly as a user would."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import boto3
import botocore.config
from klambda_gateway.platform import Platform
from klambda_gateway.settings import GatewaySettings

T = TypeVar("T")


class Harness:
    def __init__(self, state_dir: Path, *, registry_factory: Callable[[], Any],
                 launcher_factory: Callable[[], Any], **settings: Any) -> None:
        defaults: dict[str, Any] = {"port": 0, "state_dir": str(state_dir),
                                        "keep_warm_seconds": 30.0, "scale_tick_seconds": 0.1,
                                        "async_retry_base_seconds": 0.2,
                                        "async_throttle_delay_seconds": 0.1,
                                        "async_poll_seconds": 0.2, "stop_grace_seconds": 2.0}
        defaults.update(settings)
        self.settings = GatewaySettings(**defaults)
        self._registry_factory = registry_factory
        self._launcher_factory = launcher_factory
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.platform: Platform | None = None
        self.registry: Any = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        async def wrapper() -> T:
            return fn()
        return self.run(wrapper())

    def start(self) -> Harness:
        self._thread.start()

        async def boot() -> None:
            self.registry = self._registry_factory()
            self.platform = Platform(self.settings, registry=self.registry,
                                     launcher=self._launcher_factory())
            await self.platform.start()
        self.run(boot())
        return self

    @property
    def endpoint(self) -> str:
        assert self.platform is not None
        return self.platform.endpoint

    def client(self, *, retries: int = 1, read_timeout: float = 30) -> Any:
        return boto3.client(
            "lambda", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="x", aws_secret_access_key="x",
            config=botocore.config.Config(retries={"total_max_attempts": retries, "mode": "standard"},
                                          read_timeout=read_timeout, max_pool_connections=64))

    def stop(self) -> None:
        if self.platform is not None:
            try:
                self.run(self.platform.stop(), timeout=30)
            finally:
                self.platform = None
        if self.registry is not None and hasattr(self.registry, "close"):
            self.call(self.registry.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
