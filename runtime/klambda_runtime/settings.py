"""The agent's own tunables (the environment itself is described by EnvironmentSpec)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass

from klambda_runtime.errors import SettingsError
from klambda_runtime.lambda_libs import default_cache_dir

_PREFIX = "KLAMBDA_AGENT_"


@dataclass(frozen=True)
class AgentSettings:
    reconnect_initial_s: float = 0.05  # first backoff after the gateway stream breaks
    reconnect_max_s: float = 2.0
    reconnect_give_up_s: float = 120.0  # exit (status 2) after this long without a gateway
    memory_sample_s: float = 0.02  # RSS polling while the runtime initialises or works
    tree_scan_s: float = 1.0  # how often descendants are rediscovered (a full /proc scan)
    init_ready_limit_s: float = 10.0  # Lambda's on-demand init limit: Ready is sent anyway
    register_timeout_s: float = 10.0  # Register unanswered this long: dial again
    drain_close_s: float = 2.0  # after draining, wait this long for the gateway to hang up
    kill_grace_s: float = 0.2  # SIGTERM -> SIGKILL for the runtime when the agent exits
    python: str = sys.executable  # interpreter for the exec (non-fork) runtime path
    fork_runtime: bool = True  # fork Python runtimes from a per-environment template
    # Where the Lambda-provided library directory (boto3...) is built; "" = no such set.
    cache_dir: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AgentSettings:
        def num(name: str, default: float) -> float:
            raw = env.get(_PREFIX + name)
            if raw is None or raw == "":
                return default
            try:
                return float(raw)
            except ValueError:
                raise SettingsError(
                    f"{_PREFIX}{name}={raw!r} is not a number; set it to seconds, e.g. 2.5"
                ) from None

        return cls(
            reconnect_initial_s=num("RECONNECT_INITIAL", cls.reconnect_initial_s),
            reconnect_max_s=num("RECONNECT_MAX", cls.reconnect_max_s),
            reconnect_give_up_s=num("RECONNECT_GIVE_UP", cls.reconnect_give_up_s),
            memory_sample_s=num("MEMORY_SAMPLE", cls.memory_sample_s),
            init_ready_limit_s=num("INIT_READY_LIMIT", cls.init_ready_limit_s),
            register_timeout_s=num("REGISTER_TIMEOUT", cls.register_timeout_s),
            drain_close_s=num("DRAIN_CLOSE", cls.drain_close_s),
            python=env.get(_PREFIX + "PYTHON") or sys.executable,
            fork_runtime=env.get(_PREFIX + "FORK_RUNTIME", "1") not in ("0", "false", "no"),
            cache_dir=default_cache_dir(env),
        )
