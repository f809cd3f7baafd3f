"""``klambda up``: the whole platform on one machine.

``run_local`` composes the LocalRegistry (desired state in ``<state>/registry.db``),
the ZygoteLauncher (environments forked as local processes), the local scaler, the gRPC
server environments dial, and the HTTP app (Invoke API + /metrics + /healthz + the admin
API under /klambda/v1/), applies the given manifests, and runs until cancelled or
SIGINT / SIGTERM. ``python -m klambda_gateway.local [-f PATH ...]`` runs it directly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from klambda_model import PYTHON_RUNTIMES

from klambda_gateway.platform import Platform
from klambda_gateway.settings import GatewaySettings, LocalSettings

__all__ = ["LocalSettings", "main", "manifest_files", "run_local"]

log = logging.getLogger("klambda")

_SUFFIXES = (".yaml", ".yml", ".json")


class LocalError(Exception):
    """A problem with the local platform's inputs (manifests, ports)."""


def manifest_files(paths: Sequence[str]) -> list[Path]:
    """Files to apply: each path itself, or the manifests in a directory (sorted)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.suffix in _SUFFIXES and p.is_file()))
        elif path.is_file():
            out.append(path)
        else:
            raise LocalError(f"manifest path {raw} does not exist: pass a YAML file or a "
                             "directory of them with -f")
    return out


def apply_manifests(registry: Any, paths: Sequence[str]) -> list[str]:
    from klambda_model import load_documents

    resources = []
    for path in manifest_files(paths):
        resources.extend(load_documents(path.read_text(), source=str(path)))
    return registry.apply(resources) if resources else []


def _admin_routes(registry: Any, settings: GatewaySettings) -> list[web.RouteDef]:
    from klambda_gateway.admin_api import admin_routes

    return list(admin_routes(registry, logs_dir=settings.logs_dir, settings=settings))


def default_launcher() -> Any:
    """The zygote launcher, with the runtime servers of every built-in Python runtime
    started together with the zygote (not on the first cold start of such a function);
    ``KLAMBDA_ZYGOTE_RUNTIME_SERVERS`` in the environment overrides the choice."""
    from klambda_runtime.launcher import ZygoteLauncher

    env = dict(os.environ)
    env.setdefault("KLAMBDA_ZYGOTE_RUNTIME_SERVERS", ",".join(PYTHON_RUNTIMES))
    return ZygoteLauncher(env=env)


async def run_local(settings: LocalSettings, *, manifests: list[str],
                    ready: asyncio.Event | None = None) -> None:
    """Run the platform until cancelled or SIGINT / SIGTERM; ``ready`` is set when serving."""
    from klambda_gateway.local_registry import LocalRegistry

    Path(settings.state_dir).mkdir(parents=True, exist_ok=True)
    registry = LocalRegistry(settings.state_dir)
    platform: Platform | None = None
    try:
        for line in apply_manifests(registry, manifests):
            log.info("%s", line)
        launcher = default_launcher()
        warm = getattr(launcher, "warm", None)
        if warm is not None:  # boot the zygote now, not on the first cold start
            await warm()
        platform = Platform(settings, registry=registry, launcher=launcher,
                            extra_routes=_admin_routes(registry, settings))
        await platform.start()
        log.info("klambda is up: Invoke API %s (gRPC for environments on %s:%d), state in %s",
                 platform.endpoint, settings.grpc_host, platform.grpc_port, settings.state_dir)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        if platform is not None:
            await platform.stop()
        registry.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m klambda_gateway.local",
        description="Run the klambda platform locally (Invoke API, environments as processes).")
    parser.add_argument("--host", default=None, help="HTTP listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="HTTP port (default 9000)")
    parser.add_argument("--state-dir", default=None,
                        help="state directory (default $KLAMBDA_STATE_DIR or ./.klambda)")
    parser.add_argument("-f", "--filename", action="append", default=[], dest="manifests",
                        help="manifest file or directory to apply at start (repeatable)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, *, settings: LocalSettings | None = None) -> int:
    """Sync entry point: ``main(["--port", "9000", "-f", "examples/"])``."""
    args = parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.state_dir is not None:
        overrides["state_dir"] = args.state_dir
    try:
        settings = settings or GatewaySettings.from_env(**overrides)
    except ValueError as exc:
        print(f"klambda: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from klambda_model import ModelError

    from klambda_gateway.local_registry import RegistryError

    try:
        asyncio.run(run_local(settings, manifests=list(args.manifests)))
    except KeyboardInterrupt:
        return 130
    except (LocalError, ModelError, RegistryError) as exc:
        print(f"klambda: the platform did not start: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"klambda: cannot start: {exc} (is port {settings.port} already in use? "
              "choose another with --port)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
