"""A real HTTP server exposing only the admin API (LocalRegistry + admin_routes), run in a
background thread, for CLI and admin API tests that need no function environments."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from pathlib import Path

from aiohttp import web
from klambda_gateway.admin_api import admin_routes
from klambda_gateway.local_registry import LocalRegistry
from klambda_gateway.settings import GatewaySettings


def free_port() -> int:
    """A free loopback port below the ephemeral range, so that client sockets of other
    processes cannot take it between this check and a (re)start of a server on it."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000..32000")


class AdminServer:
    """Starts on a free loopback port; ``endpoint`` is its URL. Stop with ``close()``."""

    def __init__(self, state_dir: Path, *, settings: GatewaySettings | None = None) -> None:
        self.state_dir = state_dir
        self.settings = settings
        self.registry = LocalRegistry(state_dir)
        self.logs_dir = state_dir / "logs"
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("admin server did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.add_routes(admin_routes(self.registry, logs_dir=self.logs_dir,
                                    settings=self.settings))
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self.registry.close()
