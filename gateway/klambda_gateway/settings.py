"""The gateway's one settings object, built from ``KLAMBDA_*`` variables at the edge.

Every default is documented in docs/gateway.md; tests pass explicit values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

SYNC_PAYLOAD_LIMIT = 6_291_456  # bytes, Lambda's synchronous request limit
ASYNC_PAYLOAD_LIMIT = 1_048_576  # bytes, Lambda's current Event limit (1 MB)


def _default_state_dir() -> str:
    return os.environ.get("KLAMBDA_STATE_DIR", "./.klambda")


@dataclass(frozen=True)
class GatewaySettings:
    """Everything the data path can be tuned with (``KLAMBDA_<FIELD>`` upper-cased)."""

    host: str = "127.0.0.1"  # Invoke API / metrics / admin HTTP listener
    port: int = 9000
    fast_http: bool = True  # Invoke requests on klambda_gateway.http_front, not aiohttp
    grpc_host: str = "127.0.0.1"  # where environments dial in
    grpc_port: int = 0  # 0 = ephemeral (passed to environments via EnvironmentSpec.gateway)
    # the same stream without HTTP/2 (klambda_proto.lane); local environments use it when
    # enabled (EnvironmentSpec.lane), gRPC otherwise. lane_host "unix": an abstract Unix
    # socket (cheapest; environments on this machine), else a TCP host (lane_port 0 = any)
    lane_enabled: bool = True
    # local environments run their agent's code in this process (klambda_runtime.embedded):
    # the runtime is their only process; false: an agent process per environment
    embedded_environments: bool = True
    lane_host: str = "unix"
    lane_port: int = 0
    state_dir: str = ".klambda"
    region: str = "us-east-1"
    account_id: str = "000000000000"  # maps to the namespace "default" in ARNs
    # dispatch
    # max wait for an environment before 429 + Retry-After; above Lambda's 10 s init limit so
    # a cold start that uses the whole init budget still gets its (init error) answer
    queue_timeout_seconds: float = 15.0
    # concurrency
    account_concurrency: int = 1000  # per namespace
    unreserved_floor: int = 100  # reservations can never eat these
    burst_capacity: int = 1000  # new environments a function may start at once ...
    burst_rate_per_second: float = 100.0  # ... and the refill rate of that bucket
    # autoscaler
    keep_warm_seconds: float = 60.0  # idle environments stop after this
    scale_tick_seconds: float = 0.5
    stop_grace_seconds: float = 5.0  # SIGTERM -> SIGKILL for environments we stop
    # async
    async_payload_limit: int = ASYNC_PAYLOAD_LIMIT
    async_retry_base_seconds: float = 60.0  # 1st retry after base, 2nd after 2*base (Lambda)
    async_throttle_delay_seconds: float = 1.0  # re-try of a throttled event (no attempt used)
    async_max_in_flight: int = 64  # events the worker runs at once
    async_lease_seconds: float = 960.0  # > the longest function timeout (900 s)
    async_poll_seconds: float = 1.0  # worker wake-up when idle

    def __post_init__(self) -> None:
        # Environments are forked by a zygote whose working directory is not ours: every
        # path handed to them (code, layers, logs) must be absolute, so the state dir is.
        object.__setattr__(self, "state_dir", os.path.abspath(self.state_dir))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> GatewaySettings:
        """Build from ``KLAMBDA_*`` variables; explicit ``overrides`` win."""
        env = os.environ if env is None else env
        values: dict[str, object] = {"state_dir": env.get("KLAMBDA_STATE_DIR") or "./.klambda"}
        for f in fields(cls):
            raw = env.get("KLAMBDA_" + f.name.upper())
            if raw is None or raw == "":
                continue
            kind = type(getattr(cls, f.name)) if hasattr(cls, f.name) else str
            try:
                values[f.name] = _parse_bool(raw) if kind is bool else kind(raw)
            except ValueError as exc:
                raise ValueError(
                    f"KLAMBDA_{f.name.upper()}={raw!r} is not a valid {kind.__name__}; "
                    "fix or unset the variable"
                ) from exc
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def logs_dir(self) -> Path:
        return Path(self.state_dir) / "logs"

    @property
    def async_db_path(self) -> Path:
        return Path(self.state_dir) / "async-events.sqlite"


# The name the local composition (and the CLI) uses.
LocalSettings = GatewaySettings


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)
