"""Composition of the data path: gRPC server + dispatch + autoscaler + async worker + HTTP.

``Platform`` takes its two seams explicitly (a Registry and a Launcher), so tests and
``klambda_gateway.local`` build the same object; everything runs on one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from klambda_runtime.embedded import EmbeddedLauncher
from klambda_runtime.launcher import ZygoteLauncher

from klambda_gateway.admission import ConcurrencyLimits
from klambda_gateway.async_store import AsyncEventStore, SQLiteEventStore
from klambda_gateway.async_worker import AsyncWorker
from klambda_gateway.concurrency import ConcurrencyTracker
from klambda_gateway.datapath import DataPath
from klambda_gateway.dispatch import Dispatcher
from klambda_gateway.embedded_link import connector
from klambda_gateway.grpc_server import start_grpc_server
from klambda_gateway.http_front import HttpFront
from klambda_gateway.invoke_api import DATAPATH, WORKER, invoke_routes
from klambda_gateway.lane_server import start_lane_server
from klambda_gateway.metrics import GatewayMetrics
from klambda_gateway.registry import Registry
from klambda_gateway.scaler import LocalScaler, Scaler
from klambda_gateway.scaling import Autoscaler
from klambda_gateway.settings import SYNC_PAYLOAD_LIMIT, GatewaySettings

log = logging.getLogger(__name__)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _metrics_handler(metrics: GatewayMetrics) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
    return handler


class Platform:
    def __init__(
        self,
        settings: GatewaySettings,
        *,
        registry: Registry,
        launcher: Any = None,  # klambda_runtime.launcher.Launcher (for the LocalScaler)
        scaler_factory: Callable[[str, Dispatcher], Scaler] | None = None,
        store: AsyncEventStore | None = None,
        extra_routes: Sequence[web.RouteDef] = (),
    ) -> None:
        self.settings = settings
        self.registry = registry
        self._launcher = launcher
        self._scaler_factory = scaler_factory
        self._extra_routes = list(extra_routes)
        self.dispatcher = Dispatcher()
        self.metrics = GatewayMetrics()
        self.tracker = ConcurrencyTracker(registry, ConcurrencyLimits(
            settings.account_concurrency, settings.unreserved_floor))
        self.datapath = DataPath(registry=registry, dispatcher=self.dispatcher,
                                 tracker=self.tracker, metrics=self.metrics, settings=settings)
        self.store: AsyncEventStore = store or SQLiteEventStore(settings.async_db_path)
        self.worker = AsyncWorker(store=self.store, datapath=self.datapath, settings=settings)
        self.scaler: Scaler | None = None
        self.autoscaler: Autoscaler | None = None
        self.grpc_port = 0
        self.lane_address = ""
        self._lane: asyncio.Server | None = None
        self.http_port = 0
        self._grpc: Any = None
        self._runner: web.AppRunner | None = None
        self._front: HttpFront | None = None
        self._http: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def endpoint(self) -> str:
        return f"http://{self.settings.host}:{self.http_port}"

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=SYNC_PAYLOAD_LIMIT + 1)
        app[DATAPATH] = self.datapath
        app[WORKER] = self.worker
        app.add_routes(invoke_routes())
        app.add_routes([web.get("/healthz", _healthz),
                        web.get("/metrics", _metrics_handler(self.metrics))])
        app.add_routes(self._extra_routes)
        return app

    async def start(self) -> None:
        s = self.settings
        self._grpc, self.grpc_port = await start_grpc_server(
            self.dispatcher, host=s.grpc_host, port=s.grpc_port)
        address = f"{s.grpc_host}:{self.grpc_port}"
        lane_address = ""
        if s.lane_enabled:
            self._lane, lane_address = await start_lane_server(
                self.dispatcher, host=s.lane_host, port=s.lane_port)
            self.lane_address = lane_address
        if self._scaler_factory is not None:
            self.scaler = self._scaler_factory(address, self.dispatcher)
        else:
            launcher = self._launcher
            if s.embedded_environments and isinstance(launcher, ZygoteLauncher):
                # the agent's code in this process: the runtime is the only other one
                launcher = EmbeddedLauncher(launcher, connect=connector(self.dispatcher))
            self.scaler = LocalScaler(
                launcher, gateway_address=address, lane_address=lane_address,
                logs_dir=s.logs_dir,
                region=s.region, account_id=s.account_id,
                stop_grace_seconds=s.stop_grace_seconds,
                on_exit=lambda env_id, reason: self.dispatcher.gone(env_id, reason=reason))
        self.autoscaler = Autoscaler(dispatcher=self.dispatcher, scaler=self.scaler,
                                     registry=self.registry, settings=s, metrics=self.metrics)
        self.metrics.attach(self.dispatcher, self.autoscaler.provisioned_targets)
        self._runner = web.AppRunner(self.build_app(), access_log=None)
        await self._runner.setup()
        if s.fast_http:
            # the Invoke API's hot path on our own HTTP/1.1 front; the rest on aiohttp
            assert self._runner.server is not None
            self._front = HttpFront(self.datapath, self.worker, self._runner.server)
            self._http = await asyncio.get_running_loop().create_server(
                self._front, s.host, s.port)
            self.http_port = self._http.sockets[0].getsockname()[1]
        else:
            site = web.TCPSite(self._runner, s.host, s.port)
            await site.start()
            self.http_port = self._runner.addresses[0][1]
        self._tasks = [asyncio.create_task(self.autoscaler.run()),
                       asyncio.create_task(self.worker.run()),
                       asyncio.create_task(self._watch_registry())]
        log.info("klambda gateway: HTTP %s, gRPC %s", self.endpoint, address)

    async def _watch_registry(self) -> None:
        """Reconcile at once on every desired-state change (retire old revisions, start
        provisioned environments); the periodic tick is the fallback."""
        gen = self.registry.generation
        while True:
            try:
                gen = await self.registry.wait_changed(gen)
                if self.autoscaler is not None:
                    self.autoscaler.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reacting to a registry change failed; the tick will catch up")
                await asyncio.sleep(self.settings.scale_tick_seconds)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.worker.close()
        if self._http is not None:
            self._http.close()
        if self._front is not None:
            self._front.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.autoscaler is not None:
            await self.autoscaler.close()
        if self.scaler is not None:
            await self.scaler.close()
        if self._grpc is not None:
            await self._grpc.stop(grace=0.5)
        if self._lane is not None:
            self._lane.close()
        await self.store.close()
